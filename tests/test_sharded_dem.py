"""The pair phase split over several devices (DEMConfig.mesh) agrees with the single-device path.

Two devices on this CPU host need XLA_FLAGS=--xla_force_host_platform_device_count=2 before JAX
initialises, so those checks run this file as a script in a subprocess (``python
tests/test_sharded_dem.py``), which prints the measured differences as JSON; the tests assert on
them. float64 throughout. The split only changes the order in which the pair forces on a sphere
are added (two partial sums and a psum), so forces agree to a few ulps of the largest force and a
trajectory to round-off amplified by the contact dynamics over its steps.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import lattice_gas, uniform_materials
from twin.io.case import WallSpec, prepare
from twin.physics.dem import contact_forces, pair_mesh, run
from twin.physics.materials import pair_table
from twin.physics.neighbors import allocate_neighbors
from twin.physics.simulate import fit_pairs_to_mesh, simulate
from twin.physics.space import Box

TESTS = Path(__file__).resolve().parent
TRAJECTORY_STEPS = 2000
GRADIENT_STEPS = 40


def pressed_lattice(steps=TRAJECTORY_STEPS):
    """512 frictional, cohesive (sjkr2) spheres of radius 1 µm on a cubic lattice of spacing
    1.99 µm (each touches its neighbours), random velocities, between a floor and a plate that
    descends at 1 µm/µs: contacts load, slide, stick and open, with both walls in contact."""
    materials = uniform_materials(E=1e6, restitution=0.5, friction=0.5, ced=2e3)
    case = lattice_gas(n_side=8, spacing=1.99, speed=0.5, dt=2.5e-4, steps=steps,
                       materials=materials, cohesion="sjkr2")
    top = 8 * 1.99
    return dataclasses.replace(
        case, box=Box(np.array([0.0, 0.0, -1.0]), np.array([top, top, top + 1.0]),
                      (True, True, False)),
        walls=[WallSpec("floor", 0, 0.0, 1.0, 0.0), WallSpec("plate", 0, top, -1.0, -1.0)])


def relative_difference(a, b):
    """max |a - b| over max |a|."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))


def compare_states(one, other):
    s, t = one.spheres, other.spheres
    differences = {name: relative_difference(getattr(s, name), getattr(t, name))
                   for name in ("position", "velocity", "angular_velocity", "force", "torque")}
    differences["wall_force"] = relative_difference(one.wall_force, other.wall_force)
    return differences


def with_mesh(config, devices):
    return dataclasses.replace(config, mesh=None if devices is None else pair_mesh(devices))


def gradient_report(state, spec, config, box, materials, devices):
    """jax.grad of the final plate force after GRADIENT_STEPS steps with respect to scale
    factors of E, restitution, friction and CED, on one device and split over ``devices``."""
    scaled = ("youngs_modulus", "restitution", "friction", "cohesion_energy_density")

    def plate_force(scales, state, spec, config):
        m = eqx.tree_at(lambda m: [getattr(m, name) for name in scaled], materials,
                        [scales[name] * getattr(materials, name) for name in scaled])
        final, _ = run(state, m, box, spec, config, 1, GRADIENT_STEPS, record_particles=False)
        return final.wall_force[1, 2]

    scales = {name: jnp.ones(()) for name in scaled}
    gradient = eqx.filter_jit(jax.grad(plate_force))
    single = gradient(scales, state, spec, config)
    split_spec, split_state = fit_pairs_to_mesh(state, spec, pair_mesh(devices))
    split = gradient(scales, split_state, split_spec, with_mesh(config, devices))
    return {name: {"single": float(single[name]), "split": float(split[name])} for name in scaled}


def sharded_run_report(devices=2):
    """What the subprocess measures (needs ``devices`` JAX devices)."""
    report = {"devices": len(jax.devices())}
    case = pressed_lattice()
    state, spec, config, box, materials = prepare(case)

    # One force evaluation at the start (histories advanced from zero by one step).
    table, forces = pair_table(materials), eqx.filter_jit(contact_forces)
    single = jax.device_get(forces(state, table, box, config))
    split_spec, split_state = fit_pairs_to_mesh(state, spec, pair_mesh(devices))
    split = jax.device_get(forces(split_state, table, box, with_mesh(config, devices)))
    report["forces"] = {name: relative_difference(a, b[: len(a)]) for name, a, b in
                        zip(("force", "torque", "pair_shear", "wall_shear", "wall_force"),
                            single, split)}
    report["padding_slots"] = split_spec.pair_capacity - spec.pair_capacity
    one_device = jax.device_get(forces(state, table, box, with_mesh(config, 1)))
    report["one_device_mesh"] = {name: relative_difference(a, b) for name, a, b in
                                 zip(("force", "torque", "pair_shear", "wall_shear", "wall_force"),
                                     single, one_device)}
    report["padding_shear"] = float(np.max(np.abs(split[2][len(single[2]):]), initial=0.0))

    def trajectory(state, devices):
        return simulate(state, materials, box, spec, with_mesh(config, devices), case.steps,
                        case.steps // 2, record_particles=False)

    reference = trajectory(state, None)
    report["touching_pairs"] = int(np.sum(np.any(np.asarray(reference.state.pair_shear) != 0, 1)))
    report["wall_contacts"] = int(np.sum(np.asarray(reference.state.wall_shear) != 0) // 3)
    # Round-off floor of this dynamics: the same run from positions moved by one ulp.
    nudged = eqx.tree_at(lambda s: s.spheres.position, state,
                         jnp.nextafter(state.spheres.position, jnp.inf))
    report["one_ulp_start"] = compare_states(reference.state, trajectory(nudged, None).state)

    # Two devices, starting from a list far too small for the packing: the driver pads it to an
    # even capacity, the first chunk overflows, the list is re-allocated (even again) and the
    # chunk repeated.
    tight_spec, tight_list = allocate_neighbors(
        state.spheres.position, state.spheres.radius, box, spec.skin, pair_capacity=7,
        wall_z=state.walls.z, wall_normal_z=state.walls.normal_z)
    tight_state = eqx.tree_at(lambda s: (s.neighbors, s.pair_shear), state,
                              (tight_list, jnp.zeros((7, 3))))
    split_run = simulate(tight_state, materials, box, tight_spec, with_mesh(config, devices),
                         case.steps, case.steps // 2, record_particles=False)
    report["reallocations"] = split_run.reallocations
    report["split_capacity"] = split_run.spec.pair_capacity
    report["shear_sharding"] = str(split_run.state.pair_shear.sharding.spec)
    report["two_devices"] = compare_states(reference.state, split_run.state)
    report["gradients"] = gradient_report(state, spec, config, box, materials, devices)
    try:   # run() itself (no driver padding) refuses an uneven split
        run(tight_state, materials, box, tight_spec, with_mesh(config, devices), 1, 1)
        report["uneven_error"] = None
    except ValueError as error:
        report["uneven_error"] = str(error)
    return report


@pytest.fixture(scope="module")
def two_device_report():
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "")
                                      + " --xla_force_host_platform_device_count=2").strip())
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env,
                          cwd=TESTS.parent, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_devices_give_the_single_device_forces(two_device_report):
    report = two_device_report
    assert report["devices"] == 2
    assert report["padding_slots"] in (0, 1) and report["padding_shear"] == 0.0
    # The same pair forces, added per sphere in another order: round-off of the largest value.
    for name, difference in report["forces"].items():
        assert difference < 1e-13, (name, difference)


def test_two_devices_follow_the_single_device_trajectory(two_device_report):
    report = two_device_report
    assert report["touching_pairs"] > 1000 and report["wall_contacts"] > 50, \
        "the packing must be full of contacts, with both walls"
    assert report["reallocations"] >= 1 and report["split_capacity"] % 2 == 0
    assert report["shear_sharding"] == "P('pairs',)"
    # The summation order perturbs the forces by round-off at every step; the contact dynamics
    # amplifies it like any round-off: compare with the same run started one ulp away.
    floor = report["one_ulp_start"]
    for name, difference in report["two_devices"].items():
        assert difference < max(100 * floor[name], 1e-14), (name, difference, floor[name])


def test_two_devices_give_the_single_device_gradients(two_device_report):
    """Reverse mode through the sharded pair phase (psum and slot-sharded shear history)."""
    for name, pair in two_device_report["gradients"].items():
        assert pair["single"] != 0.0 and np.isfinite(pair["single"]), (name, pair)
        assert abs(pair["split"] - pair["single"]) <= 1e-9 * abs(pair["single"]), (name, pair)


def test_a_one_device_mesh_is_the_default_path(two_device_report):
    """A mesh of one device adds the pair forces in the same order as no mesh: bit for bit."""
    for name, difference in two_device_report["one_device_mesh"].items():
        assert difference == 0.0, (name, difference)


def test_an_uneven_split_is_refused(two_device_report):
    assert "does not split evenly over the 2 devices" in two_device_report["uneven_error"]


def test_more_devices_than_exist_are_refused():
    with pytest.raises(ValueError, match=f"devices = {len(jax.devices()) + 1}"):
        pair_mesh(len(jax.devices()) + 1)


if __name__ == "__main__":   # the subprocess of two_device_report
    print(json.dumps(sharded_run_report()))
