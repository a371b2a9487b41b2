"""calibrate fits on the Hertz sphere-on-plate twin: recovery, identifiability, resume, NaN stop,
multi-start with vmap, and the sharded path on two forced host devices (float64)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from calibrate.fit import (SMOOTHING_CAP, LevenbergMarquardt, NonFiniteLoss, OptimizerSettings,
                          damping_factors, fit, levenberg_marquardt_step, optimizer_settings,
                          progress_printer, smoothing_perturbations)
from calibrate.identifiability import identifiability
from calibrate.loss import Objective
from calibrate.multistart import multistart
from calibrate.parameters import parameter_set, table2
from calibrate.simulators import make_simulator
from calibrate.targets import make_target
from twin.units import gpa_to_micro

ROOT = Path(__file__).resolve().parents[1]
TRUE = {"AM.E_GPa": 200.0, "AM.ced_J_m3": 6e8, "AM.restitution": 0.15, "AM.friction": 0.001}
BOUNDS = {"AM.E_GPa": (20.0, 2000.0), "AM.ced_J_m3": (1e7, 1e10), "AM.restitution": (0.01, 0.99),
          "AM.friction": (0.0, 1.0)}
HERTZ = {"kind": "hertz_sphere_on_plate", "sphere": "AM", "wall": "steel", "radius_um": 5.0,
         "max_overlap_um": 0.05, "points": 40, "cohesion": "sjkr2"}


def hertz_targets(simulator):
    """Synthetic targets: every second point of the curve simulated with Table 2 values."""
    x, y = simulator(table2().materials("artistic"))["load_displacement"]
    return [make_target("load_displacement", x[1::2], np.asarray(y)[1::2])]


def objective(names, factor, simulator=None):
    """Problem with ``names`` free, each starting at ``factor`` × its true value."""
    simulator = simulator or make_simulator(HERTZ)
    entries = [dict(name=n, start=TRUE[n] * factor, lower=BOUNDS[n][0], upper=BOUNDS[n][1])
               for n in names]
    return Objective(parameter_set(entries), simulator, hertz_targets(make_simulator(HERTZ)),
                     table2(), "artistic")


ADAM = OptimizerSettings(name="adam", learning_rate=0.1, iterations=150, schedule="cosine",
                         clip=1.0, starts=4, seed=1)


@pytest.fixture(scope="module")
def two_free():
    """E and restitution of AM free (CED at its true value), start 1.5 × the truth."""
    return objective(["AM.E_GPa", "AM.restitution"], 1.5)


@pytest.fixture(scope="module")
def adam_starts(two_free):
    return multistart(two_free, ADAM)


@pytest.fixture(scope="module")
def four_free():
    """E, CED, restitution and friction of AM free; configured start 1.5 × the truth."""
    return objective(list(TRUE), 1.5)


@pytest.mark.parametrize("factor", [1.5, 0.5])
def test_twin_experiment_lbfgs_recovers_e_and_ced_within_1_percent(four_free, factor):
    problem = four_free
    start = problem.parameters.theta_from_values({n: v * factor for n, v in TRUE.items()})
    result = fit(problem, OptimizerSettings(name="lbfgs", iterations=50), theta0=start)
    assert result.iterations <= 50
    for name in ("AM.E_GPa", "AM.ced_J_m3"):
        assert result.values[name] == pytest.approx(TRUE[name], rel=0.01)
    # restitution and friction do not enter the quasi-static normal force: never moved
    for name in ("AM.restitution", "AM.friction"):
        assert result.values[name] == pytest.approx(TRUE[name] * factor, rel=1e-12)
    analysis = identifiability(problem, result.theta)
    assert sorted(analysis.unconstrained_names) == ["AM.friction", "AM.restitution"]
    flagged = {max(d["direction"], key=lambda n: abs(d["direction"][n]))
               for d in analysis.unconstrained}
    assert flagged == {"AM.friction", "AM.restitution"}
    assert np.all(np.isfinite(analysis.relative_std[:2])) and analysis.at_optimum
    assert not identifiability(problem, start).at_optimum


@pytest.mark.parametrize("factor", [1.5, 0.5])
def test_levenberg_marquardt_recovers_e_and_ced_in_few_iterations(four_free, factor):
    """Zero-residual least squares: Gauss–Newton converges quadratically, to the truth within
    1e-6 in ≤ 10 iterations (8 measured, stopped by the gradient tolerance 1e-10) where L-BFGS
    takes up to 50 for 1 %; the two parameters the curve does not see stay at their starts
    (zero Jacobian columns)."""
    problem = four_free
    start = problem.parameters.theta_from_values({n: v * factor for n, v in TRUE.items()})
    result = fit(problem, OptimizerSettings(name="levenberg-marquardt", iterations=30),
                 theta0=start)
    assert result.loss < 1e-15 and result.iterations <= 10
    for name in ("AM.E_GPa", "AM.ced_J_m3"):
        assert result.values[name] == pytest.approx(TRUE[name], rel=1e-6)
    for name in ("AM.restitution", "AM.friction"):
        assert result.values[name] == pytest.approx(TRUE[name] * factor, rel=1e-12)
    per_iteration = len(start) + 1       # one forward-mode tangent per free parameter, one trial
    assert result.evaluations == per_iteration * result.iterations + 1


@pytest.mark.parametrize("trials", [1, 3])
def test_levenberg_marquardt_reuses_the_jacobian_after_a_rejected_step(four_free, trials):
    """A rejected iteration leaves θ, keeps r, updates J along the step at μ to the secant
    J'δ = r(θ + δ) − r(θ) and doubles μ, with one trial step or several; the next iteration
    then costs its trial losses alone, and a kept Jacobian gives the step of a freshly
    evaluated one."""
    problem = four_free
    theta = problem.parameters.theta_from_values({n: v * 1.5 for n, v in TRUE.items()})
    step = levenberg_marquardt_step(problem, 1e-3, trials)
    fresh = LevenbergMarquardt(problem.residual_count).init(theta)
    _, first, _, _, used, _ = step(theta, fresh)
    assert int(used) == len(theta) + trials and not bool(first.current)
    # the negated Jacobian points every trial step uphill
    misleading = first._replace(jacobian=-first.jacobian, current=jnp.asarray(True))
    kept_theta, rejected, _, _, used, accepted = step(theta, misleading)
    assert int(used) == trials and bool(accepted)
    np.testing.assert_array_equal(kept_theta, theta)
    assert bool(rejected.current) and float(rejected.damping) == 2 * float(first.damping)
    np.testing.assert_array_equal(rejected.residuals, first.residuals)
    # the rejected step δ, as the step computed it from the misleading model
    curvature = misleading.jacobian.T @ misleading.jacobian
    delta = np.linalg.solve(curvature + float(first.damping) * np.eye(len(theta)),
                            -misleading.jacobian.T @ first.residuals)
    secant = problem.residuals(theta + delta) - first.residuals
    np.testing.assert_allclose(rejected.jacobian @ delta, secant, rtol=1e-9,
                               atol=1e-12 * float(np.abs(secant).max()))
    np.testing.assert_allclose(rejected.jacobian - misleading.jacobian,        # rank one
                               np.outer(secant - misleading.jacobian @ delta, delta)
                               / (delta @ delta), rtol=1e-9, atol=1e-12)
    again = step(theta, first._replace(current=jnp.asarray(True)))
    anew = step(theta, first._replace(current=jnp.asarray(False)))
    assert int(again[4]) == trials and int(anew[4]) == len(theta) + trials
    np.testing.assert_allclose(again[0], anew[0], rtol=1e-12)


def test_levenberg_marquardt_takes_the_lowest_of_its_trial_losses(four_free):
    """With ``damping_trials`` = 4 one Jacobian gives the steps at μ, μ/10, 10μ and μ/100; the
    iteration takes the one with the lowest loss and sets the next μ from its damping and gain
    ratio (Madsen, Nielsen & Tingleff's rule)."""
    assert list(damping_factors(5)) == [1.0, 0.1, 10.0, 0.01, 100.0]
    problem = four_free
    theta = problem.parameters.theta_from_values({n: v * 1.5 for n, v in TRUE.items()})
    state = LevenbergMarquardt(problem.residual_count).init(theta)
    new_theta, new_state, value, _, used, _ = levenberg_marquardt_step(problem, 1.0, 4)(
        theta, state)
    assert int(used) == len(theta) + 4
    r, jacobian = (np.asarray(a) for a in problem.residuals_and_jacobian(
        problem.parameters.values, theta))
    curvature = jacobian.T @ jacobian
    mu = float(np.max(np.diag(curvature)))
    trials = []
    for factor in damping_factors(4):
        delta = np.linalg.solve(curvature + mu * factor * np.eye(len(theta)), -jacobian.T @ r)
        loss = float(problem.loss(theta + delta))
        trials.append((loss, factor, delta, r @ r - np.sum((r + jacobian @ delta) ** 2)))
    losses = [t[0] for t in trials]
    assert len(set(np.round(np.log10(losses), 3))) == 4       # four different outcomes
    loss, factor, delta, predicted = min(trials, key=lambda t: t[0])
    assert factor != 1.0                                       # not the classical step
    np.testing.assert_allclose(new_theta, theta + delta, rtol=1e-10)
    gain = (float(value) - loss) / predicted
    assert float(new_state.damping) == pytest.approx(
        mu * factor * max(1 / 3, 1 - (2 * gain - 1) ** 3), rel=1e-10)


def test_adam_recovers_e_alone(two_free):
    """Adam's steps are ~learning rate in size whatever the gradient, so it needs a decaying
    schedule and more iterations than L-BFGS; E alone (CED at its true value) converges."""
    result = fit(two_free, ADAM)
    assert result.values["AM.E_GPa"] == pytest.approx(200.0, rel=1e-3)


def test_identifiability_finds_the_modulus_combination_and_widens_with_noise():
    """Both moduli free: the curve sees E* only, so one combination of ln E_AM and ln E_steel
    is unconstrained; with 1 % noise the CED interval is finite and contains the truth."""
    simulator = make_simulator(HERTZ)
    x, y = simulator(table2().materials("artistic"))["load_displacement"]
    noisy = np.asarray(y) * (1 + 0.01 * np.random.default_rng(0).standard_normal(len(x)))
    entries = [dict(name="AM.E_GPa", start=200.0, lower=20.0, upper=2000.0),
               dict(name="steel.E_GPa", start=200.0, lower=20.0, upper=2000.0),
               dict(name="AM.ced_J_m3", start=6e8, lower=1e7, upper=1e10)]
    problem = Objective(parameter_set(entries), simulator,
                        [make_target("load_displacement", x, noisy)], table2(), "artistic")
    analysis = identifiability(problem, problem.parameters.start_theta())
    assert len(analysis.unconstrained) == 1
    direction = analysis.unconstrained[0]["direction"]
    # E* = 1 / ((1 - ν²)/E_AM + (1 - ν²)/E_steel) with equal ν, E: d ln E* equal in both
    assert abs(direction["AM.E_GPa"]) == pytest.approx(np.sqrt(0.5), rel=1e-6)
    assert direction["steel.E_GPa"] == pytest.approx(-direction["AM.E_GPa"], rel=1e-6)
    assert analysis.unconstrained_names == ["AM.E_GPa", "steel.E_GPa"]
    ced = analysis.names.index("AM.ced_J_m3")
    assert analysis.ci_lower[ced] < 6e8 < analysis.ci_upper[ced]


def assert_resumes_to(whole, problem, settings, folder, at_iteration):
    """Interrupted after history row ``at_iteration`` and resumed from its checkpoint in
    ``folder``, the fit ends as the uninterrupted ``whole``: same θ, losses and evaluations."""
    def interrupt(row):
        if row["iteration"] == at_iteration:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(problem, settings, folder, progress=interrupt)
    assert len(json.loads((folder / "history.json").read_text())) == at_iteration + 1
    resumed = fit(problem, settings, folder, resume=True)
    np.testing.assert_array_equal(resumed.theta, whole.theta)
    for key in ("loss", "evaluations"):
        assert [r[key] for r in resumed.history] == [r[key] for r in whole.history]
    assert resumed.evaluations == whole.evaluations


@pytest.mark.parametrize("name", ["adam", "lbfgs", "levenberg-marquardt"])
def test_interrupted_fit_resumed_equals_an_uninterrupted_one(four_free, tmp_path, name):
    problem = four_free
    settings = OptimizerSettings(name=name, iterations=10, learning_rate=0.05, tolerance=0.0)
    whole = fit(problem, settings, tmp_path / "whole")
    assert_resumes_to(whole, problem, settings, tmp_path / "parts", 4)
    with pytest.raises(ValueError, match="other settings"):
        fit(problem, replace(settings, learning_rate=0.1), tmp_path / "parts", resume=True)
    with pytest.raises(ValueError, match="no checkpoint"):
        fit(problem, settings, tmp_path / "empty", resume=True)


def test_lbfgs_then_levenberg_marquardt_runs_on_as_one_fit(four_free, tmp_path):
    """``then``: Levenberg–Marquardt goes on from L-BFGS's last iterate, one history numbered
    on through both (evaluations and seconds too), its checkpoint in ``out/then``; interrupted
    in the second part and resumed, the fit equals an uninterrupted one; and it recovers E and
    CED as LM alone does."""
    problem = four_free
    settings = OptimizerSettings(name="lbfgs", iterations=3, then="levenberg-marquardt",
                                 then_iterations=12, damping_trials=2)
    whole = fit(problem, settings, tmp_path / "whole")
    lbfgs = fit(problem, replace(settings, then=""))
    history = whole.history
    assert [row["iteration"] for row in history] == list(range(len(history)))
    assert [row["loss"] for row in history[:3]] == [row["loss"] for row in lbfgs.history]
    assert history[3]["loss"] == pytest.approx(lbfgs.loss, rel=1e-12)     # LM starts there
    assert history[3]["evaluations"] == lbfgs.evaluations - 1 + len(lbfgs.theta) + 2
    assert all(b["evaluations"] > a["evaluations"] and b["seconds"] >= a["seconds"]
               for a, b in zip(history, history[1:]))
    assert (tmp_path / "whole" / "then" / "checkpoint.npz").is_file()
    assert len(json.loads((tmp_path / "whole" / "history.json").read_text())) == len(history)
    assert whole.loss < 1e-15
    for name in ("AM.E_GPa", "AM.ced_J_m3"):
        assert whole.values[name] == pytest.approx(TRUE[name], rel=1e-6)
    assert_resumes_to(whole, problem, settings, tmp_path / "parts", 5)
    # a finished fit resumed with a larger second budget goes on from where it ended
    shorter = fit(problem, replace(settings, then_iterations=3), tmp_path / "extended")
    extended = fit(problem, settings, tmp_path / "extended", resume=True)
    assert len(shorter.history) == 6 and extended.history[:6] == shorter.history
    np.testing.assert_array_equal(extended.theta, whole.theta)


def test_smoothed_objective_averages_residuals_and_jacobians(four_free):
    """A smoothed objective's residuals and Jacobian are the means of the plain ones at θ + z_k;
    each costs one simulation per perturbation; a perturbation matrix of the wrong shape is an
    error."""
    problem = four_free
    theta = problem.parameters.theta_from_values({n: v * 1.2 for n, v in TRUE.items()})
    half = np.random.default_rng(3).normal(scale=0.05, size=(2, len(theta)))
    perturbations = np.concatenate([half, -half])
    smooth = problem.smoothed(perturbations)
    assert smooth.samples == 4 and problem.samples == 1 and problem.perturbations is None
    plain = [problem.jacobian(theta + z) for z in perturbations]
    r, jacobian = smooth.jacobian(theta)
    np.testing.assert_allclose(r, np.mean([p[0] for p in plain], axis=0), rtol=1e-12)
    np.testing.assert_allclose(jacobian, np.mean([p[1] for p in plain], axis=0), rtol=1e-12)
    np.testing.assert_allclose(smooth.residuals(theta), r, rtol=1e-12)
    assert float(smooth.loss_jit(theta)) == pytest.approx(float(r @ r), rel=1e-12)
    assert float(smooth.loss(theta)) != pytest.approx(float(problem.loss(theta)), rel=1e-6)
    with pytest.raises(ValueError, match="one column per free parameter"):
        problem.smoothed(perturbations[:, :2])


def test_smoothing_perturbations_sample_the_capped_gauss_newton_posterior():
    """±z_k with z ~ N(0, σ²(JᵀJ)⁻¹), the spread along an eigenvector of JᵀJ capped at
    SMOOTHING_CAP (here the direction the residuals hardly see); the same seed gives the same
    draws."""
    jacobian = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1e-6], [0.0, 0.0, 0.0]])
    sigma2, pairs = 1e-2, 20000
    z = smoothing_perturbations(jacobian, sigma2, pairs, seed=7)
    assert z.shape == (2 * pairs, 3)
    np.testing.assert_array_equal(z[:pairs], -z[pairs:])
    np.testing.assert_array_equal(z, smoothing_perturbations(jacobian, sigma2, pairs, seed=7))
    curvature, directions = np.linalg.eigh(jacobian.T @ jacobian)
    variance = np.minimum(sigma2 / curvature, SMOOTHING_CAP ** 2)
    assert variance[0] == SMOOTHING_CAP ** 2 and (variance[1:] < SMOOTHING_CAP ** 2).all()
    sampled = directions.T @ np.cov(z.T, bias=True) @ directions
    np.testing.assert_allclose(np.diag(sampled), variance, rtol=0.03)
    assert abs(sampled[0, 1]) < 0.03 * np.sqrt(variance[0] * variance[1])


def test_levenberg_marquardt_on_smoothed_residuals_after_lbfgs(four_free, tmp_path):
    """``smoothing_pairs`` with ``then``: L-BFGS on the plain loss, then Levenberg–Marquardt on
    the residuals averaged over 2 antithetic pairs drawn at its start; the history's ``loss``
    is the plain loss at each iterate, ``smoothed_loss`` the optimiser's; evaluations count
    every simulation (the perturbations' Jacobian, 4 per residual, one plain loss a row);
    narrow perturbations keep the zero-residual minimum (E and CED to 1e-6); an interrupted
    smoothed part resumes to the same fit."""
    problem = four_free
    settings = OptimizerSettings(name="lbfgs", iterations=3, then="levenberg-marquardt",
                                 then_iterations=12, damping_trials=2, smoothing_pairs=2,
                                 smoothing_sigma2=1e-14)
    whole = fit(problem, settings, tmp_path / "whole")
    history, free = whole.history, len(whole.theta)
    assert "smoothed_loss" not in history[2] and "smoothed_loss" in history[3]
    assert history[3]["evaluations"] - history[2]["evaluations"] == (
        free + 4 * (free + 2) + 1)              # the plain Jacobian at the start, then
    assert history[4]["evaluations"] - history[3]["evaluations"] in (   # fresh or kept J
        4 * (free + 2) + 1, 4 * 2 + 1)
    for row in history[3:]:
        assert row["loss"] == pytest.approx(float(problem.loss(np.array(row["theta"]))),
                                            rel=1e-12)
        assert row["smoothed_loss"] != row["loss"]
    assert "smoothed_loss" in (tmp_path / "whole" / "history.csv").read_text().splitlines()[0]
    for name in ("AM.E_GPa", "AM.ced_J_m3"):
        assert whole.values[name] == pytest.approx(TRUE[name], rel=1e-6)
    assert whole.loss == pytest.approx(float(problem.loss(whole.theta)), rel=1e-12)
    assert_resumes_to(whole, problem, settings, tmp_path / "parts", 6)


def test_multistart_smooths_each_start_on_its_own(two_free):
    """Adam with smoothing runs its starts one after the other through ``fit`` (not the
    batched path, which has no perturbations): every history row, and every progress line,
    has its smoothed loss."""
    settings = replace(ADAM, iterations=2, starts=2, smoothing_pairs=1, smoothing_sigma2=1e-6)
    printed = []
    result = multistart(two_free, settings,
                        progress=progress_printer(two_free.parameters, printed.append))
    assert all("smoothed_loss" in row for row in result.history)
    assert len(printed) == 4 and all("(smoothed " in line for line in printed)
    assert result.evaluations == 2 * (2 + 2 * (2 * 1 + 1) + 1)  # J, 2 rows of 2 v&g + 1 loss, end


@pytest.mark.parametrize("table, message", [
    ({"then": "newton"}, "then 'newton'"),
    ({"smoothing_pairs": 2}, "needs smoothing_sigma2 > 0"),
    ({"then": "levenberg-marquardt"}, "then_iterations >= 1"),
    ({"then_iterations": 20}, "then_iterations is set but then is not")])
def test_a_second_optimiser_must_be_known_and_have_a_budget(table, message):
    with pytest.raises(ValueError, match=message):
        optimizer_settings({"name": "lbfgs", **table})


def nan_above(limit_gpa):
    """The Hertz simulator, returning NaN forces once the AM modulus exceeds ``limit_gpa``."""
    hertz = make_simulator(HERTZ)

    def simulate(materials):
        x, y = hertz(materials)["load_displacement"]
        am = materials.names.index("AM")
        return {"load_displacement": (x, jnp.where(materials.youngs_modulus[am] >
                                                   gpa_to_micro(limit_gpa), jnp.nan, y))}
    return simulate


def test_nan_loss_stops_with_the_last_good_parameters_and_the_iteration():
    problem = objective(["AM.E_GPa"], 0.5, simulator=nan_above(150.0))  # start 100, truth 200
    with pytest.raises(NonFiniteLoss, match="became nan at iteration") as error:
        fit(problem, OptimizerSettings(name="adam", learning_rate=0.1, iterations=50))
    assert error.value.iteration > 0
    good = error.value.last_good
    assert good["iteration"] == error.value.iteration - 1
    assert 100.0 < good["values"]["AM.E_GPa"] <= 150.0
    assert np.isfinite(good["loss"])
    assert f"{good['values']['AM.E_GPa']:.6g}" in str(error.value)


@pytest.mark.slow
def test_untraceable_simulator_fits_eagerly_with_adam_and_refuses_lbfgs(two_free):
    """A simulator branching in Python on a parameter value (traceable = False) runs eagerly.
    Slow only for JAX's one-off compilation of each eager primitive (~5-8 s)."""
    hertz = make_simulator(HERTZ)

    def simulate(materials):
        if not materials.youngs_modulus[1] > 0:     # Python branch: fails under jit/vmap
            raise ValueError("modulus must be positive")
        return hertz(materials)
    simulate.traceable = False

    eager = objective(["AM.E_GPa", "AM.restitution"], 1.5, simulator=simulate)
    rows = []

    def three_iterations(row):
        rows.append(row)
        if len(rows) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(eager, ADAM, progress=three_iterations)
    traced = fit(two_free, ADAM).history[:3]
    for key in ("loss", "grad_norm", "AM.E_GPa"):
        np.testing.assert_allclose([r[key] for r in rows], [r[key] for r in traced], rtol=1e-12)
    with pytest.raises(ValueError, match="use name = \"adam\""):
        fit(eager, replace(ADAM, name="lbfgs"))


def test_multistart_vmap_equals_separate_fits_and_freezes_failed_starts(two_free, adam_starts):
    problem, settings, result = two_free, ADAM, adam_starts
    assert result.devices == 1 and result.failed == [None] * 4
    alone = fit(problem, settings, theta0=result.starts[2])
    np.testing.assert_allclose(result.theta[2], alone.theta, rtol=1e-12, atol=1e-14)
    assert result.losses[2] == pytest.approx(alone.loss, rel=1e-9, abs=1e-20)
    assert result.loss == min(result.losses)
    assert result.spread["AM.E_GPa"]["std"] < 0.01 * 200.0            # E agrees across starts
    assert result.spread["AM.restitution"]["std"] > 0.05               # restitution does not

    starts_e = np.asarray([problem.parameters.free_vector(t)[0] for t in result.starts])
    limit = float(np.sqrt(starts_e.min() * starts_e.max()))    # some starts above, some below
    failing = objective(["AM.E_GPa", "AM.restitution"], 1.5, simulator=nan_above(limit))
    result = multistart(failing, replace(settings, iterations=5))
    for k, failed in enumerate(result.failed):
        if starts_e[k] > limit:          # NaN at its start: frozen there, no finite loss
            assert "iteration 0" in failed and not np.isfinite(result.losses[k])
        elif failed is not None:         # crossed the limit later: kept its last finite point
            assert float(failing.parameters.free_vector(result.theta[k])[0]) <= limit
            assert np.isfinite(result.losses[k])
    assert None in result.failed and result.values["AM.E_GPa"] <= limit


SHARDED = """
import json
import jax
from calibrate.fit import OptimizerSettings
from calibrate.multistart import multistart
import sys; sys.path.insert(0, {tests!r})
from test_calibrate_fit import ADAM, objective
result = multistart(objective(["AM.E_GPa", "AM.restitution"], 1.5), ADAM)
print(json.dumps({{"devices": len(jax.devices()), "used": result.devices,
                  "theta": result.theta.tolist(), "losses": result.losses.tolist()}}))
"""


def test_multistart_shards_over_two_forced_host_devices(adam_starts):
    """Same starts on two devices (two per device) as on one: the same fits."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    run = subprocess.run([sys.executable, "-c", SHARDED.format(tests=str(ROOT / "tests"))],
                         env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    sharded = json.loads(run.stdout.strip().splitlines()[-1])
    assert sharded["devices"] == 2 and sharded["used"] == 2
    np.testing.assert_allclose(sharded["theta"], adam_starts.theta, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sharded["losses"], adam_starts.losses, rtol=1e-9, atol=1e-20)


def test_fit_history_flags_iterates_where_cohesion_collapses_the_packing():
    """A simulator that can tell (``collapsing_contacts``, as the calender and indent kinds do)
    has its verdict recorded per iteration and printed; here a made-up rule: E below 250 GPa."""
    hertz = make_simulator(HERTZ)

    def simulator(materials):
        return hertz(materials)

    simulator.collapsing_contacts = lambda materials: (
        ["AM–AM: made up"] if float(materials.youngs_modulus[1]) < gpa_to_micro(250.0) else [])
    problem = objective(["AM.E_GPa"], 1.5, simulator)
    printed = []
    result = fit(problem, OptimizerSettings(name="lbfgs", iterations=6),
                 progress=progress_printer(problem.parameters, printed.append))
    flagged = [row["collapsing_contacts"] == ["AM–AM: made up"] for row in result.history]
    assert flagged == [row["AM.E_GPa"] < 250.0 for row in result.history]
    assert any(flagged) and not all(flagged)       # starts at 300 GPa, ends near 200 GPa
    assert sum("warning: cohesion collapses" in line for line in printed) == sum(flagged)
