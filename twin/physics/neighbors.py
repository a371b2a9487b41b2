"""Verlet pair list for polydisperse spheres: a cell grid with size-grouped search stencils.

The electrode mixes 1.3 µm carbon-binder particles with AM spheres up to ~10.6 µm (ratio ~8). A
single cell grid sized for the largest pair would put hundreds of small particles in every cell,
so instead:

* the cell edge h is set by the *smallest* particles (h ≥ 2 r_min + skin), and the particles are
  sorted by cell, so that each cell is a contiguous range of the sorted order;
* a pair (i, j) is owned by the larger sphere (ties: the larger index), and each particle only
  searches the cells within s = ceil((2 r_i + skin) / h) cells, which reach every smaller partner.
  Particles with the same s form a *group* with one static stencil;
* the (particle, stencil cell) rows are expanded into candidate pairs: a cumulative sum of the
  occupancies of the rows' cells gives each candidate slot its row by binary search, so only
  occupied cells cost work (most cells of a stencil are empty) and no cell can overflow.

The result is a flat, sorted list of pairs with ``|x_i - x_j| < r_i + r_j + skin``, of fixed
capacity. Overflow of the candidate or the pair capacity sets a flag and *never* drops a pair
silently: the driver (:mod:`twin.physics.simulate`) re-allocates and repeats the chunk.

Plane walls get the same treatment: at each build, the spheres within r + skin of a wall are
listed (fixed capacity per wall, overflow flagged), so the wall contact law runs on a thin layer of
spheres instead of all of them. The lists stay valid while no particle and no wall moved more than
skin/2 since the build.

Shear history lives on pairs; :func:`carry_shear_history` moves it to the slots of a new list by
pair identity (i, j), not by slot. Wall shear history is stored per sphere and needs no carrying.
"""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from twin.physics import vector
from twin.physics.space import Box, minimum_image

MAX_CELLS_PER_PARTICLE = 4


class NeighborSpec(eqx.Module):
    """Static layout of the neighbour search (shapes and capacities) plus the group members.

    Build it with :func:`allocate_neighbors` outside jit; it is passed into jitted code as a pytree
    (members and stencils are arrays; counts and capacities are static). ``candidate_capacity``
    bounds the (i, j) candidates tested per build, ``pair_capacity`` the pairs kept,
    ``wall_capacity`` the spheres listed per wall.
    """

    group_members: tuple[Array, ...]
    group_stencils: tuple[Array, ...]
    cells_per_axis: tuple[int, int, int] = eqx.field(static=True)
    candidate_capacity: int = eqx.field(static=True)
    pair_capacity: int = eqx.field(static=True)
    skin: float = eqx.field(static=True)
    wall_capacity: int = eqx.field(static=True, default=0)


class PairList(eqx.Module):
    """Pairs within reach sorted by (i, j); unused slots hold (N, N). ``count`` may exceed capacity,
    in which case ``overflow`` is set and the list is incomplete. ``wall_particles`` (W, K) lists
    the spheres near each wall (padding N); ``wall_reference_z`` the wall heights at the build."""

    pairs: Array
    count: Array
    overflow: Array
    reference_position: Array
    wall_particles: Array
    wall_reference_z: Array


def _cells_per_axis(box_length, cell_edge, n_particles):
    counts = [max(1, int(math.floor(length / cell_edge))) for length in box_length]
    # Cap the grid at a few cells per particle: tiny outliers must not blow up the grid memory.
    while np.prod(counts) > MAX_CELLS_PER_PARTICLE * max(n_particles, 8):
        counts = [max(1, n // 2 if n > 1 else 1) for n in counts]
    return tuple(counts)


def _axis_offsets(reach, n_cells, periodic):
    if periodic and 2 * reach + 1 >= n_cells:
        return list(range(-(n_cells // 2), n_cells - n_cells // 2))
    if not periodic:
        reach = min(reach, n_cells - 1)
    return list(range(-reach, reach + 1))


def allocate_neighbors(position, radius, box: Box, skin: float, *, wall_z=(), wall_normal_z=(),
                       candidate_capacity=None, pair_capacity=None, wall_capacity=None,
                       growth=1.3, pair_growth=None) -> tuple[NeighborSpec, PairList]:
    """Size the grid, groups and capacities for this packing (and its plane walls at heights
    ``wall_z`` with normals ``wall_normal_z`` = ±1) and build the first list.

    Call outside jit. ``growth`` leaves head-room above the counts found now; the pair capacity
    gets ``pair_growth``, by default a third of that head-room (1.1 for the default 1.3): the
    contact law runs on every pair slot at every step, while candidate slots only cost at a
    build. (On the 3945-sphere compaction the pair count rises by ~6 % from the start to the
    deepest plate position; 1.3 → 1.1 made a step ~12 % faster, 1 core, float64.) An overflow
    is flagged and re-allocated by the driver, never truncated.
    """
    position = np.asarray(position)
    radius = np.asarray(radius)
    wall_z, wall_normal_z = np.asarray(wall_z, float), np.asarray(wall_normal_z, float)
    if skin <= 0:
        raise ValueError(f"neighbour skin = {skin} µm must be > 0 (try 0.1-0.3 × the smallest radius)")
    length = np.asarray(box.length, dtype=float)
    max_cutoff = 2.0 * radius.max() + skin
    for axis, (l, p) in enumerate(zip(length, box.periodic)):
        if p and l < 2.0 * max_cutoff:
            raise ValueError(
                f"periodic box length {l:.4g} µm along axis {'xyz'[axis]} is shorter than twice the "
                f"largest contact distance 2·(2 r_max + skin) = {2 * max_cutoff:.4g} µm: enlarge the "
                "box or replicate the packing")
    cells = _cells_per_axis(length, 2.0 * radius.min() + skin, len(radius))
    cell_edge = float(np.min(length / np.asarray(cells)))
    reach = np.ceil((2.0 * radius + skin) / cell_edge).astype(int)
    members, stencils = [], []
    for s in np.unique(reach):
        members.append(jnp.asarray(np.flatnonzero(reach == s), dtype=jnp.int32))
        offsets = [_axis_offsets(int(s), n, p) for n, p in zip(cells, box.periodic)]
        cube = np.array(list(itertools.product(*offsets)))
        # Keep the cells whose nearest point can lie within the reach: a sphere, not a cube
        # (halves the candidates of the largest spheres).
        gap = np.maximum(np.abs(cube) - 1, 0)
        stencils.append(jnp.asarray(cube[np.sum(gap**2, axis=1) <= s**2], dtype=jnp.int32))
    if candidate_capacity is None:
        occupancy = np.bincount(np.asarray(_cell_index(jnp.asarray(position), box, cells)),
                                minlength=int(np.prod(cells)) + 1)
        _, rows = _stencil_rows(jnp.asarray(position), box, cells, members, stencils)
        candidate_capacity = int(math.ceil(growth * occupancy[np.asarray(rows)].sum())) + 256
    if wall_capacity is None:
        near_walls = _wall_gaps(position, radius, wall_z, wall_normal_z) < skin
        near = int(np.max(np.sum(near_walls, axis=1), initial=0))
        wall_capacity = min(int(math.ceil(growth * near)) + 64, len(radius))
    if pair_capacity is None:
        provisional = NeighborSpec(tuple(members), tuple(stencils), cells, candidate_capacity, 1,
                                   float(skin), wall_capacity)
        count = int(build_pairs(jnp.asarray(position), jnp.asarray(radius), box, provisional,
                                wall_z, wall_normal_z).count)
        if pair_growth is None:
            pair_growth = 1.0 + (growth - 1.0) / 3.0
        pair_capacity = max(int(math.ceil(pair_growth * count)) + 64, len(radius))
    spec = NeighborSpec(tuple(members), tuple(stencils), cells, candidate_capacity, pair_capacity,
                        float(skin), wall_capacity)
    pair_list = build_pairs(jnp.asarray(position), jnp.asarray(radius), box, spec, wall_z,
                            wall_normal_z)
    return spec, pair_list


def _cell_coordinates(position, box: Box, cells):
    cells_array = jnp.asarray(cells, jnp.int32)
    fraction = (position - box.lo) / box.length
    coordinate = jnp.floor(fraction * cells_array).astype(jnp.int32)
    return jnp.clip(coordinate, 0, cells_array - 1)


def _cell_index(position, box: Box, cells):
    c = _cell_coordinates(position, box, cells)
    return (c[:, 0] * cells[1] + c[:, 1]) * cells[2] + c[:, 2]


def _stencil_rows(position, box: Box, cells, group_members, group_stencils):
    """Every (particle, stencil cell) of every group, flattened; a cell outside a non-periodic
    box maps to the always-empty cell index prod(cells).

    Written per axis in int32 (a stencil offset is shorter than the grid along a periodic axis,
    so one add or subtract of the cell count wraps it): XLA on CPU is several times slower with
    the (…, 3) minor-axis reduction and the int64 ``mod`` of the vectorised form.
    """
    n_cells = int(np.prod(cells))
    coordinates = _cell_coordinates(position, box, cells)
    particles, flat_cells = [], []
    for members, stencil in zip(group_members, group_stencils):
        corner = coordinates[members]
        flat, inside = 0, True
        for axis, (n_axis, periodic) in enumerate(zip(cells, box.periodic)):
            c = corner[:, axis, None] + stencil[None, :, axis]
            if periodic:
                c = jnp.where(c < 0, c + n_axis, jnp.where(c >= n_axis, c - n_axis, c))
            else:
                inside = inside & (c >= 0) & (c < n_axis)
            flat = flat * n_axis + c
        particles.append(jnp.broadcast_to(members[:, None], flat.shape).ravel())
        flat_cells.append(jnp.where(inside, flat, n_cells).ravel())
    return jnp.concatenate(particles), jnp.concatenate(flat_cells)


def _sort_encoded(major, minor, n_minor):
    """Sort the pairs (major, minor) lexicographically (0 <= minor < n_minor) by sorting the
    single integer key major · n_minor + minor and decoding it: on CPU several times faster than
    an argsort followed by gathers."""
    key = major.astype(jnp.int64) * n_minor + minor
    key = jnp.sort(key)
    return (key // n_minor).astype(jnp.int32), (key % n_minor).astype(jnp.int32)


def _wall_gaps(position, radius, wall_z, wall_normal_z):
    """(W, N) gaps (z - z_w)·n - r between each wall and each sphere (negative: overlapping)."""
    return (position[None, :, 2] - wall_z[:, None]) * wall_normal_z[:, None] - radius[None, :]


def _wall_particles(position, radius, wall_z, wall_normal_z, spec: NeighborSpec):
    """Per wall, the spheres whose gap is below the skin; and the overflow flag."""
    n = position.shape[0]
    near = _wall_gaps(position, radius, wall_z, wall_normal_z) < spec.skin
    listed = [jnp.nonzero(row, size=spec.wall_capacity, fill_value=n)[0] for row in near]
    particles = (jnp.stack(listed).astype(jnp.int32) if listed
                 else jnp.zeros((0, spec.wall_capacity), jnp.int32))
    return particles, jnp.any(jnp.sum(near, axis=1) > spec.wall_capacity)


def _slot_rows(row_start, capacity):
    """For each candidate slot 0..capacity-1, the row whose slots [start, start + count) hold it.

    Each row's index is written at its first slot and carried forward by a running maximum; of
    rows sharing a start (all but the last of them empty) the last wins. Same result as a binary
    search of the slot in the row ends, but one scatter and one scan instead of log2(rows)
    passes over all slots (the build's most expensive step on CPU).
    """
    rows = jnp.arange(row_start.shape[0], dtype=jnp.int32)
    first = jnp.zeros(capacity, jnp.int32).at[row_start].max(rows, mode="drop")
    return lax.cummax(first)


def build_pairs(position: Array, radius: Array, box: Box, spec: NeighborSpec, wall_z=(),
                wall_normal_z=()) -> PairList:
    """All pairs with |x_i - x_j| < r_i + r_j + skin, owned by the larger sphere, and the spheres
    within r + skin of each wall (jit-able)."""
    n = position.shape[0]
    cells = spec.cells_per_axis
    n_cells = int(np.prod(cells))
    cell_of = _cell_index(position, box, cells)
    sorted_cell, order = _sort_encoded(cell_of, jnp.arange(n, dtype=jnp.int32), n)
    # Cell c holds the sorted particles cell_start[c] .. cell_start[c + 1] (cell n_cells: none).
    cell_start = jnp.searchsorted(sorted_cell, jnp.arange(n_cells + 2, dtype=jnp.int32),
                                  side="left").astype(jnp.int32)
    row_particle, row_cell = _stencil_rows(position, box, cells, spec.group_members,
                                           spec.group_stencils)
    row_count = cell_start[row_cell + 1] - cell_start[row_cell]
    row_end = jnp.cumsum(row_count)
    row_start = row_end - row_count
    n_candidates = row_end[-1]
    slot = jnp.arange(spec.candidate_capacity)
    row = _slot_rows(row_start, spec.candidate_capacity)
    sorted_slot = cell_start[row_cell[row]] + slot - row_start[row]
    i = row_particle[row]
    j = order[jnp.clip(sorted_slot, 0, n - 1)]
    r_i, r_j = radius[i], radius[j]
    owned = (r_j < r_i) | ((r_j == r_i) & (j > i))
    close = vector.norm_squared(minimum_image(position[i] - position[j], box)) \
        < (r_i + r_j + spec.skin) ** 2
    keep = (slot < n_candidates) & owned & close
    count = jnp.sum(keep)
    (slots,) = jnp.nonzero(keep, size=spec.pair_capacity, fill_value=slot.shape[0])
    owners = jnp.concatenate([i, jnp.array([n], i.dtype)])[slots]
    partners = jnp.concatenate([j, jnp.array([n], j.dtype)])[slots]
    pairs = jnp.stack(_sort_encoded(owners, partners, n + 1), axis=1)
    wall_z = jnp.asarray(wall_z, position.dtype)
    wall_particles, wall_overflow = _wall_particles(
        position, radius, wall_z, jnp.asarray(wall_normal_z, position.dtype), spec)
    overflow = (n_candidates > spec.candidate_capacity) | (count > spec.pair_capacity) \
        | wall_overflow
    return PairList(pairs, count, overflow, position, wall_particles, wall_z)


def rebuild_pairs(pair_list: PairList, position: Array, radius: Array, box: Box,
                  spec: NeighborSpec, wall_z=(), wall_normal_z=()) -> PairList:
    """A fresh list at ``position`` whose overflow flag stays set once any build overflowed."""
    fresh = build_pairs(position, radius, box, spec, wall_z, wall_normal_z)
    return eqx.tree_at(lambda p: p.overflow, fresh, fresh.overflow | pair_list.overflow)


def pair_keys(pairs: Array, n: int) -> Array:
    return pairs[:, 0].astype(jnp.int64) * (n + 1) + pairs[:, 1]


def carry_shear_history(old_pairs: Array, old_shear: Array, new_pairs: Array, n: int) -> Array:
    """Shear history for ``new_pairs``, taken from the same (i, j) in the old sorted list."""
    old_keys, new_keys = pair_keys(old_pairs, n), pair_keys(new_pairs, n)
    slot = jnp.clip(jnp.searchsorted(old_keys, new_keys), 0, old_keys.shape[0] - 1)
    same = (old_keys[slot] == new_keys) & (new_pairs[:, 0] < n)
    return jnp.where(same[:, None], old_shear[slot], 0.0)


def needs_rebuild(pair_list: PairList, position: Array, box: Box, skin: float,
                  wall_z=()) -> Array:
    """True once any particle or wall moved more than skin/2 since the list was built."""
    moved = minimum_image(position - pair_list.reference_position, box)
    wall_moved = jnp.abs(jnp.asarray(wall_z, position.dtype) - pair_list.wall_reference_z)
    return ((jnp.max(vector.norm_squared(moved)) > (0.5 * skin) ** 2)
            | jnp.any(wall_moved > 0.5 * skin))

