"""Verlet pair list for polydisperse spheres: a cell grid with size-grouped search stencils.

The electrode mixes 1.3 µm carbon-binder particles with AM spheres up to ~10.6 µm (ratio ~8). A
single cell grid sized for the largest pair would put hundreds of small particles in every cell,
so instead:

* the cell edge h is set by the *smallest* particles (h ≥ 2 r_min + skin);
* each particle is stored once, in the cell of its centre (fixed capacity per cell);
* a pair (i, j) is owned by the larger sphere (ties: the larger index), and each particle only
  searches the cells within s = ceil((2 r_i + skin) / h) cells, which reach every smaller partner.
  Particles with the same s form a *group* with one static stencil, so the build is a handful of
  dense gathers of static shape — jit-friendly on CPU, GPU and TPU. A group whose stencil holds
  more slots than there are particles (a few large spheres in a small box) tests every particle.

The result is a flat, sorted list of candidate pairs with ``|x_i - x_j| < r_i + r_j + skin``, of
fixed capacity. Overflow of a cell or of the pair capacity sets a flag and *never* drops a pair
silently: the driver (:mod:`twin.physics.simulate`) re-allocates and repeats the chunk. The list
stays valid while no particle moved more than skin/2 since the build.

Shear history lives on pairs; :func:`carry_shear_history` moves it to the slots of a new list by
pair identity (i, j), not by slot.
"""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from twin.physics import vector
from twin.physics.space import Box, minimum_image

MAX_CELLS_PER_PARTICLE = 4


class NeighborSpec(eqx.Module):
    """Static layout of the neighbour search (shapes and capacities) plus the group members.

    Build it with :func:`allocate_neighbors` outside jit; it is passed into jitted code as a pytree
    (members and stencils are arrays; counts and capacities are static).
    """

    group_members: tuple[Array, ...]
    group_stencils: tuple[Array, ...]
    group_scans_all: tuple[bool, ...] = eqx.field(static=True)
    cells_per_axis: tuple[int, int, int] = eqx.field(static=True)
    cell_capacity: int = eqx.field(static=True)
    pair_capacity: int = eqx.field(static=True)
    skin: float = eqx.field(static=True)


class PairList(eqx.Module):
    """Candidate pairs sorted by (i, j); unused slots hold (N, N). ``count`` may exceed capacity,
    in which case ``overflow`` is set and the list is incomplete."""

    pairs: Array
    count: Array
    overflow: Array
    reference_position: Array


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


def allocate_neighbors(position, radius, box: Box, skin: float, *, cell_capacity=None,
                       pair_capacity=None, growth=1.3) -> tuple[NeighborSpec, PairList]:
    """Size the grid, groups and capacities for this packing and build the first list.

    Call outside jit. ``growth`` leaves head-room above the counts found now.
    """
    position = np.asarray(position)
    radius = np.asarray(radius)
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
    if cell_capacity is None:
        occupancy = np.bincount(np.asarray(_cell_index(jnp.asarray(position), box, cells)),
                                minlength=int(np.prod(cells)))
        cell_capacity = int(math.ceil(growth * occupancy.max())) + 2
    # A few large spheres with a huge stencil are cheaper to test against every particle.
    scans_all = tuple(len(st) * cell_capacity >= len(radius) for st in stencils)
    provisional = NeighborSpec(tuple(members), tuple(stencils), scans_all, cells, cell_capacity,
                               pair_capacity or 1, float(skin))
    if pair_capacity is None:
        count = int(build_pairs(jnp.asarray(position), jnp.asarray(radius), box, provisional).count)
        pair_capacity = max(int(math.ceil(growth * count)) + 64, len(radius))
    spec = NeighborSpec(tuple(members), tuple(stencils), scans_all, cells, cell_capacity,
                        pair_capacity, float(skin))
    pair_list = build_pairs(jnp.asarray(position), jnp.asarray(radius), box, spec)
    return spec, pair_list


def _cell_coordinates(position, box: Box, cells):
    cells_array = jnp.asarray(cells)
    fraction = (position - box.lo) / box.length
    coordinate = jnp.floor(fraction * cells_array).astype(jnp.int32)
    return jnp.clip(coordinate, 0, cells_array - 1)


def _cell_index(position, box: Box, cells):
    c = _cell_coordinates(position, box, cells)
    return (c[:, 0] * cells[1] + c[:, 1]) * cells[2] + c[:, 2]


def build_pairs(position: Array, radius: Array, box: Box, spec: NeighborSpec) -> PairList:
    """All pairs with |x_i - x_j| < r_i + r_j + skin, owned by the larger sphere (jit-able)."""
    n = position.shape[0]
    cells = spec.cells_per_axis
    n_cells = int(np.prod(cells))
    cell_of = _cell_index(position, box, cells)
    order = jnp.argsort(cell_of)
    sorted_cells = cell_of[order]
    rank = jnp.arange(n) - jnp.searchsorted(sorted_cells, sorted_cells, side="left")
    cell_overflow = jnp.any(rank >= spec.cell_capacity)
    table = jnp.full((n_cells, spec.cell_capacity), n, dtype=jnp.int32)
    table = table.at[sorted_cells, rank].set(order.astype(jnp.int32), mode="drop")

    coordinates = _cell_coordinates(position, box, cells)
    cells_array = jnp.asarray(cells)
    periodic = jnp.asarray(box.periodic)
    owners, partners, keep = [], [], []
    for members, stencil, scans_all in zip(spec.group_members, spec.group_stencils,
                                           spec.group_scans_all):
        if scans_all:
            candidates = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (members.shape[0], n))
        else:
            neighbour_cells = coordinates[members][:, None, :] + stencil[None, :, :]
            inside = jnp.all(periodic | ((neighbour_cells >= 0) & (neighbour_cells < cells_array)),
                             axis=-1)
            neighbour_cells = jnp.mod(neighbour_cells, cells_array)
            flat = (neighbour_cells[..., 0] * cells[1] + neighbour_cells[..., 1]) * cells[2] \
                + neighbour_cells[..., 2]
            candidates = jnp.where(inside[..., None], table[flat], n).reshape(members.shape[0], -1)
        i = jnp.broadcast_to(members[:, None], candidates.shape)
        j_safe = jnp.where(candidates < n, candidates, 0)
        r_i, r_j = radius[i], radius[j_safe]
        owned = (r_j < r_i) | ((r_j == r_i) & (candidates > i))
        d = minimum_image(position[i] - position[j_safe], box)
        close = vector.norm_squared(d) < (r_i + r_j + spec.skin) ** 2
        owners.append(i.ravel())
        partners.append(candidates.ravel())
        keep.append(((candidates < n) & owned & close).ravel())
    owners, partners, keep = (jnp.concatenate(a) for a in (owners, partners, keep))
    count = jnp.sum(keep)
    (slots,) = jnp.nonzero(keep, size=spec.pair_capacity, fill_value=owners.shape[0])
    owners = jnp.concatenate([owners, jnp.array([n], owners.dtype)])[slots]
    partners = jnp.concatenate([partners, jnp.array([n], partners.dtype)])[slots]
    key = owners.astype(jnp.int64) * (n + 1) + partners
    order = jnp.argsort(key)
    pairs = jnp.stack([owners[order], partners[order]], axis=1).astype(jnp.int32)
    overflow = cell_overflow | (count > spec.pair_capacity)
    return PairList(pairs, count, overflow, position)


def rebuild_pairs(pair_list: PairList, position: Array, radius: Array, box: Box,
                  spec: NeighborSpec) -> PairList:
    """A fresh list at ``position`` whose overflow flag stays set once any build overflowed."""
    fresh = build_pairs(position, radius, box, spec)
    return eqx.tree_at(lambda p: p.overflow, fresh, fresh.overflow | pair_list.overflow)


def pair_keys(pairs: Array, n: int) -> Array:
    return pairs[:, 0].astype(jnp.int64) * (n + 1) + pairs[:, 1]


def carry_shear_history(old_pairs: Array, old_shear: Array, new_pairs: Array, n: int) -> Array:
    """Shear history for ``new_pairs``, taken from the same (i, j) in the old sorted list."""
    old_keys, new_keys = pair_keys(old_pairs, n), pair_keys(new_pairs, n)
    slot = jnp.clip(jnp.searchsorted(old_keys, new_keys), 0, old_keys.shape[0] - 1)
    same = (old_keys[slot] == new_keys) & (new_pairs[:, 0] < n)
    return jnp.where(same[:, None], old_shear[slot], 0.0)


def needs_rebuild(position: Array, reference_position: Array, box: Box, skin: float) -> Array:
    """True once any particle moved more than skin/2 since the list was built."""
    moved = minimum_image(position - reference_position, box)
    return jnp.max(vector.norm_squared(moved)) > (0.5 * skin) ** 2

