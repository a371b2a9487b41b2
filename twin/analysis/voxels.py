"""Voxel label images of sphere packings: exact at voxel centres; a smooth differentiable variant.

Labels (``twin.analysis``): 0 pore, 1 active material (AM), 2 carbon-binder domain (CBD); axes
(x, y, z), array index [i, j, k] is the voxel whose centre is ``origin + (i + ½, j + ½, k + ½) h``.

* :func:`voxelize`: a voxel is solid if its centre lies inside (or on) a sphere, ``|c − p| ≤ r``;
  where an AM and a CBD sphere both cover a centre, **AM wins** (CBD is the binder film around
  the hard particles). Periodic axes wrap; along a non-periodic axis spheres are cut by the image.
* :func:`smooth_phase_fractions`: phase volume fractions from a soft occupancy, differentiable in
  positions and radii (see its docstring for the profile).

Each sphere stamps the cube of voxel centres within its reach (a ``K³`` stencil, K fixed per
group of similar radii), chunked over spheres inside jit-compiled steps, so memory stays bounded
by ``CHUNK_ENTRIES`` stencil entries whatever the number of spheres and voxels.
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PORE, AM, CBD = 0, 1, 2
LABELS = (PORE, AM, CBD)
CHUNK_ENTRIES = 2**21           # stencil entries (sphere × voxel) per jitted chunk
_STENCIL_LADDER = tuple(sorted({int(round(2 ** (k / 2))) for k in range(2, 30)}))


class VoxelGrid(NamedTuple):
    """Regular grid of cubic voxels; hashable, so it is a static argument of jitted steps."""

    origin: tuple[float, float, float]   # µm, lower corner of voxel (0, 0, 0)
    shape: tuple[int, int, int]
    voxel_um: float
    periodic: tuple[bool, bool, bool]

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]


def check_labels(labels) -> np.ndarray:
    """Return ``labels`` as a uint8 (nx, ny, nz) array; ValueError on other shapes or values."""
    array = np.asarray(labels)
    if array.ndim != 3:
        raise ValueError(f"a label image must be 3-D (x, y, z); got shape {array.shape}")
    if array.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers 0 pore, 1 AM, 2 CBD; got dtype {array.dtype}")
    values = np.unique(array)
    unexpected = [int(v) for v in values if int(v) not in LABELS]
    if unexpected:
        raise ValueError(f"labels {unexpected} are not phases: use 0 pore, 1 AM, 2 CBD")
    return array.astype(np.uint8, copy=False)


def voxel_grid(box_lo, box_hi, periodic, z_range=None, voxel_um=0.25) -> VoxelGrid:
    """The grid of a box (x, y from ``box_lo``/``box_hi``; z from ``z_range``, default the box).

    A periodic axis must hold a whole number of voxels (else the wrap would not be periodic): a
    ValueError then names the nearest voxel sizes that fit. A non-periodic axis of length L gets
    ``round(L / h)`` voxels from its lower end (so the image ends within h/2 of the upper bound).
    """
    lo = np.array(box_lo, dtype=float)     # copies: the z bounds are replaced below
    hi = np.array(box_hi, dtype=float)
    periodic = tuple(bool(p) for p in periodic)
    if lo.shape != (3,) or hi.shape != (3,) or len(periodic) != 3:
        raise ValueError("box_lo, box_hi and periodic need three entries (x, y, z)")
    if not voxel_um > 0:
        raise ValueError(f"voxel size {voxel_um} µm must be positive")
    if z_range is not None:
        z_lo, z_hi = float(z_range[0]), float(z_range[1])
        if periodic[2] and not np.allclose((z_lo, z_hi), (lo[2], hi[2])):
            raise ValueError(f"z is periodic, so the image must span the box z "
                             f"[{lo[2]}, {hi[2]}], not z_range {z_range}: pass z_range=None or "
                             "make z non-periodic")
        lo[2], hi[2] = z_lo, z_hi
    length = hi - lo
    if (length <= 0).any():
        raise ValueError(f"empty box or z range: lo {lo.tolist()}, hi {hi.tolist()}")
    shape = []
    for axis in range(3):
        count = length[axis] / voxel_um
        n = max(1, int(round(count)))
        if periodic[axis] and abs(count - n) > 1e-6 * n:
            raise ValueError(
                f"periodic axis {'xyz'[axis]} of length {length[axis]} µm is not a whole number "
                f"of {voxel_um} µm voxels ({count:.4f}); use {length[axis] / n:.6g} or "
                f"{length[axis] / (n + 1):.6g} µm")
        shape.append(n)
    return VoxelGrid(tuple(float(v) for v in lo), tuple(shape), float(voxel_um), periodic)


def _stencil_size(reach_um, voxel_um):
    """Smallest ladder size ≥ the number of voxel centres a segment of length 2·reach can hold."""
    need = np.floor(2.0 * np.asarray(reach_um) / voxel_um).astype(int) + 2
    ladder = np.asarray(_STENCIL_LADDER)
    if need.max(initial=0) > ladder[-1]:
        raise ValueError(f"a sphere reaching {np.max(reach_um)} µm spans more than "
                         f"{ladder[-1]} voxels of {voxel_um} µm: use larger voxels")
    return ladder[np.searchsorted(ladder, need)]


def _chunks(reach_um, voxel_um):
    """Groups of sphere indices sharing a stencil size K, split into fixed-size padded chunks.

    Yields (indices, live, K): ``indices`` has the chunk length (a power of two), padded with
    index 0 where ``live`` is False.
    """
    sizes = _stencil_size(reach_um, voxel_um)
    for k in np.unique(sizes):
        members = np.flatnonzero(sizes == k)
        chunk = 1 << max(0, int(math.log2(max(1, CHUNK_ENTRIES // int(k) ** 3))))
        chunk = min(chunk, 1 << math.ceil(math.log2(len(members))))
        for start in range(0, len(members), chunk):
            part = members[start:start + chunk]
            live = np.zeros(chunk, bool)
            live[:len(part)] = True
            yield np.pad(part, (0, chunk - len(part))), live, int(k)


def _stencil(centres, reach, grid: VoxelGrid, k: int):
    """Flat voxel indices, squared centre distances and validity of each sphere's K³ stencil.

    The stencil starts at the first voxel centre ≥ centre − reach along each axis; periodic axes
    wrap the index (the distance is to the unwrapped centre, i.e. the nearest image), and voxels
    beyond a non-periodic end are invalid.
    """
    origin = jnp.asarray(grid.origin, centres.dtype)
    h = grid.voxel_um
    first = jnp.ceil((centres - reach[:, None] - origin) / h - 0.5).astype(jnp.int32)
    index = first[:, :, None] + jnp.arange(k, dtype=jnp.int32)              # (C, 3, K)
    delta = origin[:, None] + (index + 0.5) * h - centres[:, :, None]       # (C, 3, K)
    wrapped, valid = [], []
    for axis in range(3):
        n = grid.shape[axis]
        i = index[:, axis]
        wrapped.append(jnp.mod(i, n) if grid.periodic[axis] else jnp.clip(i, 0, n - 1))
        valid.append(jnp.ones_like(i, bool) if grid.periodic[axis] else (i >= 0) & (i < n))
    ny, nz = grid.shape[1], grid.shape[2]
    flat = (wrapped[0][:, :, None, None] * (ny * nz) + wrapped[1][:, None, :, None] * nz
            + wrapped[2][:, None, None, :])
    d2 = (delta[:, 0, :, None, None] ** 2 + delta[:, 1, None, :, None] ** 2
          + delta[:, 2, None, None, :] ** 2)
    ok = valid[0][:, :, None, None] & valid[1][:, None, :, None] & valid[2][:, None, None, :]
    return flat, d2, ok


@partial(jax.jit, static_argnames=("grid", "k"), donate_argnums=0)
def _stamp_priority(codes, centres, radii, priority, grid, k):
    flat, d2, ok = _stencil(centres, radii, grid, k)
    inside = ok & (d2 <= (radii**2)[:, None, None, None])
    code = jnp.where(inside, priority[:, None, None, None], 0).astype(codes.dtype)
    return codes.at[jnp.where(inside, flat, grid.size).ravel()].max(code.ravel(), mode="drop")


def _phases_and_radii(positions, radii, phases):
    positions = jnp.asarray(positions)
    radii = jnp.asarray(radii, positions.dtype)
    phases = np.asarray(phases)
    if positions.ndim != 2 or positions.shape[1] != 3 or radii.shape != positions.shape[:1] \
            or phases.shape != radii.shape:
        raise ValueError(f"positions must be (N, 3) with radii and phases (N,); got "
                         f"{positions.shape}, {radii.shape}, {phases.shape}")
    bad = sorted(set(np.unique(phases).tolist()) - {AM, CBD})
    if bad:
        raise ValueError(f"sphere phases {bad} unknown: use 1 AM, 2 CBD")
    return positions, radii, phases


def _warn_coarse(radii, voxel_um):
    smallest = float(np.min(radii))
    if voxel_um > smallest:
        warnings.warn(f"voxel size {voxel_um} µm is larger than the smallest particle radius "
                      f"{smallest:.4g} µm: such particles are resolved by at most one voxel",
                      stacklevel=3)


def voxelize(positions, radii, phases, box_lo, box_hi, periodic=(True, True, False),
             z_range=None, voxel_um=0.25) -> jax.Array:
    """Label image (uint8, x y z) of spheres: 0 pore, 1 AM, 2 CBD; AM wins where both cover.

    Args:
      positions: (N, 3) sphere centres, µm (float32 or float64: the distance test uses it).
      radii: (N,) µm. phases: (N,) 1 for AM, 2 for CBD.
      box_lo, box_hi: box corners, µm; x, y of the image are the box's.
      periodic: per axis; x, y normally True. z periodic needs z_range equal to the box z.
      z_range: (z_collector, z_top) µm, the electrode cut (default: the box z).
      voxel_um: voxel edge (the paper: 0.25 µm).
    """
    positions, radii, phases = _phases_and_radii(positions, radii, phases)
    grid = voxel_grid(box_lo, box_hi, periodic, z_range, voxel_um)
    radii_np = np.asarray(radii)
    _warn_coarse(radii_np, voxel_um)
    priority = jnp.asarray(np.where(phases == AM, 2, 1), jnp.uint8)   # AM above CBD
    codes = jnp.zeros(grid.size, jnp.uint8)
    for index, live, k in _chunks(radii_np, voxel_um):
        codes = _stamp_priority(codes, positions[index], radii[index],
                                jnp.where(live, priority[index], 0).astype(jnp.uint8), grid, k)
    return jnp.asarray([PORE, CBD, AM], jnp.uint8)[codes].reshape(grid.shape)


def _log_vacancy(d2, radii, width):
    """log(1 − o) of the smooth occupancy o = S((r − d)/w + ½), S the quintic smoothstep.

    1 − o = S(u), u = ½ − (r − d)/w clipped to [0, 1] (S(1 − t) = 1 − S(t)); log S(u) =
    3 log u + log(10 − 15u + 6u²), and −∞ (as −1e3) where u = 0 with a zero gradient there.
    """
    d = jnp.sqrt(jnp.maximum(d2, (1e-9 * width) ** 2))
    u = jnp.clip(0.5 - (radii[:, None, None, None] - d) / width, 0.0, 1.0)
    positive = u > 0
    safe = jnp.where(positive, u, 1.0)
    return jnp.where(positive, 3.0 * jnp.log(safe) + jnp.log(10.0 - 15.0 * safe + 6.0 * safe**2),
                     -1e3)


@partial(jax.jit, static_argnames=("grid", "k"))
def _stamp_log_vacancy(total, centres, radii, live, width, reach, grid, k):
    flat, d2, ok = _stencil(centres, reach, grid, k)
    keep = ok & live[:, None, None, None]
    value = jnp.where(keep, _log_vacancy(d2, radii, width), 0.0)
    return total.at[jnp.where(keep, flat, grid.size).ravel()].add(value.ravel(), mode="drop")


def smooth_phase_fractions(positions, radii, phases, box_lo, box_hi, periodic=(True, True, False),
                           z_range=None, voxel_um=0.25, width_um=None, reach_um=None) -> jax.Array:
    """Differentiable volume fractions (pore, AM, CBD) of the voxelised electrode.

    Each sphere occupies a voxel centre at distance d by o = S((r − d)/w + ½), S(t) = 6t⁵ − 15t⁴
    + 10t³ on [0, 1] (quintic smoothstep, C²): a sigmoid of the signed distance r − d that is 1
    inside r − w/2, 0 beyond r + w/2, ½ on the surface. The width w defaults to one voxel. A
    compact profile (rather than a logistic one) makes each sphere's stencil exact, so the
    function has no truncation jumps and finite differences converge. Phases combine as a
    probabilistic union with AM winning, as in :func:`voxelize`::

        V_AM = Π_AM (1 − o_i),  V_CBD = Π_CBD (1 − o_i)     (products via sums of logs)
        f_AM = ⟨1 − V_AM⟩,  f_CBD = ⟨V_AM (1 − V_CBD)⟩,  f_pore = ⟨V_AM V_CBD⟩

    averaged over voxel centres, so overlaps count once and f_pore + f_AM + f_CBD = 1. Against
    the hard voxel count the smooth fractions differ by O((w/r)²) (surface curvature of the
    band) plus the sampling of a finite grid.

    ``jax.grad`` works w.r.t. positions and radii. Stencils are sized from ``reach_um`` (N,), a
    concrete bound on r + w/2 per sphere; by default it is computed from ``radii``, which must
    then be concrete — pass ``reach_um`` when differentiating with respect to the radii.
    """
    positions, radii, phases = _phases_and_radii(positions, radii, phases)
    grid = voxel_grid(box_lo, box_hi, periodic, z_range, voxel_um)
    width = float(voxel_um if width_um is None else width_um)
    if reach_um is None:
        try:
            reach_um = np.asarray(radii) + 0.5 * width
        except jax.errors.TracerArrayConversionError:
            raise ValueError("radii are traced (differentiated or jitted): pass reach_um, a "
                             "numpy bound on radius + width/2 for each sphere") from None
        _warn_coarse(reach_um - 0.5 * width, voxel_um)
    reach_um = np.asarray(reach_um, float)
    if not isinstance(radii, jax.core.Tracer) and np.any(np.asarray(radii) + 0.5 * width
                                                         > reach_um + 1e-12):
        raise ValueError("reach_um must be at least radius + width/2 for every sphere (else its "
                         "stencil would cut the smooth profile)")
    reach = jnp.asarray(reach_um, positions.dtype)
    totals = []
    for phase in (AM, CBD):
        total = jnp.zeros(grid.size, positions.dtype)
        members = np.flatnonzero(phases == phase)
        if members.size:
            for index, live, k in _chunks(reach_um[members], voxel_um):
                pick = members[index]
                total = _stamp_log_vacancy(total, positions[pick], radii[pick], jnp.asarray(live),
                                           width, reach[pick], grid, k)
        totals.append(jnp.exp(total))
    vacant_am, vacant_cbd = totals
    return jnp.stack([jnp.mean(vacant_am * vacant_cbd), jnp.mean(1.0 - vacant_am),
                      jnp.mean(vacant_am * (1.0 - vacant_cbd))])
