"""jax.grad of a DEM outcome with respect to E, restitution, friction and CED of every material
agrees with central finite differences (float64, through 1000 checkpointed steps)."""

import jax
import jax.numpy as jnp
import numpy as np

from helpers import pressed_column
from twin.io.case import prepare
from twin.physics.dem import run
from twin.physics.materials import Materials

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
