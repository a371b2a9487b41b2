"""Material tables per particle/wall type and the pair quantities the contact law needs.

LIGGGHTS takes Young's modulus and Poisson's ratio per type and restitution, friction and cohesion
energy density (CED) per *pair* of types. :class:`Materials` holds exactly that, so a case written
for LIGGGHTS maps one to one. :func:`Materials.from_types` builds the pair matrices from per-type
values with an explicit mixing rule, differentiably, so that a calibration can fit per-type values.

Mixing rules (``../shared/FACTS.md``, Table 2 of Ngandjong et al. 2021):

* ``"geometric"``: x_ij = sqrt(x_i x_j) for restitution, friction and CED (the paper's text);
* ``"artistic"``: the authors' input scripts: geometric everywhere except the carbon-binder–steel
  restitution, (e_CBD e_steel)^(2/3), and every CED involving steel, (CED_i CED_j)^0.45.
  Types are recognised by name (``"CBD"``, ``"steel"``).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from twin.physics.cohesion import equilibrium_overlap_ratio

SQRT_FIVE_SIXTHS = math.sqrt(5.0 / 6.0)
MIXING_RULES = ("geometric", "artistic")


class Materials(eqx.Module):
    """Per-type elastic constants and per-pair restitution, friction and CED (micro units).

    Attributes:
        youngs_modulus: (T,) E in pg/(µm·µs²) (1 GPa = 1e6).
        poisson: (T,) Poisson's ratio ν.
        restitution: (T, T) coefficient of restitution e_ij.
        friction: (T, T) Coulomb friction μ_ij.
        cohesion_energy_density: (T, T) CED_ij in pg/(µm·µs²) (= 1e3 J/m³).
        names: type names, index 0 first (static).
    """

    youngs_modulus: Array
    poisson: Array
    restitution: Array
    friction: Array
    cohesion_energy_density: Array
    names: tuple[str, ...] = eqx.field(static=True)

    @classmethod
    def from_types(cls, names, youngs_modulus, poisson, restitution, friction,
                   cohesion_energy_density, mixing="geometric"):
        """Build pair matrices from per-type values with an explicit mixing rule."""
        if mixing not in MIXING_RULES:
            raise ValueError(f"unknown mixing rule {mixing!r}: choose one of {MIXING_RULES}")
        names = tuple(names)
        per_type = [jnp.asarray(v) for v in
                    (youngs_modulus, poisson, restitution, friction, cohesion_energy_density)]
        for label, values in zip(("youngs_modulus", "poisson", "restitution", "friction",
                                  "cohesion_energy_density"), per_type):
            if values.shape != (len(names),):
                raise ValueError(f"{label} has shape {values.shape}; expected one value per type "
                                 f"({len(names)} types: {names})")
        E, nu, e, mu, ced = per_type
        e_pair = jnp.sqrt(e[:, None] * e[None, :])
        mu_pair = jnp.sqrt(mu[:, None] * mu[None, :])
        ced_pair = jnp.sqrt(ced[:, None] * ced[None, :])
        if mixing == "artistic":
            lower = [n.lower() for n in names]
            if "cbd" in lower and "steel" in lower:
                c, s = lower.index("cbd"), lower.index("steel")
                cbd_steel = (e[c] * e[s]) ** (2.0 / 3.0)
                e_pair = e_pair.at[c, s].set(cbd_steel).at[s, c].set(cbd_steel)
            if "steel" in lower:
                s = lower.index("steel")
                with_steel = (ced * ced[s]) ** 0.45
                ced_pair = ced_pair.at[s, :].set(with_steel).at[:, s].set(with_steel)
        return cls(E, nu, e_pair, mu_pair, ced_pair, names)

    @property
    def n_types(self) -> int:
        return len(self.names)

    def check(self):
        """Raise ValueError naming any value outside its physical range (call outside jit)."""
        import numpy as np

        checks = [
            ("youngs_modulus", self.youngs_modulus, lambda v: v > 0, "must be > 0"),
            ("poisson", self.poisson, lambda v: (v >= -1) & (v <= 0.5), "must lie in [-1, 0.5]"),
            ("restitution", self.restitution, lambda v: (v > 0) & (v <= 1), "must lie in (0, 1]"),
            ("friction", self.friction, lambda v: v >= 0, "must be >= 0"),
            ("cohesion_energy_density", self.cohesion_energy_density, lambda v: v >= 0,
             "must be >= 0"),
        ]
        for label, values, ok, rule in checks:
            values = np.asarray(values)
            bad = ~ok(values)
            if bad.any():
                where = tuple(int(k) for k in np.argwhere(bad)[0])
                types = "–".join(self.names[k] for k in where)
                raise ValueError(f"material {label} of {types} = {values[where]} {rule}")


def effective_youngs_modulus(E_i, nu_i, E_j, nu_j):
    """E* = 1 / ((1 - ν_i²)/E_i + (1 - ν_j²)/E_j)  (LIGGGHTS normal_model_hertz)."""
    return 1.0 / ((1.0 - nu_i**2) / E_i + (1.0 - nu_j**2) / E_j)


def effective_shear_modulus(E_i, nu_i, E_j, nu_j):
    """G* = 1 / (2(2 - ν_i)(1 + ν_i)/E_i + 2(2 - ν_j)(1 + ν_j)/E_j)  (LIGGGHTS)."""
    return 1.0 / (2.0 * (2.0 - nu_i) * (1.0 + nu_i) / E_i + 2.0 * (2.0 - nu_j) * (1.0 + nu_j) / E_j)


def damping_beta(restitution):
    """β = ln e / sqrt(ln² e + π²), so that γ = -2 sqrt(5/6) β sqrt(S m*) gives restitution e."""
    log_e = jnp.log(restitution)
    return log_e / jnp.sqrt(log_e**2 + jnp.pi**2)


class PairTable(eqx.Module):
    """(T, T) tables of the pair constants used inside the contact law."""

    e_star: Array
    g_star: Array
    beta: Array
    friction: Array
    cohesion_energy_density: Array


def pair_table(materials: Materials) -> PairTable:
    """Effective moduli and damping coefficient for every pair of types (differentiable)."""
    E, nu = materials.youngs_modulus, materials.poisson
    e_star = effective_youngs_modulus(E[:, None], nu[:, None], E[None, :], nu[None, :])
    g_star = effective_shear_modulus(E[:, None], nu[:, None], E[None, :], nu[None, :])
    return PairTable(e_star, g_star, damping_beta(materials.restitution), materials.friction,
                     materials.cohesion_energy_density)


def rayleigh_time(radius, density, youngs_modulus, poisson):
    """Rayleigh time T_R = π r sqrt(ρ/G) / (0.1631 ν + 0.8766), G = E / (2(1 + ν)).

    Source: LIGGGHTS ``fix check/timestep/gran``; values in ``../shared/FACTS.md``.
    """
    shear_modulus = youngs_modulus / (2.0 * (1.0 + poisson))
    return math.pi * radius * jnp.sqrt(density / shear_modulus) / (0.1631 * poisson + 0.8766)


# Above this equilibrium overlap ratio δ_c / R* cohesion collapses a packing (see
# :func:`twin.physics.cohesion.equilibrium_overlap_ratio`).
COLLAPSING_OVERLAP_RATIO = 1.0


def collapsing_pairs(materials: Materials, cohesion: str, sphere_types, wall_types=(),
                     limit: float = COLLAPSING_OVERLAP_RATIO) -> list[str]:
    """The contacts whose cohesive equilibrium overlap δ_c / R* exceeds ``limit``: every pair of
    ``sphere_types`` and every sphere type against each of ``wall_types`` (type indices), as
    ``"CBD–CBD: δ_c/R* = 3.2 (CED 1.05e+08 J/m³, E* 0.55 GPa)"`` lines (empty when none)."""
    table = pair_table(materials)
    e_star = np.asarray(table.e_star)
    ced = np.asarray(table.cohesion_energy_density)
    spheres = sorted({int(t) for t in sphere_types})
    contacts = [(i, j, False) for i in spheres for j in spheres if i <= j]
    contacts += [(i, int(w), True) for i in spheres for w in sorted({int(w) for w in wall_types})]
    names, lines = materials.names, []
    for i, j, wall in contacts:
        ratio = float(equilibrium_overlap_ratio(cohesion, ced[i, j], e_star[i, j], wall))
        if ratio > limit:
            lines.append(f"{names[i]}–{names[j]}{' (wall)' if wall else ''}: δ_c/R* = "
                         f"{ratio:.3g} (CED {ced[i, j] * 1e3:.3g} J/m³, "
                         f"E* {e_star[i, j] * 1e-6:.3g} GPa)")
    return lines
