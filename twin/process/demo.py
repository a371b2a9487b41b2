"""The built-in default job: a short calendering of the authors' small example electrode.

Until the slurry and drying stages exist, the dried electrode is made by :mod:`twin.process.pack`
from ``shared/data/artistic/small_electrode_initial.data``: dried diameters, an affine compaction
of the random gas to a solid fraction of 0.45 in a 32 × 32 µm periodic cell (x, y scaled by 0.4,
as the slurry's isotropic NPT shrinks the authors' box), and overlap removal. A steel plate then
descends onto it at 2 µm/µs over an aluminium current collector (Table 2 materials, the authors'
mixing, SJKR2 cohesion, dt = 1e-4 µs), pressing about 10 % of its thickness.
"""

from __future__ import annotations

import numpy as np

from twin.io.case import Case, WallSpec
from twin.process.materials import table2_materials
from twin.process.pack import (artistic_electrode, compact_affine, default_artistic_path,
                               remove_overlaps)
from twin.physics.space import Box

SOLID_FRACTION = 0.45
LATERAL_SCALE = 0.4
PLATE_SPEED_UM_PER_US = 2.0
PRESS_FRACTION = 0.10


def small_electrode_calendering(steps=None, progress=None) -> Case:
    electrode = artistic_electrode(default_artistic_path())
    electrode = remove_overlaps(compact_affine(electrode, SOLID_FRACTION, LATERAL_SCALE),
                                progress=progress)
    top = float((electrode.position[:, 2] + electrode.radius).max())
    dt = 1e-4
    if steps is None:
        steps = int(round(PRESS_FRACTION * top / (PLATE_SPEED_UM_PER_US * dt), -3))
    lo, hi = np.asarray(electrode.box.lo), np.asarray(electrode.box.hi)
    materials = table2_materials()
    types = np.where(electrode.is_am, materials.names.index("AM"), materials.names.index("CBD"))
    return Case(
        name="small_electrode_calendering", ids=electrode.ids, types=types,
        radius=electrode.radius, density=electrode.density, position=electrode.position,
        box=Box(np.array([lo[0], lo[1], -1.0]), np.array([hi[0], hi[1], top + 1.0]),
                (True, True, False)),
        materials=materials,
        walls=[WallSpec("current_collector", materials.names.index("Al"), 0.0, 1.0, 0.0),
               WallSpec("calender_plate", materials.names.index("steel"), top, -1.0,
                        -PLATE_SPEED_UM_PER_US)],
        cohesion="sjkr2", dt=dt, steps=steps, trajectory_every=steps // 10,
        walls_every=steps // 100, skin=0.3,
        notes={"electrode": str(default_artistic_path()), "protocol": __doc__.strip()})
