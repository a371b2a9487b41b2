"""Multi-start fits: several starting points in the bounds, the best fit and the spread.

Start 0 is the configured start; starts 1..n-1 are drawn uniformly on each free parameter's
transform scale (log-uniform for "log" parameters) with the seed of ``[optimizer]``
(:meth:`calibrate.parameters.ParameterSet.sample_theta`).

* Adam with ``vmap = true``: all starts advance together, one ``jax.vmap``-ed, jit-compiled step
  per iteration. With several devices (``len(jax.devices()) > 1``) the batch is sharded over a 1-D
  mesh of all devices (``NamedSharding(Mesh(devices, ("starts",)), PartitionSpec("starts"))``),
  padded with copies of start 0 to a multiple of the device count (the copies are dropped). A
  start whose loss turns NaN/inf is frozen at its last finite point and reported as failed; the
  others go on. One checkpoint holds the whole batch.
* L-BFGS (its line search differs per start), ``vmap = false``, a second optimiser (``then``),
  smoothing (its perturbations are drawn at each start) or a simulator that cannot be traced
  (``traceable = False``): the starts run one after the other with :func:`calibrate.fit.fit`, each with its own checkpoint folder ``starts/NNN``.

The spread is the min/max/mean/standard deviation of each free parameter over the starts that
did not fail: a wide spread among starts of equal loss is a sign of an unidentified parameter
(:mod:`calibrate.identifiability` says which combination).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from calibrate.fit import (CHECKPOINT, NonFiniteLoss, OptimizerSettings, fit, free_values,
                           history_row, initial_state, load_checkpoint, make_optimizer, make_step,
                           problem_meta, save_checkpoint, step_key, write_history)
from calibrate.loss import Objective


@dataclass
class MultiStartResult:
    """All starts (unconstrained ``starts`` and final ``theta``, shape (n, n_free)), their final
    ``losses`` (the last finite loss for a failed start), why each failed (None if it did not),
    the ``best`` start's index, values and loss, the ``spread`` per parameter, the history (best
    start per iteration for a batched run, the best start's own history otherwise), the number of
    devices the batch ran on and the total number of loss evaluations."""

    starts: np.ndarray
    theta: np.ndarray
    losses: np.ndarray
    failed: list
    best: int
    values: dict
    loss: float
    spread: dict
    history: list
    devices: int
    evaluations: int


def start_points(parameters, n: int, seed: int) -> np.ndarray:
    """(n, n_free) unconstrained starts: the configured start, then n - 1 seeded samples."""
    first = np.asarray(parameters.start_theta())[None, :]
    return np.concatenate([first, parameters.sample_theta(n - 1, seed)]) if n > 1 else first


def multistart(objective: Objective, settings: OptimizerSettings, out=None, resume=False,
               progress=None) -> MultiStartResult:
    """Run ``settings.starts`` fits (see module docstring) and summarise them."""
    starts = start_points(objective.parameters, settings.starts, settings.seed)
    if (settings.name == "adam" and settings.vmap and objective.traceable and not settings.then
            and not settings.smoothing_pairs):
        return _batched_adam(objective, settings, starts, out, resume, progress)
    return _one_after_another(objective, settings, starts, out, resume, progress)


def _one_after_another(objective, settings, starts, out, resume, progress):
    thetas, losses, failed, histories, evaluations = [], [], [], [], 0
    for k, theta0 in enumerate(starts):
        folder = None if out is None else Path(out) / "starts" / f"{k:03d}"
        labelled = None if progress is None else (lambda row, k=k: progress({**row, "start": k}))
        try:
            result = fit(objective, settings, folder,
                         resume and folder is not None and (folder / CHECKPOINT).is_file(),
                         labelled, theta0)
        except NonFiniteLoss as error:
            good = error.last_good
            thetas.append(np.asarray(good["theta"]) if good else theta0)
            losses.append(good["loss"] if good else math.nan)
            failed.append(str(error))
            histories.append([])
            continue
        thetas.append(result.theta)
        losses.append(result.loss)
        failed.append(None)
        histories.append(result.history)
        evaluations += result.evaluations
    summary = _summary(objective, starts, np.asarray(thetas), np.asarray(losses), failed, [], 1,
                       evaluations)
    summary.history = histories[summary.best]
    return summary


def _sharding():
    devices = jax.devices()
    if len(devices) == 1:
        return None, 1
    mesh = Mesh(np.array(devices), ("starts",))
    return NamedSharding(mesh, PartitionSpec("starts")), len(devices)


def _batched_functions(objective, settings):
    """(optimizer, step, jitted vmapped guarded step, jitted vmapped loss), cached on the
    objective. The guarded step freezes a start once its loss or gradient is not finite."""
    key = ("batched",) + step_key(settings)
    if key in objective.compiled_steps:
        return objective.compiled_steps[key]
    optimizer = make_optimizer(settings)
    step = make_step(objective.loss, optimizer, "adam")

    def guarded(theta, state, good_theta, good_loss, failed_at, iteration):
        new_theta, new_state, value, grad_norm, _, _ = step(theta, state)
        failed_at = jnp.where((failed_at < 0) & ~(jnp.isfinite(value) & jnp.isfinite(grad_norm)),
                              iteration, failed_at)
        frozen = failed_at >= 0
        keep = lambda old, new: jnp.where(frozen, old, new)   # noqa: E731
        return (keep(theta, new_theta), jax.tree.map(keep, state, new_state),
                keep(good_theta, theta), keep(good_loss, value), failed_at, value, grad_norm)

    objective.compiled_steps[key] = (
        optimizer, step, jax.jit(jax.vmap(guarded, in_axes=(0, 0, 0, 0, 0, None))),
        jax.jit(jax.vmap(objective.loss)))
    return objective.compiled_steps[key]


def _batched_adam(objective, settings, starts, out, resume, progress):
    parameters = objective.parameters
    n = len(starts)
    sharding, n_devices = _sharding()
    padded = np.concatenate([starts, np.repeat(starts[:1], -n % n_devices, axis=0)])
    optimizer, step, batched, batched_loss = _batched_functions(objective, settings)
    theta = jnp.asarray(padded)
    state = jax.vmap(lambda t: initial_state(optimizer, step, t))(theta)
    carry = (theta, state, theta, jnp.full(len(padded), jnp.inf), jnp.full(len(padded), -1))
    meta = problem_meta(objective, settings, {"starts": padded.tolist()})
    first, history = 0, []
    if resume:
        first, carry, history, _ = load_checkpoint(out, carry, meta)
    if sharding is not None:
        carry = jax.device_put(carry, sharding)
    seconds = history[-1]["seconds"] if history else 0.0
    for iteration in range(first, settings.iterations):
        start = time.perf_counter()
        *carry, values, grad_norms = batched(*carry, iteration)
        carry = tuple(carry)
        values, grad_norms = np.asarray(values)[:n], np.asarray(grad_norms)[:n]
        seconds += time.perf_counter() - start
        ok = np.isfinite(values) & (np.asarray(carry[4])[:n] < 0)
        best = int(np.argmin(np.where(ok, values, np.inf))) if ok.any() else 0
        row = history_row(parameters, iteration, carry[2][best], values[best], grad_norms[best],
                          n * (iteration + 1), seconds)
        row["median_loss"] = float(np.median(values[ok])) if ok.any() else math.nan
        row["n_failed"] = int(n - ok.sum())
        history.append(row)
        if out is not None:
            save_checkpoint(out, iteration + 1, carry, history, meta)
            write_history(out, history)
        if progress is not None:
            progress(row)
    theta, _, good_theta, good_loss, failed_at = carry
    theta, good_theta, good_loss, failed_at = (np.asarray(a)[:n] for a in
                                               (theta, good_theta, good_loss, failed_at))
    final = np.asarray(batched_loss(jnp.asarray(theta)))
    failed_at = np.where((failed_at < 0) & ~np.isfinite(final), settings.iterations, failed_at)
    frozen = failed_at >= 0
    thetas = np.where(frozen[:, None], good_theta, theta)
    losses = np.where(frozen, good_loss, final)
    failed = [f"the loss became NaN/inf at iteration {int(k)}; kept its last finite point"
              if k >= 0 else None for k in failed_at]
    return _summary(objective, starts, thetas, losses, failed, history, n_devices,
                    n * (settings.iterations + 1))


def _summary(objective, starts, thetas, losses, failed, history, devices, evaluations):
    parameters = objective.parameters
    ok = np.array([f is None for f in failed]) & np.isfinite(losses)
    if not ok.any():
        raise ValueError(f"all {len(starts)} starts failed: {failed[0]}")
    best = int(np.argmin(np.where(ok, losses, np.inf)))
    physical = np.array([list(free_values(parameters, t).values()) for t in thetas[ok]])
    spread = {name: {"min": float(column.min()), "max": float(column.max()),
                     "mean": float(column.mean()), "std": float(column.std())}
              for name, column in zip(parameters.free_names, physical.T)}
    return MultiStartResult(np.asarray(starts), np.asarray(thetas), np.asarray(losses, float),
                            failed, best, free_values(parameters, thetas[best]),
                            float(losses[best]), spread, history, devices, evaluations)
