"""The DEM twin experiment of the calibration (issue #5 item 1) and the pieces it added to
calibrate/: the "combined" simulator, the replays' checkpoints setting, the reverse-mode Jacobian
of the identifiability analysis. Quick tests use the Hertz toy; the experiment itself (DEM replays
of calibrate/examples/dem_twin.toml, float64) is marked slow."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from calibrate.config import load_config
from calibrate.identifiability import identifiability
from calibrate.loss import Objective
from calibrate.parameters import parameter_set, table2
from calibrate.simulators import make_simulator, register
from calibrate.targets import make_target
from helpers import load_script
from twin.io.lammps import read_sphere_data

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "calibrate" / "examples" / "dem_twin.toml"
TILED_CONFIG = ROOT / "calibrate" / "examples" / "dem_twin_tiled" / "dem_twin.toml"
HERTZ = {"kind": "hertz_sphere_on_plate", "sphere": "AM", "wall": "steel", "radius_um": 5.0,
         "max_overlap_um": 0.05, "points": 20, "cohesion": "sjkr2"}


def experiment_module():
    return load_script("experiments/calibration_twin_experiment.py")


def test_combined_simulator_merges_the_curves_of_its_parts():
    steel = {**HERTZ, "curve": "on_steel"}
    aluminium = {**HERTZ, "wall": "Al", "curve": "on_al"}
    simulate = make_simulator({"kind": "combined", "parts": [steel, aluminium]})
    materials = table2().materials("artistic")
    curves = simulate(materials)
    assert sorted(curves) == ["on_al", "on_steel"]
    for part in (steel, aluminium):
        x, y = make_simulator(part)(materials)[part["curve"]]
        np.testing.assert_array_equal(curves[part["curve"]][0], x)
        np.testing.assert_array_equal(curves[part["curve"]][1], y)
    # Al (69 GPa) is softer than steel (200 GPa): a different curve, not a copy
    assert float(curves["on_al"][1][-1]) < float(curves["on_steel"][1][-1])
    assert simulate.traceable and simulate.forward_mode


@register("test_reverse_only_hertz")
def reverse_only_hertz(settings, config_dir):
    """The Hertz simulator marked reverse-only, with a forward version unless ``with_forward``
    is false (for the combined simulator's forward version)."""
    settings = dict(settings)
    with_forward = settings.pop("with_forward", True)
    hertz = make_simulator({**HERTZ, **settings})

    def simulate(materials):
        return hertz(materials)

    simulate.forward_mode = False
    if with_forward:
        simulate.forward = lambda materials: hertz(materials)
    return simulate


def test_combined_simulator_has_a_forward_version_when_every_part_has_one():
    materials = table2().materials("artistic")
    reverse_only = {"kind": "test_reverse_only_hertz", "curve": "on_steel"}
    aluminium = {**HERTZ, "wall": "Al", "curve": "on_al"}
    mixed = make_simulator({"kind": "combined", "parts": [reverse_only, aluminium]})
    assert not mixed.forward_mode
    curves = mixed.forward(materials)
    assert sorted(curves) == ["on_al", "on_steel"]
    for name in curves:
        np.testing.assert_array_equal(curves[name][1], mixed(materials)[name][1])
    lacking = make_simulator({"kind": "combined",
                              "parts": [{**reverse_only, "with_forward": False}, aluminium]})
    assert not lacking.forward_mode and not hasattr(lacking, "forward")


@pytest.mark.parametrize("parts, message", [
    ([HERTZ], "two or more"),
    ([HERTZ, {**HERTZ, "kind": "combined"}], "cannot itself"),
    ("calender", "two or more"),
])
def test_combined_simulator_errors(parts, message):
    with pytest.raises(ValueError, match=message):
        make_simulator({"kind": "combined", "parts": parts})


def test_combined_simulator_refuses_a_curve_produced_twice():
    simulate = make_simulator({"kind": "combined", "parts": [HERTZ, {**HERTZ, "wall": "Al"}]})
    with pytest.raises(ValueError, match="twice"):
        simulate(table2().materials("artistic"))


@pytest.mark.parametrize("kind", ["calender", "indent"])
@pytest.mark.parametrize("key, value", [("checkpoints", 0), ("checkpoints", -3),
                                        ("checkpoints", "some"), ("checkpoints", 2.5),
                                        ("checkpoints", True), ("capacity_margin", 0.9),
                                        ("capacity_margin", "2"), ("capacity_margin", True)])
def test_bad_replay_settings_are_clear_errors_before_any_run(tmp_path, kind, key, value):
    """Checked before the case is even read (the case file here does not exist)."""
    table = {"kind": kind, "case": "absent.toml", key: value}
    if kind == "calender":
        table["pressures_MPa"] = [10.0]
    with pytest.raises(ValueError, match=key):
        make_simulator(table, tmp_path)


def test_capacity_margin_scales_the_replay_capacities():
    from twin.physics.neighbors import NeighborSpec
    from twin.process.differentiable import (CalenderReplay, _capacities_with_margin,
                                             check_capacity_margin)
    spec = NeighborSpec((), (), (1, 1, 1), candidate_capacity=1000, pair_capacity=300, skin=0.2,
                        wall_capacity=40)
    assert _capacities_with_margin(spec, 50, 2.5) == dict(
        candidate_capacity=2500, pair_capacity=750, wall_capacity=50)   # walls: at most all spheres
    with pytest.raises(ValueError, match="capacity_margin = 0.9"):
        check_capacity_margin(0.9)
    with pytest.raises(ValueError, match="capacity_margin = 0.9"):   # before any forward run
        CalenderReplay(None, [10.0], None, capacity_margin=0.9)


def test_identifiability_uses_reverse_mode_for_a_simulator_without_forward_mode():
    """A simulator whose loops are custom_vjp functions (no jvp) and that has no forward
    version: the Jacobian then comes from reverse mode, and equals the forward-mode one."""
    forward = make_simulator(HERTZ)

    def reverse_only(materials):
        return forward(materials)

    reverse_only.forward_mode = False
    truth = {"AM.E_GPa": 200.0, "AM.ced_J_m3": 6e8}
    x, y = forward(table2().materials("artistic"))["load_displacement"]
    targets = [make_target("load_displacement", x, np.asarray(y) * 1.01)]
    entries = [dict(name="AM.E_GPa", start=300.0, lower=20.0, upper=2000.0),
               dict(name="AM.ced_J_m3", start=3e8, lower=1e7, upper=1e10)]
    analyses = []
    for simulator in (forward, reverse_only):
        objective = Objective(parameter_set(entries), simulator, targets, table2(), "artistic")
        theta = objective.parameters.theta_from_values(truth)
        analyses.append(identifiability(objective, theta))
    np.testing.assert_allclose(analyses[1].jacobian, analyses[0].jacobian, rtol=1e-10)
    assert np.any(analyses[0].jacobian != 0)


def test_the_jacobian_comes_from_the_forward_version_of_a_reverse_only_simulator():
    """The DEM replays have ``forward_mode = False`` and a ``forward`` version with plain loops:
    Jacobians of the residuals then trace that version alone (one tangent per free parameter),
    and match the reverse-mode Jacobian; with more free parameters than residuals, reverse mode
    is the cheaper and is used."""
    hertz = make_simulator(HERTZ)
    traced = []

    def reverse_only(materials):
        traced.append("reverse")
        return hertz(materials)

    def forward_version(materials):
        traced.append("forward")
        return hertz(materials)

    reverse_only.forward_mode, reverse_only.forward = False, forward_version
    x, y = hertz(table2().materials("artistic"))["load_displacement"]
    entries = [dict(name="AM.E_GPa", start=300.0, lower=20.0, upper=2000.0),
               dict(name="AM.ced_J_m3", start=3e8, lower=1e7, upper=1e10)]
    objective = Objective(parameter_set(entries), reverse_only,
                          [make_target("load_displacement", x, np.asarray(y) * 1.01)], table2(),
                          "artistic")
    theta = objective.parameters.start_theta()
    r, jacobian = objective.residuals_and_jacobian(objective.parameters.values, theta)
    assert traced == ["forward"] and jacobian.shape == (len(x), 2)
    objective.forward_simulator = None
    r_reverse, jacobian_reverse = objective.residuals_and_jacobian(objective.parameters.values,
                                                                   theta)
    assert traced == ["forward", "reverse"]
    np.testing.assert_allclose(r, r_reverse, rtol=1e-14)
    np.testing.assert_allclose(jacobian, jacobian_reverse, rtol=1e-10)
    assert np.all(np.asarray(jacobian) != 0)
    objective.forward_simulator = forward_version
    assert objective.forward_jacobian(len(x)) and not objective.forward_jacobian(len(x) + 1)


@pytest.mark.parametrize("path", [CONFIG, TILED_CONFIG], ids=["cell", "tiled"])
def test_dem_twin_config_starts_every_parameter_half_off_its_table2_value(path):
    config = load_config(path)
    names = config.parameters.free_names
    assert sorted(names) == sorted(f"{m}.{p}" for m in ("AM", "CBD")
                                   for p in ("E_GPa", "restitution", "friction", "ced_J_m3"))
    factors = [p.start / config.base.value(p.name) for p in config.parameters.free]
    np.testing.assert_allclose(sorted(factors), [0.5] * 4 + [1.5] * 4, rtol=1e-12)
    assert config.optimizer.name == "lbfgs"
    assert config.optimizer.iterations + config.optimizer.then_iterations <= 50
    parts = config.simulation["parts"]
    assert [p["kind"] for p in parts] == ["calender", "indent"]


@pytest.mark.slow
@pytest.mark.parametrize("path, tiles", [(CONFIG, 1), (TILED_CONFIG, 2)], ids=["cell", "tiled"])
def test_dem_twin_targets_are_the_twin_at_table2(path, tiles, tmp_path):
    """The committed electrode is what the experiment builds, and the committed target CSVs are
    what the simulators give at the Table 2 values (both are regenerated by
    experiments/calibration_twin_experiment.py --make-inputs [--tiles 2 --config ...])."""
    experiment_module().write_cases(tmp_path, tiles)
    data = experiment_module().ELECTRODE_DATA
    built, committed = (read_sphere_data(folder / data) for folder in (tmp_path, path.parent))
    np.testing.assert_array_equal(built.diameter, committed.diameter)
    np.testing.assert_allclose(built.position, committed.position, rtol=0, atol=1e-9)
    config = load_config(path)
    simulate = make_simulator(config.simulation, config.directory)
    curves = simulate(table2().materials(config.mixing))
    stride = experiment_module().TARGET_STRIDE       # the points the targets keep
    for target in config.targets:
        x, y = curves[target.curve]
        every = stride.get(target.curve, 1)
        np.testing.assert_allclose(target.x, x[::every], rtol=0, atol=1e-11)
        np.testing.assert_allclose(target.y, np.asarray(y)[::every], rtol=0, atol=1e-9)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "not yet (measured 2026-12-06): L-BFGS stalls at loss 1.3e-3 (from 0.10) with E_AM +2 % but "
    "E_CBD -11 %, CED_CBD -24 %: restitution and friction are barely constrained by these curves "
    "(relative σ 15-100 % at 1 % noise), and against a smooth loss jax.grad is biased (the "
    "200-step memory) or heavy-tailed (the whole run; measured 2026-12-07); see "
    "experiments/calibration_twin_experiment.py"))
def test_dem_twin_experiment_recovers_the_parameters_or_names_the_free_combination(tmp_path):
    """L-BFGS from 50 % off, ≤ 50 iterations: every parameter within 5 % of its Table 2 value,
    except those the identifiability analysis at the truth puts on an unconstrained direction
    (the experiment reports the eigenvector). Strict xfail: it must start passing once the
    gradient follows the loss's slope (issue #5)."""
    experiment = experiment_module()
    assert experiment.main(["--fit", "lbfgs", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "twin_experiment.json").read_text())
    run = report["fits"]["lbfgs"]
    assert run["iterations"] <= 50
    assert run["loss"] < 1e-3 * run["loss_start"]
    unconstrained = set(report["identifiability_at_truth"]["unconstrained_names"])
    for name, row in run["recovery"].items():
        if name not in unconstrained:
            assert abs(row["relative_error"]) <= experiment.RECOVERY_TOLERANCE, (name, row)
    assert jax.config.jax_enable_x64


def test_benchmark_costs_each_part_of_a_two_optimiser_fit_as_its_optimiser():
    """L-BFGS (3 iterations, 5 value-and-gradients at 6 losses each) then Levenberg–Marquardt
    (8 tangents at 14 losses' time, 3 trials: a fresh Jacobian, a kept one, a fresh one)."""
    benchmark = load_script("benchmarks/calibration.py")
    costs = {"lbfgs": {"forward_equivalents": 6.0},
             "levenberg-marquardt": {"jacobian_in_losses": 14.0, "passes": 8, "trials": 3}}
    evaluations = [2, 4, 5, 5 + 11, 5 + 11 + 3, 5 + 11 + 3 + 11]
    rows = [{"optimizer": "lbfgs" if k < 3 else "levenberg-marquardt", "evaluations": e}
            for k, e in enumerate(evaluations)]
    assert benchmark.simulations_through(costs, rows[:2]) == 4 * 6.0
    assert benchmark.simulations_through(costs, rows) == pytest.approx(
        5 * 6.0 + 2 * 14.0 + 3 * 3)
    # smoothed LM, 2 pairs: the plain Jacobian at its start, then 4 samples per residual and
    # one plain loss a row (fresh Jacobian, kept one)
    costs["levenberg-marquardt"]["samples"] = 4
    evaluations = [2, 4, 5, 5 + 8 + 4 * 11 + 1, 5 + 8 + 4 * 11 + 1 + 4 * 3 + 1]
    rows = [{"optimizer": "lbfgs" if k < 3 else "levenberg-marquardt", "evaluations": e}
            for k, e in enumerate(evaluations)]
    assert benchmark.simulations_through(costs, rows) == pytest.approx(
        5 * 6.0 + 5 * 14.0 + 2 * (4 * 3 + 1))


@pytest.mark.parametrize("optimizer", ["lbfgs", "levenberg-marquardt"])
def test_benchmark_counts_simulations_to_the_gradient_fit_loss(tmp_path, optimizer):
    """benchmarks/calibration.py on the Hertz toy: L-BFGS and Levenberg–Marquardt reach
    rounding-level loss in a few dozen simulations; the derivative-free methods are counted
    against that loss."""
    pytest.importorskip("cma")
    benchmark = load_script("benchmarks/calibration.py")
    out = tmp_path / "bench.json"
    assert benchmark.main(["--config", str(ROOT / "calibrate" / "examples" / "hertz_twin.toml"),
                           "--budget", "80", "--optimizer", optimizer, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    gradient = result["gradient"]
    assert gradient["loss"] < 1e-12 * gradient["losses"][0]
    # counted up to the first iteration at or below the target, each at its measured cost
    cost = result["costs"][optimizer]
    if optimizer == "lbfgs":
        whole_fit = gradient["evaluations"] * cost["forward_equivalents"]
    else:
        trial_losses = gradient["iterations"] * cost["trials"]
        jacobians = (gradient["evaluations"] - trial_losses) / cost["passes"]
        assert jacobians == int(jacobians) and 1 <= jacobians <= gradient["iterations"]
        whole_fit = jacobians * cost["jacobian_in_losses"] + trial_losses
    assert 0 < gradient["simulations"] <= whole_fit * (1 + 1e-12)
    for name in ("nelder-mead", "cma-es"):
        method = result["methods"][name]
        assert method["evaluations"] <= 80 + 20          # CMA-ES finishes its last generation
        history = method["best_loss_history"]
        assert history == sorted(history, reverse=True)
        # within 80 simulations neither reaches the gradient fit's rounding-level loss
        assert method["simulations_to_target"] is None
        assert method["best_loss"] > result["target_loss"]
