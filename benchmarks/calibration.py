"""Gradient-based against derivative-free calibration on the same problem and budget (issue #5
item 2): how many simulations each needs to reach the loss of the gradient fit.

For a calibration config (default: the DEM twin experiment, calibrate/examples/dem_twin.toml),
from the config's start, in the unconstrained coordinates θ of calibrate.parameters:

* **gradient**: the config's optimiser (or ``--optimizer``) for its iteration budget; it reaches
  the loss L* after E evaluations, each costing c forward simulations, measured here after
  compilation: for L-BFGS and Adam an evaluation is a value-and-gradient,
  c = t(value and gradient) / t(loss) (the reverse pass re-runs or stores the trajectory, so
  c > 1), and its cost is c·E simulations; for Levenberg–Marquardt an iteration is a residual
  Jacobian (counted as p evaluations, its derivative passes) or none (a kept one, after a
  rejected step), and its k trial losses (``damping_trials``, calibrate.fit), so after n
  iterations and E evaluations it has spent (E − k·n)/p Jacobians and k·n losses:
  (E − k·n)/p · t(Jacobian)/t(loss) + k·n simulations. A smoothed optimiser
  (``smoothing_pairs`` P, calibrate.fit) spends S = 2P simulations per residual and one
  unsmoothed loss per iteration: (E − (S·k + 1)·n)/p Jacobians, (S·k + 1)·n losses, and for
  L-BFGS or Adam c·(E − n) + n. With ``then`` in the config (a second optimiser from the first
  one's last iterate, the smoothed one if any) each part is costed as its optimiser.
* **Nelder–Mead** (scipy.optimize.minimize, adaptive simplex) and **CMA-ES** (the ``cma``
  package, σ0 = ``--sigma`` in θ), each with at most ``--budget`` loss evaluations;
* the number of simulations each needed until its best loss was ≤ L* (or ``--target``), and the
  ratio to the gradient method's c·E ("> budget" if never).

    python benchmarks/calibration.py                                  # DEM twin (slow: hours)
    python benchmarks/calibration.py --config calibrate/examples/hertz_twin.toml --budget 2000

Float64. Prints one line per method and the ratios; writes ``--out`` (JSON).
Needs ``cma`` (a benchmark dependency, not a runtime one).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class CountingLoss:
    """The loss as a numpy function of θ that records every evaluation (value and best so far)
    and prints the best loss every ``report_every`` evaluations."""

    def __init__(self, objective, label: str, report_every: int = 25):
        self.loss = objective.loss_jit
        self.values = []
        self.label, self.report_every = label, report_every

    def __call__(self, theta) -> float:
        value = float(self.loss(np.asarray(theta, dtype=float)))
        self.values.append(value if np.isfinite(value) else np.inf)
        if len(self.values) % self.report_every == 0:
            print(f"  {self.label}: {len(self.values)} simulations, best loss "
                  f"{min(self.values):.4e}", flush=True)
        return self.values[-1]

    def evaluations_to(self, target: float):
        """Evaluations until the best loss was ≤ ``target`` (None: never)."""
        reached = np.flatnonzero(np.minimum.accumulate(self.values) <= target)
        return int(reached[0]) + 1 if reached.size else None


def seconds_per_call(function, theta, repeats: int = 2) -> float:
    import jax
    jax.block_until_ready(function(theta))                 # compile
    clock = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(function(theta))
    return (time.perf_counter() - clock) / repeats


def gradient_cost(objective, theta, settings) -> dict:
    """Seconds of a loss and of the optimiser's derivative (a value-and-gradient, or for
    Levenberg–Marquardt the residual Jacobian) at ``theta``, and what an evaluation costs in
    simulations (module docstring)."""
    import jax
    loss = seconds_per_call(objective.loss_jit, theta)
    samples = 2 * settings.smoothing_pairs or 1
    if settings.name != "levenberg-marquardt":
        both = seconds_per_call(jax.jit(jax.value_and_grad(objective.loss)), theta)
        return {"loss_seconds": loss, "value_and_grad_seconds": both,
                "forward_equivalents": both / loss, "samples": samples}
    jacobian = seconds_per_call(jax.jit(functools.partial(
        objective.residuals_and_jacobian, objective.parameters.values)), theta)
    return {"loss_seconds": loss, "jacobian_seconds": jacobian,
            "forward_jacobian": objective.forward_jacobian(len(theta)),
            "jacobian_in_losses": jacobian / loss,
            "passes": objective.jacobian_passes(len(theta)), "trials": settings.damping_trials,
            "samples": samples}


def simulations_spent(cost: dict, evaluations: int, iterations: int) -> float:
    """Simulations' time of ``evaluations`` over ``iterations`` iterations (module
    docstring)."""
    samples = cost.get("samples", 1)
    plain_losses = iterations if samples > 1 else 0     # the history's unsmoothed loss
    if "jacobian_in_losses" not in cost:
        return (evaluations - plain_losses) * cost["forward_equivalents"] + plain_losses
    losses = iterations * samples * cost["trials"] + plain_losses
    return (evaluations - losses) / cost["passes"] * cost["jacobian_in_losses"] + losses


def run_gradient(objective, settings) -> dict:
    from calibrate.fit import fit, progress_printer
    result = fit(objective, settings, progress=progress_printer(objective.parameters))
    # Row i holds the loss at iterate i and the evaluations through iteration i + 1, which
    # found the last iterate's loss too (fit's re-evaluation at the end is not counted).
    return {"loss": result.loss, "iterations": result.iterations,
            "evaluations": result.history[-1]["evaluations"],
            "losses": [row["loss"] for row in result.history] + [result.loss],
            "rows": [{k: row[k] for k in ("optimizer", "evaluations")} for row in result.history]}


def simulations_through(costs: dict, rows: list) -> float:
    """Simulations' time of the iterations of ``rows`` (history rows: optimiser, cumulative
    evaluations), each part costed as its optimiser (module docstring)."""
    total, counted = 0.0, 0
    for name, part in itertools.groupby(rows, key=lambda row: row["optimizer"]):
        part = list(part)
        total += simulations_spent(costs[name], part[-1]["evaluations"] - counted, len(part))
        counted = part[-1]["evaluations"]
    return total


def run_nelder_mead(objective, theta0, budget: int) -> CountingLoss:
    from scipy.optimize import minimize
    counted = CountingLoss(objective, "nelder-mead")
    minimize(counted, np.asarray(theta0), method="Nelder-Mead",
             options={"maxfev": budget, "xatol": 1e-10, "fatol": 1e-30, "adaptive": True})
    return counted


def run_cma(objective, theta0, budget: int, sigma: float, seed: int) -> CountingLoss:
    import cma
    counted = CountingLoss(objective, "cma-es")
    strategy = cma.CMAEvolutionStrategy(np.asarray(theta0), sigma,
                                        {"maxfevals": budget, "seed": seed, "verbose": -9,
                                         "tolfun": 0.0, "tolx": 1e-14})
    while not strategy.stop():
        candidates = strategy.ask()
        strategy.tell(candidates, [counted(x) for x in candidates])
    return counted


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "calibrate" / "examples" / "dem_twin.toml"))
    parser.add_argument("--budget", type=int, default=500,
                        help="loss evaluations for each derivative-free method")
    parser.add_argument("--sigma", type=float, default=0.5, help="CMA-ES initial step in θ")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", type=float, default=None,
                        help="loss to reach (default: the gradient fit's final loss)")
    parser.add_argument("--methods", nargs="+", default=["nelder-mead", "cma-es"],
                        choices=["nelder-mead", "cma-es"])
    parser.add_argument("--optimizer", default=None,
                        choices=["adam", "lbfgs", "levenberg-marquardt"],
                        help="gradient method (default: the config's [optimizer] name)")
    parser.add_argument("--out", default="benchmarks/out/calibration.json")
    args = parser.parse_args(argv)

    import twin  # noqa: F401  (float64)
    from calibrate.config import load_config
    from calibrate.fit import fit_parts
    from calibrate.run import objective_from_config

    config = load_config(args.config)
    settings = config.optimizer if args.optimizer is None else \
        dataclasses.replace(config.optimizer, name=args.optimizer)
    if settings.then == settings.name:
        raise SystemExit(f"--config: then = {settings.then!r} repeats the first optimiser; the "
                         "benchmark costs the parts by optimiser name")
    objective = objective_from_config(config)
    theta0 = objective.parameters.start_theta()
    print("timing a loss and the optimiser's derivative at the start (compiles both) ...",
          flush=True)
    costs = {part.name: gradient_cost(objective, theta0, part) for part in fit_parts(settings)}
    gradient = run_gradient(objective, settings)
    target = gradient["loss"] if args.target is None else args.target
    reached = [k for k, loss in enumerate(gradient["losses"]) if loss <= target]
    rows = gradient["rows"][:reached[0] + 1] if reached else gradient["rows"]
    gradient["simulations"] = simulations_through(costs, rows)
    print(f"{settings.name}: loss {gradient['losses'][0]:.4e} -> {gradient['loss']:.4e} "
          f"in {gradient['iterations']} iterations, {gradient['evaluations']} evaluations; "
          f"{gradient['simulations']:.0f} simulations' time to the target loss {target:.4e}",
          flush=True)
    methods = {}
    for name in args.methods:
        clock = time.perf_counter()
        counted = run_nelder_mead(objective, theta0, args.budget) if name == "nelder-mead" \
            else run_cma(objective, theta0, args.budget, args.sigma, args.seed)
        needed = counted.evaluations_to(target)
        ratio = None if needed is None else needed / gradient["simulations"]
        methods[name] = {"evaluations": len(counted.values), "best_loss": min(counted.values),
                         "simulations_to_target": needed, "ratio_to_gradient": ratio,
                         "wall_seconds": time.perf_counter() - clock,
                         "best_loss_history": np.minimum.accumulate(counted.values).tolist()}
        if needed is None:
            text = (f"not reached in {len(counted.values)} simulations (best "
                    f"{min(counted.values):.4e}): ratio > "
                    f"{len(counted.values) / gradient['simulations']:.1f}")
        else:
            text = f"{needed} simulations: ratio {ratio:.1f}"
        print(f"{name}: {text}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": args.config, "precision": "float64",
                               "machine": platform.processor() or platform.machine(),
                               "costs": costs, "target_loss": target, "gradient": gradient,
                               "budget": args.budget, "methods": methods}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
