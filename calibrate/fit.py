"""The optimisation loop: Adam (clipped, scheduled) or L-BFGS (zoom line search), via optax, or
Levenberg–Marquardt on the residuals.

One iteration = one jit-compiled step ``(theta, state) -> (theta', state', loss(theta), |∇loss|,
evaluations)``, driven by a Python loop that records the history, prints progress and writes a
checkpoint after every iteration. ``theta`` is the unconstrained vector of the free parameters
(:class:`calibrate.parameters.ParameterSet`).

* Adam: ``optax.chain(optax.clip_by_global_norm(clip), optax.adam(schedule))``, the learning rate
  constant, cosine-decayed or exponentially decayed to ``decay`` × itself over ``iterations``.
  One loss-and-gradient evaluation per iteration.
* L-BFGS: ``optax.lbfgs(memory_size)`` with its zoom line search (Wolfe conditions); learning
  rate, schedule and clip are not used (the line search sets the step). Evaluations per iteration
  = line-search steps (plus one for the very first gradient).
* Levenberg–Marquardt (``"levenberg-marquardt"``): the Gauss–Newton step of the least-squares
  loss L = |r|² from the Jacobian J of the residuals
  (:meth:`~calibrate.loss.Objective.residuals_and_jacobian`: one simulation carrying a
  forward-mode tangent per free parameter, or one backward pass per residual), damped:
  (JᵀJ + μI) δ = −Jᵀr, μ0 = ``damping`` · max diag(JᵀJ) (1e-3 for a start believed close, up
  to 1 for one far off). The step is taken if the gain ratio
  ρ = (L(θ) − L(θ + δ)) / (|r|² − |r + Jδ|²) > 0; μ then shrinks by max(1/3, 1 − (2ρ − 1)³),
  else it doubles (Madsen, Nielsen & Tingleff, "Methods for non-linear least squares problems",
  DTU 2004, §3.2 and Algorithm 3.16). The isotropic damping keeps directions the
  data hardly see from taking huge steps (Marquardt's diag(JᵀJ) scaling sent the twin
  experiment's frictions to their bounds in one step). A zero-residual fit converges
  quadratically where Gauss–Newton holds, whatever the conditioning that slows a gradient method
  (the twin experiment's Fisher eigenvalues span 4e4). Evaluations per iteration = derivative
  passes + 1 (tangents or backward passes; the trial loss one more); after a rejected step the
  Jacobian at the unchanged θ is reused with Broyden's rank-one secant update
  J ← J + (r(θ + δ) − r(θ) − Jδ) δᵀ / δᵀδ (Madsen, Nielsen & Tingleff §3.4), which makes the
  linear model exact along the rejected step, and the iteration costs its trial loss alone.
  ``damping_trials`` > 1 tries several steps of the same Jacobian, at dampings μ·10^k for k = 0,
  −1, 1, −2, … (that many), and takes the one with the lowest loss (its gain ratio then sets μ);
  a rejection is judged, and the secant update made, on the k = 0 step. Each trial costs one
  loss, a small part of a Jacobian (8 tangents ≈ 14 losses in the twin experiment). This guards
  against a loss with dense kinks, as the DEM replays have (twin/process/differentiable.py):
  there a short step meets the local slope of one smooth piece, which can differ from the
  trend, and is rejected, and the classical rule then only raises μ, shortening the steps
  further, while the long Gauss–Newton step, which follows the trend, would be taken.

Smoothing (``smoothing_pairs`` K > 0): the optimiser works on the residuals averaged over 2K
fixed antithetic perturbations ±z_k of θ (:meth:`calibrate.loss.Objective.smoothed`), drawn
once, at the optimiser's start θ0, from the Gauss–Newton posterior N(0, σ²(JᵀJ)⁻¹) with
σ² = ``smoothing_sigma2`` (the variance of the normalised residuals whose resolution the fit
needs, e.g. the ``[identifiability]`` noise): along each eigenvector of JᵀJ (eigenvalue λ)
the spread is min(σ/√λ, ``SMOOTHING_CAP``). The perturbations are then as wide as the data
resolve the parameters in each direction: a replay's kinks shorter than that average out
(where the single loss has bumps of ~1e-4 across the weak friction direction of the twin
experiment, benchmarks/RESULTS.md, session 16), while the quadratic bowl's minimum stays put.
Each residual then costs 2K simulations, and the history's ``loss`` is the unsmoothed loss
(one simulation more per iteration), the optimiser's own in ``smoothed_loss``. With ``then``,
the smoothing is the second optimiser's (the first one's long steps need none).

Two optimisers in one fit: ``then`` names a second one that goes on from the first one's last
iterate for ``then_iterations`` (e.g. L-BFGS while its steps are long, then Levenberg–Marquardt,
whose Gauss–Newton steps are not slowed by the conditioning); one history, its rows naming their
optimiser, the second part's checkpoint in ``out/then``.

Checkpoint: ``checkpoint.npz`` in the output folder, one atomic file holding the iteration, the
flattened leaves of (theta, optimiser state), the history and the settings it was made with;
``resume=True`` restores it and continues exactly where it stopped (same arithmetic: an
interrupted fit resumed equals an uninterrupted one). ``history.json`` and ``history.csv`` are
rewritten every iteration.

A loss or gradient that turns NaN/inf stops the fit with :class:`NonFiniteLoss`, which carries
the iteration and the last parameters with a finite loss.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from calibrate.loss import Objective

OPTIMIZERS = ("adam", "lbfgs", "levenberg-marquardt")
SCHEDULES = ("constant", "cosine", "exponential")
CHECKPOINT = "checkpoint.npz"
LARGEST_DAMPING = 1e12       # Levenberg–Marquardt μ / max diag(JᵀJ) beyond which no step
                             # decreases the loss: the fit stops
BUDGETS = ("iterations", "then_iterations")   # settings a resumed fit may change (grow)
SMOOTHING_CAP = 0.5          # largest smoothing spread along one eigenvector of JᵀJ, in θ
DAMPING_RUNG = 10.0          # ratio of neighbouring trial dampings (``damping_trials``)


@dataclass(frozen=True)
class OptimizerSettings:
    """The ``[optimizer]`` table.

    Attributes:
        name: ``"adam"``, ``"lbfgs"`` or ``"levenberg-marquardt"``.
        learning_rate: Adam's initial step in the unconstrained coordinates.
        iterations: iteration budget (gradient steps).
        clip: global gradient-norm clip for Adam (0 = none).
        schedule: ``"constant"``, ``"cosine"`` or ``"exponential"`` (Adam).
        decay: final learning rate as a fraction of the initial one (cosine, exponential).
        tolerance: stop when the gradient norm (unconstrained coordinates, dimensionless loss)
            falls below it (0 = run the whole budget).
        memory_size: L-BFGS history length.
        damping: Levenberg–Marquardt's initial damping, relative to max diag(JᵀJ).
        damping_trials: Levenberg–Marquardt's trial steps per Jacobian, at dampings μ·10^k,
            k = 0, −1, 1, −2, … (module docstring); 1 = the classical algorithm.
        then: a second optimiser (``OPTIMIZERS``) that goes on from the first one's last iterate
            for ``then_iterations`` more iterations ("" = none), e.g. L-BFGS's descent, then
            Levenberg–Marquardt where its steps shrink (:func:`fit`).
        then_iterations: the second optimiser's iteration budget.
        smoothing_pairs: K antithetic pairs of perturbations that the (last) optimiser's
            residuals are averaged over (0 = none; module docstring).
        smoothing_sigma2: residual variance σ² that sets the perturbations' spread
            N(0, σ²(JᵀJ)⁻¹) (needed when smoothing_pairs > 0).
        starts: number of starts (1: the configured start; more: :mod:`calibrate.multistart`).
        seed: seed of the sampled starts.
        vmap: run Adam's starts together with ``jax.vmap`` (needs a vmappable simulator).
    """

    name: str = "adam"
    learning_rate: float = 0.05
    iterations: int = 50
    clip: float = 1.0
    schedule: str = "cosine"
    decay: float = 0.01
    tolerance: float = 1e-10
    memory_size: int = 10
    damping: float = 1e-3
    damping_trials: int = 1
    then: str = ""
    then_iterations: int = 0
    smoothing_pairs: int = 0
    smoothing_sigma2: float = 0.0
    starts: int = 1
    seed: int = 0
    vmap: bool = True

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"[optimizer] name {self.name!r}: choose one of {OPTIMIZERS}")
        if self.then not in ("", *OPTIMIZERS):
            raise ValueError(f"[optimizer] then {self.then!r}: choose one of {OPTIMIZERS}, or "
                             "leave it out for one optimiser")
        if self.then and self.then_iterations < 1:
            raise ValueError(f"[optimizer] then = {self.then!r} needs then_iterations >= 1, not "
                             f"{self.then_iterations!r}")
        if self.smoothing_pairs > 0 and not self.smoothing_sigma2 > 0:
            raise ValueError(f"[optimizer] smoothing_pairs = {self.smoothing_pairs} needs "
                             "smoothing_sigma2 > 0, the variance of the normalised residuals "
                             "that sets the perturbations' spread (e.g. [identifiability] sigma2)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"[optimizer] schedule {self.schedule!r}: choose one of {SCHEDULES}")
        checks = [("learning_rate", self.learning_rate > 0), ("iterations", self.iterations >= 1),
                  ("clip", self.clip >= 0), ("decay", 0 < self.decay <= 1),
                  ("tolerance", self.tolerance >= 0), ("memory_size", self.memory_size >= 1),
                  ("damping", self.damping > 0), ("damping_trials", self.damping_trials >= 1),
                  ("starts", self.starts >= 1), ("smoothing_pairs", self.smoothing_pairs >= 0),
                  ("smoothing_sigma2", self.smoothing_sigma2 >= 0)]
        for key, ok in checks:
            if not ok:
                raise ValueError(f"[optimizer] {key} = {getattr(self, key)!r} is out of range")


def optimizer_settings(table: dict) -> OptimizerSettings:
    """:class:`OptimizerSettings` from a config table; ValueError naming unknown keys."""
    defaults = {f.name: f.default for f in fields(OptimizerSettings)}
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise ValueError(f"[optimizer]: unknown keys {unknown}; allowed keys are "
                         f"{sorted(defaults)}")
    values = {}
    for key, value in table.items():
        kind = type(defaults[key])
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is float and number:
            value = float(value)
        elif not (type(value) is kind or (kind is int and number and float(value).is_integer())):
            raise ValueError(f"[optimizer] {key} = {value!r} must be of type {kind.__name__}")
        values[key] = kind(value)
    if "then_iterations" in values and not values.get("then"):
        raise ValueError("[optimizer] then_iterations is set but then is not: name the second "
                         f"optimiser (then = one of {OPTIMIZERS}) or remove then_iterations")
    return OptimizerSettings(**values)


class LevenbergMarquardtState(NamedTuple):
    """Levenberg–Marquardt's state: the damping μ (−1 until the first step sets it from the
    Jacobian), and the residuals and Jacobian at θ, kept after a rejected step (θ unchanged, so
    the next step needs only its trial loss)."""

    damping: jax.Array
    residuals: jax.Array
    jacobian: jax.Array
    current: jax.Array          # whether ``residuals`` and ``jacobian`` are those at θ


class LevenbergMarquardt:
    """The optimiser object of ``"levenberg-marquardt"`` for ``residual_count`` residuals."""

    def __init__(self, residual_count: int):
        self.residual_count = residual_count

    def init(self, theta):
        theta = jnp.asarray(theta)
        return LevenbergMarquardtState(
            jnp.asarray(-1.0, dtype=theta.dtype), jnp.zeros(self.residual_count, theta.dtype),
            jnp.zeros((self.residual_count, theta.shape[0]), theta.dtype), jnp.asarray(False))


def make_optimizer(settings: OptimizerSettings, residual_count: int = 0):
    if settings.name == "levenberg-marquardt":
        return LevenbergMarquardt(residual_count)
    if settings.name == "lbfgs":
        return optax.lbfgs(memory_size=settings.memory_size)
    lr, n = settings.learning_rate, settings.iterations
    if settings.schedule == "cosine":
        schedule = optax.cosine_decay_schedule(lr, n, alpha=settings.decay)
    elif settings.schedule == "exponential":
        schedule = optax.exponential_decay(lr, n, settings.decay)
    else:
        schedule = optax.constant_schedule(lr)
    adam = optax.adam(schedule)
    return optax.chain(optax.clip_by_global_norm(settings.clip), adam) if settings.clip else adam


def initial_state(optimizer, step, theta, traceable=True):
    """``optimizer.init(theta)`` cast to the dtypes that ``step`` returns, so that the jitted
    step compiles once (optax's init leaves some weakly typed scalars; an eager step, for an
    untraceable simulator, takes it as it is)."""
    state = optimizer.init(theta)
    if not traceable:
        return state
    returned = jax.eval_shape(step, theta, state)[1]
    return jax.tree.map(lambda leaf, shape: jnp.asarray(leaf, dtype=shape.dtype), state, returned)


def step_key(settings: OptimizerSettings) -> tuple:
    """The settings an optimiser step depends on."""
    if settings.name == "lbfgs":
        return ("lbfgs", settings.memory_size)
    if settings.name == "levenberg-marquardt":
        return ("levenberg-marquardt", settings.damping, settings.damping_trials)
    return ("adam", settings.learning_rate, settings.iterations, settings.clip, settings.schedule,
            settings.decay)


def compiled_step(objective: Objective, settings: OptimizerSettings):
    """(optimizer, jitted step), cached per problem and the settings the step depends on, so
    that repeated fits of one problem compile once."""
    key = step_key(settings)
    if settings.name == "lbfgs" and not objective.traceable:
        raise ValueError("L-BFGS's line search traces the loss inside a loop, which this "
                         "simulator (traceable = False) does not allow: use name = \"adam\"")
    if key not in objective.compiled_steps:
        optimizer = make_optimizer(settings, objective.residual_count)
        step = (levenberg_marquardt_step(objective, settings.damping, settings.damping_trials)
                if settings.name == "levenberg-marquardt"
                else make_step(objective.loss, optimizer, settings.name))
        objective.compiled_steps[key] = (optimizer, objective.jit(step))
    return objective.compiled_steps[key]


def make_step(loss, optimizer, name: str):
    """Pure ``step(theta, state) -> (theta', state', loss(theta), |grad|, evaluations, accepted)``.

    ``accepted`` is False when L-BFGS's line search found no step meeting the Wolfe conditions
    (after convergence to rounding level, its memory would then fill with noise).
    """
    if name == "lbfgs":
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(theta, state):
            value, grad = value_and_grad(theta, state=state)
            updates, state = optimizer.update(grad, state, theta, value=value, grad=grad,
                                              value_fn=loss)
            info = optax.tree_utils.tree_get(state, "info")
            accepted = (info.decrease_error <= 0) & (info.curvature_error <= 0)
            return (optax.apply_updates(theta, updates), state, value, jnp.linalg.norm(grad),
                    info.num_linesearch_steps, accepted)
    else:
        value_and_grad = jax.value_and_grad(loss)

        def step(theta, state):
            value, grad = value_and_grad(theta)
            updates, state = optimizer.update(grad, state, theta)
            return (optax.apply_updates(theta, updates), state, value, jnp.linalg.norm(grad),
                    jnp.ones((), jnp.int32), jnp.array(True))
    return step


def damping_factors(trials: int) -> np.ndarray:
    """The trial dampings of one Levenberg–Marquardt iteration relative to μ: 10^k for
    k = 0, −1, 1, −2, 2, … (``trials`` of them; the first is μ itself)."""
    exponents = [(-1) ** i * ((i + 1) // 2) for i in range(trials)]
    return DAMPING_RUNG ** np.asarray(exponents, dtype=float)


def smoothing_perturbations(jacobian, sigma2: float, pairs: int, seed: int) -> np.ndarray:
    """2·``pairs`` antithetic perturbations ±z_k of θ, z_k = V diag(s) ξ_k with ξ_k ~ N(0, I),
    JᵀJ = V diag(λ) Vᵀ and s = min(√(σ²/λ), ``SMOOTHING_CAP``): draws of the Gauss–Newton
    posterior N(0, σ²(JᵀJ)⁻¹) of the parameters, capped along directions the data do not see
    (module docstring)."""
    jacobian = np.asarray(jacobian, dtype=float)
    curvature, directions = np.linalg.eigh(jacobian.T @ jacobian)
    spread = np.minimum(np.sqrt(sigma2 / np.maximum(curvature, np.finfo(float).tiny)),
                        SMOOTHING_CAP)
    draws = np.random.default_rng(seed).standard_normal((pairs, jacobian.shape[1]))
    half = (draws * spread) @ directions.T
    return np.concatenate([half, -half])


def levenberg_marquardt_step(objective: Objective, initial_damping: float, trials: int = 1):
    """Pure ``step(theta, state) -> (theta', state', loss(theta), |∇loss|, evaluations,
    accepted)`` of Levenberg–Marquardt (module docstring; ``state`` a
    :class:`LevenbergMarquardtState`), with ``trials`` trial steps per Jacobian. After a
    rejected iteration the residuals and the Jacobian at the unchanged θ, updated along the
    rejected step (module docstring), are reused: the next iteration costs its trial losses
    alone. ``accepted`` is False only once the damping exceeds ``LARGEST_DAMPING`` × max
    diag(JᵀJ): no step along the Gauss–Newton family decreases the loss any more (a rejected
    step otherwise just raises the damping)."""
    residuals = objective.residuals
    factors = damping_factors(trials)

    def trial_residuals(points):
        if objective.traceable:
            return lax.map(residuals, points)
        return jnp.stack([residuals(point) for point in points])

    def step(theta, state: LevenbergMarquardtState):
        def reuse(theta):
            return state.residuals, state.jacobian

        if objective.traceable:
            r, jacobian = lax.cond(state.current, reuse, objective.jacobian, theta)
        else:
            r, jacobian = (reuse if bool(state.current) else objective.jacobian)(theta)
        gradient, curvature = jacobian.T @ r, jacobian.T @ jacobian
        largest = jnp.max(jnp.diag(curvature))
        damping = jnp.where(state.damping < 0, initial_damping * largest, state.damping)
        dampings = damping * jnp.asarray(factors, dtype=r.dtype)
        identity = jnp.eye(theta.shape[0], dtype=r.dtype)
        deltas = jax.vmap(lambda mu: jnp.linalg.solve(curvature + mu * identity, -gradient))(
            dampings)
        value = r @ r
        predicted = value - jnp.sum((r + deltas @ jacobian.T) ** 2, axis=1)
        r_trials = trial_residuals(theta + deltas)
        losses = jnp.sum(r_trials ** 2, axis=1)
        finite = jnp.isfinite(losses)
        gains = jnp.where(finite & (predicted > 0), (value - losses) / predicted, -1.0)
        best = jnp.argmin(jnp.where(finite, losses, jnp.inf))
        gain = gains[best]
        better = gain > 0
        new_damping = jnp.where(
            better, dampings[best] * jnp.maximum(1 / 3, 1 - (2 * gain - 1) ** 3), 2 * damping)
        # Rejected: Broyden's rank-one update makes the model exact along δ (secant condition
        # J'δ = r(θ + δ) − r(θ)), so that the next, more damped step sees what this one met.
        delta = deltas[0]
        secant = jnp.outer(jnp.where(finite[0], r_trials[0] - r - jacobian @ delta, 0.0),
                           delta) / (delta @ delta)
        used = jnp.where(state.current, 0, objective.jacobian_passes(theta.shape[0])) + trials
        return (jnp.where(better, theta + deltas[best], theta),
                LevenbergMarquardtState(new_damping, r,
                                        jnp.where(better, jacobian, jacobian + secant), ~better),
                value, jnp.linalg.norm(2 * gradient), used.astype(jnp.int32),
                new_damping <= LARGEST_DAMPING * largest)
    return step


class NonFiniteLoss(ValueError):
    """The loss or its gradient became NaN/inf; carries the last parameters with a finite loss."""

    def __init__(self, iteration: int, value: float, last_good: dict | None):
        self.iteration, self.value, self.last_good = iteration, value, last_good
        if last_good is None:
            where = "at the start parameters: check the start values and the simulation"
        else:
            values = ", ".join(f"{k}={v:.6g}" for k, v in last_good["values"].items())
            where = (f"last finite loss {last_good['loss']:.6g} at iteration "
                     f"{last_good['iteration']} with {values}; lower the learning rate or narrow "
                     "the bounds")
        super().__init__(f"the loss became {value} at iteration {iteration}: {where}")


@dataclass
class FitResult:
    """Outcome of :func:`fit`: final theta, physical values, loss, history and evaluation count."""

    theta: np.ndarray
    values: dict
    loss: float
    history: list
    iterations: int
    evaluations: int
    stopped: str


def history_row(parameters, iteration, theta, value, grad_norm, evaluations, seconds) -> dict:
    row = {"iteration": iteration, "loss": float(value), "grad_norm": float(grad_norm),
           "evaluations": int(evaluations), "seconds": float(seconds)}
    row.update(free_values(parameters, theta))
    row["theta"] = [float(t) for t in np.asarray(theta)]
    return row


def free_values(parameters, theta) -> dict:
    x = np.asarray(parameters.free_vector(theta))
    return {name: float(v) for name, v in zip(parameters.free_names, x)}


# --- checkpoint and history files -------------------------------------------------------------

def save_checkpoint(folder, iteration: int, carry, history: list, meta: dict, stopped=None):
    """Write ``checkpoint.npz`` atomically: iteration, leaves of ``carry``, history, settings and
    why the run stopped early (None while it runs)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    leaves = {f"leaf_{k}": np.asarray(leaf) for k, leaf in enumerate(jax.tree.leaves(carry))}
    text = json.dumps({"iteration": iteration, "meta": meta, "history": history,
                       "stopped": stopped})
    temporary = folder / (CHECKPOINT + ".tmp.npz")
    np.savez(temporary, json=np.array(text), **leaves)
    os.replace(temporary, folder / CHECKPOINT)


def load_checkpoint(folder, template, meta: dict):
    """(iteration, carry, history, stopped) from ``folder``; ``template`` gives the pytree
    structure and dtypes. ValueError if the checkpoint is missing or was made with other
    settings."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise ValueError(f"no checkpoint {path} to resume from: run without --resume")
    with np.load(path) as data:
        saved = json.loads(str(data["json"]))
        leaves = [data[f"leaf_{k}"] for k in range(len(data.files) - 1)]

    def settings(meta):
        return {**meta, "optimizer": {k: v for k, v in meta.get("optimizer", {}).items()
                                      if k not in BUDGETS}}

    ours, theirs = settings(meta), settings(saved["meta"])
    differing = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if differing:
        raise ValueError(f"checkpoint {path} was made with other settings ({', '.join(differing)}"
                         "): resume with the same config, or start anew without --resume")
    template_leaves, treedef = jax.tree.flatten(template)
    if len(leaves) != len(template_leaves) or any(
            a.shape != np.shape(b) for a, b in zip(leaves, template_leaves)):
        raise ValueError(f"checkpoint {path} does not match this problem's optimiser state")
    restored = [jnp.asarray(a, dtype=jnp.asarray(b).dtype) for a, b in zip(leaves, template_leaves)]
    return (saved["iteration"], jax.tree.unflatten(treedef, restored), saved["history"],
            saved["stopped"])


def write_history(folder, history: list):
    """``history.json`` and ``history.csv`` (theta and the collapsing contacts only in the
    JSON)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "history.json").write_text(json.dumps(history, indent=1))
    if not history:
        return
    columns = [k for k in dict.fromkeys(k for row in history for k in row)
               if k not in ("theta", "collapsing_contacts")]
    with (folder / "history.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def problem_meta(objective: Objective, settings: OptimizerSettings, extra=None) -> dict:
    """What a checkpoint must agree on to be resumed (but for the budgets, ``BUDGETS``)."""
    meta = {"optimizer": asdict(settings),
            "parameters": [asdict(p) for p in objective.parameters.parameters],
            "targets": [[t.curve, len(t.x), t.weight] for t in objective.targets]}
    meta["optimizer"].pop("iterations")
    meta.update(extra or {})
    return json.loads(json.dumps(meta))


# --- the loop ---------------------------------------------------------------------------------

def fit_parts(settings: OptimizerSettings) -> list[OptimizerSettings]:
    """The settings of each optimiser :func:`fit` runs: the configured one, or with ``then``
    the first one unsmoothed and the second one for ``then_iterations`` (module docstring)."""
    if not settings.then:
        return [settings]
    return [replace(settings, smoothing_pairs=0),
            replace(settings, name=settings.then, iterations=settings.then_iterations)]


def fit(objective: Objective, settings: OptimizerSettings, out=None, resume: bool = False,
        progress=None, theta0=None) -> FitResult:
    """Minimise ``objective.loss`` from ``theta0`` (default: the configured starts).

    With ``settings.then`` a second optimiser goes on from the first one's last iterate (its
    checkpoint in ``out/then``); the history runs on through both, iterations, evaluations and
    seconds counted from the start.

    Args:
        objective: the calibration problem.
        settings: optimiser and budget.
        out: folder for ``checkpoint.npz``, ``history.json``/``.csv`` (None: nothing written).
        resume: continue from ``out``'s checkpoint(s).
        progress: called with each history row (e.g. :func:`progress_printer`).
        theta0: unconstrained start vector.

    Returns:
        :class:`FitResult` at the last iterate (its loss evaluated once more).

    Raises:
        NonFiniteLoss: the loss or gradient became NaN/inf.
    """
    first_part, *then_part = fit_parts(settings)
    first = _fit_with(objective, first_part, out, out, resume, progress, theta0, earlier=[])
    if not then_part:
        return first
    then, = then_part
    folder = None if out is None else Path(out) / "then"
    return _fit_with(objective, then, folder, out,
                     resume and folder is not None and (folder / CHECKPOINT).is_file(), progress,
                     first.theta, earlier=first.history)


def _fit_with(objective: Objective, settings: OptimizerSettings, out, history_out, resume: bool,
              progress, theta0, earlier: list) -> FitResult:
    """One optimiser's part of :func:`fit`: checkpoint in ``out``, history (``earlier`` rows,
    then its own, numbered on from them) in ``history_out``."""
    parameters = objective.parameters
    theta = parameters.start_theta() if theta0 is None else jnp.asarray(theta0, dtype=float)
    plain, smoothing_seconds = objective, 0.0
    if settings.smoothing_pairs:
        start = time.perf_counter()
        _, jacobian = objective.jit(objective.jacobian)(theta)
        objective = objective.smoothed(smoothing_perturbations(
            jacobian, settings.smoothing_sigma2, settings.smoothing_pairs, settings.seed))
        smoothing_seconds = time.perf_counter() - start
    optimizer, step = compiled_step(objective, settings)
    state = initial_state(optimizer, step, theta, objective.traceable)
    meta = problem_meta(objective, settings, {"theta0": [float(t) for t in np.asarray(theta)]})
    first, history, stopped = 0, [], None
    if resume:
        first, (theta, state), history, stopped = load_checkpoint(out, (theta, state), meta)
    last = (earlier + history)[-1] if earlier or history else {}
    evaluations, seconds = last.get("evaluations", 0), last.get("seconds", 0.0)
    if plain is not objective and not history:     # the perturbations' Jacobian, counted once
        evaluations += plain.jacobian_passes(theta.shape[0])
        seconds += smoothing_seconds
    for iteration in range(first, settings.iterations if stopped is None else first):
        start = time.perf_counter()
        new_theta, new_state, value, grad_norm, used, accepted = step(theta, state)
        value, grad_norm = float(value), float(grad_norm)
        if not (math.isfinite(value) and math.isfinite(grad_norm)):
            raise NonFiniteLoss(len(earlier) + iteration,
                                value if not math.isfinite(value) else grad_norm,
                                _last_good(earlier + history, parameters))
        evaluations += objective.samples * (
            int(used) + (1 if iteration == 0 and settings.name == "lbfgs" else 0))
        row_loss = value if plain is objective else float(plain.loss_jit(theta))
        evaluations += 0 if plain is objective else 1
        seconds += time.perf_counter() - start
        row = history_row(parameters, len(earlier) + iteration, theta, row_loss, grad_norm,
                          evaluations, seconds)
        row["optimizer"] = settings.name
        if plain is not objective:
            row["smoothed_loss"] = value
        # contacts where this iterate lets cohesion collapse the packing (loss.Objective)
        row["collapsing_contacts"] = objective.collapsing_contacts(
            {name: row[name] for name in parameters.free_names})
        history.append(row)
        if grad_norm < settings.tolerance:
            stopped = f"gradient norm below the tolerance {settings.tolerance:g}"
        elif not bool(accepted) and settings.name == "levenberg-marquardt":
            stopped = (f"no Levenberg–Marquardt step decreases the loss (damping above "
                       f"{LARGEST_DAMPING:g} × max diag(JᵀJ)): converged to the loss's rounding "
                       "level")
        elif not bool(accepted):
            stopped = ("the line search found no acceptable step: converged to the loss's "
                       "rounding level, or stuck on its roughness (a chaotic simulation)")
        else:
            theta, state = new_theta, new_state
        if out is not None:
            save_checkpoint(out, iteration + 1, (theta, state), history, meta, stopped)
            write_history(history_out, earlier + history)
        if progress is not None:
            progress(row)
        if stopped is not None:
            break
    value = float(plain.loss_jit(theta))
    history = earlier + history
    if not math.isfinite(value):
        raise NonFiniteLoss(len(history), value, _last_good(history, parameters))
    return FitResult(np.asarray(theta), free_values(parameters, theta), value, history,
                     len(history), evaluations + 1, stopped or "iteration budget")


def _last_good(history, parameters):
    if not history:
        return None
    row = history[-1]
    return {"iteration": row["iteration"], "loss": row["loss"], "theta": row["theta"],
            "values": {name: row[name] for name in parameters.free_names}}


def progress_printer(parameters, print_line=functools.partial(print, flush=True)):
    """A ``progress(row)`` that prints ``iter, loss, |grad|, parameters with units``."""
    units = {p.name: p.unit for p in parameters.free}

    def progress(row):
        values = "  ".join(f"{name}={row[name]:.6g}{(' ' + units[name]) if units[name] else ''}"
                           for name in units)
        extra = f"  failed {row['n_failed']}" if row.get("n_failed") else ""
        if row.get("collapsing_contacts"):
            extra += ("  warning: cohesion collapses the packing here: "
                      + "; ".join(row["collapsing_contacts"]))
        start = f"start {row['start']:3d}  " if "start" in row else ""
        smoothed = f" (smoothed {row['smoothed_loss']:.6e})" if "smoothed_loss" in row else ""
        print_line(f"{start}iter {row['iteration']:4d}  loss {row['loss']:.6e}{smoothed}  "
                   f"|grad| {row['grad_norm']:.3e}  {values}{extra}")

    return progress
