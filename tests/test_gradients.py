"""jax.grad of a DEM outcome with respect to E, restitution, friction and CED of every material
agrees with central finite differences (float64, through 1000 checkpointed steps)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import pressed_column
from twin.io.case import Case, prepare
from twin.physics.dem import run
from twin.physics.materials import Materials
from twin.physics.space import Box
from twin.process.materials import table2_materials

FD_RELATIVE_STEP = 1e-5   # the outcome is strongly curved: 1e-3 steps are off by ~5 %, 1e-5 converge


def test_grad_of_wall_forces_matches_finite_differences():
    case = pressed_column(steps=1000, plate_speed=-3.0)
    state, spec, config, box, materials = prepare(case)
    per_type = {"E": jnp.array([2e6, 200e6, 69e6, 200e6]), "e": jnp.array([0.15, 0.15, 0.5, 0.78]),
                "mu": jnp.array([0.3, 0.3, 1.2, 0.76]), "ced": jnp.array([7e4, 6e5, 5.5e5, 6e5])}

    def squeeze(p):
        m = Materials.from_types(materials.names, p["E"], materials.poisson, p["e"], p["mu"],
                                 p["ced"])
        final, _ = run(state, m, box, spec, config, 10, 100, record_particles=False,
                       checkpoint=True)
        return final.wall_force[1, 2] - final.wall_force[0, 2]   # plate up-force + floor down-force

    value = jax.jit(squeeze)
    gradient = jax.jit(jax.grad(squeeze))(per_type)
    assert abs(float(value(per_type))) > 1e3, "the plate must be loaded for the test to mean anything"
    for name, values in per_type.items():
        for t, material in enumerate(materials.names):
            h = FD_RELATIVE_STEP * values[t]
            up = dict(per_type, **{name: values.at[t].add(h)})
            down = dict(per_type, **{name: values.at[t].add(-h)})
            finite_difference = float(value(up) - value(down)) / (2 * float(h))
            analytic = float(gradient[name][t])
            assert np.isfinite(analytic)
            assert analytic != 0.0, f"d/d{name}[{material}] vanished: the case does not exercise it"
            assert abs(analytic - finite_difference) <= 0.02 * abs(finite_difference), (
                f"d/d{name}[{material}]: jax.grad {analytic:.6g} vs FD {finite_difference:.6g}")


def cohesive_pair_tangent(overlap, steps=600):
    """Two CBD spheres (Table 2, sjkr2, drag 100/µs) starting ``overlap`` µm inside contact at
    rest near x = 9 µm: their overlap after ``steps`` steps and its derivative in ln CED (forward
    mode)."""
    radius = 0.65
    case = Case(name="cohesive_pair", ids=np.array([1, 2]), types=np.array([0, 0]),
                radius=np.full(2, radius), density=np.full(2, 0.93),
                position=np.array([[9.0, 5.0, 5.0], [9.0 + 2 * radius - overlap, 5.0, 5.0]]),
                box=Box(np.zeros(3), np.full(3, 20.0), (True, True, True)),
                materials=table2_materials("artistic"), walls=[], cohesion="sjkr2", dt=1e-4,
                steps=steps, viscous_damping=100.0)
    state, spec, config, box, materials = prepare(case)

    def final_overlap(log_scale):
        scaled = eqx.tree_at(lambda m: m.cohesion_energy_density, materials,
                             materials.cohesion_energy_density * jnp.exp(log_scale))
        final, _ = run(state, scaled, box, spec, config, 1, steps, record_particles=False)
        x = final.spheres.position
        return 2 * radius - jnp.linalg.norm(x[1] - x[0])

    value, tangent = jax.jit(lambda s: jax.jvp(final_overlap, (s,), (1.0,)))(0.0)
    return float(value), float(tangent)


def test_pair_inside_contact_by_round_off_freezes_while_its_tangent_snaps_in():
    """The mechanism behind remove_overlaps' clearance (twin.process.pack): SJKR2's pull on a CBD
    pair a rounding unit inside contact (2e-15 µm at x ≈ 10 µm) moves it by less than a rounding
    unit per step, so its value never changes, while the exact-arithmetic tangent grows at the
    snap-in rate √(4πR*·CED/m*) − γ/2 (~6e2/µs: e^38 over 600 steps from a seed of the overlap's
    size; measured 378 µm). At 8e-15 µm the pair already snaps in. From 1e-6 µm it snaps in and
    settles: δ → δ_eq ∝ CED², so ∂δ/∂ln CED → 2 δ."""
    frozen, frozen_tangent = cohesive_pair_tangent(2e-15)
    assert 0.0 < frozen < 1e-14, "the pair must stay where rounding put it"
    assert abs(frozen_tangent) > 1.0, f"∂δ/∂ln CED = {frozen_tangent:.3g} µm: no blow-up"
    snapped, snapped_tangent = cohesive_pair_tangent(1e-6)
    assert 0.05 < snapped < 0.12, f"δ = {snapped:.3g} µm: the pair did not snap in to δ_eq"
    assert snapped_tangent == pytest.approx(2 * snapped, rel=1e-3)
