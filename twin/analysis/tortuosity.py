"""Tortuosity factor of a voxel label image from the steady diffusion problem (GeoDict DiffuDict / TauFactor).

Problem. Each voxel i carries a diffusivity D_i from its label (0 pore, 1 AM, 2 CBD; default 7.5e-11, 0,
2.46e-11 m²/s: FACTS.md, CBD by Bruggeman with 47 % inner porosity). Along the chosen axis the concentration
is 1 on the inlet and 0 on the outlet; the lateral faces are no-flux (default) or periodic. Finite volumes on
the voxel grid (spacing h) give for every conducting voxel

    Σ_j g_ij (c_i - c_j) + g_b,i (c_i - c_b) = 0,   g_ij = 2 D_i D_j / (D_i + D_j)   (harmonic mean),

with g_b,i = D_i / δ the conductance to a Dirichlet value c_b at a distance δ (in voxels) outside the
boundary voxel's centre. Two placements, both TauFactor's:

- ``dirichlet="face"`` (default): c_b on the outer face of the boundary voxels, δ = 1/2, so g_b = 2 D_i and the
  sample length is L = N voxels. This is TauFactor's binary ``Solver`` (its padded layer holds 2·bc with
  weight 2 in the neighbour count, i.e. conductance 2 to the value bc) and ``PeriodicSolver``.
- ``dirichlet="ghost"``: c_b at the centre of a ghost layer one voxel outside that copies the boundary voxel's
  diffusivity, δ = 1, g_b = D_i and L = N + 1. This is TauFactor's ``MultiPhaseSolver`` (``D_eff`` from
  ``mean flux · (Nx + 1)``).

The effective diffusivity is D_eff = F L / (A Δc) with F the flux through a plane normal to the axis, A the
cross-section and Δc = 1; h cancels, so no voxel size is needed. Two tortuosity factors are returned:

- ``tau`` (the paper's, GeoDict DiffuDict): τ = ε D_bulk / D_eff with ε the macro-porosity = fraction of
  label-0 voxels (all of them, connected or not) and D_bulk = D_pore.
- ``tau_taufactor`` (TauFactor 1.2's): τ = D_mean / D_eff with D_mean = Σ_k ε_k D_k, the volume-averaged
  diffusivity over all conducting labels k (``MultiPhaseSolver.D_mean``; for the binary ``Solver`` this is
  VF · D_0 with VF the conducting volume fraction, i.e. the same as ``tau`` when only the pore conducts).
  TauFactor measures the flux on the Nx - 1 interior planes; at convergence every plane carries the same flux.

Solver. Only voxels of clusters that touch both Dirichlet faces (the "backbone", face connectivity, lateral
wrap when periodic) take part: dead ends attached to one face and floating clusters carry no flux at steady
state, and dropping them keeps the system symmetric positive definite (a floating cluster alone would be a
singular pure-Neumann block). No backbone means no percolating path: D_eff = 0 and τ = inf. The SPD system is
solved matrix-free by conjugate gradients (Hestenes & Stiefel 1952) preconditioned with one symmetric W-cycle
of aggregation multigrid: 2×2×2 blocks, Galerkin coarse operators (coarse face conductance = sum of the fine
conductances across the block face; Braess 1995, Notay 2010) with the coarse correction scaled up to offset
the stiffness of piecewise-constant prolongation, damped-Jacobi smoothing, and a dense Cholesky solve on the
coarsest grid. Convergence is judged on the flux, as TauFactor does: the spread of the plane fluxes
(max - min) / mean over all N + 1 planes (inlet, interior, outlet) and the relative change of D_eff between
iterations must both fall below ``rtol``. The loop also stops when the residual reaches the rounding floor
(10 eps ||b||); ``converged`` then says whether the flux criterion was met. float32 reaches a flux spread of
about 1e-4 on 128³ electrode images (rtol 1e-3, the default, is safe); float64 goes to 1e-8 and below.
The backbone is found on the host (labels are integers, nothing to differentiate) by min-label propagation
along the runs of conducting voxels with pointer jumping (``_components``).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_DIFFUSIVITY = (7.5e-11, 0.0, 2.46e-11)
"""Diffusivity per label (m²/s): pore (electrolyte), AM (insulating), CBD (Bruggeman, 47 % inner porosity)."""

_DIRICHLET_DISTANCE = {"face": 0.5, "ghost": 1.0}
_LATERAL = ("no_flux", "periodic")
_COARSEST = 4            # coarsen while any grid side exceeds this many cells (≤ 64 cells: a cheap Cholesky)
_SMOOTH_SWEEPS = 2       # damped-Jacobi sweeps before and after each coarse correction
_JACOBI_WEIGHT = 0.9      # |1 - ω λ| < 1 on λ(D⁻¹A) ⊂ (0, 2]: the cycle stays SPD
_COARSE_SCALE = 1.5      # over-correction of the aggregation coarse grid (piecewise-constant prolongation)
_REPLACE_EVERY = 8       # CG recomputes the true residual b - A c this often (the recurrence drifts in float32)


class TortuosityResult(NamedTuple):
    """Outcome of one solve along one axis (floats are Python/NumPy scalars).

    tau: the paper's (GeoDict) τ = ε D_pore / D_eff, ε = fraction of label-0 voxels; inf if not percolating.
    tau_taufactor: TauFactor's τ = Σ_k ε_k D_k / D_eff over the conducting labels; inf if not percolating.
    d_eff: effective diffusivity D_eff (m²/s), from the mean flux over the N + 1 planes normal to the axis.
    flux_in, flux_out: flux through the inlet and outlet face, as F L / (A Δc) in m²/s (both → d_eff).
    porosity: ε, the fraction of label-0 voxels.
    d_mean: Σ_k ε_k D_k (m²/s), TauFactor's volume-averaged diffusivity.
    iterations: preconditioned CG iterations.
    residual: final ||b - A c|| / ||b||.
    flux_spread: final (max - min) / mean of the plane fluxes.
    converged: whether the flux criterion was met within ``maxiter``.
    percolating: whether a cluster of conducting voxels joins the two Dirichlet faces.
    """

    axis: int
    tau: float
    tau_taufactor: float
    d_eff: float
    flux_in: float
    flux_out: float
    porosity: float
    d_mean: float
    iterations: int
    residual: float
    flux_spread: float
    converged: bool
    percolating: bool


# ---------------------------------------------------------------------------------------------------------
# Input checks and connectivity (host side: integer labels, not differentiable anyway)


def _check_inputs(labels, axis, diffusivity, lateral, dirichlet):
    labels = np.asarray(labels)
    if labels.ndim != 3 or min(labels.shape) < 1:
        raise ValueError(f"labels must be a 3-D voxel image (x, y, z), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers 0 (pore), 1 (AM), 2 (CBD), got dtype {labels.dtype}")
    present = np.unique(labels)
    bad = present[(present < 0) | (present > 2)]
    if bad.size:
        raise ValueError(f"labels {bad.tolist()} are not 0 (pore), 1 (AM) or 2 (CBD); relabel the image")
    if not np.any(present == 0):
        raise ValueError("the image has no pore voxels (label 0): the porosity is 0 and τ is undefined")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0 (x), 1 (y) or 2 (z), got {axis!r}")
    d = np.asarray(diffusivity, dtype=float)
    if d.shape != (3,) or not np.all(np.isfinite(d)) or np.any(d < 0) or d[0] <= 0:
        raise ValueError("diffusivity must be three finite values >= 0 (pore, AM, CBD) with D_pore > 0, "
                         f"got {diffusivity!r}")
    if lateral not in _LATERAL:
        raise ValueError(f"lateral must be one of {_LATERAL}, got {lateral!r}")
    if dirichlet not in _DIRICHLET_DISTANCE:
        raise ValueError(f"dirichlet must be one of {tuple(_DIRICHLET_DISTANCE)}, got {dirichlet!r}")
    return labels.astype(np.uint8), d


def _line_runs(index, axis, periodic):
    """Runs of conducting voxels on the lines along ``axis``, from ``index`` (the conducting voxels'
    numbers 0..M-1, -1 elsewhere): the voxel numbers in line order, the start and length of each run
    in that order, and, for periodic lines, the numbers of the two end voxels of every line whose
    two ends conduct (their runs touch across the wrap; empty otherwise). Along the last axis the line order
    is the numbering itself, so the voxels come as a slice (no gather, no scatter)."""
    lines = np.moveaxis(index, axis, -1)
    n = lines.shape[-1]
    flat = lines.reshape(-1)
    position = np.flatnonzero(flat >= 0)
    starts = np.flatnonzero(np.concatenate([[True], (np.diff(position) != 1) | (position[1:] % n == 0)]))
    lengths = np.diff(np.append(starts, position.size))
    first, last = lines[..., 0].ravel(), lines[..., -1].ravel()
    wrapped = (first >= 0) & (last >= 0) if periodic else np.zeros(first.shape, bool)
    voxels = np.s_[:] if axis == index.ndim - 1 else flat[position]
    return voxels, starts, lengths, first[wrapped], last[wrapped]


def _components(conducting, periodic_axes):
    """Face-connected clusters of ``conducting`` as labels (the smallest number, in C order, of a
    conducting voxel of the cluster; -1 elsewhere). Min-label propagation over the conducting voxels
    only: every run of conducting voxels on a line along x, y, z takes the smallest label of the run
    (runs joined across the ends of periodic lines), then pointer jumping (a voxel takes the label of
    the voxel its label points to, which lies in the same cluster), until nothing changes. The runs
    are found once; each sweep is a gather, a segment minimum and a scatter."""
    index = np.full(conducting.shape, -1, dtype=np.int32 if conducting.size < 2**31 else np.int64)
    index[conducting] = np.arange(np.count_nonzero(conducting), dtype=index.dtype)
    runs = [_line_runs(index, axis, axis in periodic_axes) for axis in range(3)]
    label = np.arange(np.count_nonzero(conducting), dtype=index.dtype)
    while True:
        before = label.copy()
        for voxels, starts, lengths, first, last in runs:
            joined = np.minimum(label[first], label[last])
            label[first], label[last] = joined, joined
            label[voxels] = np.repeat(np.minimum.reduceat(label[voxels], starts), lengths)
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(before, label):
            return np.where(conducting, label[np.maximum(index, 0)], -1)


def _backbone(conducting, periodic):
    """Voxels of clusters that touch both faces normal to axis 0 (face connectivity)."""
    components = _components(conducting, (1, 2) if periodic else ())
    joined = np.intersect1d(np.unique(components[0]), np.unique(components[-1]))
    joined = joined[joined >= 0]
    if not joined.size:
        return None
    return np.isin(components, joined)


# ---------------------------------------------------------------------------------------------------------
# Operators on one grid level. A level is (g, gb): g[a][i] is the conductance of the face between cell i and
# cell i + 1 along axis a (the last one wraps to cell 0 and is zero unless that axis is periodic), gb the
# conductance to the Dirichlet reservoirs. Inactive cells have no conductance at all and stay zero.


def _diagonal(g, gb):
    return gb + sum(ga + jnp.roll(ga, 1, a) for a, ga in enumerate(g))


def _apply(level, x):
    """A x = diag x - Σ_faces g (neighbour).

    Neighbours are slices of one wrap-padded copy of x (zero conductances hide the wrap where the axis is
    not periodic). The barrier materialises that copy: fused rolls of rolls evaluate each input point many
    times over in chained smoothing sweeps (several times slower on CPU).
    """
    xp = jax.lax.optimization_barrier(jnp.pad(x, 1, mode="wrap"))
    n0, n1, n2 = x.shape
    y = level.diag * x
    for a in range(3):
        start = [1, 1, 1]
        start[a] = 2
        above = jax.lax.slice(xp, start, (start[0] + n0, start[1] + n1, start[2] + n2))
        start[a] = 0
        below = jax.lax.slice(xp, start, (start[0] + n0, start[1] + n1, start[2] + n2))
        y = y - level.g_up[a] * above - level.g_down[a] * below
    return y


def _pad_even(x, wrap_axis=None):
    """Pad to even sizes with empty cells; a periodic wrap face moves behind the padded cell."""
    pads = [(0, n % 2) for n in x.shape]
    y = jnp.pad(x, pads)
    if wrap_axis is not None and x.shape[wrap_axis] % 2:
        n = x.shape[wrap_axis]
        last = jnp.take(x, n - 1, axis=wrap_axis)
        y = jax.lax.dynamic_update_index_in_dim(y, jnp.zeros_like(last), n - 1, wrap_axis)
        y = jax.lax.dynamic_update_index_in_dim(y, last, n, wrap_axis)
    return y


def _block_sum(x, axes=(0, 1, 2)):
    """Sum over pairs of neighbouring cells along `axes` (sizes must be even there): x[0::2] + x[1::2].

    Strided slices, not a reshape + reduce: XLA:CPU fuses the slices with the producer of x into one loop that
    evaluates every fine cell once, whereas a reduction becomes a separate (YNNPACK) kernel fed by materialised
    copies of the stencil's shifted inputs (4-5× slower for the residual restriction at 128³).
    """
    for a in axes:
        x = (jax.lax.slice_in_dim(x, 0, x.shape[a], 2, axis=a) + jax.lax.slice_in_dim(x, 1, x.shape[a], 2, axis=a))
    return x


def _coarsen(g, gb):
    """Galerkin aggregation of a level onto 2×2×2 blocks (PᵀAP for piecewise-constant P)."""
    coarse_g = []
    for a, ga in enumerate(g):
        ga = _pad_even(ga, wrap_axis=a)
        odd = jax.lax.slice_in_dim(ga, 1, ga.shape[a], 2, axis=a)   # faces between blocks along a
        coarse_g.append(_block_sum(odd, tuple(b for b in range(3) if b != a)))
    return coarse_g, _block_sum(_pad_even(gb))


def _restrict(r):
    """Sum of a fine residual over each block."""
    return _block_sum(_pad_even(r))


def _prolong(e, shape):
    for a in range(3):
        e = jnp.repeat(e, 2, axis=a)
    return e[: shape[0], : shape[1], : shape[2]]


class _Level(NamedTuple):
    g_up: tuple       # conductance of the face to cell i + 1 along each axis
    g_down: tuple     # ... and to cell i - 1
    diag: jax.Array
    inv_diag: jax.Array
    active: jax.Array


def _hierarchy(g, gb):
    levels = []
    while True:
        diag = _diagonal(g, gb)
        active = diag > 0
        inv = jnp.where(active, 1.0 / jnp.where(active, diag, 1.0), 0.0)
        g_down = tuple(jnp.roll(ga, 1, a) for a, ga in enumerate(g))
        levels.append(_Level(tuple(g), g_down, diag, inv, active.astype(diag.dtype)))
        if max(diag.shape) <= _COARSEST:
            return levels, _coarse_factor(g, diag)
        g, gb = _coarsen(g, gb)


def _coarse_factor(g, diag):
    """Cholesky factor of the coarsest level as a dense matrix (empty cells get a unit diagonal)."""
    n = diag.size
    index = jnp.arange(n).reshape(diag.shape)
    dense = jnp.diag(jnp.where(diag > 0, diag, 1.0).ravel())
    for a, ga in enumerate(g):
        nb = jnp.roll(index, -1, a).ravel()
        dense = dense.at[index.ravel(), nb].add(-ga.ravel()).at[nb, index.ravel()].add(-ga.ravel())
    return jax.scipy.linalg.cho_factor(dense, lower=True)


def _smooth(level, b, x, sweeps):
    """Damped-Jacobi sweeps x ← x + ω D⁻¹ (b - A x).

    A loop rather than unrolled sweeps: its result is materialised. Unrolled, XLA:CPU fuses the last sweep of
    every coarse level into the prolongation above it and re-evaluates that stencil for each of the 8 children,
    compounding over the levels (the fine-grid correction cost ~8 stencil applications per cycle).
    """
    return jax.lax.fori_loop(0, sweeps, lambda _, x: x + _JACOBI_WEIGHT * level.inv_diag * (b - _apply(level, x)), x)


def _w_cycle(levels, factor, b, depth=0):
    """One symmetric W-cycle from a zero guess: an SPD approximation of A⁻¹ b.

    Each coarse problem A_c e = r_c gets two cycles, the second on what the first leaves: e₁ + C (r_c - A_c e₁)
    = (2C - C A_c C) r_c, symmetric. They run as a loop, so each level is traced and compiled once. Piecewise-
    constant aggregation converges poorly with V-cycles (its coarse operators are too stiff); a W-cycle costs
    ~1.33× the fine-level work (level l is visited 2^l times at 8^-l of the size) instead of ~1.14× and cut the
    CG iterations on the 128³ electrode from 8-10 to 4-7.
    """
    if depth == len(levels) - 1:
        x = jax.scipy.linalg.cho_solve(factor, b.ravel()).reshape(b.shape)
        return x * levels[depth].active
    level = levels[depth]
    x = _smooth(level, b, _JACOBI_WEIGHT * level.inv_diag * b, _SMOOTH_SWEEPS - 1)
    coarse_b = _restrict(b - _apply(level, x))
    coarse_level = levels[depth + 1]
    cycles = 1 if depth + 1 == len(levels) - 1 else 2        # the coarsest level is solved exactly

    def correct(_, e):
        return e + _w_cycle(levels, factor, coarse_b - _apply(coarse_level, e), depth + 1)

    coarse = jax.lax.fori_loop(0, cycles, correct, jnp.zeros_like(coarse_b))
    x = x + _COARSE_SCALE * _prolong(coarse, b.shape) * level.active
    return _smooth(level, b, x, _SMOOTH_SWEEPS)


# ---------------------------------------------------------------------------------------------------------
# The solve (flux along axis 0)


def _face_conductances(d, periodic):
    """Harmonic-mean conductances of the faces i | i+1 along each axis (wrap faces only laterally if periodic)."""
    g = []
    for a in range(3):
        nb = jnp.roll(d, -1, a)
        total = d + nb
        ga = jnp.where(total > 0, 2.0 * d * nb / jnp.where(total > 0, total, 1.0), 0.0)
        wrap = (jnp.arange(d.shape[a]) == d.shape[a] - 1).reshape([-1 if b == a else 1 for b in range(3)])
        g.append(jnp.where(wrap & ((a == 0) | ~periodic), 0.0, ga))
    return g


def _plane_fluxes(g0, g_in, g_out, x):
    """Flux (per unit Δc) through the N + 1 planes normal to axis 0: inlet face, interior planes, outlet."""
    inlet = jnp.sum(g_in * (1.0 - x[0]))
    interior = jnp.sum(g0[:-1] * (x[:-1] - x[1:]), axis=(1, 2))
    outlet = jnp.sum(g_out * x[-1])
    return jnp.concatenate([inlet[None], interior, outlet[None]])


class _State(NamedTuple):
    k: jax.Array
    x: jax.Array
    r: jax.Array
    p: jax.Array
    rz: jax.Array
    fluxes: jax.Array
    change: jax.Array


@jax.jit(static_argnames=("maxiter",))
def _solve(d, rtol, periodic, distance, *, maxiter):
    """Preconditioned CG for the concentration with c = 1 behind the inlet and 0 behind the outlet.

    `d` holds the diffusivity (any unit) of the backbone voxels and 0 elsewhere, flux along axis 0; `periodic`
    (lateral wrap) and `distance` (Dirichlet distance in voxels) are traced, so one compilation serves all cases.
    Returns (plane fluxes, iterations, relative residual, relative change of the mean flux).
    """
    g = _face_conductances(d, periodic)
    g_in, g_out = d[0] / distance, d[-1] / distance
    gb = jnp.zeros_like(d).at[0].add(g_in).at[-1].add(g_out)
    levels, factor = _hierarchy(g, gb)
    fine = levels[0]
    b = jnp.zeros_like(d).at[0].set(g_in)
    n = d.shape[0]
    profile = 1.0 - (jnp.arange(n, dtype=d.dtype) + distance) / (n - 1 + 2 * distance)
    x = profile[:, None, None] * fine.active                     # linear start, as TauFactor's
    r = b - _apply(fine, x)
    z = _w_cycle(levels, factor, r)
    fluxes = _plane_fluxes(g[0], g_in, g_out, x)
    state = _State(jnp.array(0), x, r, z, jnp.vdot(r, z), fluxes, jnp.array(jnp.inf, d.dtype))

    def spread(f):
        mean = jnp.mean(f)
        return (jnp.max(f) - jnp.min(f)) / mean

    floor = 10 * jnp.finfo(d.dtype).eps * jnp.linalg.norm(b)     # no progress below: rounding

    def met(s):   # an exact start (e.g. a straight channel) has a zero residual and no change to measure
        return (spread(s.fluxes) <= rtol) & ((s.change <= rtol) | (jnp.linalg.norm(s.r) <= floor))

    def unconverged(s):
        return (s.k < maxiter) & ~met(s) & (jnp.linalg.norm(s.r) > floor)

    def step(s):
        ap = _apply(fine, s.p)
        pap = jnp.vdot(s.p, ap)
        alpha = jnp.where(pap > 0, s.rz / jnp.where(pap > 0, pap, 1.0), 0.0)
        x = s.x + alpha * s.p
        r = jax.lax.cond((s.k + 1) % _REPLACE_EVERY == 0, lambda: b - _apply(fine, x), lambda: s.r - alpha * ap)
        z = _w_cycle(levels, factor, r)
        rz = jnp.vdot(r, z)
        beta = jnp.where(s.rz > 0, rz / jnp.where(s.rz > 0, s.rz, 1.0), 0.0)
        fluxes = _plane_fluxes(g[0], g_in, g_out, x)
        change = jnp.abs(jnp.mean(fluxes) - jnp.mean(s.fluxes)) / jnp.mean(fluxes)
        return _State(s.k + 1, x, r, z + beta * s.p, rz, fluxes, change)

    s = jax.lax.while_loop(unconverged, step, state)
    residual = jnp.linalg.norm(b - _apply(fine, s.x)) / jnp.linalg.norm(b)
    return s.fluxes, s.k, residual, spread(s.fluxes), met(s)


def tortuosity(labels, axis, diffusivity=DEFAULT_DIFFUSIVITY, lateral="no_flux", dirichlet="face", rtol=1e-3,
               dtype=jnp.float32, maxiter=1000):
    """Tortuosity factor along one axis of a label image (0 pore, 1 AM, 2 CBD; axes x, y, z).

    Args:
        labels: integer array (nx, ny, nz) with values in {0, 1, 2}.
        axis: 0, 1 or 2, the direction of the macroscopic flux.
        diffusivity: D per label (pore, AM, CBD) in m²/s; 0 makes a label insulating. Binary (pore vs solid)
            is ``(D_pore, 0, 0)``.
        lateral: "no_flux" (TauFactor's choice) or "periodic" lateral faces.
        dirichlet: "face" (c = 1 and 0 on the outer voxel faces, L = N; TauFactor ``Solver``) or "ghost"
            (at ghost-layer centres one voxel outside, L = N + 1; TauFactor ``MultiPhaseSolver``).
        rtol: flux tolerance: (max - min) / mean of the plane fluxes and the change of D_eff per iteration.
        dtype: jnp.float32 (TauFactor's default precision) or jnp.float64.
        maxiter: CG iteration limit; ``converged`` is False if it is reached.

    Returns:
        TortuosityResult; ``tau`` is the paper's (GeoDict) definition and ``tau_taufactor`` TauFactor's.
    """
    labels, d = _check_inputs(labels, axis, diffusivity, lateral, dirichlet)
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    if jnp.dtype(dtype) not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be jnp.float32 or jnp.float64, got {dtype!r}")
    fractions = np.bincount(labels.ravel(), minlength=3) / labels.size
    porosity, d_mean = float(fractions[0]), float(fractions @ d)
    d_voxel = np.moveaxis(d[labels], axis, 0)
    backbone = _backbone(d_voxel > 0, lateral == "periodic")
    if backbone is None:
        return TortuosityResult(axis, np.inf, np.inf, 0.0, 0.0, 0.0, porosity, d_mean, 0, 0.0, 0.0, True, False)
    d_ref = d.max()
    d_solve = jnp.asarray(np.where(backbone, d_voxel / d_ref, 0.0), dtype=dtype)
    distance = _DIRICHLET_DISTANCE[dirichlet]
    fluxes, k, residual, flux_spread, converged = _solve(d_solve, jnp.asarray(rtol, dtype), lateral == "periodic",
                                                         jnp.asarray(distance, dtype), maxiter=int(maxiter))
    fluxes = np.asarray(fluxes, dtype=float) * d_ref * (d_voxel.shape[0] - 1 + 2 * distance) / np.prod(
        d_voxel.shape[1:])
    d_eff = float(fluxes.mean())
    return TortuosityResult(axis, porosity * d[0] / d_eff, d_mean / d_eff, d_eff, float(fluxes[0]),
                            float(fluxes[-1]), porosity, d_mean, int(k), float(residual), float(flux_spread),
                            bool(converged), True)


def tortuosity_xyz(labels, **kwargs):
    """`tortuosity` along x, y and z (same keyword arguments); returns a tuple of three results."""
    return tuple(tortuosity(labels, axis, **kwargs) for axis in range(3))
