"""Particle contacts and specific surface areas (AM–pore, AM–CBD, CBD–pore), from the spheres
themselves or from a voxel label image.

From spheres (exact where overlaps are pairwise). Two spheres i, j (radii R_i, R_j) at centre
distance d < R_i + R_j meet on a circle in the radical plane at signed distance
h_i = (d² + R_i² − R_j²) / (2d) from centre i, of radius a with a² = R_i² − h_i². The lens they
share is split by that plane: each sphere loses the cap beyond it, of height H_i = R_i − h_i
(clipped to [0, 2 R_i]: a sphere inside another loses everything, one containing another
nothing) and area 2π R_i H_i (Archimedes' hat-box theorem), and the two phases meet on the disc
π a². Hence

    AM–pore  = Σ_AM (4π R² − caps),   CBD–pore = Σ_CBD (4π R² − caps),
    AM–CBD   = Σ over AM–CBD pairs of π a²   (AM–AM and CBD–CBD discs are internal).

A voxel image that gives the whole lens to one phase instead (e.g. AM over CBD) has the same
pore areas; its AM–CBD interface is then the winner's cap inside the other sphere, 2π R_w H_w ≥
π a², close to π a² when the winner is the larger sphere (0.7 % more on the small electrode).
Triple overlaps: where a surface point lies inside two other spheres the two caps overlap and
that part is subtracted twice, and a disc cut by a third sphere still counts whole. The pore
areas are then lower bounds (each sphere's exposed area is clipped at 0) and AM–CBD an upper
bound. On the small compacted electrode Monte Carlo on the sphere surfaces puts the pairwise
pore areas within 0.1 % of the exact ones (tests/test_surfaces.py).

An optional current-collector plane z = wall_z (particles above it) cuts each sphere in the same
way: the cap below the plane is removed, and the cut disc is a wall contact.

From voxels (face counting): each face between two voxels of different labels adds voxel² to
that interface. For a voxelised smooth surface of normal n this staircase area is
(|n_x| + |n_y| + |n_z|) dA, whose mean over all orientations is 3/2: a voxelised sphere
overestimates its area by ~1.5× however fine the voxels (the staircase never converges to the
surface area). Divide by 1.5 to compare with the particle areas, isotropic structures only.
Sub-voxel detail along contact lines and on small spheres is missed on top of that, an error of
first order in the voxel size: on the small compacted electrode (AM wins the lenses) the face
areas are 0.92 / 0.79 / 1.15 × (1.5 × the particle AM–pore / CBD–pore / AM–CBD areas) at
0.25 µm voxels and 0.96 / 0.89 / 1.09 × at 0.125 µm.

Specific areas are per µm³ of electrode (µm² / µm³ = 1/µm).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from twin.physics import vector
from twin.physics.space import Box, minimum_image

AM, CBD = 1, 2
PAIR_TYPES = {(AM, AM): "AM-AM", (AM, CBD): "AM-CBD", (CBD, CBD): "CBD-CBD"}
STAIRCASE_FACTOR = 1.5   # mean (|n_x| + |n_y| + |n_z|) over the unit sphere
MAX_PAIRS_PER_CHUNK = 2**22


class SurfaceAreas(NamedTuple):
    """Interface areas (µm²) of an electrode of ``volume`` µm³."""

    am_pore: float
    am_cbd: float
    cbd_pore: float
    volume: float

    def specific(self) -> dict[str, float]:
        """Areas per electrode volume, 1/µm."""
        return {"AM-pore": self.am_pore / self.volume, "AM-CBD": self.am_cbd / self.volume,
                "CBD-pore": self.cbd_pore / self.volume}


class Contacts(NamedTuple):
    """Overlapping sphere pairs (d < R_i + R_j) by phase pair, and wall contacts by phase."""

    count: dict[str, int]          # "AM-AM", "AM-CBD", "CBD-CBD"
    area: dict[str, float]         # Σ π a² per phase pair, µm²
    per_particle: np.ndarray       # (N,) number of particle partners of each sphere
    coordination: dict[str, float]  # mean of per_particle over the AM / CBD spheres
    wall_count: dict[str, int]     # "AM", "CBD": spheres cut by the wall (empty without a wall)
    wall_area: dict[str, float]    # Σ π a² of the wall cuts, µm²


def contacts(positions, radii, phases, box: Box, *, wall_z: float | None = None) -> Contacts:
    """Count contacts per phase pair, contact areas π a² and coordination numbers per phase.

    ``phases`` (N,): 1 AM, 2 CBD. ``wall_z``: optional current-collector plane below the spheres.
    """
    positions, radii, phases = _check_particles(positions, radii, phases, box)
    pairs, (_, _, disc) = _overlaps(positions, radii, box)
    pair_phase = np.sort(phases[pairs], axis=1)
    count, area = {}, {}
    for (p, q), name in PAIR_TYPES.items():
        same = (pair_phase[:, 0] == p) & (pair_phase[:, 1] == q)
        count[name], area[name] = int(same.sum()), float(disc[same].sum())
    per_particle = np.bincount(pairs.ravel(), minlength=len(radii))
    coordination = {name: float(per_particle[phases == p].mean()) if (phases == p).any()
                    else float("nan") for p, name in ((AM, "AM"), (CBD, "CBD"))}
    wall_count, wall_area = {}, {}
    if wall_z is not None:
        _, wall_disc = (np.asarray(x) for x in _wall_cut(positions[:, 2], radii, wall_z))
        cut = wall_disc > 0
        for p, name in ((AM, "AM"), (CBD, "CBD")):
            wall_count[name] = int((cut & (phases == p)).sum())
            wall_area[name] = float(wall_disc[phases == p].sum())
    return Contacts(count, area, per_particle, coordination, wall_count, wall_area)


def specific_surfaces_particles(positions, radii, phases, box: Box, *,
                                wall_z: float | None = None,
                                volume: float | None = None) -> SurfaceAreas:
    """AM–pore, AM–CBD and CBD–pore areas of a sphere packing (see the module docstring).

    ``volume`` (µm³) defaults to the box's x-y area times the particles' z extent, from wall_z
    (or the lowest sphere bottom) to the highest sphere top.
    """
    positions, radii, phases = _check_particles(positions, radii, phases, box)
    pairs, (cap_i, cap_j, disc) = _overlaps(positions, radii, box)
    buried = (np.bincount(pairs[:, 0], cap_i, minlength=len(radii))
              + np.bincount(pairs[:, 1], cap_j, minlength=len(radii)))
    if wall_z is not None:
        buried = buried + np.asarray(_wall_cut(positions[:, 2], radii, wall_z)[0])
    exposed = np.maximum(4.0 * np.pi * radii**2 - buried, 0.0)
    mixed = phases[pairs[:, 0]] != phases[pairs[:, 1]]
    if volume is None:
        z_lo = (positions[:, 2] - radii).min() if wall_z is None else wall_z
        length = np.asarray(box.length, float)
        volume = length[0] * length[1] * ((positions[:, 2] + radii).max() - z_lo)
    if not volume > 0:
        raise ValueError(f"electrode volume = {volume} µm³ must be > 0")
    return SurfaceAreas(float(exposed[phases == AM].sum()), float(disc[mixed].sum()),
                        float(exposed[phases == CBD].sum()), float(volume))


def specific_surfaces_voxels(labels, voxel_um: float,
                             periodic: tuple[bool, bool, bool] = (False, False, False),
                             ) -> SurfaceAreas:
    """Interface areas of a label image (0 pore, 1 AM, 2 CBD) by face counting.

    Faces on the image border count only across periodic axes (wrapping). The areas carry the
    staircase overestimate (~1.5× for curved surfaces, see the module docstring).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 3-D integer image; got shape {labels.shape}, dtype "
                         f"{labels.dtype}")
    if not np.isin(labels, (0, AM, CBD)).all():
        raise ValueError(f"labels hold values {np.setdiff1d(np.unique(labels), (0, 1, 2))} "
                         "outside the convention 0 pore, 1 AM, 2 CBD")
    if not voxel_um > 0:
        raise ValueError(f"voxel_um = {voxel_um} must be > 0 (voxel edge in µm)")
    periodic = tuple(bool(p) for p in periodic)
    faces = np.asarray(_face_counts(jnp.asarray(labels, jnp.int8), periodic))
    face_area = voxel_um**2
    return SurfaceAreas(float(faces[0] * face_area), float(faces[2] * face_area),
                        float(faces[1] * face_area), float(labels.size * voxel_um**3))


@jax.jit
def _pair_geometry(positions, radii, pairs, box: Box):
    """Cap areas buried on i and on j, and disc area π a² of each overlapping pair."""
    i, j = pairs[:, 0], pairs[:, 1]
    d2 = vector.norm_squared(minimum_image(positions[j] - positions[i], box))
    d = jnp.maximum(jnp.sqrt(d2), jnp.finfo(positions.dtype).tiny)
    r_i, r_j = radii[i], radii[j]
    h_i = (d2 + r_i**2 - r_j**2) / (2.0 * d)
    h_j = d - h_i
    cap_i = 2.0 * jnp.pi * r_i * jnp.clip(r_i - h_i, 0.0, 2.0 * r_i)
    cap_j = 2.0 * jnp.pi * r_j * jnp.clip(r_j - h_j, 0.0, 2.0 * r_j)
    disc = jnp.pi * jnp.maximum(r_i**2 - h_i**2, 0.0)
    return cap_i, cap_j, disc


@jax.jit
def _wall_cut(z, radii, wall_z):
    """Cap area below the plane z = wall_z and the cut disc area of each sphere."""
    height = jnp.clip(wall_z - (z - radii), 0.0, 2.0 * radii)
    return 2.0 * jnp.pi * radii * height, jnp.pi * jnp.maximum(radii**2 - (z - wall_z) ** 2, 0.0)


@partial(jax.jit, static_argnames="periodic")
def _face_counts(labels, periodic):
    """Numbers of pore–AM, pore–CBD and AM–CBD voxel faces."""
    counts = jnp.zeros(3, jnp.int64)
    for axis, wraps in enumerate(periodic):
        n = labels.shape[axis]
        if wraps:
            a, b = labels, jnp.roll(labels, -1, axis)
        else:
            a = jax.lax.slice_in_dim(labels, 0, n - 1, axis=axis)
            b = jax.lax.slice_in_dim(labels, 1, n, axis=axis)
        low, high = jnp.minimum(a, b), jnp.maximum(a, b)
        counts = counts + jnp.stack([jnp.sum((low == 0) & (high == AM)),
                                     jnp.sum((low == 0) & (high == CBD)),
                                     jnp.sum((low == AM) & (high == CBD))])
    return counts


def _overlaps(positions, radii, box: Box, max_pairs_per_chunk=MAX_PAIRS_PER_CHUNK):
    """Overlapping pairs (M, 2), i < j, and their (cap_i, cap_j, disc) areas as numpy arrays.

    Chunked brute force (rows of i against all j): N² work, memory bounded by the chunk; under a
    second for the 3945 spheres of the small electrode, too slow beyond ~1e5 spheres.
    """
    n = len(radii)
    typed_box = Box(jnp.asarray(box.lo, positions.dtype), jnp.asarray(box.hi, positions.dtype),
                    tuple(box.periodic))
    chunk = int(max(1, min(n, max_pairs_per_chunk // n)))
    all_positions, all_radii = jnp.asarray(positions), jnp.asarray(radii)
    found = []
    for start in range(0, n, chunk):
        rows = np.arange(start, start + chunk)
        mask = _touching(all_positions[np.minimum(rows, n - 1)], all_radii[np.minimum(rows, n - 1)],
                         jnp.asarray(np.where(rows < n, rows, n)), all_positions, all_radii,
                         typed_box)
        i, j = np.nonzero(np.asarray(mask))
        found.append(np.stack([rows[i], j], axis=1))
    pairs = np.concatenate(found)
    areas = _pair_geometry(all_positions, all_radii, jnp.asarray(pairs), typed_box)
    return pairs, tuple(np.asarray(area) for area in areas)


@jax.jit
def _touching(chunk_positions, chunk_radii, chunk_index, positions, radii, box: Box):
    """(chunk, N) mask of pairs i < j with |x_i − x_j| < R_i + R_j."""
    delta = minimum_image(positions[None, :, :] - chunk_positions[:, None, :], box)
    d2 = vector.norm_squared(delta)
    reach = chunk_radii[:, None] + radii[None, :]
    return (d2 < reach * reach) & (chunk_index[:, None] < jnp.arange(positions.shape[0])[None, :])


def _check_particles(positions, radii, phases, box: Box):
    positions, radii, phases = np.asarray(positions), np.asarray(radii), np.asarray(phases)
    n = len(radii)
    if positions.shape != (n, 3) or radii.shape != (n,) or phases.shape != (n,) or n == 0:
        raise ValueError(f"need positions (N, 3), radii (N,), phases (N,) with N > 0; got shapes "
                         f"{positions.shape}, {radii.shape}, {phases.shape}")
    if not (np.isfinite(positions).all() and np.isfinite(radii).all() and (radii > 0).all()):
        raise ValueError("positions must be finite and radii finite and > 0 (µm)")
    if not np.isin(phases, (AM, CBD)).all():
        raise ValueError(f"phases hold values {np.setdiff1d(np.unique(phases), (AM, CBD))}: use "
                         "1 for AM and 2 for CBD")
    lo, hi = np.asarray(box.lo, float), np.asarray(box.hi, float)
    for axis in np.flatnonzero(~np.asarray(box.periodic)):
        x = positions[:, axis]
        if x.min() < lo[axis] or x.max() > hi[axis]:
            raise ValueError(f"centres span [{x.min():.6g}, {x.max():.6g}] µm along the "
                             f"non-periodic axis {'xyz'[axis]}, outside the box "
                             f"[{lo[axis]:.6g}, {hi[axis]:.6g}] µm: enlarge the box")
    length = hi - lo
    for axis in np.flatnonzero(np.asarray(box.periodic)):
        if length[axis] < 4.0 * radii.max():
            raise ValueError(f"periodic box length {length[axis]:.6g} µm along {'xyz'[axis]} is "
                             f"below 4 × the largest radius ({4.0 * radii.max():.6g} µm): a pair "
                             "could overlap through two periodic images; replicate the packing")
    if not np.issubdtype(positions.dtype, np.floating):
        positions = positions.astype(float)
    return positions, radii.astype(positions.dtype), phases
