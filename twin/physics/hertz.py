"""Normal Hertz contact with viscous damping set by restitution (LIGGGHTS ``model hertz``).

For overlap δ > 0, effective radius R* and mass m* (a wall: R* = r_i, m* = m_i):

    k_n = 4/3 E* sqrt(R* δ),   S_n = 2 E* sqrt(R* δ),
    γ_n = -2 sqrt(5/6) β sqrt(S_n m*),   β = ln e / sqrt(ln² e + π²),
    F_n = k_n δ - γ_n v_n                (v_n = (v_i - v_j)·n, n from j to i).

F_n is not clipped at zero, exactly as LIGGGHTS 3.8 without ``limitForce``: it turns slightly
attractive at the end of a damped contact. References: Di Renzo & Di Maio, Chem. Eng. Sci. 59 (2004)
525; LIGGGHTS ``normal_model_hertz.h``; checked against the 3.8 binary (``../shared/FACTS.md``).
"""

import jax.numpy as jnp

from twin.physics.materials import SQRT_FIVE_SIXTHS


def hertz_normal_force(overlap, normal_speed, r_eff, m_eff, e_star, beta):
    """Return (F_n, sqrt(R* δ)) for contacts with overlap > 0 (callers mask the rest).

    ``overlap`` must already be clipped to be positive where the result is used, so that
    gradients stay finite for non-touching pairs.
    """
    sqrt_r_overlap = jnp.sqrt(r_eff * overlap)
    k_n = 4.0 / 3.0 * e_star * sqrt_r_overlap
    s_n = 2.0 * e_star * sqrt_r_overlap
    gamma_n = -2.0 * SQRT_FIVE_SIXTHS * beta * jnp.sqrt(s_n * m_eff)
    return k_n * overlap - gamma_n * normal_speed, sqrt_r_overlap


def hertz_energy(overlap, r_eff, e_star):
    """Elastic energy stored in a Hertz contact, U = 8/15 E* sqrt(R*) δ^(5/2) (∫ F dδ)."""
    delta = jnp.maximum(overlap, 0.0)
    return 8.0 / 15.0 * e_star * jnp.sqrt(r_eff) * delta**2.5
