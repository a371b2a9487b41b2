"""Pore sizes of a voxel image: exact distance transform, local thickness (maximal inscribed
spheres), pore size distribution and simulated mercury intrusion.

All lengths inside are in voxels; the public results convert to µm with the voxel size.

Balls. A ball of integer radius r about a voxel centre c is the set of voxels whose centres lie
at distance < r from c (the open ball). It is *pore-only* iff no solid voxel centre lies within
distance < r of c, i.e. iff the Euclidean distance transform dt(c) ≥ r. This is PoreSpy's
``local_thickness_dt`` / ``drainage_dt`` with ``smooth=True`` and integer radii (Gostick et al.,
J. Open Source Softw. 4 (2019) 1296), which makes a voxel-for-voxel comparison possible.

Boundaries. A periodic axis wraps. Along a non-periodic axis the image edge is no wall: the
outside counts as pore (as in scipy.ndimage and PoreSpy), so a ball may stick out of the image;
a wall (``z_walls``, ``collector_wall``) is a solid voxel layer just outside a z face, which
balls cannot cross: the current collector below z = 0 and, for the pore size distribution, the
top of the cut as well. The paper's choice: x, y periodic and z not for calendered
electrodes, all axes periodic for the uncalendered ones.

Distance transform. The exact squared Euclidean distance to the nearest target voxel is
separable (Saito & Toriwaki, Pattern Recognit. 27 (1994) 1551): one 1-D min-plus pass per
axis, D(i) = min_k [f(i + k) + k²]. Each pass here runs over a window |k| ≤ w as whole-array
shifts; a result D ≤ w² is then exact (its nearest target is within w along every axis), so
the window is doubled until no result exceeds w² (or w covers the axis). For a dilation by r
only D < r² matters, so a window of r is exact there. Integer arithmetic (int32) throughout.

Connectivity (mercury intrusion). Voxels are face-connected (6-neighbours, PoreSpy's
``conn='min'``). Rather than labelling the clusters of ball centres once per radius, one
widest-path transform gives, for every voxel, the largest squared radius that can travel to it
from the top layer through centres where the ball fits; the centres reached at radius r are
then those with a value ≥ r².
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from twin.analysis.voxels import PORE, check_labels

INF = 2**30                        # "no target in reach" squared distance (int32)
MERCURY_SURFACE_TENSION_N_M = 0.485
MERCURY_CONTACT_ANGLE_DEG = 130.0
ML_PER_UM3 = 1e-12


def _min_plus_pass(f, axis, window, pad, periodic):
    """D(i) = min_{|k| ≤ window} f(i + k) + k² along ``axis`` (outside: wrap or INF)."""
    n = f.shape[axis]
    pad = min(pad, n)
    width = [(0, 0)] * f.ndim
    width[axis] = (pad, pad)
    padded = jnp.pad(f, width, mode="wrap") if periodic else jnp.pad(f, width,
                                                                      constant_values=INF)

    def step(k, best):
        return jnp.minimum(best, lax.dynamic_slice_in_dim(padded, pad + k, n, axis) + k * k)

    reach = jnp.minimum(window, pad)
    return jnp.minimum(lax.fori_loop(-reach, reach + 1, step, f), INF)


def _squared_distance(target, periodic, window, pad):
    f = jnp.where(target, 0, INF).astype(jnp.int32)
    for axis in range(3):
        f = _min_plus_pass(f, axis, window, pad, periodic[axis])
    return f


_squared_distance_jit = jax.jit(_squared_distance, static_argnames=("periodic", "pad"))


def _check_periodic(periodic):
    periodic = tuple(bool(p) for p in periodic)
    if len(periodic) != 3:
        raise ValueError(f"periodic needs three flags (x, y, z); got {periodic}")
    return periodic


def squared_distance_transform(pore_mask, periodic=(True, True, False)) -> jax.Array:
    """Exact squared Euclidean distance (voxels², int32) from each voxel to the nearest solid
    (non-pore) voxel centre; 0 on solid voxels, INF (2³⁰) if there is no solid voxel at all."""
    pore = jnp.asarray(pore_mask, bool)
    periodic = _check_periodic(periodic)
    if pore.ndim != 3 or max(pore.shape) > 16384:
        raise ValueError(f"need a 3-D image with at most 16384 voxels per axis; got {pore.shape}")
    window = 8
    while True:
        d2 = _squared_distance_jit(~pore, periodic, window, window)
        if window >= max(pore.shape) or not bool(jnp.any(d2 > window * window)):
            return d2
        window *= 2


def _pore_mask(labels):
    pore = check_labels(labels) == PORE
    if not pore.any():
        raise ValueError("the image has no pore voxels (label 0): pore sizes are undefined")
    return pore


def _with_walls(pore_mask, periodic, z_walls):
    """Pore mask with a solid voxel layer below z = 0 and/or above the top, per ``z_walls``."""
    pore = np.asarray(pore_mask, bool)
    if pore.ndim != 3:
        raise ValueError(f"pore mask must be 3-D (x, y, z); got shape {pore.shape}")
    if not pore.any():
        raise ValueError("the pore mask is empty: pore sizes are undefined")
    periodic = _check_periodic(periodic)
    bottom, top = (bool(w) for w in z_walls)
    if periodic[2] and (bottom or top):
        raise ValueError(f"z_walls={z_walls} needs a non-periodic z (periodic[2] False); use "
                         "z_walls=(False, False) for a z-periodic image")
    layer = np.zeros(pore.shape[:2] + (1,), bool)
    pore = np.concatenate([layer] * bottom + [pore] + [layer] * top, axis=2)
    return pore, periodic, (slice(int(bottom), pore.shape[2] - int(top)),)


def _radius_bound(d2, pore):
    largest = int(jnp.max(jnp.where(pore, d2, 0)))   # squared
    if largest >= INF:
        raise ValueError("no solid voxel and no wall: every ball fits, pore size is unbounded")
    r_max = math.isqrt(largest)
    return r_max, 1 << max(0, r_max - 1).bit_length()


@partial(jax.jit, static_argnames=("periodic", "pad"))
def _paint_balls(pore, centre_d2, r_max, periodic, pad):
    """For r = r_max … 1: balls of radius r about the centres with centre_d2 ≥ r²; each pore
    voxel keeps the first (largest) r whose balls cover it, 0 if none does."""
    def insert(i, radius):
        r = r_max - i
        covered = _squared_distance(centre_d2 >= r * r, periodic, r, pad) < r * r
        return jnp.where((radius == 0) & covered & pore, r, radius)

    return lax.fori_loop(0, r_max, insert, jnp.zeros(pore.shape, jnp.int32))


def _default_walls(periodic, top_open=False):
    return (False, False) if periodic[2] else (True, not top_open)


def local_thickness(pore_mask, periodic=(True, True, False), z_walls=None) -> np.ndarray:
    """Radius (voxels, int32) of the largest pore-only ball containing each pore voxel; 0 on solid.

    Args:
      pore_mask: (nx, ny, nz) bool, True in the pore.
      periodic: per axis (default: calendered electrode, x y periodic, z not).
      z_walls: (collector at z = 0, top face) solid planes that balls cannot cross; default
        (True, True) for a non-periodic z — the pores of the electrode slab itself (an open
        top would give the rough top surface balls reaching out of the electrode).

    Radii are the integers 1 … floor(max dt); every pore voxel gets at least 1.
    """
    z_walls = _default_walls(_check_periodic(periodic)) if z_walls is None else z_walls
    pore, periodic, crop = _with_walls(pore_mask, periodic, z_walls)
    d2 = squared_distance_transform(pore, periodic)
    r_max, pad = _radius_bound(d2, pore)
    thickness = _paint_balls(jnp.asarray(pore), d2, r_max, periodic, pad)
    return np.asarray(thickness)[:, :, crop[0]]


class PoreSizeDistribution(NamedTuple):
    """Volume-weighted histogram of the local thickness, one bin per radius (width voxel_um)."""

    radius_um: np.ndarray          # ball radius of each bin, r · voxel_um (ascending)
    volume_um3: np.ndarray         # pore volume whose local thickness is that radius
    volume_fraction: np.ndarray    # the same over the total pore volume (sums to 1)
    dv_dr_ml_g_um: np.ndarray | None  # volume per electrode mass per radius, mL/g/µm (if mass_g)


def pore_size_distribution(labels, voxel_um, periodic=(True, True, False), z_walls=None,
                           mass_g=None) -> PoreSizeDistribution:
    """PSD by maximal inscribed spheres (local thickness) of the pore (label 0) of an image.

    ``dv_dr_ml_g_um``: pore volume in mL per g of electrode per µm of radius (the paper's
    Fig. 3B kind of axis), given the electrode mass ``mass_g`` in g (e.g. Σ ρ_i V_i of the
    spheres, 1 pg = 1e-12 g). CBD is a solid phase here (its nanoporosity is not in the image).
    ``periodic`` and ``z_walls`` as in :func:`local_thickness`.
    """
    thickness = local_thickness(_pore_mask(labels), periodic, z_walls)
    counts = np.bincount(thickness.ravel())[1:]
    volume = counts * float(voxel_um) ** 3
    dv_dr = None
    if mass_g is not None:
        if not mass_g > 0:
            raise ValueError(f"electrode mass {mass_g} g must be positive")
        dv_dr = volume * ML_PER_UM3 / mass_g / voxel_um
    radius = np.arange(1, len(counts) + 1) * float(voxel_um)
    return PoreSizeDistribution(radius, volume, counts / counts.sum(), dv_dr)


def _widest_path_scan(access, cap, axis, periodic, reverse):
    """One directional pass of a_i = max(a_i, min(a_(i∓1), cap_i)) along ``axis`` (a scan over
    the slices normal to it). A periodic line is scanned twice over (a path may cross its end
    once), and the two copies are merged."""
    n = access.shape[axis]
    access, cap = jnp.moveaxis(access, axis, 0), jnp.moveaxis(cap, axis, 0)
    if periodic:
        access, cap = jnp.concatenate([access, access]), jnp.concatenate([cap, cap])

    def step(previous, slices):
        current = jnp.maximum(slices[0], jnp.minimum(previous, slices[1]))
        return current, current

    result = lax.scan(step, jnp.zeros_like(access[0]), (access, cap), reverse=reverse)[1]
    if periodic:
        result = jnp.maximum(result[:n], result[n:])
    return jnp.moveaxis(result, 0, axis)


@partial(jax.jit, static_argnames=("periodic",))
def _access(d2, periodic):
    """Largest squared ball radius that can travel from the top layer to each voxel centre.

    The widest (bottleneck) path: a(v) = max over face-connected paths from a top-layer voxel to
    v of the smallest d2 on the path, the fixed point of directional passes along x, y, z.
    """
    def grow(state):
        access, _ = state
        grown = access
        for axis in range(3):
            for reverse in (False, True):
                grown = _widest_path_scan(grown, d2, axis, periodic[axis], reverse)
        return grown, jnp.any(grown != access)

    start = jnp.zeros_like(d2).at[:, :, -1].set(d2[:, :, -1])
    return lax.while_loop(lambda state: state[1], grow, (start, jnp.bool_(True)))[0]


def invasion_radius(pore_mask, periodic=(True, True, False), collector_wall=None) -> np.ndarray:
    """Largest ball radius (voxels, int32) at which mercury entering through the top face
    (z = max, open) reaches each pore voxel; 0 where it never does (solid, isolated pores).

    For each radius r, decreasing: the centres where a pore-only ball fits (dt ≥ r, the
    erosion of the pore by r), kept if face-connected through such centres to one on the top
    voxel layer (here: access ≥ r², see :func:`_access`), then dilated by r (balls of radius r
    about them). A voxel keeps the first r that reaches it. ``collector_wall``: z = 0 is solid
    (default: when z is not periodic). Entering from outside the top counts as entering at the
    top layer.
    """
    walls = _default_walls(_check_periodic(periodic), top_open=True)
    walls = walls if collector_wall is None else (collector_wall, False)
    pore, periodic, crop = _with_walls(pore_mask, periodic, walls)
    access = _access(squared_distance_transform(pore, periodic), periodic)
    r_max, pad = _radius_bound(access, pore)
    if r_max == 0:
        return np.zeros(np.shape(pore_mask), np.int32)
    size = _paint_balls(jnp.asarray(pore), access, r_max, periodic, pad)
    return np.asarray(size)[:, :, crop[0]]


def washburn_pressure_mpa(radius_um, surface_tension=MERCURY_SURFACE_TENSION_N_M,
                          contact_angle_deg=MERCURY_CONTACT_ANGLE_DEG):
    """Washburn (Phys. Rev. 17 (1921) 273) for a cylinder of radius r: P = −2 γ cos θ / r, MPa
    (mercury: γ 0.485 N/m, θ 130°: P ≈ 0.6235 MPa / r[µm])."""
    radius_m = np.asarray(radius_um, float) * 1e-6
    return -2.0 * surface_tension * math.cos(math.radians(contact_angle_deg)) / radius_m / 1e6


class IntrusionCurve(NamedTuple):
    """Simulated mercury intrusion: one row per ball radius, largest first."""

    radius_um: np.ndarray             # r · voxel_um, decreasing
    pressure_mpa: np.ndarray          # Washburn pressure of that radius
    intruded_voxels: np.ndarray       # pore voxels reached at radius ≥ r (cumulative)
    intruded_fraction: np.ndarray     # the same over all pore voxels (≤ 1: isolated pores stay)
    intruded_volume_fraction: np.ndarray  # over the whole image volume


def mercury_intrusion(labels, voxel_um, periodic=(True, True, False), collector_wall=None
                      ) -> IntrusionCurve:
    """Intrusion curve of the pore (label 0) of an image from its top face; see
    :func:`invasion_radius` for the rule and :func:`washburn_pressure_mpa` for the pressure."""
    pore = _pore_mask(labels)
    size = invasion_radius(pore, periodic, collector_wall)
    counts = np.bincount(size.ravel(), minlength=2)[1:]
    radius = np.arange(len(counts), 0, -1)
    cumulative = np.cumsum(counts[::-1])
    radius_um = radius * float(voxel_um)
    return IntrusionCurve(radius_um, washburn_pressure_mpa(radius_um), cumulative,
                          cumulative / pore.sum(), cumulative / pore.size)
