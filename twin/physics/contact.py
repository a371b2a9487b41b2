"""The full granular contact law: Hertz normal + Mindlin tangential history + SJKR cohesion.

This is the LIGGGHTS 3.8 ``model hertz tangential history cohesion sjkr|sjkr2`` law, assembled
from :mod:`twin.physics.hertz`, :mod:`twin.physics.tangential` and :mod:`twin.physics.cohesion`
for a batch of K contacts (sphere–sphere or sphere–wall alike). With n the unit normal from j (or
the wall) to i, the relative velocity at the contact point is

    v_tr = v_t + n × (c_i ω_i + c_j ω_j),   c = r - δ/2  (the lever arm, LIGGGHTS),

and the force on i is F_i = (F_n - CED·A) n + F_t; the torque on i is -c_i n × F_t.

With ``fusion_boundaries`` the tangential velocity with the normal force, the projected shear, the
tangential coefficients and the outputs are each computed once into memory
(:mod:`twin.physics.fusion`: the same values up to round-off, and with the geometry boundary of
the caller a ~2× faster pair phase on CPU). Worth it for the thousands of pair contacts, not for a
wall's few.
"""

import jax.numpy as jnp

from twin.physics import vector
from twin.physics.fusion import materialize
from twin.physics.hertz import hertz_normal_force
from twin.physics.tangential import tangential_history_force


def granular_contact(normal, overlap, relative_velocity, rotational_velocity, r_eff, m_eff,
                     cohesion_area, shear, e_star, g_star, beta, friction, ced, dt,
                     fusion_boundaries=False):
    """Forces for K contacts.

    Args:
        normal: (K,3) unit normal from j to i.
        overlap: (K,) δ = r_i + r_j - |x_i - x_j| (≤ 0 means no contact).
        relative_velocity: (K,3) v_i - v_j.
        rotational_velocity: (K,3) c_i ω_i + c_j ω_j.
        r_eff, m_eff: (K,) effective radius and mass.
        cohesion_area: (K,) SJKR contact area (zero without cohesion).
        shear: (K,3) stored tangential displacement.
        e_star, g_star, beta, friction, ced: (K,) pair constants.
        dt: time step.
        fusion_boundaries: compute the intermediates named in the module docstring once.

    Returns:
        force on i (K,3), tangential force (K,3) for the torques, updated shear history (K,3).
    """
    boundary = materialize if fusion_boundaries else (lambda tree: tree)
    touching = overlap > 0.0
    positive_overlap = jnp.where(touching, overlap, 1.0)
    normal_speed = vector.dot(relative_velocity, normal)
    normal_force, sqrt_r_overlap = hertz_normal_force(positive_overlap, normal_speed, r_eff,
                                                      m_eff, e_star, beta)
    tangential_velocity, normal_force, sqrt_r_overlap = boundary((
        relative_velocity - normal_speed[:, None] * normal
        + vector.cross(normal, rotational_velocity), normal_force, sqrt_r_overlap))
    tangential_force, new_shear = tangential_history_force(
        shear, tangential_velocity, normal, normal_force, sqrt_r_overlap, m_eff, g_star, beta,
        friction, dt, boundary)
    cohesion_force = -ced * cohesion_area
    force = (normal_force + cohesion_force)[:, None] * normal + tangential_force
    mask = touching[:, None]
    return boundary((jnp.where(mask, force, 0.0), jnp.where(mask, tangential_force, 0.0),
                     jnp.where(mask, new_shear, 0.0)))
