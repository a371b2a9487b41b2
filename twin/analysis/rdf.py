"""Radial distribution functions g(r) of sphere centres, with mixed periodicity and a slab edge
correction along a non-periodic z.

Convention (the same as freud's ``density.RDF`` in its default ``normalization_mode='exact'``
for a periodic box, with ``positions_a`` = freud's ``query_points`` and ``positions_b`` = its
``points``)::

    g_AB(r_k) = V / (N_A N_B) · Σ_{a ∈ A} n_a(k) / v_a(k)

* n_a(k): number of B centres b ≠ a at a minimum-image distance in bin k = [r_k, r_k+1) from a.
  A is the set of reference centres (shell centres), B the counted set. For distinct sets every
  pair counts; for one component (``positions_b=None``) B = A without the self pair, so each
  unordered pair counts twice and the normaliser is N_A² (not N_A (N_A − 1)): an ideal gas gives
  g = (N − 1)/N, 1 % low for N = 100, as in freud's 'exact' mode.
* v_a(k): the volume of shell k around a. Fully periodic: 4π/3 (r_k+1³ − r_k³) for every a, so
  g_AB = g_BA and g reduces to freud's H_k V / (N_A N_B v_k). Periodic in x, y and bounded in z
  (a calendered electrode): the part of the shell inside the slab z ∈ [z_lo, z_hi]; a ball of
  radius R about z_a meets the slab in a spherical zone of volume π [R² t − t³/3] evaluated
  between t = clip(z_lo − z_a, −R, R) and t = clip(z_hi − z_a, −R, R) (e.g. Bronshtein,
  Handbook of Mathematics, spherical zone). Each reference centre then counts only the volume
  in which a partner could lie, so a uniform random set in the slab gives g = 1 at every r,
  including r beyond the slab thickness. With this correction g_AB ≠ g_BA in general.
* V: box volume, or L_x L_y (z_hi − z_lo) for a slab.
* cumulative count n(r_k+1) = Σ_{j ≤ k} Σ_a n_a(j) / N_A: mean number of B centres within
  r_k+1 of an A centre, no edge correction (freud's ``n_r``).

Pairs are found by chunked brute force (chunks of A rows against all of B inside one jitted
``lax.map``), so memory is bounded by ``max_pairs_per_chunk`` and the work is N_A·N_B: fine
for the N ≲ 1e4 of an RDF sample. Distances use the dtype of the positions (float32 or float64).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from twin.physics import vector
from twin.physics.space import Box, minimum_image

MAX_PAIRS_PER_CHUNK = 2**22


class RDF(NamedTuple):
    r: np.ndarray            # bin centres (n_bins,), µm
    g: np.ndarray            # g(r) (n_bins,)
    cumulative: np.ndarray   # mean number of B centres within the upper bin edge of an A centre


def rdf(positions_a, positions_b, box: Box, r_max: float, n_bins: int, *, r_min: float = 0.0,
        z_range: tuple[float, float] | None = None,
        max_pairs_per_chunk: int = MAX_PAIRS_PER_CHUNK) -> RDF:
    """g_AB(r) on n_bins equal bins of [r_min, r_max) (µm); see the module docstring.

    Args:
      positions_a: (N_A, 3) reference centres.
      positions_b: (N_B, 3) counted centres, or None for the one-component g of positions_a.
      box: periodic (True, True, True) or (True, True, False); r_max ≤ half the smallest
        periodic length.
      z_range: the slab (z_lo, z_hi) when z is not periodic (default: the box's z bounds); all
        centres must lie in it.
    """
    a = _as_positions(positions_a, "positions_a")
    one_component = positions_b is None
    b = a if one_component else _as_positions(positions_b, "positions_b")
    slab = _check_geometry(box, r_min, r_max, n_bins)
    lo, hi = np.asarray(box.lo, float), np.asarray(box.hi, float)
    if slab:
        z_lo, z_hi = (lo[2], hi[2]) if z_range is None else (float(z_range[0]), float(z_range[1]))
        _check_slab(z_lo, z_hi, a, b)
        volume = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (z_hi - z_lo)
    else:
        z_lo, z_hi = lo[2], hi[2]
        volume = float(np.prod(hi - lo))
    dtype = a.dtype
    chunk = int(max(1, min(len(a), max_pairs_per_chunk // len(b))))
    n_chunks = -(-len(a) // chunk)
    padded = np.zeros((n_chunks * chunk, 3), dtype)
    padded[: len(a)] = a
    index = np.full(n_chunks * chunk, -1, np.int64)
    index[: len(a)] = np.arange(len(a))
    edges = r_min + (r_max - r_min) * np.arange(n_bins + 1) / n_bins
    typed_box = Box(jnp.asarray(lo, dtype), jnp.asarray(hi, dtype), tuple(box.periodic))
    counts, weighted = _histograms(
        jnp.asarray(padded).reshape(n_chunks, chunk, 3),
        jnp.asarray(index).reshape(n_chunks, chunk),
        jnp.asarray(b), typed_box, jnp.asarray(edges, dtype), jnp.asarray([z_lo, z_hi], dtype),
        slab=slab, exclude_self=one_component)
    counts = np.asarray(counts)
    g = volume / (len(a) * len(b)) * np.asarray(weighted)
    return RDF(0.5 * (edges[1:] + edges[:-1]), g, np.cumsum(counts) / len(a))


def partial_rdfs(positions, phases, box: Box, r_max: float, n_bins: int, *, r_min: float = 0.0,
                 z_range: tuple[float, float] | None = None) -> dict[str, RDF]:
    """g(r) of AM–AM, AM–CBD (AM centres as reference), CBD–CBD and all centres ("total").

    ``phases`` (N,): 1 AM, 2 CBD (the label convention of :mod:`twin.analysis`).
    """
    positions = _as_positions(positions, "positions")
    phases = np.asarray(phases)
    if phases.shape != (len(positions),) or not np.isin(phases, (1, 2)).all():
        raise ValueError(f"phases must be ({len(positions)},) with values 1 (AM) or 2 (CBD); got "
                         f"shape {phases.shape} and values {np.unique(phases)[:5]}")
    am, cbd = positions[phases == 1], positions[phases == 2]
    if len(am) < 2 or len(cbd) < 2:
        raise ValueError(f"partial RDFs need at least two spheres of each phase; got {len(am)} AM "
                         f"and {len(cbd)} CBD: use rdf() for a single phase")
    kwargs = dict(r_min=r_min, z_range=z_range)
    return {"AM-AM": rdf(am, None, box, r_max, n_bins, **kwargs),
            "AM-CBD": rdf(am, cbd, box, r_max, n_bins, **kwargs),
            "CBD-CBD": rdf(cbd, None, box, r_max, n_bins, **kwargs),
            "total": rdf(positions, None, box, r_max, n_bins, **kwargs)}


def ball_slab_volume(radius, z_centre, z_lo, z_hi):
    """Volume of the ball |x − c| < radius, c_z = z_centre, inside z_lo ≤ z ≤ z_hi (spherical
    zone: π [R² t − t³/3] between the clipped plane offsets t)."""
    t_lo = jnp.clip(z_lo - z_centre, -radius, radius)
    t_hi = jnp.clip(z_hi - z_centre, -radius, radius)
    r2 = radius * radius
    return jnp.pi * (r2 * (t_hi - t_lo) - (t_hi**3 - t_lo**3) / 3.0)


@partial(jax.jit, static_argnames=("slab", "exclude_self"))
def _histograms(chunks_a, index_a, b, box: Box, edges, z_slab, *, slab: bool, exclude_self: bool):
    """Pair counts per bin and Σ_a n_a(k)/v_a(k), scanning chunks of A rows against all of B."""
    n_bins = edges.shape[0] - 1
    r_min, r_max = edges[0], edges[-1]
    inverse_width = n_bins / (r_max - r_min)
    index_b = jnp.arange(b.shape[0])

    def one_chunk(chunk):
        a, index = chunk
        r = jnp.sqrt(vector.norm_squared(minimum_image(a[:, None, :] - b[None, :, :], box)))
        k = jnp.minimum(jnp.floor((r - r_min) * inverse_width).astype(jnp.int32), n_bins - 1)
        keep = (r >= r_min) & (r < r_max) & (index[:, None] >= 0)
        if exclude_self:
            keep &= index[:, None] != index_b[None, :]
        rows = jnp.broadcast_to(jnp.arange(a.shape[0])[:, None], k.shape)
        per_row = jnp.zeros((a.shape[0], n_bins + 1), jnp.int32).at[
            rows, jnp.where(keep, k, n_bins)].add(1)[:, :n_bins]
        if slab:
            inside = ball_slab_volume(edges[None, :], a[:, 2:3], z_slab[0], z_slab[1])
            shell = inside[:, 1:] - inside[:, :-1]
        else:
            shell = jnp.broadcast_to(4.0 * jnp.pi / 3.0 * (edges[1:] ** 3 - edges[:-1] ** 3),
                                     per_row.shape)
        return jnp.sum(per_row, axis=0), jnp.sum(per_row / shell, axis=0)

    counts, weighted = jax.lax.map(one_chunk, (chunks_a, index_a))
    return jnp.sum(counts, axis=0, dtype=jnp.int64), jnp.sum(weighted, axis=0)


def _as_positions(positions, name):
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) == 0:
        raise ValueError(f"{name} must be a non-empty (N, 3) array of centres in µm; got shape "
                         f"{positions.shape}")
    if not np.issubdtype(positions.dtype, np.floating):
        positions = positions.astype(float)
    if not np.isfinite(positions).all():
        raise ValueError(f"{name} holds non-finite coordinates: remove or fix those particles")
    return positions


def _check_geometry(box: Box, r_min, r_max, n_bins) -> bool:
    """Validate bins and periodicity; True when z is a bounded slab."""
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins = {n_bins} must be a positive integer")
    if not 0.0 <= r_min < r_max:
        raise ValueError(f"need 0 <= r_min < r_max; got r_min = {r_min} µm, r_max = {r_max} µm")
    if tuple(box.periodic) not in ((True, True, True), (True, True, False)):
        raise ValueError(f"box periodicity {tuple(box.periodic)} is not supported: x and y must "
                         "be periodic, z periodic or a bounded slab (edge-corrected)")
    length = np.asarray(box.length, float)
    periodic_lengths = length[np.asarray(box.periodic)]
    half = 0.5 * periodic_lengths.min()
    if r_max > half:
        raise ValueError(f"r_max = {r_max} µm exceeds half the smallest periodic box length "
                         f"({periodic_lengths.min():.6g} µm / 2 = {half:.6g} µm): a pair would "
                         "then be counted through more than one periodic image; use r_max <= "
                         f"{half:.6g} µm or a larger box")
    return not box.periodic[2]


def _check_slab(z_lo, z_hi, *position_sets):
    if not z_hi > z_lo:
        raise ValueError(f"z_range = ({z_lo}, {z_hi}) µm must have z_hi > z_lo")
    for positions in position_sets:
        z = positions[:, 2]
        if z.min() < z_lo or z.max() > z_hi:
            raise ValueError(f"centres with z in [{z.min():.6g}, {z.max():.6g}] µm lie outside "
                             f"the slab z_range = ({z_lo:.6g}, {z_hi:.6g}) µm: widen z_range to "
                             "cover every centre")
