"""PoreSpy reference for local thickness and mercury intrusion (goldens of tests/test_pores.py).

Runs in PoreSpy's own virtualenv (never the project's)::

    python -m venv /work/venvs/porespy && /work/venvs/porespy/bin/pip install porespy==3.2.0
    /work/venvs/porespy/bin/python tools/reference/porespy_psd.py

Images come from ``tests/images_pores.py`` (pure numpy, rebuilt from a seed). PoreSpy settings
that match the twin's definitions exactly (see ``twin/analysis/pores.py``):

* ``porespy.filters.local_thickness_dt(sizes=None, smooth=True)``: every integer radius from
  floor(max dt) down to 1, open balls (distance < r);
* ``porespy.simulations.drainage_dt(steps=[r_max … 1], smooth=True)``, inlets the top z layer,
  face connectivity (``trim_disconnected_voxels(conn='min')``), no outlets (no trapping).

PoreSpy has no periodic boundaries: along periodic axes the image is tiled 3 times and the
middle tile kept. Its distance transform is given exactly (``edt`` on a 5-fold tiling, middle 3
tiles kept), so every seed of the 3-fold tiling is an exact copy; a seed path that wanders more
than one tile sideways would be missed (PoreSpy could only under-invade, never over-invade).
A wall (the current collector below z = 0; for the local thickness also the top of the cut) is
a solid voxel layer added outside that face and removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import porespy
from edt import edt
from porespy.filters import local_thickness_dt
from porespy.simulations import drainage_dt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from images_pores import CASES, VOXEL_UM, case_image  # noqa: E402

OUT = ROOT / "tests" / "golden" / "porespy"
RUNS = {   # golden name: image case, periodic, z walls (bottom, top) for the local thickness
    #                      and for the intrusion (None: no intrusion run; its top is the inlet)
    "electrode_xy_periodic": ("electrode", (True, True, False), (True, True), (True, False)),
    "electrode_open": ("electrode", (False, False, False), (False, False), (False, False)),
    "electrode_all_periodic": ("electrode", (True, True, True), (False, False), None),
}
N_SAMPLES = 64


def tile(array, periodic, copies):
    return np.tile(array, [copies if p else 1 for p in periodic])


def middle(array, periodic, shape, copies):
    """The middle ``copies`` tiles along periodic axes of an array tiled ``copies + 2`` times."""
    index = tuple(slice(n, n * (copies + 1)) if p else slice(None)
                  for n, p in zip(shape, periodic))
    return array[index]


def with_walls(array, walls):
    """Solid (False) voxel layers below z = 0 and above the top, per walls = (bottom, top)."""
    layer = np.zeros(array.shape[:2] + (1,), bool)
    return np.concatenate([layer] * walls[0] + [array] + [layer] * walls[1], axis=2)


def crop(array, periodic, shape, walls):
    """The original tile (the middle of 3 along periodic axes), without the wall layers."""
    index = [slice(n, 2 * n) if p else slice(None) for n, p in zip(shape, periodic)]
    if not periodic[2]:
        index[2] = slice(int(walls[0]), int(walls[0]) + shape[2])
    return array[tuple(index)]


def summary(image):
    """Per-value voxel counts, sha256 of the uint8 (x, y, z) C-order bytes, sampled voxels."""
    image = np.asarray(image).astype(np.uint8)
    rng = np.random.default_rng(0)
    index = np.stack([rng.integers(n, size=N_SAMPLES) for n in image.shape], axis=1)
    return {"counts": np.bincount(image.ravel()).tolist(),
            "sha256": hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(),
            "samples": [[*map(int, ijk), int(image[tuple(ijk)])] for ijk in index]}


def padded(pore, periodic, walls):
    """PoreSpy's input: the image 3-fold tiled along periodic axes with wall layers, and its
    exact distance transform (from a 5-fold tiling)."""
    big = with_walls(tile(pore, periodic, 5), walls)
    return middle(big, periodic, pore.shape, 3), middle(edt(big), periodic, pore.shape, 3)


def run(name, case, periodic, thickness_walls, intrusion_walls):
    pore = case_image(case)[0] == 0
    shape = pore.shape
    out = {"case": case, "spec": CASES[case], "voxel_um": VOXEL_UM, "shape": list(shape),
           "periodic": list(periodic), "porespy": porespy.__version__,
           "porosity": float(pore.mean()), "thickness_z_walls": list(thickness_walls)}
    im, dt = padded(pore, periodic, thickness_walls)
    start = time.perf_counter()
    thickness = local_thickness_dt(im, dt=dt, sizes=None, smooth=True)
    out["local_thickness"] = summary(crop(thickness, periodic, shape, thickness_walls))
    out["local_thickness_seconds"] = time.perf_counter() - start
    print(f"{name}: local thickness {out['local_thickness']['counts']}")
    if intrusion_walls is not None:
        out["intrusion_z_walls"] = list(intrusion_walls)
        im, dt = padded(pore, periodic, intrusion_walls)
        r_max = int(np.floor(dt[im].max()))
        inlets = np.zeros_like(im)
        inlets[:, :, -1] = True
        start = time.perf_counter()
        result = drainage_dt(im, inlets=inlets, dt=dt, steps=np.arange(r_max, 0, -1),
                             smooth=True)
        out["invasion_radius"] = summary(crop(result.im_size, periodic, shape, intrusion_walls))
        out["intrusion_seconds"] = time.perf_counter() - start
        print(f"  invasion radius {out['invasion_radius']['counts']}")
    (OUT / f"psd_{name}.json").write_text(json.dumps(out, indent=1) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in RUNS.items():
        run(name, *spec)


if __name__ == "__main__":
    main()
