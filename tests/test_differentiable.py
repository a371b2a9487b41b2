"""Differentiable plate protocols (twin/process/differentiable.py): the replay reproduces the
forward run, the event rules have the implicit-function derivatives, the backward pass stays
within 4× the forward memory, and jax.grad agrees with central finite differences where the
outcome is smooth (float64 throughout).

Measured on this 123-sphere electrode (issue #4 note): the indentation loss is not smooth in
most material parameters at finite-difference scales 1e-4–1e-2 — central differences at two
steps disagree in magnitude or sign, the carbon-binder network rearranging (friction 0.001) — so
jax.grad, the local derivative, cannot be checked against them there. The plate's Young's modulus
is the parameter whose differences converge at those scales, and one test checks it there. Two
others check E, restitution, friction and CED of all four materials at steps of 1e-6–1e-9 with no
kink inside, where the differences resolve the local derivative. The long comparisons are marked
slow (3–6 min each on one core).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_experiments import load
from twin.physics.materials import pair_table
from twin.process.calender import CalenderProtocol, PlateRun, calender
from twin.process.differentiable import (CalenderReplay, IndentReplay, PlateReplay, _Unloading,
                                         compiled_peak_bytes, event_shift, fade_tangent)
from twin.process.indent import IndentProtocol
from twin.process.pack import Electrode

DAMPING = 100.0            # 1/µs: background drag that keeps the small packing near equilibrium
FAST = dict(plate_speed_um_us=5.0, record_every=20, chunk_steps=1000, am_expansion=1.0)


def tiny_electrode() -> Electrode:
    """~120 spheres (6 AM up to 4 µm diameter) from the lowest 12 µm of the small example
    electrode's centre column, compacted to a solid fraction of 0.5: the electrode of the DEM
    twin experiment, defined once in experiments/calibration_twin_experiment.py."""
    return load("calibration_twin_experiment").tiny_electrode()


def test_release_crossing_interpolates_in_value_with_the_window_rate_in_gradient():
    def crossing(above_z, above_force, below_force=2.0, fall_rate=8.0, pending=False):
        unloading = _Unloading(None, None, None, above_z, None, above_force,
                               jnp.asarray(fall_rate),
                               jnp.asarray(above_z + 1.0), below_force, jnp.asarray(pending))
        return unloading.crossing(4.0)

    # z_a + (F_a − thr)/(F_a − F_b)(z_b − z_a)
    assert float(crossing(2.0, 6.0)) == pytest.approx(2.5)
    # the implicit-function rule dz_c = dz_a + dF_a / (−dF/dz), with the window's fall rate
    grads = jax.grad(crossing, argnums=(0, 1))(2.0, 6.0)
    np.testing.assert_allclose(grads, [1.0, 1.0 / 8.0], rtol=1e-12)
    # a force that did not fall over the window contributes no gradient
    assert float(jax.grad(crossing, argnums=1)(2.0, 6.0, fall_rate=-1.0)) == 0.0
    # still at or above the threshold: the last step above
    assert float(crossing(2.0, 6.0, pending=True)) == 2.0


def test_event_shift_is_zero_in_value_and_the_event_derivative_in_gradient():
    protocol = CalenderProtocol(target_pressure_mpa=1.0, **FAST)
    run = PlateRun(tiny_electrode(), protocol)
    state = eqx.tree_at(lambda s: s.spheres.velocity, run.state,
                        jnp.ones_like(run.state.spheres.velocity))
    slope = 7.0

    def moved(mismatch):
        shifted = event_shift(state, mismatch, slope)
        return shifted.spheres.position[0, 2], shifted.walls.z[1]

    z, plate = moved(0.3)
    assert float(z) == float(state.spheres.position[0, 2])
    dz, dplate = jax.jacobian(moved)(0.3)
    assert float(dz) == pytest.approx(1.0 / slope)                       # v_z / Ḟ
    assert float(dplate) == pytest.approx(-protocol.plate_speed_um_us / slope)
    # with a value shift δt (the crossing inside the last step) the state moves by ẏ δt
    back = event_shift(state, 0.3, slope, -2e-5)
    assert float(back.spheres.position[0, 2] - state.spheres.position[0, 2]) == \
        pytest.approx(-2e-5)
    assert float(back.walls.z[1] - state.walls.z[1]) == \
        pytest.approx(2e-5 * protocol.plate_speed_um_us)


def in_youngs_modulus(replay, outcome):
    """``outcome(materials)`` as a function of the per-type Young's moduli alone."""
    return lambda youngs: outcome(eqx.tree_at(lambda m: m.youngs_modulus, replay.materials,
                                              youngs))


def indentation_loss(replay):
    """Squared misfit of the normalised indentation curve to one 10 % below the curve simulated
    with the replay's own materials, as a function of the materials."""
    target = 0.9 * replay.replay(replay.materials).force_normalised
    return lambda materials: jnp.sum((replay.replay(materials).force_normalised - target) ** 2)


@pytest.fixture(scope="module")
def calender_replay():
    protocol = CalenderProtocol(target_pressure_mpa=20.0, viscous_damping_per_us=DAMPING, **FAST)
    return CalenderReplay(tiny_electrode(), [20.0], protocol)


def test_replay_reproduces_the_forward_calendering(calender_replay):
    forward = calender_replay.forward[0].summary
    outcome = jax.jit(calender_replay.replay)(calender_replay.materials)
    target = 20.0 / 1e-3 * calender_replay.area
    assert float(outcome.turn_force[0]) >= target                 # the turn step is the forward's
    # Same protocol, different loop structure (round-off differs): thickness within one record of
    # plate travel (0.1 µm) and the porosity it implies.
    travel = FAST["plate_speed_um_us"] * FAST["record_every"] * 1e-4
    assert abs(float(outcome.thickness_um[0]) - forward["thickness_um"]) <= travel
    assert abs(float(outcome.porosity[0]) - forward["final_porosity"]) <= 0.01


def test_replay_finds_the_turn_for_other_materials(calender_replay):
    """The loading is a while loop on the filtered force: with other materials the replay turns
    where a forward run with those materials turns, not where the construction's run did
    (measured: the same step for AM stiffness × 3, CBD stiffness × 2, CBD friction × 100)."""
    replay = calender_replay
    am = replay.materials.names.index("AM")
    stiffer = eqx.tree_at(lambda m: m.youngs_modulus, replay.materials,
                          replay.materials.youngs_modulus.at[am].multiply(3.0))
    protocol = CalenderProtocol(target_pressure_mpa=20.0, viscous_damping_per_us=DAMPING, **FAST)
    forward = calender(tiny_electrode(), protocol, stiffer).summary
    outcome = jax.jit(replay.replay)(stiffer)
    base_turn = replay.forward[0].summary["loading_steps"]
    assert abs(forward["loading_steps"] - base_turn) > 10
    assert abs(int(outcome.turn_step[0]) - forward["loading_steps"]) <= 1
    travel = FAST["plate_speed_um_us"] * FAST["record_every"] * 1e-4
    assert abs(float(outcome.thickness_um[0]) - forward["thickness_um"]) <= travel
    assert abs(float(outcome.porosity[0]) - forward["final_porosity"]) <= 0.01


def test_forward_mode_replay_gives_the_same_values_and_derivatives(calender_replay):
    """``replay(materials, forward_mode=True)`` runs plain loops that jax.jvp enters (the
    checkpointed ones are custom_vjp): the same porosity, and its tangent along the Young's
    moduli equals the reverse-mode gradient projected on that direction."""
    replay = calender_replay
    youngs = replay.materials.youngs_modulus
    direction = youngs * jnp.linspace(1.0, -0.5, youngs.shape[0])     # d ln E, mixed signs

    def porosity(forward_mode):
        return in_youngs_modulus(replay, lambda m: replay.replay(m, forward_mode).porosity[0])

    value, tangent = jax.jit(lambda e: jax.jvp(porosity(True), (e,), (direction,)))(youngs)
    reverse_value, gradient = jax.jit(jax.value_and_grad(porosity(False)))(youngs)
    assert float(value) == float(reverse_value)
    assert float(tangent) != 0.0
    assert float(tangent) == pytest.approx(float(gradient @ direction), rel=1e-9)


@pytest.mark.slow
def test_turn_and_short_horizon_recovery_gradients_match_finite_differences():
    """d/d ln E_AM at Table 2 (module docstring of twin.process.differentiable): the turn
    position through the whole run, the recovered thickness with gradient_from_fraction = 0.9;
    central differences at h = 0.04 in ln E_AM, where the 21-point scan is smooth."""
    protocol = CalenderProtocol(target_pressure_mpa=20.0, viscous_damping_per_us=DAMPING, **FAST)
    replay = CalenderReplay(tiny_electrode(), [20.0], protocol, checkpoints="all",
                            capacity_margin=2.0, gradient_from_fraction=0.9)
    am = replay.materials.names.index("AM")

    def outcome(log_factor, short_horizon):
        replay.gradient_from_fraction = 0.9 if short_horizon else None
        materials = eqx.tree_at(lambda m: m.youngs_modulus, replay.materials,
                                replay.materials.youngs_modulus.at[am].multiply(
                                    jnp.exp(log_factor)))
        result = replay.replay(materials)
        return result.turn_gap_um[0], result.thickness_um[0]

    h = 0.04
    plus, minus = jax.jit(lambda x: outcome(x, False))(h), jax.jit(lambda x: outcome(x, False))(-h)
    fd_turn, fd_thickness = ((float(p) - float(m)) / (2 * h) for p, m in zip(plus, minus))
    ad_turn = float(jax.jit(jax.grad(lambda x: outcome(x, False)[0]))(0.0))
    ad_thickness = float(jax.jit(jax.grad(lambda x: outcome(x, True)[1]))(0.0))
    assert abs(ad_turn - fd_turn) <= 0.05 * abs(fd_turn), (ad_turn, fd_turn)
    assert abs(ad_thickness - fd_thickness) <= 0.05 * abs(fd_thickness), (ad_thickness,
                                                                         fd_thickness)


@pytest.mark.slow
def test_backward_memory_at_most_four_times_the_forward(calender_replay):
    replay = calender_replay
    porosity = in_youngs_modulus(replay, lambda materials: replay.replay(materials).porosity[0])
    youngs = replay.materials.youngs_modulus
    forward, backward = compiled_peak_bytes(porosity, youngs), \
        compiled_peak_bytes(jax.grad(porosity), youngs)
    assert backward <= 4.0 * forward, (forward, backward)


@pytest.fixture(scope="module")
def indent_replay():
    """Indentation (5 % of the thickness) of the tiny electrode after a calendering to 20 MPa
    (a jammed, relaxed packing); the tests fit it with :func:`indentation_loss`."""
    pressed = calender(tiny_electrode(), CalenderProtocol(
        target_pressure_mpa=20.0, viscous_damping_per_us=DAMPING, **FAST))
    jammed = dataclasses.replace(pressed.electrode, position=pressed.final_position)
    protocol = IndentProtocol(depth_fraction=0.05, replicas=1, gap_um=0.1, clearance_um=0.3,
                              viscous_damping_per_us=DAMPING, **FAST)
    return IndentReplay(jammed, protocol)


@pytest.mark.slow
def test_indentation_backward_memory_at_most_four_times_the_forward(indent_replay):
    """The indentation loss (1600 steps, checkpointed scans): measured 2.35× (2026-12-07)."""
    replay = indent_replay
    loss = in_youngs_modulus(replay, indentation_loss(replay))
    youngs = replay.materials.youngs_modulus
    forward, backward = compiled_peak_bytes(loss, youngs), \
        compiled_peak_bytes(jax.grad(loss), youngs)
    assert backward <= 4.0 * forward, (forward, backward)


@pytest.mark.slow
def test_indentation_loss_gradient_matches_finite_differences(indent_replay):
    replay = indent_replay
    plate = replay.materials.names.index("steel")
    loss = in_youngs_modulus(replay, indentation_loss(replay))
    youngs = replay.materials.youngs_modulus
    analytic = float(jax.jit(jax.grad(loss))(youngs)[plate])
    value = jax.jit(loss)
    for relative_step in (1e-2, 1e-3):
        h = relative_step * float(youngs[plate])
        finite_difference = float(value(youngs.at[plate].add(h))
                                  - value(youngs.at[plate].add(-h))) / (2 * h)
        assert analytic != 0.0
        assert abs(analytic - finite_difference) <= 0.05 * abs(finite_difference), (
            f"d loss / d E_plate: jax.grad {analytic:.6g} vs FD {finite_difference:.6g} "
            f"(step {relative_step})")


MATERIAL_PARAMETERS = [f"{material}.{prop}" for material in ("AM", "CBD", "Al", "steel")
                       for prop in ("E_GPa", "restitution", "friction", "ced_J_m3")]
# Steps in ln θ at which central differences resolve the local derivative of a replay, tried in
# turn: the first one with no kink inside ±h that matters, i.e. whose forward and backward
# quotients agree within 5 % (one kink or jump inside moves the central quotient by half their
# difference). Round-off limits the smallest: measured, the quotients of the smooth collector
# friction of the indentation scatter by 20 % at 1e-9 and agree to 1e-4 at 1e-6.
LOCAL_STEPS = (1e-6, 1e-7, 1e-8, 3e-9, 1e-9)


def local_difference(value, at, index, centre):
    """Central difference of ``value`` in coordinate ``index`` at the first of LOCAL_STEPS whose
    one-sided quotients agree within 5 % (a kink, e.g. a contact opening, inside ±h makes them
    differ), and that step; ``centre`` = value(at)."""
    for h in LOCAL_STEPS:
        step = jnp.zeros_like(at).at[index].set(h)
        forward = (float(value(at + step)) - centre) / h
        backward = (centre - float(value(at - step))) / h
        central = 0.5 * (forward + backward)
        if abs(forward - backward) <= 0.05 * abs(central):
            return central, h
    raise AssertionError(f"no kink-free step down to {LOCAL_STEPS[-1]:g} in coordinate {index}: "
                         f"forward {forward:.6g} vs backward {backward:.6g}")


def assert_local_derivatives(outcome, base, label):
    """jax.grad of ``outcome(materials)`` in ln θ of E, restitution, friction and CED of every
    material against central differences at a kink-free step (:func:`local_difference`), within
    5 % each (float64)."""
    from calibrate.parameters import materials_from_parameters
    start = jnp.asarray([base.value(name) for name in MATERIAL_PARAMETERS])

    def scalar(log_factor):
        values = dict(zip(MATERIAL_PARAMETERS, start * jnp.exp(log_factor)))
        return outcome(materials_from_parameters(base, values, "artistic"))

    at_table2 = jnp.zeros(len(MATERIAL_PARAMETERS))
    analytic = np.asarray(jax.jit(jax.grad(scalar))(at_table2))
    value = jax.jit(scalar)
    centre = float(value(at_table2))
    for index, name in enumerate(MATERIAL_PARAMETERS):
        finite_difference, h = local_difference(value, at_table2, index, centre)
        assert analytic[index] != 0.0
        assert abs(analytic[index] - finite_difference) <= 0.05 * abs(finite_difference), (
            f"d {label} / d ln {name}: jax.grad {analytic[index]:.6g} vs FD "
            f"{finite_difference:.6g} (h = {h:g})")


@pytest.mark.slow
def test_porosity_gradient_with_exact_events_is_the_local_derivative_in_every_material_parameter():
    """With ``exact_events`` the turn and release interpolations are differentiated themselves:
    jax.grad of the recovered porosity is then its local derivative (measured 2026-12-07: within
    3e-4 of central differences at h = 1e-8 for E_AM and CED_CBD; the default windowed-slope
    rules gave 0.78 and 0.62 of them; AM CED has a kink within ±1e-8, its one-sided quotients
    -0.12 and -0.28 against -0.1007 at 3e-9). The value does not depend on the rule."""
    from calibrate.parameters import TypeTable
    protocol = CalenderProtocol(target_pressure_mpa=20.0, viscous_damping_per_us=DAMPING, **FAST)
    replay = CalenderReplay(tiny_electrode(), [20.0], protocol, checkpoints="all",
                            capacity_margin=2.0, exact_events=True)
    exact = jax.jit(replay.replay)(replay.materials)
    replay.exact_events = False
    windowed = jax.jit(replay.replay)(replay.materials)
    np.testing.assert_array_equal(exact.porosity, windowed.porosity)
    np.testing.assert_array_equal(exact.thickness_um, windowed.thickness_um)
    replay.exact_events = True
    assert_local_derivatives(lambda materials: replay.replay(materials).porosity[0],
                             TypeTable.from_materials(replay.materials, "artistic"), "porosity")


@pytest.mark.slow
def test_indentation_loss_gradient_is_the_local_derivative_in_every_material_parameter(
        indent_replay):
    """d loss / d ln θ for E, restitution, friction and CED of each material: jax.grad of the full
    run is the exact local derivative of the replay. The loss is piecewise smooth, with kinks
    (contacts opening, Coulomb slip starting) that the chaotic packing makes dense: measured
    (2026-12-07), central differences at h = 1e-2, 1e-4 and 1e-6 in ln θ still differ from
    jax.grad by up to a factor 3 or in sign for AM CED, CBD E and CBD CED, while at h = 1e-8 the
    eight AM and CBD ones agree to 1e-3 or better (most to 1e-6). The collector and plate
    parameters are smooth down to 1e-6 (agreement 1e-4 there); below 1e-8 round-off shows in
    the smallest derivative (collector friction, 9e-5)."""
    from calibrate.parameters import TypeTable
    replay = indent_replay
    assert_local_derivatives(indentation_loss(replay),
                             TypeTable.from_materials(replay.materials, "artistic"), "loss")


def test_a_replay_leaving_the_forward_layout_raises():
    """Contacts are never dropped: a pair list too small for the path stops the replay."""
    electrode = tiny_electrode()
    protocol = CalenderProtocol(target_pressure_mpa=20.0, **FAST)
    run = PlateRun(electrode, protocol)
    cramped = dataclasses.replace(run.spec, pair_capacity=8)
    replay = PlateReplay(electrode, protocol, None, cramped, 4)
    table = pair_table(replay.materials)

    @jax.jit
    def pressed():
        state, _ = replay.segment(replay.initial(replay.materials), table, 20, -5.0)
        return replay.checked(state.step, state)

    with pytest.raises(Exception, match="overflow"):
        jax.block_until_ready(pressed())


def test_fade_tangent_keeps_values_and_scales_derivatives():
    tree = {"x": jnp.asarray([1.0, -2.0]), "ids": jnp.asarray([3, 4])}
    faded = fade_tangent(tree, 0.25)
    np.testing.assert_array_equal(faded["x"], tree["x"])
    np.testing.assert_array_equal(faded["ids"], tree["ids"])
    grad = jax.grad(lambda x: jnp.sum(fade_tangent({"x": x}, 0.25)["x"] ** 2))(tree["x"])
    np.testing.assert_allclose(grad, 0.25 * 2.0 * tree["x"], rtol=1e-15)


@pytest.fixture(scope="module")
def pressed_plate():
    """(replay, state, forces): the plate pressing the tiny electrode after 1200 steps (so that
    the forces depend on E_plate), and ``forces(E_plate, memory, start, steps, forward_mode)``,
    the plate force over the next ``steps`` steps."""
    protocol = CalenderProtocol(target_pressure_mpa=20.0, viscous_damping_per_us=DAMPING, **FAST)
    run = PlateRun(tiny_electrode(), protocol)
    replay = PlateReplay(tiny_electrode(), protocol, None, run.spec, checkpoints=4)
    plate = replay.materials.names.index("steel")
    table = pair_table(replay.materials)
    pressed, _ = jax.jit(lambda st: replay.segment(st, table, 1200, -5.0))(replay.initial(
        replay.materials))

    def materials(youngs):
        return eqx.tree_at(lambda m: m.youngs_modulus, replay.materials,
                           replay.materials.youngs_modulus.at[plate].set(youngs))

    def forces(youngs, memory, start=pressed, steps=40, forward_mode=False):
        return replay.segment(start, pair_table(materials(youngs)), steps, -5.0, memory,
                              forward_mode)[1][1]

    return replay, pressed, forces


def test_forward_mode_segment_gives_the_same_forces_and_derivatives(pressed_plate):
    """The indentation's segments in forward mode (plain lax.scan): the same plate forces, and
    their tangent in E_plate equals the reverse-mode gradient, the faded tangent
    (gradient_memory_steps) included."""
    replay, _, forces = pressed_plate
    youngs = replay.materials.youngs_modulus[replay.materials.names.index("steel")]
    value, tangent = jax.jit(lambda e: jax.jvp(
        lambda e: forces(e, 50.0, forward_mode=True)[-1], (e,), (1.0,)))(youngs)
    reverse_value, gradient = jax.jit(jax.value_and_grad(lambda e: forces(e, 50.0)[-1]))(youngs)
    assert float(value) == float(reverse_value)
    assert float(tangent) != 0.0
    assert float(tangent) == pytest.approx(float(gradient), rel=1e-9)


def test_gradient_memory_keeps_values_and_bounds_the_history_of_the_gradient(pressed_plate):
    """With gradient_memory_steps M the forces are those of the plain run; M → 0 leaves the
    gradient of one step from the previous state held fixed, M → ∞ the whole run's gradient
    (40 steps of the plate pressing the tiny electrode, gradient in E_plate)."""
    replay, pressed, forces = pressed_plate
    table = pair_table(replay.materials)
    youngs = replay.materials.youngs_modulus[replay.materials.names.index("steel")]
    np.testing.assert_array_equal(jax.jit(lambda e: forces(e, 50.0))(youngs),
                                  jax.jit(lambda e: forces(e, None))(youngs))
    before_last = jax.jit(lambda st: replay.segment(st, table, 39, -5.0)[0])(pressed)
    one_step = float(jax.jit(jax.grad(lambda e: forces(e, None, before_last, 1)[-1]))(youngs))
    full = float(jax.jit(jax.grad(lambda e: forces(e, None)[-1]))(youngs))
    assert one_step != 0.0 and abs(full - one_step) > 1e-6 * abs(full)  # history contributes
    assert float(jax.jit(jax.grad(lambda e: forces(e, 1e-3)[-1]))(youngs)) == pytest.approx(
        one_step, rel=1e-10)
    assert float(jax.jit(jax.grad(lambda e: forces(e, 1e12)[-1]))(youngs)) == pytest.approx(
        full, rel=1e-8)
    with pytest.raises(ValueError, match="gradient_memory_steps"):
        IndentReplay(tiny_electrode(), IndentProtocol(depth_fraction=0.05, **FAST),
                     gradient_memory_steps=0)


def test_calibrate_builds_the_porosity_pressure_simulator_from_a_case_file(tmp_path,
                                                                          calender_replay):
    """``[simulation] kind = "calender"`` gives the replay's curve, differentiable."""
    from calibrate.simulators import make_simulator
    from test_calender import write_plate_case
    write_plate_case(tmp_path, tiny_electrode(), "target_pressure_MPa = 20.0\n"
                     "plate_speed_m_s = 5.0\nrecord_every = 20\nam_expansion = 1.0\n"
                     f"viscous_damping_per_us = {DAMPING}\n")
    simulate = make_simulator({"kind": "calender", "case": "case.toml", "pressures_MPa": [20.0]},
                              tmp_path)
    materials = calender_replay.materials
    pressures, porosity = simulate(materials)["porosity_pressure"]
    np.testing.assert_array_equal(pressures, [20.0])
    expected = jax.jit(calender_replay.replay)(materials).porosity
    assert abs(float(porosity[0]) - float(expected[0])) <= 0.01
    # the cohesion check of calibrate's start and fit points (calibrate/run.py)
    assert simulate.collapsing_contacts(materials) == []
    cbd = materials.names.index("CBD")
    sticky = eqx.tree_at(lambda m: m.cohesion_energy_density, materials,
                         materials.cohesion_energy_density.at[cbd, cbd].multiply(5.0))
    assert [line.split(":")[0] for line in simulate.collapsing_contacts(sticky)] == ["CBD–CBD"]
    with pytest.raises(ValueError, match="pressures_MPa"):
        make_simulator({"kind": "calender", "case": "case.toml", "pressures_MPa": []}, tmp_path)
    with pytest.raises(ValueError, match="needs case"):
        make_simulator({"kind": "calender", "pressures_MPa": [20.0]}, tmp_path)
    with pytest.raises(ValueError, match="gradient_from_fraction"):
        make_simulator({"kind": "calender", "case": "case.toml", "pressures_MPa": [20.0],
                        "gradient_from_fraction": 1.5}, tmp_path)
    with pytest.raises(ValueError, match="exact_events = 'yes'; give true or false"):
        make_simulator({"kind": "calender", "case": "case.toml", "pressures_MPa": [20.0],
                        "exact_events": "yes"}, tmp_path)
