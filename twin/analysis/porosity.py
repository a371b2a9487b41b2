"""Porosity of an electrode slab from its particles (exact sphere volumes) or from a label image.

Particles: each sphere contributes its exact volume inside the slab z ∈ [z_lo, z_hi] — the sphere
minus the spherical caps below z_lo and above z_hi, a cap of height t having volume
π t² (3r − t) / 3 (e.g. Bronshtein, Handbook of Mathematics, spherical segment). x and y are
periodic, so every sphere counts in full laterally. Overlapping spheres are counted twice (their
common lens is in both volumes): this particle porosity is the authors' definition (solid volume /
box volume); :func:`porosity_voxels` on a :func:`twin.analysis.voxels.voxelize` image counts
overlaps once, so it is higher by the overlap volume fraction (plus voxel sampling error).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from twin.analysis.voxels import AM, CBD, PORE, check_labels


class Porosity(NamedTuple):
    porosity: float | jnp.ndarray       # pore volume fraction
    am_fraction: float | jnp.ndarray    # AM volume fraction
    cbd_fraction: float | jnp.ndarray   # CBD volume fraction


def _cap_volume(radius, height):
    height = jnp.clip(height, 0.0, 2.0 * radius)
    return jnp.pi * height**2 * (3.0 * radius - height) / 3.0


def sphere_volume_in_slab(z, radius, z_lo, z_hi):
    """Volume (µm³) of each sphere (centre height z, radius) between the planes z_lo < z_hi."""
    whole = 4.0 / 3.0 * jnp.pi * radius**3
    below = _cap_volume(radius, z_lo - (z - radius))
    above = _cap_volume(radius, (z + radius) - z_hi)
    return jnp.maximum(whole - below - above, 0.0)


def porosity_particles(positions, radii, phases, box_lo, box_hi, z_range,
                       am_expansion=1.0) -> Porosity:
    """Porosity of the slab ``z_range`` of a packing periodic in x, y (overlaps counted twice).

    Args:
      positions: (N, 3) µm; radii: (N,) µm; phases: (N,) 1 AM, 2 CBD.
      box_lo, box_hi: box corners (only x, y are used: the lateral area).
      z_range: (z_collector, z_top) µm, e.g. the recovered electrode thickness.
      am_expansion: the factor by which AM diameters were expanded before calendering (the
        authors use 1.02); AM radii are divided by it, as the paper does for its porosities.

    Differentiable in positions and radii (jax.numpy).
    """
    positions = jnp.asarray(positions)
    radii = jnp.asarray(radii, positions.dtype)
    phases = np.asarray(phases)
    bad = sorted(set(np.unique(phases).tolist()) - {AM, CBD})
    if bad:
        raise ValueError(f"sphere phases {bad} unknown: use 1 AM, 2 CBD")
    if not 1.0 <= am_expansion <= 1.1:
        raise ValueError(f"AM expansion factor {am_expansion} outside [1, 1.1] (authors: 1.02)")
    z_lo, z_hi = float(z_range[0]), float(z_range[1])
    if not z_hi > z_lo:
        raise ValueError(f"z_range {z_range} is empty: give (z_collector, z_top) with top > "
                         "collector")
    is_am = jnp.asarray(phases == AM)
    radii = jnp.where(is_am, radii / am_expansion, radii)
    lateral = (float(box_hi[0]) - float(box_lo[0])) * (float(box_hi[1]) - float(box_lo[1]))
    volume = sphere_volume_in_slab(positions[:, 2], radii, z_lo, z_hi) / (lateral * (z_hi - z_lo))
    am = jnp.sum(jnp.where(is_am, volume, 0.0))
    cbd = jnp.sum(jnp.where(is_am, 0.0, volume))
    return Porosity(1.0 - am - cbd, am, cbd)


def porosity_voxels(labels) -> Porosity:
    """Phase volume fractions of a label image (0 pore, 1 AM, 2 CBD); overlaps count once."""
    counts = np.bincount(check_labels(labels).ravel(), minlength=3) / np.size(labels)
    return Porosity(float(counts[PORE]), float(counts[AM]), float(counts[CBD]))
