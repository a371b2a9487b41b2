"""A calibration from a config to an output folder: fit (or multi-start), identifiability, files.

The folder receives

* ``config.toml``: a copy of the config;
* ``checkpoint.npz``, ``history.json``, ``history.csv``: written every iteration
  (:mod:`calibrate.fit`; a multi-start of L-BFGS has them per start under ``starts/NNN``);
* ``fit.json``: settings, start and fitted parameters with units, intervals, losses, evaluation
  count, the multi-start summary and the identifiability analysis;
* ``parameters.csv``: one row per parameter (start, bounds, fitted, relative σ, 95 % interval);
* ``fit.png``: each target with the simulated curve at the start and at the fit, and the loss
  history.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np

from calibrate.config import Config, load_config
from calibrate.fit import fit, progress_printer, write_history
from calibrate.identifiability import identifiability
from calibrate.loss import Objective
from calibrate.multistart import multistart
from calibrate.simulators import make_simulator


def objective_from_config(config: Config) -> Objective:
    simulator = make_simulator(config.simulation, config.directory)
    return Objective(config.parameters, simulator, config.targets, config.base, config.mixing)


def run_calibration(config_path, out, resume: bool = False, print_line=None) -> dict:
    """Calibrate as ``config_path`` says, write the folder ``out`` (module docstring); return
    the content of ``fit.json``. ``print_line``: where the progress lines go (None: nowhere)."""
    config = load_config(config_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if Path(config_path).resolve() != (out / "config.toml").resolve():
        shutil.copyfile(config_path, out / "config.toml")
    objective = objective_from_config(config)
    parameters, settings = config.parameters, config.optimizer
    progress = None if print_line is None else progress_printer(parameters, print_line)
    theta_start = parameters.start_theta()
    loss_start = float(objective.loss_jit(theta_start))
    clock = time.perf_counter()
    summary = {"config": str(Path(config_path).resolve()), "optimizer": vars(settings).copy(),
               "simulation": config.simulation, "mixing": config.mixing, "loss_start": loss_start,
               "collapsing_contacts_start": warn_collapsing(objective, theta_start, "start",
                                                            print_line)}
    if settings.starts == 1:
        result = fit(objective, settings, out, resume, progress)
        theta, history = result.theta, result.history
        summary.update(loss=result.loss, iterations=result.iterations,
                       evaluations=result.evaluations, stopped=result.stopped)
    else:
        result = multistart(objective, settings, out, resume, progress)
        theta, history = result.theta[result.best], result.history
        write_history(out, history)
        summary.update(loss=result.loss, iterations=len(history), evaluations=result.evaluations,
                       multistart={"best": result.best, "devices": result.devices,
                                   "losses": result.losses.tolist(), "failed": result.failed,
                                   "spread": result.spread})
    summary["wall_seconds"] = time.perf_counter() - clock
    summary["collapsing_contacts_fit"] = warn_collapsing(objective, theta, "fit", print_line)
    analysis = identifiability(objective, theta, config.identifiability.get("sigma2"),
                               config.identifiability.get("threshold", 1e-8))
    summary["identifiability"] = analysis.as_dict()
    summary["parameters"] = parameter_rows(config, theta, analysis)
    (out / "fit.json").write_text(json.dumps(summary, indent=1, default=_plain))
    write_parameters_csv(out / "parameters.csv", summary["parameters"])
    plot_fit(out / "fit.png", objective, theta_start, theta, history)
    return summary


def warn_collapsing(objective: Objective, theta, label: str, print_line=None) -> list[str]:
    """:meth:`Objective.collapsing_contacts` at ``theta``, each printed as a warning."""
    lines = objective.collapsing_contacts(objective.parameters.values(theta))
    for line in lines:
        if print_line is not None:
            print_line(f"warning: at the {label} point cohesion collapses the packing: {line}")
    return lines


def parameter_rows(config: Config, theta, analysis) -> list:
    values = config.parameters.values(theta)
    free = {name: k for k, name in enumerate(analysis.names)}
    rows = []
    for p in config.parameters.parameters:
        k = free.get(p.name)
        std = None if k is None else analysis.relative_std[k]
        rows.append({"name": p.name, "unit": p.unit, "free": p.free, "start": p.start,
                     "lower": p.lower, "upper": p.upper, "fitted": float(values[p.name]),
                     "relative_std": None if std is None or not np.isfinite(std) else float(std),
                     "ci95_lower": None if k is None else _finite(analysis.ci_lower[k]),
                     "ci95_upper": None if k is None else _finite(analysis.ci_upper[k]),
                     "constrained": None if k is None else bool(np.isfinite(std))})
    return rows


def write_parameters_csv(path, rows):
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_fit(path, objective: Objective, theta_start, theta_fit, history):
    """Targets with the simulated curves at the start and at the fit; loss per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start, fitted = objective.fitted_curves(theta_start), objective.fitted_curves(theta_fit)
    n = len(objective.targets)
    figure, axes = plt.subplots(1, n + 1, figsize=(4.5 * (n + 1), 3.8), squeeze=False)
    for axis, target in zip(axes[0], objective.targets):
        axis.plot(target.x, target.y, "o", ms=4, label="target")
        axis.plot(*start[target.curve], "--", color="grey", label="start")
        axis.plot(*fitted[target.curve], "-", color="C3", label="fit")
        axis.set_xlabel(target.columns[0])
        axis.set_ylabel(target.columns[1])
        axis.set_title(target.curve)
        axis.legend()
    loss_axis = axes[0][-1]
    if history:
        loss_axis.semilogy([row["iteration"] for row in history],
                           [row["loss"] for row in history], "-")
    loss_axis.set_xlabel("iteration")
    loss_axis.set_ylabel("loss")
    loss_axis.set_title("loss history")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _finite(value):
    return float(value) if np.isfinite(value) else None


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
