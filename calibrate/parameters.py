"""Calibration parameters: named per-type material properties with bounds and transforms.

A parameter is named ``"<material>.<property>"``, e.g. ``"AM.E_GPa"``, in the property's user unit:

============  ===========  ===============  =============================================
property      unit         transform        physical range
============  ===========  ===============  =============================================
E_GPa         GPa          log              > 0
restitution   –            logit            (0, 1]
friction      –            logit            >= 0
ced_J_m3      J/m³         log              >= 0 (log transform needs lower > 0)
poisson       –            logit            [-1, 0.5]   (fixed unless ``free = true``)
============  ===========  ===============  =============================================

Both transforms map an unconstrained real u onto the open interval (lower, upper), so an optimiser
in u never leaves the bounds (σ is the logistic function):

* ``"logit"``: x = lower + (upper - lower) σ(u)  (uniform in x);
* ``"log"``:   x = exp(ln lower + (ln upper - ln lower) σ(u))  (uniform in ln x; the "log" of
  moduli and CED, bounded).

The base of :func:`materials_from_parameters` is a :class:`TypeTable`: the per-type values in user
units (Table 2 of the paper by :func:`table2`). Pair values are then mixed by
:meth:`twin.physics.materials.Materials.from_types` with the chosen rule, so a fitted per-type
value moves every pair that involves it, as in the paper's input scripts. A
:class:`~twin.physics.materials.Materials` can also serve as the base: its per-type values are
recovered from the pair diagonals (:meth:`TypeTable.from_materials`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

import twin  # noqa: F401  (enables float64)
from twin.physics.materials import MIXING_RULES, Materials
from twin.process.materials import TABLE2, TABLE2_NAMES
from twin.units import PA_PER_MICRO_PRESSURE, gpa_to_micro, j_per_m3_to_micro

TRANSFORMS = ("log", "logit")


@dataclass(frozen=True)
class Property:
    """A per-type material property as the user writes it."""

    unit: str
    transform: str
    physical_range: tuple[float, float]
    closed_lower: bool          # whether the lower end of physical_range is allowed
    free_by_default: bool = True


PROPERTIES = {
    "E_GPa": Property("GPa", "log", (0.0, math.inf), False),
    "restitution": Property("", "logit", (0.0, 1.0), False),
    "friction": Property("", "logit", (0.0, math.inf), True),
    "ced_J_m3": Property("J/m³", "log", (0.0, math.inf), True),
    "poisson": Property("", "logit", (-1.0, 0.5), True, free_by_default=False),
}


@dataclass(frozen=True)
class TypeTable:
    """Per-type material values in user units (GPa, –, –, –, J/m³), one row per type name."""

    names: tuple[str, ...]
    E_GPa: np.ndarray
    poisson: np.ndarray
    restitution: np.ndarray
    friction: np.ndarray
    ced_J_m3: np.ndarray

    @classmethod
    def from_materials(cls, materials: Materials, mixing: str) -> TypeTable:
        """Invert ``Materials.from_types`` on the pair diagonals (x_ii = x_i for both rules,
        except the artistic steel CED, CED_ss = CED_s^0.9); raise if the pair matrices are not
        the ``mixing`` rule applied to those per-type values."""
        _check_mixing(mixing)
        ced = np.diag(np.asarray(materials.cohesion_energy_density)).copy()
        lower = [n.lower() for n in materials.names]
        if mixing == "artistic" and "steel" in lower:
            s = lower.index("steel")
            ced[s] = ced[s] ** (1.0 / 0.9)
        table = cls(tuple(materials.names),
                    np.asarray(materials.youngs_modulus) / gpa_to_micro(1.0),
                    np.asarray(materials.poisson),
                    np.diag(np.asarray(materials.restitution)).copy(),
                    np.diag(np.asarray(materials.friction)).copy(),
                    ced * PA_PER_MICRO_PRESSURE)
        rebuilt = table.materials(mixing)
        for label in ("restitution", "friction", "cohesion_energy_density"):
            if not np.allclose(getattr(rebuilt, label), getattr(materials, label), rtol=1e-12):
                raise ValueError(f"the {label} pair matrix of the base materials is not the "
                                 f"{mixing!r} mixing of its diagonal: pass a TypeTable as the "
                                 "base, or the mixing rule the materials were built with")
        return table

    def materials(self, mixing: str, **replaced) -> Materials:
        """The :class:`Materials` (micro units) with optional per-type arrays ``replaced``."""
        _check_mixing(mixing)
        values = {key: replaced.get(key, jnp.asarray(getattr(self, key))) for key in PROPERTIES}
        return Materials.from_types(self.names, gpa_to_micro(values["E_GPa"]), values["poisson"],
                                    values["restitution"], values["friction"],
                                    j_per_m3_to_micro(values["ced_J_m3"]), mixing=mixing)

    def value(self, name: str) -> float:
        """The base value of parameter ``name`` ("material.property")."""
        material, prop = split_name(name, self.names)
        return float(getattr(self, prop)[self.names.index(material)])


def table2() -> TypeTable:
    """Table 2 of Ngandjong et al. (2021): CBD, AM, Al (collector), steel (calender plate)."""
    rows = np.array([TABLE2[name] for name in TABLE2_NAMES], dtype=float)
    # TABLE2 columns: E (GPa), restitution, Poisson, friction, CED (micro units = 1e3 J/m³)
    return TypeTable(TABLE2_NAMES, rows[:, 0], rows[:, 2], rows[:, 1], rows[:, 3],
                     rows[:, 4] * PA_PER_MICRO_PRESSURE)


def logit(s):
    """Inverse of the logistic function, for s in (0, 1) (numpy)."""
    s = np.asarray(s, dtype=float)
    return np.log(s) - np.log1p(-s)


def valid_names(materials: tuple[str, ...]) -> list[str]:
    return [f"{m}.{p}" for m in materials for p in PROPERTIES]


def split_name(name: str, materials: tuple[str, ...]) -> tuple[str, str]:
    """``"AM.E_GPa"`` -> ("AM", "E_GPa"); a clear ValueError for any other name."""
    material, _, prop = str(name).partition(".")
    if material not in materials or prop not in PROPERTIES:
        raise ValueError(f"unknown parameter name {name!r}: valid names are "
                         f"{', '.join(valid_names(materials))}")
    return material, prop


def _check_mixing(mixing):
    if mixing not in MIXING_RULES:
        raise ValueError(f"unknown mixing rule {mixing!r}: choose one of {MIXING_RULES}")


def materials_from_parameters(base: TypeTable | Materials, values: dict, mixing: str = "artistic"
                              ) -> Materials:
    """A new :class:`Materials` with the named per-type values replaced (differentiable).

    Args:
        base: per-type values (a :class:`TypeTable`, e.g. :func:`table2`), or a ``Materials``
            whose per-type values are recovered by :meth:`TypeTable.from_materials`.
        values: ``{"AM.E_GPa": 200.0, "CBD.ced_J_m3": 7e7, ...}`` in user units; scalars or JAX
            scalars (traced values are fine: jit, grad and vmap pass through).
        mixing: pair mixing rule, ``"geometric"`` or ``"artistic"`` (the paper's scripts).

    Returns:
        ``Materials`` in micro units.
    """
    if isinstance(base, Materials):
        base = TypeTable.from_materials(base, mixing)
    columns = {}
    for name, value in values.items():
        material, prop = split_name(name, base.names)
        column = columns.get(prop, jnp.asarray(getattr(base, prop)))
        columns[prop] = column.at[base.names.index(material)].set(value)
    return base.materials(mixing, **columns)


@dataclass(frozen=True)
class Parameter:
    """One named parameter: start value, bounds (user units), transform and free/fixed."""

    name: str
    start: float
    lower: float
    upper: float
    free: bool = True
    transform: str = ""

    @property
    def unit(self) -> str:
        return PROPERTIES[self.name.partition(".")[2]].unit

    def to_physical(self, u):
        s = jax.nn.sigmoid(u)
        if self.transform == "log":
            x = self.lower * jnp.exp(math.log(self.upper / self.lower) * s)
        else:
            x = self.lower + (self.upper - self.lower) * s
        return jnp.clip(x, self.lower, self.upper)     # rounding at saturated ends

    def scaled(self, x):
        """Position of x in [lower, upper] on the transform's scale, in [0, 1] (numpy)."""
        x = np.asarray(x, dtype=float)
        if self.transform == "log":
            return np.log(x / self.lower) / math.log(self.upper / self.lower)
        return (x - self.lower) / (self.upper - self.lower)

    def to_unconstrained(self, x):
        return logit(self.scaled(x))


def make_parameter(name, start, lower=None, upper=None, free=None, transform=None,
                   materials=TABLE2_NAMES) -> Parameter:
    """Validated :class:`Parameter`: known name, bounds inside the physical range, start strictly
    inside the bounds (free parameters), transform defaulting to the property's."""
    material, prop_name = split_name(name, tuple(materials))
    prop = PROPERTIES[prop_name]
    free = prop.free_by_default if free is None else bool(free)
    transform = transform or prop.transform
    if transform not in TRANSFORMS:
        raise ValueError(f"parameter {name}: unknown transform {transform!r}; choose one of "
                         f"{TRANSFORMS}")
    start = _number(name, "start", start)
    lo_phys, hi_phys = prop.physical_range
    if not free:
        _check_physical(name, "start", start, prop)
        return Parameter(name, start, start if lower is None else _number(name, "lower", lower),
                         start if upper is None else _number(name, "upper", upper), False,
                         transform)
    if lower is None or upper is None:
        raise ValueError(f"free parameter {name} needs both 'lower' and 'upper' bounds "
                         f"({prop.unit or 'dimensionless'})")
    lower, upper = _number(name, "lower", lower), _number(name, "upper", upper)
    if not lower < upper:
        raise ValueError(f"parameter {name}: lower bound {lower:g} must be below the upper "
                         f"bound {upper:g}")
    _check_physical(name, "lower", lower, prop)
    _check_physical(name, "upper", upper, prop)
    if transform == "log" and lower <= 0:
        raise ValueError(f"parameter {name}: the log transform needs lower > 0 (got {lower:g}); "
                         "raise the lower bound or use transform = \"logit\"")
    if not lower < start < upper:
        raise ValueError(f"parameter {name}: start {start:g} {prop.unit} lies outside the open "
                         f"bounds ({lower:g}, {upper:g}); move the start or widen the bounds")
    return Parameter(name, start, lower, upper, True, transform)


def _number(name, key, value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name}: {key} = {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"parameter {name}: {key} = {value!r} is not finite")
    return number


def _check_physical(name, key, value, prop):
    lo, hi = prop.physical_range
    ok = (value >= lo if prop.closed_lower else value > lo) and value <= hi
    if not ok:
        bracket = "[" if prop.closed_lower else "("
        raise ValueError(f"parameter {name}: {key} = {value:g} is outside the physical range "
                         f"{bracket}{lo:g}, {hi:g}]")


@dataclass(frozen=True)
class ParameterSet:
    """An ordered set of parameters; the optimiser sees the free ones as one unconstrained vector.

    ``theta`` (unconstrained, shape (n_free,)) <-> ``values`` (``{name: physical value}``, fixed
    parameters at their start). Both directions are plain JAX, so grad/vmap/jit pass through.
    """

    parameters: tuple[Parameter, ...]
    by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        names = [p.name for p in self.parameters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"parameters listed twice: {', '.join(duplicates)}")
        if not any(p.free for p in self.parameters):
            raise ValueError("no free parameter: set free = true on at least one parameter")
        object.__setattr__(self, "by_name", {p.name: p for p in self.parameters})

    @property
    def free(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.free)

    @property
    def free_names(self) -> list[str]:
        return [p.name for p in self.free]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def start_theta(self) -> jnp.ndarray:
        return self.theta_from_values({p.name: p.start for p in self.free})

    def theta_from_values(self, values: dict) -> jnp.ndarray:
        """Unconstrained vector of the free parameters at physical ``values`` (strictly inside
        the bounds)."""
        for p in self.free:
            if not p.lower < float(values[p.name]) < p.upper:
                raise ValueError(f"parameter {p.name}: {float(values[p.name]):g} lies outside "
                                 f"the open bounds ({p.lower:g}, {p.upper:g})")
        return jnp.asarray([p.to_unconstrained(values[p.name]) for p in self.free])

    def values(self, theta) -> dict:
        """Physical values of every parameter (free from ``theta``, fixed at their start)."""
        theta = jnp.asarray(theta)
        out = {}
        k = 0
        for p in self.parameters:
            if p.free:
                out[p.name] = p.to_physical(theta[k])
                k += 1
            else:
                out[p.name] = jnp.asarray(p.start, dtype=theta.dtype)
        return out

    def free_vector(self, theta) -> jnp.ndarray:
        """Physical values of the free parameters as a vector (same order as ``theta``)."""
        theta = jnp.asarray(theta)
        return jnp.stack([p.to_physical(theta[k]) for k, p in enumerate(self.free)])

    def sample_theta(self, n: int, seed: int, margin: float = 0.02) -> np.ndarray:
        """``n`` starts drawn uniformly on each free parameter's transform scale (log-uniform for
        "log"), keeping ``margin`` of the scale away from the bounds; shape (n, n_free)."""
        rng = np.random.default_rng(seed)
        s = rng.uniform(margin, 1.0 - margin, size=(n, len(self.free)))
        return logit(s)

    def format(self, theta) -> str:
        """``AM.E_GPa=201.3 GPa  AM.ced_J_m3=6.012e+08 J/m³`` for a progress line."""
        x = np.asarray(self.free_vector(theta))
        return "  ".join(f"{p.name}={v:.6g}{(' ' + p.unit) if p.unit else ''}"
                         for p, v in zip(self.free, x))


def parameter_set(entries, materials=TABLE2_NAMES) -> ParameterSet:
    """:class:`ParameterSet` from a list of dicts (``name``, ``start``, ``lower``, ``upper``,
    ``free``, ``transform``), e.g. the ``[[parameters]]`` of a config."""
    allowed = {"name", "start", "lower", "upper", "free", "transform"}
    parameters = []
    for k, entry in enumerate(entries):
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise ValueError(f"parameter entry {k + 1}: unknown keys {unknown}; allowed keys are "
                             f"{sorted(allowed)}")
        for key in ("name", "start"):
            if key not in entry:
                raise ValueError(f"parameter entry {k + 1}: missing '{key}'")
        parameters.append(make_parameter(materials=materials, **entry))
    return ParameterSet(tuple(parameters))
