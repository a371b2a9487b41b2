"""Local identifiability at an optimum: Gauss–Newton / Fisher matrix, null directions, intervals.

Coordinates: the *relative* change of each free physical parameter, z_k = ln(x_k / x̂_k), so that
moduli in GPa, CED in J/m³ and friction compare on one scale (a component of an eigenvector is a
relative change; a standard error σ_z is a relative error). The Jacobian J = ∂r/∂z of the
normalised residuals (:mod:`calibrate.loss`) comes from
:meth:`~calibrate.loss.Objective.residuals_and_jacobian` at z = 0 (forward mode where the
simulator allows it, :mod:`calibrate.simulators`), and

    F = Jᵀ J / σ²,   σ² = Σ r² / (m − p)   (residual variance, m residuals, p free parameters)

unless σ² is given. Eigenvalues λ_k of F ascending; a direction with λ_k / λ_max below
``threshold`` (default 1e-8, i.e. at least 10⁴ times less constrained than the best direction,
within rounding of an exactly flat direction) is reported as *not constrained by the data*, with
its eigenvector. The covariance of z is V diag(1/λ) Vᵀ over the constrained directions; a
parameter with a component above ``1e-6`` on an unconstrained direction has no finite interval.
Intervals are linearised in ln x: x̂ · exp(±q σ_z), q = 1.96 for 95 %. They are local
(Cramér–Rao) and assume independent residuals; at a noise-free twin optimum σ² is rounding noise
and the intervals are correspondingly tiny. They mean something only at an optimum: the
Gauss–Newton step Δz = −(JᵀJ)⁺ Jᵀ r (constrained directions) is reported with the fraction of
the loss it would remove, rᵀJ(JᵀJ)⁺Jᵀr / rᵀr (0 at a stationary point, noisy data or not;
near 1 far from an optimum of a fit that can match its targets). ``at_optimum`` is True when
that fraction is below 1 % or the step changes no parameter by more than 1e-6 (a noise-free twin
optimum, where residuals and step are rounding).

Reference: Bates & Watts, *Nonlinear Regression Analysis and Its Applications* (1988), ch. 2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from calibrate.loss import Objective

NULL_COMPONENT = 1e-6
NEGLIGIBLE_STEP = 1e-6          # relative change below which a Gauss–Newton step is rounding
NEGLIGIBLE_DECREASE = 1e-2      # fraction of the loss a Gauss–Newton step may still remove
QUANTILE_95 = 1.959963984540054


@dataclass
class Identifiability:
    """Fisher analysis in relative coordinates (see module docstring); arrays over free params."""

    names: list
    values: np.ndarray
    jacobian: np.ndarray
    sigma2: float
    dof: int
    fisher: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    threshold: float
    unconstrained: list
    relative_std: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    newton_step: np.ndarray
    newton_decrease: float

    @property
    def at_optimum(self) -> bool:
        """Whether a Gauss–Newton step would remove under 1 % of the loss or change no parameter
        by more than 1e-6 (module docstring)."""
        return bool(self.newton_decrease <= NEGLIGIBLE_DECREASE
                    or np.all(np.abs(self.newton_step) <= NEGLIGIBLE_STEP))

    @property
    def unconstrained_names(self) -> list:
        """Free parameters without a finite interval (on some unconstrained direction)."""
        return [n for n, s in zip(self.names, self.relative_std) if not np.isfinite(s)]

    def as_dict(self) -> dict:
        finite = lambda a: [float(v) if np.isfinite(v) else None for v in a]   # noqa: E731
        return {"coordinates": "z = ln(x / x_opt) of each free parameter",
                "names": self.names, "values": [float(v) for v in self.values],
                "sigma2": self.sigma2, "dof": self.dof, "threshold": self.threshold,
                "fisher": self.fisher.tolist(), "eigenvalues": self.eigenvalues.tolist(),
                "eigenvectors": self.eigenvectors.tolist(), "unconstrained": self.unconstrained,
                "relative_std": finite(self.relative_std), "ci95_lower": finite(self.ci_lower),
                "ci95_upper": finite(self.ci_upper),
                "newton_step_relative": [float(v) for v in self.newton_step],
                "newton_decrease_fraction": self.newton_decrease,
                "at_optimum": self.at_optimum}


def identifiability(objective: Objective, theta, sigma2: float | None = None,
                    threshold: float = 1e-8) -> Identifiability:
    """Fisher analysis of ``objective`` at the unconstrained optimum ``theta``."""
    parameters = objective.parameters
    names = parameters.free_names
    all_values = parameters.values(theta)
    x_opt = jnp.stack([all_values[n] for n in names])
    if not np.all(np.asarray(x_opt) != 0):
        raise ValueError("identifiability needs every free parameter nonzero at the optimum "
                         "(relative coordinates)")

    def values_of(z):
        scaled = x_opt * jnp.exp(z)
        return {**all_values, **{n: scaled[k] for k, n in enumerate(names)}}

    z0 = jnp.zeros(len(names), dtype=x_opt.dtype)
    r, jacobian = (np.asarray(a) for a in objective.jit(
        functools.partial(objective.residuals_and_jacobian, values_of))(z0))
    m, p = jacobian.shape
    dof = max(m - p, 1)
    if sigma2 is None:
        sigma2 = float(r @ r) / dof
    if not sigma2 > 0:
        sigma2 = float(np.finfo(float).tiny)     # exact fit: intervals collapse to the point
    fisher = jacobian.T @ jacobian / sigma2
    eigenvalues, eigenvectors = np.linalg.eigh(fisher)
    largest = max(float(eigenvalues[-1]), np.finfo(float).tiny)
    null = eigenvalues / largest < threshold
    unconstrained = [{"eigenvalue": float(eigenvalues[k]),
                      "ratio_to_largest": float(eigenvalues[k] / largest),
                      "direction": {n: float(v) for n, v in zip(names, eigenvectors[:, k])}}
                     for k in np.flatnonzero(null)]
    kept = ~null
    covariance = (eigenvectors[:, kept] / eigenvalues[kept]) @ eigenvectors[:, kept].T
    relative_std = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    gradient = jacobian.T @ r
    newton_step = -covariance @ gradient / sigma2       # covariance / σ² = (JᵀJ)⁺ (kept part)
    loss = float(r @ r)
    newton_decrease = float(-gradient @ newton_step) / loss if loss > 0 else 0.0
    on_null = (np.abs(eigenvectors[:, null]) > NULL_COMPONENT).any(axis=1)
    relative_std = np.where(on_null, np.inf, relative_std)
    x = np.asarray(x_opt)
    with np.errstate(over="ignore", invalid="ignore"):
        lower = np.where(on_null, np.nan, x * np.exp(-QUANTILE_95 * relative_std))
        upper = np.where(on_null, np.nan, x * np.exp(QUANTILE_95 * relative_std))
    return Identifiability(names, x, jacobian, float(sigma2), dof, fisher, eigenvalues,
                           eigenvectors, threshold, unconstrained, relative_std, lower, upper,
                           newton_step, newton_decrease)
