"""Weighted least squares between target curves and simulated curves.

A simulator returns each curve on its own x points (static numpy, strictly monotone) with y
differentiable. The simulated curve is interpolated linearly onto the target's x (``jnp.interp``,
differentiable in y), so the number of residuals is fixed by the targets and does not depend on
the parameters. A target x outside the simulated x range is an error (no silent extrapolation).

For target c with n_c points, weight w_c and scale s_c (default: RMS of the target y), the
residuals are

    r_ci = sqrt(w_c / n_c) (y_sim(x_ci) - y_ci) / s_c,     loss = Σ_ci r_ci²,

so each curve contributes its weighted mean squared relative misfit, whatever its unit and its
number of points. ``residuals`` feeds Gauss–Newton (:mod:`calibrate.identifiability`), ``loss``
the optimisers.

A smoothed objective (:meth:`Objective.smoothed`) averages the residuals over fixed perturbations
z_k of the unconstrained parameters: r̄(θ) = (1/K) Σ_k r(θ + z_k), its Jacobian the mean of
theirs. With antithetic pairs (±z) the average leaves a residual that is linear in θ unchanged,
so the minimum of a zero-residual problem moves only by the curvature of r, while roughness on
scales shorter than the perturbations (the DEM replays' contact events) averages out: a
Gaussian-smoothing ("mollified") objective with common random numbers, deterministic between
iterations (Nesterov & Spokoiny, Found. Comput. Math. 17, 527 (2017), §2, for the smoothing).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from calibrate.parameters import ParameterSet, TypeTable, materials_from_parameters
from calibrate.simulators import forward_version
from calibrate.targets import Target

RANGE_TOLERANCE = 1e-9       # of the simulated x span: digitised ends may overshoot by rounding


def interpolate_onto(curve: str, x_sim, y_sim, x_target) -> jnp.ndarray:
    """Simulated (x_sim, y_sim) linearly interpolated at ``x_target`` (x_sim static numpy)."""
    x_sim = np.asarray(x_sim, dtype=float)
    y_sim = jnp.asarray(y_sim)
    if x_sim.ndim != 1 or y_sim.shape != x_sim.shape:
        raise ValueError(f"simulated curve {curve!r}: x has shape {x_sim.shape}, y {y_sim.shape}; "
                         "they must be 1-D of equal length")
    steps = np.diff(x_sim)
    if (steps < 0).all():
        x_sim, y_sim = x_sim[::-1], y_sim[::-1]
    elif not (steps > 0).all():
        raise ValueError(f"simulated curve {curve!r}: x must be strictly monotone; return "
                         "branches such as loading and unloading as separate curves")
    span = x_sim[-1] - x_sim[0]
    lo, hi = float(np.min(x_target)), float(np.max(x_target))
    if lo < x_sim[0] - RANGE_TOLERANCE * span or hi > x_sim[-1] + RANGE_TOLERANCE * span:
        raise ValueError(f"target {curve!r} spans x in [{lo:g}, {hi:g}] but the simulation only "
                         f"[{x_sim[0]:g}, {x_sim[-1]:g}]: extend the simulated range or drop the "
                         "target points outside it")
    return jnp.interp(jnp.asarray(x_target), x_sim, y_sim)


class Objective:
    """``residuals(theta)`` and ``loss(theta)`` of a calibration problem.

    Args:
        parameters: the parameter set; ``theta`` is its unconstrained free vector.
        simulator: ``simulate(materials) -> {curve: (x numpy, y jax)}``.
        targets: target curves, each naming a simulated curve.
        base: per-type material values that the parameters replace.
        mixing: pair mixing rule passed to ``Materials.from_types``.

    ``jit`` is ``jax.jit``, or the identity for a simulator marked ``traceable = False``
    (:mod:`calibrate.simulators`).
    """

    def __init__(self, parameters: ParameterSet, simulator: Callable, targets: Sequence[Target],
                 base: TypeTable, mixing: str = "artistic"):
        if not targets:
            raise ValueError("no targets: give at least one [[targets]] curve")
        self.parameters = parameters
        self.simulator = simulator
        self.targets = tuple(targets)
        self.base = base
        self.mixing = mixing
        self.traceable = getattr(simulator, "traceable", True)
        self.forward_simulator = forward_version(simulator)
        self.residual_count = sum(len(target.x) for target in self.targets)
        self.jit = jax.jit if self.traceable else (lambda function: function)
        self.perturbations = None       # (K, n_free) of a smoothed objective (smoothed)
        self.loss_jit = self.jit(self.loss)
        self.compiled_steps = {}        # optimiser steps by settings (calibrate.fit)

    def smoothed(self, perturbations) -> Objective:
        """This problem with residuals averaged over ``perturbations`` (K × n_free, in θ) of
        the parameters (module docstring), a copy: this objective stays unsmoothed. Every
        residual costs K simulations (``samples``)."""
        perturbations = jnp.asarray(perturbations, dtype=float)
        count = len(self.parameters.free_names)
        if perturbations.ndim != 2 or perturbations.shape[1] != count or not len(perturbations):
            raise ValueError(f"smoothing perturbations have shape {perturbations.shape}; they "
                             f"must be (K >= 1, {count}), one column per free parameter")
        smooth = copy.copy(self)
        smooth.perturbations = perturbations
        smooth.loss_jit = smooth.jit(smooth.loss)
        smooth.compiled_steps = {}
        return smooth

    @property
    def samples(self) -> int:
        """Simulations per residual evaluation: 1, or the smoothing perturbations' count."""
        return 1 if self.perturbations is None else len(self.perturbations)

    def _averaged(self, function, theta):
        """Mean of ``function(theta + z)`` over the perturbations (a pytree of arrays), one
        simulation after another (``lax.map``: memory of one)."""
        if self.traceable:
            outputs = jax.lax.map(lambda z: function(theta + z), self.perturbations)
        else:
            outputs = jax.tree.map(lambda *leaves: jnp.stack(leaves),
                                   *[function(theta + z) for z in self.perturbations])
        return jax.tree.map(lambda leaf: jnp.mean(leaf, axis=0), outputs)

    def materials(self, values: dict):
        return materials_from_parameters(self.base, values, self.mixing)

    def collapsing_contacts(self, values: dict) -> list[str]:
        """Contacts where physical parameter ``values`` let cohesion collapse the simulated
        packing (:func:`twin.physics.materials.collapsing_pairs`; empty for a simulator
        without cohesion or that cannot tell)."""
        check = getattr(self.simulator, "collapsing_contacts", None)
        return [] if check is None else list(check(self.materials(values)))

    def simulate(self, values: dict, forward_mode: bool = False) -> dict:
        """The simulator's curves at physical parameter ``values`` (``forward_mode``: from its
        forward-differentiable version)."""
        simulator = self.forward_simulator if forward_mode else self.simulator
        curves = simulator(self.materials(values))
        missing = sorted({t.curve for t in self.targets} - set(curves))
        if missing:
            raise ValueError(f"the simulator produces curves {sorted(curves)}, not "
                             f"{missing}: fix the target 'curve' names")
        return curves

    def residuals_from_values(self, values: dict, forward_mode: bool = False) -> jnp.ndarray:
        curves = self.simulate(values, forward_mode)
        parts = []
        for target in self.targets:
            x_sim, y_sim = curves[target.curve]
            y_fit = interpolate_onto(target.curve, x_sim, y_sim, target.x)
            factor = np.sqrt(target.weight / len(target.x)) / target.y_scale
            parts.append(factor * (y_fit - target.y))
        return jnp.concatenate(parts)

    def residuals(self, theta) -> jnp.ndarray:
        """Normalised weighted residuals at unconstrained ``theta`` (see module docstring),
        averaged over the perturbations of a smoothed objective."""
        def plain(theta):
            return self.residuals_from_values(self.parameters.values(theta))

        return plain(theta) if self.perturbations is None else self._averaged(plain, theta)

    def jacobian(self, theta) -> tuple[jnp.ndarray, jnp.ndarray]:
        """:meth:`residuals` and their Jacobian ∂r/∂θ at unconstrained ``theta`` (both averaged
        over the perturbations of a smoothed objective)."""
        def plain(theta):
            return self.residuals_and_jacobian(self.parameters.values, theta)

        return plain(theta) if self.perturbations is None else self._averaged(plain, theta)

    def forward_jacobian(self, size: int) -> bool:
        """Whether :meth:`residuals_and_jacobian` takes forward mode for a vector of ``size``
        entries."""
        return self.forward_simulator is not None and size <= self.residual_count

    def jacobian_passes(self, size: int) -> int:
        """Derivative passes of :meth:`residuals_and_jacobian` for a vector of ``size``
        entries: its tangents in forward mode, else one backward pass per residual."""
        return size if self.forward_jacobian(size) else self.residual_count

    def residuals_and_jacobian(self, values_of: Callable, x) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Residuals r and their Jacobian ∂r/∂x at the vector ``x``, the parameters being
        ``values_of(x)`` (a dict of physical values). Forward mode, one tangent per entry of x
        (``jax.vmap`` of ``jax.jvp``: one simulation carrying len(x) tangents), where the
        simulator has a forward-differentiable version and x has no more entries than r; else
        reverse mode, one backward pass per residual."""
        if self.forward_jacobian(x.shape[0]):
            def residuals(x):
                return self.residuals_from_values(values_of(x), forward_mode=True)

            tangents = jnp.eye(x.shape[0], dtype=x.dtype)
            r, jacobian_transposed = jax.vmap(lambda t: jax.jvp(residuals, (x,), (t,)),
                                              out_axes=(None, 0))(tangents)
            return r, jacobian_transposed.T
        r, pullback = jax.vjp(lambda x: self.residuals_from_values(values_of(x)), x)
        rows = jnp.eye(r.shape[0], dtype=r.dtype)
        return r, jax.vmap(lambda row: pullback(row)[0])(rows)

    def loss(self, theta) -> jnp.ndarray:
        r = self.residuals(theta)
        return jnp.sum(r * r)

    def fitted_curves(self, theta) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Simulated curves at ``theta`` as numpy, for reports and plots."""
        curves = self.simulate(self.parameters.values(theta))
        return {name: (np.asarray(x), np.asarray(y)) for name, (x, y) in curves.items()}
