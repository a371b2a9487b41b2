"""Simplified JKR cohesion: an attractive normal force F_c = -CED · A while δ > 0.

Two contact-area definitions, exactly as LIGGGHTS 3.8 computes them (``../shared/FACTS.md``):

* ``sjkr``: the circle of intersection of the two spheres, A = π a² with
  a² = ((r_i + r_j)² - d²)(d² - (r_i - r_j)²) / (4 d²)  (≈ 2π R* δ); against a plane
  A = π (2 r_i δ - δ²).
* ``sjkr2``: A = 4π R* δ between spheres and 2π r_i δ against a plane.

References: Johnson, Kendall & Roberts, Proc. R. Soc. A 324 (1971) 301; LIGGGHTS
``cohesion_model_sjkr.h`` / ``cohesion_model_sjkr2.h``.
"""

import jax.numpy as jnp
import numpy as np

COHESION_MODELS = ("none", "sjkr", "sjkr2")
# SJKR area per unit R* δ at small overlap: sjkr ≈ 2π R* δ, sjkr2 4π R* δ between spheres; against
# a plane (R* = r) sjkr ≈ 2π r δ, sjkr2 2π r δ.
_AREA_PER_RSTAR_DELTA = {("sjkr", False): 2.0 * np.pi, ("sjkr2", False): 4.0 * np.pi,
                         ("sjkr", True): 2.0 * np.pi, ("sjkr2", True): 2.0 * np.pi}


def sphere_contact_area(model, overlap, distance, r_i, r_j):
    """Cohesive contact area between two spheres at centre distance ``distance``."""
    if model == "sjkr":
        radius_sum, radius_difference = r_i + r_j, r_i - r_j
        a_squared = ((radius_sum**2 - distance**2) * (distance**2 - radius_difference**2)
                     / (4.0 * distance**2))
        return jnp.pi * a_squared
    if model == "sjkr2":
        return 4.0 * jnp.pi * (r_i * r_j / (r_i + r_j)) * overlap
    if model == "none":
        return jnp.zeros_like(overlap)
    raise ValueError(f"unknown cohesion model {model!r}: choose one of {COHESION_MODELS}")


def wall_contact_area(model, overlap, r_i):
    """Cohesive contact area between a sphere and a plane."""
    if model == "sjkr":
        return jnp.pi * (2.0 * r_i * overlap - overlap**2)
    if model == "sjkr2":
        return 2.0 * jnp.pi * r_i * overlap
    if model == "none":
        return jnp.zeros_like(overlap)
    raise ValueError(f"unknown cohesion model {model!r}: choose one of {COHESION_MODELS}")


def equilibrium_overlap_ratio(model, ced, e_star, wall=False):
    """δ_c / R*, the overlap at which the Hertz repulsion (4/3) E* √R* δ^(3/2) balances the SJKR
    attraction CED · c R* δ (c the area factor of ``model`` at small overlap, 4π for sjkr2
    between spheres, 2π otherwise; R* = r against a plane):

        δ_c / R* = (3c / 4)² (CED / E*)²,   e.g. 9π² (CED / E*)² for sjkr2 between spheres.

    Size-independent. Hertz theory assumes δ ≪ R*: near or above 1 the cohesive equilibrium lies
    outside it and a packing collapses into deep overlaps (CBD–CBD at E 1 GPa, ν 0.5 and
    CED 1.05e8 J/m³: 2.2; at Table 2: 0.25, CBD–AM 0.54). Zero for ``"none"``."""
    if model == "none":
        return np.zeros_like(np.asarray(ced, float))
    if (model, bool(wall)) not in _AREA_PER_RSTAR_DELTA:
        raise ValueError(f"unknown cohesion model {model!r}: choose one of {COHESION_MODELS}")
    factor = 0.75 * _AREA_PER_RSTAR_DELTA[model, bool(wall)]
    return (factor * np.asarray(ced, float) / np.asarray(e_star, float)) ** 2
