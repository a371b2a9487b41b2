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

COHESION_MODELS = ("none", "sjkr", "sjkr2")


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
