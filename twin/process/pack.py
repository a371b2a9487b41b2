"""Packings from the authors' initial structures: dried radii, affine compaction, overlap removal.

The authors' initial data files are a random gas of spheres, with overlapping pairs (the small
one: 167 pairs at the dried diameters, up to ~5 µm), meant to be relaxed before any dynamics
(``../shared/FACTS.md``). This module turns them into a dense, overlap-free packing resting between
two planes, the start of a calendering run:

1. :func:`artistic_electrode`: read positions and types, set the dried diameters (CBD 1.3 µm, AM
   class diameters, optionally expanded 2 % as the authors do before calendering);
2. :func:`compact_affine`: scale the box and positions (x, y by one factor, z by another) to a
   target solid fraction — a stand-in for the slurry NPT and drying stages, which come later;
3. :func:`remove_overlaps`: gradient descent on the harmonic overlap energy
   U = ½ Σ_pairs δ² + ½ Σ_walls δ², each sphere's step weighted by r_min / r so that small
   spheres move out of the way of large ones, until the largest overlap is below a tolerance.

:func:`authors_dried_electrode` reads instead the authors' own CGMD-dried electrode, the input of
their calendering script (not in ``../shared``; where to find it: its docstring).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from twin.io.lammps import read_sphere_data
from twin.physics import vector
from twin.physics.neighbors import allocate_neighbors, needs_rebuild, rebuild_pairs
from twin.physics.space import Box, minimum_image, wrap_positions

AM_CLASS_DIAMETERS_UM = (2.5, 3.5, 4.5, 5.86, 8.28, 10.35)   # data types 2..7
CBD_DRIED_DIAMETER_UM = 1.3                                   # data type 1
AM_DENSITY_G_CM3 = 4.65
CBD_DENSITY_G_CM3 = 0.95          # drying (scripts)
CBD_CALENDERING_DENSITY_G_CM3 = 0.93   # the calendering scripts
AM_CALENDERING_EXPANSION = 1.02   # the authors' +2 % on AM diameters before calendering
DIAMETER_BY_CLASS_UM = np.array((CBD_DRIED_DIAMETER_UM,) + AM_CLASS_DIAMETERS_UM)  # [am_class]


@dataclass(frozen=True)
class Electrode:
    """Spheres of an electrode: is_am marks active material (else carbon-binder domain)."""

    ids: np.ndarray
    am_class: np.ndarray      # 0 for CBD, 1..6 for the AM classes
    radius: np.ndarray
    density: np.ndarray
    position: np.ndarray
    box: Box

    @property
    def is_am(self) -> np.ndarray:
        return self.am_class > 0

    @property
    def solid_volume(self) -> float:
        return float(np.sum(4.0 / 3.0 * np.pi * self.radius**3))

    def with_am_expansion(self, factor: float) -> "Electrode":
        """The same spheres with the AM radii multiplied by ``factor`` (the authors' 1.02 before
        calendering: :data:`AM_CALENDERING_EXPANSION`)."""
        if not 1.0 <= factor <= 1.1:
            raise ValueError(f"AM diameter expansion {factor} outside [1, 1.1] (authors: "
                             f"{AM_CALENDERING_EXPANSION})")
        return dataclasses.replace(self, radius=np.where(self.is_am, self.radius * factor,
                                                         self.radius))


def inertial_number(radius, density, strain_rate_per_us, pressure_micro) -> float:
    """I = γ̇ d₃₂ √(ρ/P) (GDR MiDi, Eur. Phys. J. E 14, 341 (2004)), for a polydisperse packing
    with d₃₂ = Σd³/Σd² the Sauter mean diameter and ρ the solid density Σm/ΣV; I ≲ 1e-3 is
    quasi-static, I ≳ 0.1 rapid flow. Micro units (µm, µs, pg): P in pg/(µm µs²)."""
    radius, density = np.asarray(radius, float), np.asarray(density, float)
    diameter = 2.0 * np.sum(radius**3) / np.sum(radius**2)
    solid_density = np.sum(density * radius**3) / np.sum(radius**3)
    return float(strain_rate_per_us * diameter * np.sqrt(solid_density / max(pressure_micro,
                                                                             1e-300)))


def artistic_electrode(path, am_expansion=1.0, cbd_density=CBD_DENSITY_G_CM3) -> Electrode:
    """The authors' initial structure with dried diameters (type 1 CBD, types 2..7 AM classes)."""
    data = read_sphere_data(path)
    if data.types.min() < 1 or data.types.max() > 7:
        raise ValueError(f"{path}: expected atom types 1 (CBD) to 7 (AM classes); found "
                         f"{data.types.min()}..{data.types.max()}")
    if not cbd_density > 0:
        raise ValueError(f"CBD density {cbd_density} g/cm³ must be > 0 (drying scripts "
                         f"{CBD_DENSITY_G_CM3}, calendering script {CBD_CALENDERING_DENSITY_G_CM3})")
    am_class = data.types - 1
    density = np.where(am_class > 0, AM_DENSITY_G_CM3, cbd_density)
    box = Box(data.box_lo, data.box_hi, (True, True, False))
    electrode = Electrode(data.ids, am_class, DIAMETER_BY_CLASS_UM[am_class] / 2.0, density,
                          data.position.copy(), box)
    return electrode.with_am_expansion(am_expansion)


def authors_dried_electrode(path, relative_tolerance=0.01) -> Electrode:
    """The authors' CGMD-dried electrode, the input of their calendering script
    (``coord_out_electrode.sys``: type 1 CBD, type 2 AM with the class diameters already expanded
    by 2 %, types 3 and 4 reserved for the Al and steel walls, densities reset by the script to
    CBD 0.93 and AM 4.65 g/cm³).

    Each AM sphere gets the class whose expanded diameter (:data:`AM_CLASS_DIAMETERS_UM` × 1.02)
    is nearest the written one, and a diameter further than ``relative_tolerance`` from every
    class is refused. The electrode holds the *unexpanded* class diameters, the sizes of the
    paper's porosity and structure analysis; ``electrode.with_am_expansion(1.02)`` gives the
    calendering sizes, which differ from the file's by its rounding to three significant digits
    only (10.35 × 1.02 = 10.557 is written 10.6; the other classes within 0.1 %). Box: x, y
    periodic as in the file, z from the file.

    The file is not in ``../shared``: it is ``Thick_electrodes/Calendering/coord_out_electrode.sys``
    of the authors' code folder "Investigating Electrode Calendering and its Impact on
    Electrochemical Performance ..." in github.com/Cheviax/Manufacturing-Model-Codes, commit
    517a040 (a copy of ARTISTIC-ERC/Manufacturing-Model-Codes; CC BY-NC-SA 4.0, not copied into
    this repository): 9859 spheres (9463 CBD, 396 AM) in a 26.89 × 26.89 µm cell between the
    authors' walls at z = ±75.37 µm.
    """
    data = read_sphere_data(path)
    found = np.unique(data.types).tolist()
    if not set(found) <= {1, 2}:
        raise ValueError(f"{path}: expected the authors' calendering input with sphere types 1 "
                         f"(CBD) and 2 (AM); found types {found}")
    is_am = data.types == 2
    expanded = np.asarray(AM_CLASS_DIAMETERS_UM) * AM_CALENDERING_EXPANSION
    nearest = np.argmin(np.abs(data.diameter[:, None] - expanded[None, :]), axis=1)
    mismatch = np.abs(data.diameter / expanded[nearest] - 1.0)
    cbd_mismatch = np.abs(data.diameter / CBD_DRIED_DIAMETER_UM - 1.0)
    bad = np.where(is_am, mismatch, cbd_mismatch) > relative_tolerance
    if bad.any():
        k = int(np.argmax(bad))
        kind = "AM" if is_am[k] else "CBD"
        raise ValueError(f"{path}: {kind} sphere id {data.ids[k]} has diameter "
                         f"{data.diameter[k]} µm, more than {relative_tolerance:.0%} from every "
                         f"{kind} diameter (AM classes ×1.02: {np.round(expanded, 3).tolist()}, "
                         f"CBD {CBD_DRIED_DIAMETER_UM})")
    am_class = np.where(is_am, nearest + 1, 0)
    density = np.where(is_am, AM_DENSITY_G_CM3, CBD_CALENDERING_DENSITY_G_CM3)
    box = Box(data.box_lo, data.box_hi, (True, True, False))
    return Electrode(data.ids, am_class, DIAMETER_BY_CLASS_UM[am_class] / 2.0, density,
                     data.position.copy(), box)


def compact_affine(electrode: Electrode, solid_fraction: float, lateral_scale: float = 1.0
                   ) -> Electrode:
    """Scale x, y by ``lateral_scale`` and z so that solids fill ``solid_fraction`` of the box.

    The new box has its floor at z = 0. Overlaps grow; :func:`remove_overlaps` takes them out.
    """
    if not 0.0 < solid_fraction < 0.64:
        raise ValueError(f"solid fraction {solid_fraction} must lie in (0, 0.64) (random close "
                         "packing of spheres is ~0.64)")
    lo, hi = np.asarray(electrode.box.lo), np.asarray(electrode.box.hi)
    lateral = (hi[:2] - lo[:2]) * lateral_scale
    height = electrode.solid_volume / (lateral[0] * lateral[1] * solid_fraction)
    if 2.0 * electrode.radius.max() > height:
        raise ValueError(f"compacted height {height:.3g} µm is thinner than the largest sphere "
                         f"({2 * electrode.radius.max():.3g} µm): lower solid_fraction or "
                         "lateral_scale")
    fraction = (electrode.position - lo) / (hi - lo)
    r = electrode.radius[:, None]
    new_lo = np.zeros(3)
    new_hi = np.array([lateral[0], lateral[1], height])
    position = fraction * (new_hi - new_lo)
    position[:, 2] = r[:, 0] + fraction[:, 2] * (height - 2.0 * r[:, 0])   # keep spheres inside
    return Electrode(electrode.ids, electrode.am_class, electrode.radius, electrode.density,
                     position, Box(new_lo, new_hi, electrode.box.periodic))


def _pair_overlaps(position, radius, pairs, box):
    """(valid, δ) for listed pairs (i, j), rows with i ≥ N being padding: δ = r_i + r_j −
    |x_i − x_j| (minimum image; the distance floored at 1e-12 µm so that gradients stay finite)."""
    n = radius.shape[0]
    valid = pairs[:, 0] < n
    i, j = jnp.where(valid, pairs[:, 0], 0), jnp.where(valid, pairs[:, 1], 0)
    d = minimum_image(position[i] - position[j], box)
    distance = jnp.sqrt(jnp.maximum(vector.norm_squared(d), 1e-24))
    return valid, radius[i] + radius[j] - distance


def _overlap_energy(position, radius, pairs, box, floor_z, ceiling_z):
    """U = ½ Σ δ² over pairs and walls, and the largest δ (radii as given)."""
    valid, overlap = _pair_overlaps(position, radius, pairs, box)
    pair_overlap = jnp.where(valid, jnp.maximum(overlap, 0.0), 0.0)
    floor_overlap = jnp.maximum(radius - (position[:, 2] - floor_z), 0.0)
    ceiling_overlap = jnp.maximum(radius - (ceiling_z - position[:, 2]), 0.0)
    energy = 0.5 * (jnp.sum(pair_overlap**2) + jnp.sum(floor_overlap**2)
                    + jnp.sum(ceiling_overlap**2))
    largest = jnp.maximum(jnp.max(pair_overlap), jnp.maximum(jnp.max(floor_overlap),
                                                             jnp.max(ceiling_overlap)))
    return energy, largest


# Pairs whose overlap is positive but within this many rounding units of their coordinates are
# frozen in value under a cohesive pull (see remove_overlaps).
ROUNDING_CONTACT_ULPS = 1000


def contacts_within_rounding(position, radius, pairs, box: Box,
                             ulps: float = ROUNDING_CONTACT_ULPS) -> int:
    """How many listed pairs (i, j) (rows with i ≥ N are padding) overlap by δ = r_i + r_j −
    |x_i − x_j| in (0, ulps · ε · max|x|], ε the float64 machine epsilon: contacts that start
    within rounding of touching (:func:`remove_overlaps`)."""
    position = jnp.asarray(position, dtype=jnp.float64)
    valid, overlap = (np.asarray(a) for a in _pair_overlaps(
        position, jnp.asarray(radius, dtype=jnp.float64), jnp.asarray(pairs), box))
    bound = ulps * np.finfo(np.float64).eps * float(jnp.abs(position).max())
    return int(np.count_nonzero(valid & (overlap > 0.0) & (overlap <= bound)))


def remove_overlaps(electrode: Electrode, tolerance=1e-3, max_rounds=200, steps_per_round=50,
                    step_size=0.5, skin=0.5, progress=None, clearance=0.0) -> Electrode:
    """Push spheres apart until every pair and wall overlap is below ``tolerance`` (µm).

    Walls are the box's z bounds. The pair list is rebuilt whenever a sphere moved more than
    skin/2, and re-allocated on overflow. Raises if ``max_rounds`` rounds do not get there.

    ``clearance`` (µm): the overlaps are those of spheres ``clearance``/2 larger, so that every
    pair ends at a gap of at least ``clearance`` − ``tolerance``. The descent converges on contact
    geometrically: with ``clearance`` 0 some pairs end a few rounding units inside contact, where
    a cohesive pull moves them by less than a rounding unit per step. Their value then stays
    frozen while the trajectory's tangent (``jax.grad``, ``jax.jvp``) follows exact arithmetic
    and grows at the snap-in rate √(4πR*·CED / m*) (~6e2/µs for CBD at Table 2): a clearance
    above the tolerance leaves no such pair (tests/test_pack.py; the mechanism on one pair:
    tests/test_gradients.py).
    """
    if not (np.isfinite(clearance) and clearance >= 0.0):
        raise ValueError(f"clearance = {clearance} µm must be a number >= 0")
    box = Box(jnp.asarray(electrode.box.lo), jnp.asarray(electrode.box.hi), electrode.box.periodic)
    radius = jnp.asarray(electrode.radius) + 0.5 * clearance
    weight = (radius.min() / radius)[:, None]
    floor_z, ceiling_z = box.lo[2], box.hi[2]
    position = jnp.asarray(electrode.position)
    gradient = jax.grad(lambda x, p: _overlap_energy(x, radius, p, box, floor_z, ceiling_z)[0])

    @jax.jit
    def round_of_steps(x, pair_list, spec):
        def descend(carry, _):
            x, pair_list = carry
            pair_list = jax.lax.cond(
                needs_rebuild(pair_list, x, box, spec.skin),
                lambda: rebuild_pairs(pair_list, x, radius, box, spec),
                lambda: pair_list)
            x = wrap_positions(x - step_size * weight * gradient(x, pair_list.pairs), box)
            return (x, pair_list), None

        (x, pair_list), _ = jax.lax.scan(descend, (x, pair_list), None, length=steps_per_round)
        largest = _overlap_energy(x, radius, pair_list.pairs, box, floor_z, ceiling_z)[1]
        return x, pair_list, largest

    spec, pair_list = allocate_neighbors(position, radius, box, skin)
    for round_number in range(max_rounds):
        new_position, new_list, largest = round_of_steps(position, pair_list, spec)
        if bool(new_list.overflow):
            spec, pair_list = allocate_neighbors(position, radius, box, skin, growth=2.0)
            continue
        position, pair_list = new_position, new_list
        if progress is not None:
            progress(round_number, float(largest))
        if float(largest) < tolerance:
            return Electrode(electrode.ids, electrode.am_class, electrode.radius,
                             electrode.density, np.asarray(position), electrode.box)
    raise RuntimeError(f"overlaps not removed after {max_rounds} rounds: largest overlap "
                       f"{float(largest):.3g} µm > tolerance {tolerance} µm. The packing is too "
                       "dense: lower the solid fraction or raise max_rounds")


def default_artistic_path() -> Path:
    """``shared/data/artistic/small_electrode_initial.data`` beside the repository (or
    $TWIN_SHARED)."""
    import os

    root = Path(os.environ.get("TWIN_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    path = root / "data" / "artistic" / "small_electrode_initial.data"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: set TWIN_SHARED to the folder holding "
                                "data/artistic/ (the authors' initial structures)")
    return path
