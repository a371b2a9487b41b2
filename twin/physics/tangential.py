"""Mindlin tangential spring with shear history and Coulomb truncation (LIGGGHTS
``tangential history``).

Per contact a tangential displacement ξ is stored. Each step, with the relative tangential
velocity at the contact point v_tr:

    ξ ← ξ + v_tr dt,   ξ ← ξ - (ξ·n) n          (projected onto the tangent plane; the magnitude
                                                 is not restored, as in LIGGGHTS 3.8)
    k_t = 8 G* sqrt(R* δ),   γ_t = -2 sqrt(5/6) β sqrt(k_t m*)
    F_t = -k_t ξ
    if |F_t| > μ |F_n|:  F_t ← F_t μ|F_n| / |F_t|,  ξ ← -F_t / k_t   (sliding, no damping)
    else:                F_t ← F_t - γ_t v_tr                           (sticking, damped)

|F_n| is the Hertz force without cohesion. The history is zeroed when the contact opens.
References: Mindlin & Deresiewicz (1953); LIGGGHTS ``tangential_model_history.h``;
``../shared/FACTS.md``.
"""

import jax.numpy as jnp

from twin.physics import vector
from twin.physics.materials import SQRT_FIVE_SIXTHS


def _safe_norm(vectors):
    squared = vector.norm_squared(vectors)
    positive = squared > 0.0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def tangential_history_force(shear, tangential_velocity, normal, normal_force, sqrt_r_overlap,
                             m_eff, g_star, beta, friction, dt, boundary=lambda tree: tree):
    """Return (F_t (K,3), updated shear history (K,3)) for touching contacts. ``boundary``
    (:func:`twin.physics.fusion.materialize` or the identity) is applied to the projected shear
    and to the per-contact coefficients k_t, Coulomb scale and damping."""
    shear = shear + tangential_velocity * dt
    shear = boundary(shear - vector.dot(shear, normal)[:, None] * normal)
    k_t = 8.0 * g_star * sqrt_r_overlap
    gamma_t = -2.0 * SQRT_FIVE_SIXTHS * beta * jnp.sqrt(k_t * m_eff)
    spring_magnitude = _safe_norm(-k_t[:, None] * shear)
    friction_limit = friction * jnp.abs(normal_force)
    sliding = spring_magnitude > friction_limit
    # Per-contact coefficients of F_t = scale (-k_t ξ) - damping v_tr, computed once (sliding:
    # scale = μ|F_n| / |k_t ξ|, no damping; sticking: scale 1, damping γ_t). The new history
    # -F_t / k_t of a sliding contact is then scale ξ, and ξ (= 1 ξ) of a sticking one.
    k_t, scale, damping = boundary((
        k_t, jnp.where(sliding, friction_limit / jnp.where(sliding, spring_magnitude, 1.0), 1.0),
        jnp.where(sliding, 0.0, gamma_t)))
    force = scale[:, None] * (-k_t[:, None] * shear) - damping[:, None] * tangential_velocity
    shear = scale[:, None] * shear
    return force, shear
