"""A stand-in drying stage: the dried electrode by DEM pressing on the current collector.

Until the coarse-grained slurry and drying stages exist (``../shared/FACTS.md``: NPT in z over
9e7 steps, periodic in z), the dried electrode that calendering starts from is made here; this
module is the one place to replace when they do. :func:`dried_electrode` runs:

1. **Start.** The authors' initial random structure (:func:`twin.process.pack.artistic_electrode`:
   CBD 1.3 µm, the AM class diameters, no AM expansion — the +2 % belongs to calendering), x and y
   scaled to the lateral cell (the paper's 25.8 × 25.8 µm), z compacted affinely to a loose solid
   fraction (default 0.55, porosity 45 %) with the floor at z = 0, overlaps removed
   (:func:`~twin.process.pack.compact_affine`, :func:`~twin.process.pack.remove_overlaps`).
2. **Press.** DEM (Table 2 materials, the authors' mixing, SJKR2 cohesion, dt = 1e-4 µs, no
   gravity, as in the authors' calendering) between an aluminium current collector at z = 0 and a
   steel plate that starts on the highest sphere top and moves down at ``plate_speed`` (default
   2 µm/µs) until the plate porosity 1 − V_s / (l_x l_y h_plate) reaches the press target (V_s:
   the spheres' total volume, overlaps counted twice: the authors' definition). No drag: the free
   dynamics rearrange the packing (see the limits below). The plate is non-adhesive (every CED
   with steel set to 0, :func:`non_adhesive`): it stands in for the consolidating film surface,
   which glues nothing. With Table 2's steel CED the lifted plate carried the top spheres with it
   (paper-size run, lift at 2 µm/µs under the drag: the highest top followed the plate 7 nm
   below it from 164.1 to 167.5 µm, plate pressure −0.5 to −4 kPa, until stopped by hand).
3. **Hold.** The plate stops; a viscous drag F = −γ m v (and the same decay of the spins,
   ``DEMConfig.viscous_damping``, LIGGGHTS ``fix viscous`` with γ ∝ m), γ = ``drag_rate`` (5 /µs), acts
   until the kinetic energy fell below ``settle_fraction`` (2 %) of its peak during the press. It
   stands in for the solvent drag of a real drying (this stage is a stand-in anyway); for scale,
   Stokes drag 6πηr in NMP (η ≈ 1.7 mPa s) gives γ = 9η / (2 r² ρ) ≈ 10 /µs for a CBD sphere
   (r 0.65 µm, 0.95 g/cm³) and ≈ 0.07 /µs for a 10 µm AM sphere.
4. **Lift, settle and relax.** The plate rises at ``plate_speed`` (drag on) until it is
   :data:`LIFT_CLEARANCE_UM` above the highest sphere top and stays there; the packing settles
   under the drag, then relaxes **without** it, each until (a) its kinetic energy is below 2 % of
   the press peak, (b) the highest sphere top moved less than :data:`TOP_DRIFT_UM` over the last
   two chunks (0.2 µs) and (c) the AM spheres' rms velocity is below
   :data:`AM_RMS_VELOCITY_UM_US` (a drift < 0.01 µm per µs, 1/25 of the 0.25 µm voxel of the
   structure analysis). The undamped relaxation (≥ 3 chunks) is the check that the result is a
   free-standing equilibrium, not a packing the drag merely slows: the drag vanishes at rest, so
   it changes the path, not the equilibria. The total kinetic energy does not vanish: with the
   Table 2 friction of 0.001 the CBD spheres keep sliding and spinning on the AM surfaces, held
   there by cohesion, with hardly any tangential damping; the AM skeleton carries the structure.
5. **Cycles.** Thickness t is the highest sphere top above the collector, max(z + r): the height
   at which a rising calender plate loses its last contact, i.e. the authors' recovered thickness
   (FACTS.md, "highest top-plane position during decompression with a non-zero contact force")
   without the plate. The dried porosity is 1 − V_s / (l_x l_y t). It is above the press target
   because the packing springs back; if it misses the target by more than ``tolerance`` / 2, the
   packing is pressed again: cycle 2 to the same height (the first springback includes a slow
   creep that a consolidated packing no longer shows: measured 0.32 → 0.06 µm on 816 spheres),
   later cycles below it by the last cycle's springback (elastic, reproducible: 0.0831 and
   0.0833 µm on 623 spheres, cycle 3 then landed 4 nm below the target height).

Why lift rather than hold the plate: a held plate leaves the packing pre-stressed (it springs back
by ~0.5–2 % of its thickness when released), so calendering would start from a loaded electrode
and its porosity would depend on the plate that is no longer there; a lifted plate leaves a
free-standing electrode whose thickness is a property of the packing alone.

Limits, measured (float64, this 2-core CPU):

* The press is inertial, not quasi-static: inertial number I = γ̇ d₃₂ √(ρ/P) ≈ 0.2 at the end of
  the first press at 5 µm/µs on 623 spheres (quasi-static needs I < 1e-3). The density reached
  depends on it: a variant that reset the sphere velocities to the homogeneous compression field
  v_z = v_plate z / z_plate before every chunk (no plug flow) jammed near 43.7 % porosity, its
  springback growing with each deeper re-press (0.3 → 1 µm on 12.4 µm), so the target was not
  reached; only the free dynamics rearrange the packing to 41.6 %.
* Plug flow, the failure of the first version on the paper-size electrode (9859 spheres,
  213 → 164 µm from a loose 0.45 at 5 µm/µs, no drag): after the plate stopped the highest top
  fell away from it at 1.97 µm/µs for 8 µs (to 148.4 µm, i.e. 35 % porosity), and the relaxation
  never settled (AM rms velocity 0.43 µm/µs). Diagnosed on the lowest 40 % of that structure
  (3904 spheres, 86.1 → 66.3 µm, same protocol): at the end of the press the mean v_z of five
  equal layers, bottom up, was −0.10, −0.40, −2.53, −4.42, −4.79 µm/µs: a compaction front had
  swept the upper 60 % into a dense plug moving with the plate while the loose bottom (the
  spheres of a gravity-free loose start hardly touch) was still at rest. Nothing but the loose
  spheres ahead decelerates the plug: undamped, the top fell 2.9 µm in 1.5 µs after the plate
  stopped (AM rms velocity 3.3 → 2.6 µm/µs). With the drag (γ = 5 /µs) in the hold the top fell
  0.37 µm and the AM rms velocity was below 0.01 µm/µs after 1.1 µs — but the packing stays
  layered, dense plug over loose bottom, so the drag alone is not the fix.
* The fix is the denser start with the slower plate, and the drag once the plate stops: from
  0.55 at 2 µm/µs (86.1 → 70.4 µm start, travel 4.1 µm on the same 3904 spheres) the layer
  velocities at the end of the press were 0.000, −0.009, −0.072, −0.67, −1.63 µm/µs (AM rms
  1.0 µm/µs); in the damped hold (plate still adhesive then) the top stayed on the plate
  (66.314 µm, plate at 66.306 µm) and the AM rms velocity fell below 0.01 µm/µs in 1.3 µs,
  porosity 41.61 % at the highest top.
* The paper-size run with the defaults (``experiments/dried_electrode.py``, record in
  ``experiments/data/dried_paper_electrode.json``; 9859 spheres, float64, 2-core CPU shared with
  other jobs): press 174.25 → 164.10 µm at 1.99 µm/µs (51 000 steps, I = 0.014, peak plate
  pressure 0.40 MPa); in the damped hold the packing drew 0.30 µm back from the plate (plug
  momentum, the plate does not hold it) and the kinetic energy fell to 2 % of its peak in
  4 000 steps; lift 1 000, settling 5 000, free relaxation 3 000 steps: thickness 163.76 µm,
  porosity 41.48 % in one cycle (slab 41.48 %, union 42.32 %), AM rms velocity 0.009 µm/µs, top
  drift 2 nm over 0.2 µs, wall time 459 s (1.5e6 particle steps/s; 899 s under a load average
  of ~8, the same packing bit for bit). The free relaxation is not
  silent: the kinetic energy rose from 12 to 1.5e3 (0.5 % of the press peak) in its last chunk.
* The compaction is graded, not uniform. Mean z of the spheres of five equal layers of the
  0.55 start, bottom up, moved by −0.02, −0.02, −0.90, −3.58, −7.19 µm: compressive strains
  between layer centroids 0.1 %, 0.0 %, 2.5 %, 7.6 %, 10.6 % — the lower two fifths were not
  compressed at all. The porosities of five equal layers of the
  result, 42.0, 52.4, 44.9, 33.1, 34.9 %, are mostly inherited from the authors' structure: the
  same layers of the affine start (before overlap removal) have 42.3, 49.2, 57.3, 32.3, 43.9 %
  (AM spheres carry 83 % of V_s and 65–97 of them fall in each 35 µm layer).
  A slower plate does not remove the grading: on the lowest 40 % of the structure (3904
  spheres, 0.55 start) the strains of the five layers were −0.2, 0.4, 0.6, 6.2, 12.5 % at
  2 µm/µs (I = 0.12, porosity 41.39 %, 190 s) and 0.0, 0.5, 1.1, 6.8, 10.4 % at 1 µm/µs
  (I = 0.035, 41.48 %, 286 s); a quasi-static press (I < 1e-3, ~0.03 µm/µs) would need ~300 µs,
  3e6 steps. The stand-in thus consolidates top-down, as a drying front does, and leaves the
  lower part of the authors' structure as it was; a real drying stage should replace it.

The paper's cell (FACTS.md): 396 AM + 9463 CBD spheres have V_s = 63 793 µm³ at the dried
diameters, so 41.6 % porosity over 25.8 × 25.8 µm is t = 164.1 µm; the paper's uncalendered mesh
height of 165.0 µm gives 41.9 % (the mesh top sits ~0.9 µm above V_s / (area (1 − 0.416)), e.g.
a voxel or a sphere cap). With the AM diameters expanded 2 %, 165 µm would be 39.0 %: the mesh
heights use the dried diameters.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from twin.analysis.porosity import sphere_volume_in_slab
from twin.io.case import Case, WallSpec, prepare
from twin.io.lammps import write_sphere_data
from twin.physics.dem import INERTIA_FACTOR
from twin.physics.materials import Materials
from twin.physics.neighbors import allocate_neighbors
from twin.physics.simulate import simulate
from twin.physics.space import Box
from twin.process.materials import table2_materials
from twin.process.pack import (Electrode, artistic_electrode, compact_affine,
                               default_artistic_path, remove_overlaps)
from twin.process.pack import inertial_number as pack_inertial_number

PAPER_LATERAL_UM = 25.8          # FACTS.md: meshes over 25.8 × 25.8 µm
PAPER_DRIED_POROSITY = 0.416     # Table 1, simulated
DT_US = 1e-4                     # the authors' DEM time step
SKIN_UM = 0.3
RECORD_EVERY = 100               # steps between recorded plate forces
LIFT_CLEARANCE_UM = 0.5          # the lifted plate stops this far above the highest sphere top
TOP_DRIFT_UM = 0.005             # relaxed: the highest top moves less than this over 2 chunks
AM_RMS_VELOCITY_UM_US = 0.01     # relaxed: AM skeleton rms velocity below this
DRAG_RATE_PER_US = 5.0           # viscous drag γ of the hold, lift and settling (1/µs)
PROFILE_LAYERS = 5               # equal layers of the record's porosity profile


class ParticleEscaped(RuntimeError):
    """A sphere left the space between the current collector and the plate (or the box)."""


@dataclass
class DryingProgress:
    """Passed to the ``progress`` callback after each DEM chunk."""

    phase: str                 # "press", "hold", "lift", "settle" or "relax"
    cycle: int                 # press cycle, from 1
    drag_rate: float           # 1/µs, the viscous drag of the chunk (0: free dynamics)
    step: int
    plate_z: float             # µm
    plate_pressure: float      # micro units (1e3 Pa), mean over the chunk
    top_z: float               # highest sphere top, µm
    kinetic_energy: float      # translational + rotational, 1e-15 J


@dataclass
class DryingRecord:
    """What the stage did. Lengths µm, times µs, pressures micro units (1e3 Pa), energies 1e-15 J.

    Porosities of the final packing over the slab [0, thickness]:
    ``porosity_top`` = 1 − V_s / (l_x l_y t), the authors' definition (overlaps counted twice);
    ``porosity_slab`` the same with each sphere's exact volume inside the slab (caps pressed into
    the collector left out); ``porosity_union`` with every pair overlap (lens) counted once, the
    porosity a voxel image of the packing approaches (triple overlaps neglected).
    """

    source: str
    n_particles: int
    lateral_um: tuple[float, float]
    target_porosity: float
    solid_volume_um3: float
    start_height_um: float
    press_heights_um: list[float]
    cycle_thicknesses_um: list[float]
    thickness_um: float
    porosity_top: float
    porosity_slab: float
    porosity_union: float
    layer_porosities: list[float]        # exact volumes in PROFILE_LAYERS equal layers, bottom up
    press_speed_um_us: float             # the first press (at most plate_speed)
    drag_rate_per_us: float              # hold, lift and settling; the final relaxation is free
    inertial_number: float               # at the end of the first press
    peak_pressure: float
    kinetic_energy_peak: float
    kinetic_energy_final: float
    am_rms_velocity_final: float
    top_drift_um: float
    steps: dict
    wall_seconds: float
    particle_steps_per_second: float     # DEM chunks only (compilation included)
    trace: list = field(default_factory=list)

    def summary(self) -> dict:
        """Everything but the per-chunk trace (JSON-ready)."""
        return {k: v for k, v in asdict(self).items() if k != "trace"}


def _subsample(electrode: Electrode, slab_fraction: float) -> Electrode:
    """Keep the spheres whose centres lie in the lowest ``slab_fraction`` of the initial box."""
    lo, hi = np.asarray(electrode.box.lo), np.asarray(electrode.box.hi).copy()
    hi[2] = lo[2] + slab_fraction * (hi[2] - lo[2])
    keep = electrode.position[:, 2] < hi[2]
    return Electrode(electrode.ids[keep], electrode.am_class[keep], electrode.radius[keep],
                     electrode.density[keep], electrode.position[keep],
                     Box(lo, hi, electrode.box.periodic))


def _kinetic_energy(spheres) -> float:
    m, r = np.asarray(spheres.mass), np.asarray(spheres.radius)
    v, w = np.asarray(spheres.velocity), np.asarray(spheres.angular_velocity)
    return float(0.5 * np.sum(m * np.sum(v**2, axis=1))
                 + 0.5 * np.sum(INERTIA_FACTOR * m * r**2 * np.sum(w**2, axis=1)))


def _lens_volume(r_i, r_j, d):
    """Volume common to two overlapping spheres at centre distance d (Weisstein, "Sphere-Sphere
    Intersection", MathWorld): π (r_i + r_j − d)² (d² + 2d(r_i + r_j) − 3(r_i − r_j)²) / (12 d)."""
    return (np.pi * (r_i + r_j - d)**2 * (d**2 + 2 * d * (r_i + r_j) - 3 * (r_i - r_j)**2)
            / (12 * d))


def _union_overlap_volume(position, radius, pairs, length) -> float:
    """Σ over overlapping listed pairs of their lens volume (x, y periodic)."""
    n = len(radius)
    pairs = pairs[pairs[:, 0] < n]
    i, j = pairs[:, 0], pairs[:, 1]
    d = position[i] - position[j]
    d[:, :2] -= length[:2] * np.round(d[:, :2] / length[:2])
    distance = np.linalg.norm(d, axis=1)
    touching = distance < radius[i] + radius[j]
    return float(np.sum(_lens_volume(radius[i][touching], radius[j][touching],
                                     distance[touching])))


def check_dried_inputs(electrode: Electrode, lateral_um, target_porosity, loose_solid_fraction,
                       skin=SKIN_UM) -> None:
    """Raise ValueError for a target or cell the stage cannot reach or hold."""
    if not 0.0 < target_porosity < 1.0:
        raise ValueError(f"target porosity {target_porosity} must lie in (0, 1) (the paper's dried "
                         f"electrode: {PAPER_DRIED_POROSITY})")
    loose_porosity = 1.0 - loose_solid_fraction
    if not target_porosity < loose_porosity:
        raise ValueError(
            f"target porosity {target_porosity} is not below the loose start's porosity "
            f"{loose_porosity:.3f} (solid fraction {loose_solid_fraction}): the plate would have "
            "nothing to press; lower the target or loose_solid_fraction")
    contact = 2.0 * (2.0 * float(electrode.radius.max()) + skin)
    if not lateral_um >= contact:
        raise ValueError(
            f"lateral size {lateral_um} µm is smaller than twice the largest contact distance "
            f"2·(2 r_max + skin) = {contact:.4g} µm (a sphere would touch its own periodic image): "
            f"use lateral_um >= {contact:.4g}")


def non_adhesive(materials: Materials, name: str) -> Materials:
    """``materials`` with every cohesion energy density involving type ``name`` set to zero."""
    k = materials.names.index(name)
    ced = materials.cohesion_energy_density.at[k, :].set(0.0).at[:, k].set(0.0)
    return eqx.tree_at(lambda m: m.cohesion_energy_density, materials, ced)


class _Press:
    """The DEM between the collector (wall 0) and the plate (wall 1), advanced chunk by chunk."""

    def __init__(self, electrode: Electrode, box_top, plate_z, chunk_steps, progress):
        materials = table2_materials()
        types = np.where(electrode.is_am, materials.names.index("AM"), materials.names.index("CBD"))
        lo, hi = np.asarray(electrode.box.lo), np.asarray(electrode.box.hi)
        case = Case(
            name="dried_electrode", ids=electrode.ids, types=types, radius=electrode.radius,
            density=electrode.density, position=electrode.position,
            box=Box(np.array([lo[0], lo[1], -1.0]), np.array([hi[0], hi[1], box_top]),
                    (True, True, False)),
            materials=materials,
            walls=[WallSpec("current_collector", materials.names.index("Al"), 0.0, 1.0, 0.0),
                   WallSpec("plate", materials.names.index("steel"), plate_z, -1.0, 0.0)],
            cohesion="sjkr2", dt=DT_US, steps=chunk_steps, trajectory_every=chunk_steps,
            walls_every=RECORD_EVERY, skin=SKIN_UM)
        self.state, self.spec, self.config, self.box, materials = prepare(case)
        self.materials = non_adhesive(materials, "steel")
        self.area = float((hi[0] - lo[0]) * (hi[1] - lo[1]))
        self.chunk_steps, self.progress = chunk_steps, progress
        self.box_top = box_top
        self.trace = []
        self.dem_seconds = 0.0

    def presize(self, growth):
        """Re-allocate the neighbour list with room for a denser packing (avoids re-allocating
        and re-compiling during the press); no shear history exists yet."""
        s = self.state.spheres
        walls = self.state.walls
        self.spec, pair_list = allocate_neighbors(
            np.asarray(s.position), np.asarray(s.radius), self.box, SKIN_UM, growth=growth,
            wall_z=np.asarray(walls.z), wall_normal_z=np.asarray(walls.normal_z))
        shear = jnp.zeros((pair_list.pairs.shape[0], 3), self.state.pair_shear.dtype)
        self.state = eqx.tree_at(lambda st: (st.neighbors, st.pair_shear), self.state,
                                 (pair_list, shear))

    @property
    def plate_z(self) -> float:
        return float(self.state.walls.z[1])

    def top_z(self) -> float:
        s = self.state.spheres
        return float(np.max(np.asarray(s.position[:, 2]) + np.asarray(s.radius)))

    def chunk(self, phase, cycle, plate_velocity, drag_rate=0.0) -> DryingProgress:
        state = eqx.tree_at(lambda st: st.walls.velocity_z, self.state,
                            self.state.walls.velocity_z.at[1].set(plate_velocity))
        config = dataclasses.replace(self.config, viscous_damping=drag_rate)
        result = simulate(state, self.materials, self.box, self.spec, config,
                          self.chunk_steps, RECORD_EVERY, record_particles=False,
                          chunk_steps=self.chunk_steps)
        self.dem_seconds += result.wall_seconds
        self.state, self.spec = result.state, result.spec
        self._check_inside()
        plate_force = np.concatenate([np.asarray(r.wall_force)[:, 1, 2] for r in result.records])
        report = DryingProgress(phase, cycle, drag_rate, int(self.state.step), self.plate_z,
                                float(plate_force.mean()) / self.area, self.top_z(),
                                _kinetic_energy(self.state.spheres))
        self.trace.append(report)
        if self.progress is not None:
            self.progress(report)
        return report

    def _check_inside(self):
        s = self.state.spheres
        check_inside(np.asarray(s.position[:, 2]), np.asarray(s.radius), self.plate_z,
                     self.box_top, int(self.state.step))


def check_inside(z, radius, plate_z, box_top, step) -> None:
    """Raise :class:`ParticleEscaped` naming the first sphere whose centre lies below the
    collector (z = 0) or above the plate, or whose top lies above the box."""
    for bad, where in ((z < 0.0, "below the current collector (z = 0)"),
                       (z > plate_z, f"above the plate (z = {plate_z:.4g} µm)"),
                       (z + radius > box_top, f"out of the box (top {box_top:.4g} µm)")):
        if bad.any():
            k = int(np.argmax(bad))
            raise ParticleEscaped(
                f"sphere index {k} (radius {radius[k]:.3g} µm) escaped {where}: its centre is at "
                f"z = {z[k]:.4g} µm after step {step}. Lower plate_speed or raise "
                "loose_solid_fraction (a gentler press), or check the input structure")


def dried_electrode(path=None, lateral_um=PAPER_LATERAL_UM, target_porosity=PAPER_DRIED_POROSITY,
                    am_expansion=1.0, loose_solid_fraction=0.55, plate_speed=2.0,
                    drag_rate=DRAG_RATE_PER_US, tolerance=0.005, max_cycles=4, slab_fraction=1.0,
                    chunk_steps=1000, settle_fraction=0.02, max_settle_chunks=40, progress=None
                    ) -> tuple[Electrode, DryingRecord]:
    """The dried electrode (positions µm, x y periodic, current collector at z = 0) and a record.

    Args:
      path: the authors' initial structure (LAMMPS data); default
        :func:`~twin.process.pack.default_artistic_path` (the small electrode); the paper-size
        one is ``shared/data/artistic/thick_electrode_initial.data``.
      lateral_um: side of the square periodic cell (the paper: 25.8 µm); x and y of the initial
        structure are scaled to it.
      target_porosity: dried porosity to reach, thickness = highest sphere top (the paper: 0.416).
      am_expansion: AM diameter factor (1: the dried diameters; the +2 % is a calendering option).
      loose_solid_fraction: solid fraction of the affine start, below 1 − target_porosity.
      plate_speed: µm/µs (= m/s) of the plate, down while pressing and up while lifting.
      drag_rate: γ (1/µs) of the viscous drag F = −γ m v (and the same decay of the spin) during
        the hold, lift and settling (``DEMConfig.viscous_damping``); 0 leaves those phases undamped. The
        final relaxation is always undamped.
      tolerance: accepted |porosity − target|; the press target is corrected for the springback
        measured in a cycle whenever the miss exceeds tolerance / 2, up to ``max_cycles`` cycles.
      slab_fraction: keep only the spheres of the lowest fraction of the initial box (a sub-sample
        for quick runs; 1 keeps all).
      chunk_steps: DEM steps per chunk (one progress call, escape check and settle test each).
      settle_fraction: the hold ends, and the relaxation is complete, once the kinetic energy is
        below this fraction of its peak during the press (and, for the relaxation, the highest
        sphere top moved less than :data:`TOP_DRIFT_UM` over the last two chunks and the AM rms
        velocity is below :data:`AM_RMS_VELOCITY_UM_US`).
      max_settle_chunks: chunks allowed for each hold (the stage goes on after them) and each
        relaxation (the stage raises after them).
      progress: optional callable receiving a :class:`DryingProgress` after each chunk.

    Raises:
      ValueError: a target porosity outside (0, 1) or not below the loose start's, a lateral
        cell smaller than twice the largest contact distance, a bad slab fraction.
      ParticleEscaped: a sphere left the space between collector and plate (or the box).
      RuntimeError: no relaxation within ``max_settle_chunks``, or the porosity still off by
        more than ``tolerance`` after ``max_cycles`` cycles.
    """
    start_time = time.perf_counter()
    path = default_artistic_path() if path is None else path
    if not 0.0 < slab_fraction <= 1.0:
        raise ValueError(f"slab_fraction {slab_fraction} must lie in (0, 1]")
    if not plate_speed > 0.0:
        raise ValueError(f"plate_speed {plate_speed} µm/µs must be > 0")
    if not drag_rate >= 0.0:
        raise ValueError(f"drag_rate {drag_rate} /µs must be >= 0 (0: no drag)")
    electrode = artistic_electrode(path, am_expansion)
    if slab_fraction < 1.0:
        electrode = _subsample(electrode, slab_fraction)
    check_dried_inputs(electrode, lateral_um, target_porosity, loose_solid_fraction)
    scale = lateral_um / float(electrode.box.hi[0] - electrode.box.lo[0])
    electrode = remove_overlaps(compact_affine(electrode, loose_solid_fraction, scale))
    solid_volume = electrode.solid_volume
    start_height = float(electrode.box.hi[2])
    r_max = float(electrode.radius.max())
    press = _Press(electrode, start_height + 2.0 * r_max, float(
        np.max(electrode.position[:, 2] + electrode.radius)), chunk_steps, progress)
    press.presize(growth=1.3 * ((1.0 - target_porosity) / loose_solid_fraction) ** 2)
    area = press.area
    target_height = solid_volume / (area * (1.0 - target_porosity))
    chunk_time = chunk_steps * DT_US

    press_height, press_heights, thicknesses = target_height, [], []
    steps = {"press": 0, "hold": 0, "lift": 0, "settle": 0, "relax": 0}
    kinetic_peak, peak_pressure = 0.0, 0.0
    for cycle in range(1, max_cycles + 1):
        press_heights.append(press_height)
        travel = max(press.plate_z - press_height, 0.0)
        n_chunks = max(1, math.ceil(travel / (plate_speed * chunk_time)))
        speed = travel / (n_chunks * chunk_time)
        for _ in range(n_chunks):
            report = press.chunk("press", cycle, -speed)
            kinetic_peak = max(kinetic_peak, report.kinetic_energy)
            peak_pressure = max(peak_pressure, report.plate_pressure)
        steps["press"] += n_chunks * chunk_steps
        if cycle == 1:
            press_speed = speed
            radius = np.asarray(press.state.spheres.radius)
            density = np.asarray(press.state.spheres.mass) / (4.0 / 3.0 * np.pi * radius**3)
            inertial_number = pack_inertial_number(radius, density, speed / press_height,
                                                   report.plate_pressure)
        for _ in range(max_settle_chunks):
            report = press.chunk("hold", cycle, 0.0, drag_rate)
            steps["hold"] += chunk_steps
            if report.kinetic_energy < settle_fraction * kinetic_peak:
                break
        for _ in range(max_settle_chunks):
            if press.plate_z >= press.top_z() + LIFT_CLEARANCE_UM:
                break
            press.chunk("lift", cycle, plate_speed, drag_rate)
            steps["lift"] += chunk_steps
        else:
            raise RuntimeError(
                f"the lifted plate (z = {press.plate_z:.4g} µm) is still within "
                f"{LIFT_CLEARANCE_UM} µm of the highest sphere top ({press.top_z():.4g} µm) after "
                f"{max_settle_chunks} chunks: spheres follow it. Raise max_settle_chunks")
        # Settle under the drag, then relax without it: the relaxed criteria must hold for the
        # free dynamics (a drag alone would only slow a packing that is not in equilibrium).
        for phase, rate in (("settle", drag_rate), ("relax", 0.0)):
            report, drift, chunks = _relax(press, phase, cycle, rate,
                                           settle_fraction * kinetic_peak, max_settle_chunks,
                                           electrode.is_am)
            steps[phase] += chunks * chunk_steps
        thickness = report.top_z
        thicknesses.append(thickness)
        porosity = 1.0 - solid_volume / (area * thickness)
        if abs(porosity - target_porosity) <= 0.5 * tolerance:
            break
        if porosity < target_porosity - tolerance:
            break   # too dense: a plate cannot pull the packing back up
        # Cycle 1 springs back by creep and elastic recovery, a re-press of the consolidated
        # packing by its elastic recovery only: press cycle 2 to the target height again, and
        # later cycles below it by the springback of the last one.
        springback = thickness - press_height
        press_height = target_height - (max(springback, 0.0) if cycle > 1 else 0.0)
    if abs(porosity - target_porosity) > tolerance:
        raise RuntimeError(
            f"dried porosity {porosity:.4f} misses the target {target_porosity} by more than "
            f"{tolerance} after {max_cycles} press cycles (press heights {press_heights} µm, "
            f"thickness {thickness:.4g} µm): raise max_cycles or lower plate_speed")
    return _finish(press, electrode, path, target_porosity, solid_volume, start_height,
                   press_heights, thicknesses, press_speed, drag_rate, inertial_number,
                   peak_pressure, kinetic_peak, drift, steps, start_time)


def _relax(press: _Press, phase, cycle, drag_rate, kinetic_limit, max_chunks, is_am,
           am_rms_limit=AM_RMS_VELOCITY_UM_US):
    """Run chunks with the plate at rest until the packing is relaxed: kinetic energy below
    ``kinetic_limit``, the highest top moved less than :data:`TOP_DRIFT_UM` over the last two
    chunks and the AM rms velocity below ``am_rms_limit`` (µm/µs). Return the last report,
    the drift over the last two chunks (µm) and the number of chunks run."""
    tops = []
    for chunks in range(1, max_chunks + 1):
        report = press.chunk(phase, cycle, 0.0, drag_rate)
        tops.append(report.top_z)
        drift = max(tops[-3:]) - min(tops[-3:]) if len(tops) >= 3 else np.inf
        am_rms = _am_rms_velocity(press.state.spheres, is_am)
        if (report.kinetic_energy < kinetic_limit and drift < TOP_DRIFT_UM
                and am_rms < am_rms_limit):
            return report, drift, chunks
    raise RuntimeError(
        f"the packing did not relax ({phase}, drag rate {drag_rate} /µs) within {max_chunks} "
        f"chunks of {press.chunk_steps} steps: kinetic energy {report.kinetic_energy:.3g} "
        f"(limit {kinetic_limit:.3g}), top drift {drift:.3g} µm, AM rms velocity {am_rms:.3g} "
        "µm/µs. Raise max_settle_chunks or drag_rate, or lower plate_speed")


def relax_free_standing(electrode: Electrode, drag_rate=DRAG_RATE_PER_US, chunk_steps=1000,
                        settle_fraction=0.02, max_chunks=60, headroom_um=10.0,
                        am_rms_limit=AM_RMS_VELOCITY_UM_US, progress=None
                        ) -> tuple[Electrode, dict]:
    """A given packing relaxed on the current collector with no plate on it: step 4 of
    :func:`dried_electrode` (settle under the drag, then relax without it, to the same criteria)
    for a packing made elsewhere, e.g. the authors' CGMD-dried electrode, whose Hertz overlaps
    (AM–AM up to 1.1 µm after their 2 % expansion) pre-stress it.

    The collector is put at z = 0 under the lowest sphere; the plate waits ``headroom_um`` above
    the highest top and touches nothing (:class:`ParticleEscaped` if a sphere reaches it). The
    kinetic-energy limit is ``settle_fraction`` of the peak over the first chunk (the release of
    the pre-stress). ``am_rms_limit`` (µm/µs) is the AM rms velocity below which the packing
    counts as at rest (:data:`AM_RMS_VELOCITY_UM_US` by default, set for voxel analysis; a
    calendering start can take more, its plate moves at µm/µs). Returns the relaxed electrode (box z from 0 to the highest top) and a record
    (highest top before and after in µm, chunks per phase, kinetic energies in 1e-15 J, AM rms
    velocity in µm/µs, wall seconds).
    """
    start_time = time.perf_counter()
    if not drag_rate > 0.0:
        raise ValueError(f"drag_rate {drag_rate} /µs must be > 0: the settling needs a drag")
    position = electrode.position - np.array([0.0, 0.0, np.min(electrode.position[:, 2]
                                                               - electrode.radius)])
    shifted = dataclasses.replace(electrode, position=position)
    top = float(np.max(position[:, 2] + electrode.radius))
    press = _Press(shifted, top + 2.0 * headroom_um, top + headroom_um, chunk_steps, progress)
    first = press.chunk("settle", 1, 0.0, drag_rate)
    kinetic_limit = settle_fraction * max(first.kinetic_energy, _kinetic_energy(
        press.state.spheres))
    chunks = {"settle": 1}
    for phase, rate in (("settle", drag_rate), ("relax", 0.0)):
        report, drift, n = _relax(press, phase, 1, rate, kinetic_limit, max_chunks,
                                  electrode.is_am, am_rms_limit)
        chunks[phase] = chunks.get(phase, 0) + n
    s = press.state.spheres
    lo = np.asarray(electrode.box.lo, float)
    box = Box(np.array([lo[0], lo[1], 0.0]),
              np.array([electrode.box.hi[0], electrode.box.hi[1], report.top_z]),
              electrode.box.periodic)
    relaxed = dataclasses.replace(electrode, position=np.asarray(s.position), box=box)
    record = {"top_before_um": top, "top_after_um": report.top_z, "drag_rate_per_us": drag_rate,
              "chunk_steps": chunk_steps, "chunks": chunks,
              "kinetic_energy_limit": kinetic_limit, "kinetic_energy_final": report.kinetic_energy,
              "am_rms_velocity_um_us": _am_rms_velocity(s, electrode.is_am),
              "am_rms_limit_um_us": am_rms_limit, "top_drift_um": float(drift),
              "wall_seconds": time.perf_counter() - start_time}
    return relaxed, record


def _am_rms_velocity(spheres, is_am) -> float:
    """Mass-weighted rms translational velocity of the AM spheres (µm/µs)."""
    m, v = np.asarray(spheres.mass)[is_am], np.asarray(spheres.velocity)[is_am]
    return float(np.sqrt(np.sum(m * np.sum(v**2, axis=1)) / np.sum(m)))


def _finish(press: _Press, electrode, path, target_porosity, solid_volume, start_height,
            press_heights, thicknesses, speed, drag_rate, inertial_number, peak_pressure,
            kinetic_peak, drift, steps, start_time):
    s = press.state.spheres
    thickness = thicknesses[-1]
    position, radius = np.asarray(s.position), np.asarray(s.radius)
    lo = np.asarray(electrode.box.lo)
    hi = np.array([electrode.box.hi[0], electrode.box.hi[1], thickness])
    area = press.area
    in_slab = float(np.sum(sphere_volume_in_slab(position[:, 2], radius, 0.0, thickness)))
    edges = np.linspace(0.0, thickness, PROFILE_LAYERS + 1)
    layer_porosities = [
        1.0 - float(np.sum(sphere_volume_in_slab(position[:, 2], radius, a, b))) / (area * (b - a))
        for a, b in zip(edges[:-1], edges[1:])]
    lens = _union_overlap_volume(position, radius, np.asarray(press.state.neighbors.pairs),
                                 hi - lo)
    dried = Electrode(electrode.ids, electrode.am_class, electrode.radius, electrode.density,
                      position, Box(lo, hi, electrode.box.periodic))
    record = DryingRecord(
        source=str(path), n_particles=len(radius), lateral_um=(float(hi[0]), float(hi[1])),
        target_porosity=target_porosity, solid_volume_um3=solid_volume,
        start_height_um=start_height, press_heights_um=[float(h) for h in press_heights],
        cycle_thicknesses_um=[float(t) for t in thicknesses], thickness_um=thickness,
        porosity_top=1.0 - solid_volume / (area * thickness),
        porosity_slab=1.0 - in_slab / (area * thickness),
        porosity_union=1.0 - (in_slab - lens) / (area * thickness),
        layer_porosities=layer_porosities, press_speed_um_us=speed, drag_rate_per_us=drag_rate,
        inertial_number=inertial_number, peak_pressure=peak_pressure,
        kinetic_energy_peak=kinetic_peak, kinetic_energy_final=_kinetic_energy(s),
        am_rms_velocity_final=_am_rms_velocity(s, electrode.is_am), top_drift_um=float(drift),
        steps=steps,
        wall_seconds=time.perf_counter() - start_time,
        particle_steps_per_second=len(radius) * sum(steps.values()) / press.dem_seconds,
        trace=press.trace)
    return dried, record


def save_dried_electrode(folder, electrode: Electrode, record: DryingRecord) -> Path:
    """Write ``dried_electrode.data`` (LAMMPS sphere data: type 1 CBD, 2..7 AM classes) and
    ``dried_record.json`` (the record, its trace as columns) into ``folder``; return the data
    file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "dried_electrode.data"
    write_sphere_data(data, electrode.ids, electrode.am_class + 1, 2.0 * electrode.radius,
                      electrode.density, electrode.position, np.asarray(electrode.box.lo),
                      np.asarray(electrode.box.hi), 7, title=f"dried by twin.process.dry from "
                      f"{Path(record.source).name}")
    summary = record.summary()
    summary["trace"] = {name: [getattr(p, name) for p in record.trace]
                        for name in DryingProgress.__dataclass_fields__}
    (folder / "dried_record.json").write_text(json.dumps(summary, indent=1))
    return data
