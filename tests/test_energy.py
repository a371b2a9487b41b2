"""Undamped, frictionless Hertz gas: total energy is conserved by velocity Verlet (float64)."""

import jax.numpy as jnp
import numpy as np
import pytest

from helpers import lattice_gas
from twin.io.case import prepare
from twin.physics.hertz import hertz_energy
from twin.physics.materials import pair_table
from twin.physics.simulate import simulate
from twin.physics.space import minimum_image


def total_energy(state, e_star, box):
    """Kinetic (translation + rotation) plus Hertz elastic energy of all pairs in the list."""
    s = state.spheres
    kinetic = 0.5 * jnp.sum(s.mass[:, None] * s.velocity**2)
    rotational = 0.5 * jnp.sum(0.4 * s.mass * s.radius**2 * jnp.sum(s.angular_velocity**2, 1))
    pairs = state.neighbors.pairs
    valid = pairs[:, 0] < s.count
    i, j = jnp.where(valid, pairs[:, 0], 0), jnp.where(valid, pairs[:, 1], 0)
    distance = jnp.linalg.norm(minimum_image(s.position[i] - s.position[j], box), axis=1)
    overlap = jnp.where(valid, s.radius[i] + s.radius[j] - distance, 0.0)
    r_eff = s.radius[i] * s.radius[j] / (s.radius[i] + s.radius[j])
    elastic = jnp.sum(hertz_energy(overlap, r_eff, e_star))
    return float(kinetic + rotational + elastic), int(jnp.sum(overlap > 0))


def test_hertz_gas_conserves_energy_over_1e5_steps():
    # 1000 spheres, e = 1, μ = 0; dt = 1.25e-4 µs is 1.4 % of the Rayleigh time. The error is the
    # bounded O(dt²) oscillation of velocity Verlet during contacts (no drift): ~1e-6 at 2.5e-4 µs.
    case = lattice_gas(n_side=10, dt=1.25e-4, steps=100_000)
    state, spec, config, box, materials = prepare(case)
    e_star = float(pair_table(materials).e_star[0, 0])
    start, _ = total_energy(state, e_star, box)
    drift, contacts_seen = [], 0
    for _ in range(20):
        result = simulate(state, materials, box, spec, config, case.steps // 20, case.steps // 20,
                          record_particles=False)
        state, spec = result.state, result.spec
        energy, contacts = total_energy(state, e_star, box)
        drift.append(abs(energy - start) / start)
        contacts_seen += contacts
    assert contacts_seen > 0, "the gas never collided: the test would prove nothing"
    assert max(drift) < 1e-6, f"relative energy error {max(drift):.3g}"


def test_viscous_damping_decays_free_motion_exponentially():
    """With background drag γ and no contacts, v(t) → v0 exp(−γ t), ω(t) → ω0 exp(−γ t). The drag
    enters the first half-kick of each step through the force stored from the step before, so the
    scheme is first order in dt for it: halving dt halves the error (measured: 1.0 % at
    γ dt = 5e-3 over γ t = 5)."""
    import dataclasses
    gamma, duration = 5.0, 1.0

    def relative_errors(dt):
        steps = int(round(duration / dt))
        case = dataclasses.replace(
            lattice_gas(n_side=3, spacing=4.0, speed=0.1, dt=dt, steps=steps),
            viscous_damping=gamma, angular_velocity=np.full((27, 3), 0.2))
        state, spec, config, box, materials = prepare(case)
        final = simulate(state, materials, box, spec, config, steps, steps,
                         record_particles=False).state.spheres
        decay = np.exp(-gamma * duration)
        return (np.max(np.abs(final.velocity / (case.velocity * decay) - 1.0)),
                np.max(np.abs(final.angular_velocity / (0.2 * decay) - 1.0)))

    coarse, fine = relative_errors(1e-3), relative_errors(5e-4)
    for e_coarse, e_fine in zip(coarse, fine):
        assert e_coarse < 0.02
        assert e_coarse / e_fine == pytest.approx(2.0, rel=0.05)
