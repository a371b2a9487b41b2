"""Simulators a calibration can fit, by kind.

A simulator is any callable ``simulate(materials) -> {curve: (x, y)}``: ``materials`` a
:class:`twin.physics.materials.Materials` (micro units), ``x`` a static 1-D numpy array, strictly
monotone, ``y`` a JAX array of the same length, differentiable with respect to the materials. A
*factory* builds a simulator from the ``[simulation]`` table of a config::

    @register("my_kind")
    def my_factory(settings: dict, config_dir: pathlib.Path) -> Simulator: ...

``settings`` is the table without ``kind``; ``config_dir`` is the folder of the config file (to
resolve relative paths such as a case file). :func:`make_simulator` looks the kind up.

A simulator that ``jax.jit``/``jax.vmap`` cannot trace, e.g. one with a Python ``if`` on a value
that depends on the parameters (a neighbour-list overflow flag that triggers a re-allocation),
sets the attribute ``simulate.traceable = False``. The fit then takes eager Adam steps, runs
multi-starts one after another, and refuses L-BFGS (its line search traces the loss). Such code
must still go through an eager ``jax.grad``: ``bool`` of a comparison may drive a branch, but
``float()`` or ``np.asarray`` of a parameter-dependent value may not.

A simulator that reverse mode differentiates but forward mode cannot (the DEM replays: their
online-checkpointed loops are ``custom_vjp`` functions) sets ``simulate.forward_mode = False``,
and may offer ``simulate.forward``: the same curves from loops that forward mode can enter (the
DEM replays' plain ``lax`` loops). Jacobians of the residuals (Levenberg–Marquardt, the
identifiability analysis) take one forward-mode tangent per free parameter where a
forward-differentiable version exists, else one backward pass per residual
(:meth:`calibrate.loss.Objective.residuals_and_jacobian`).

Built in: ``"hertz_sphere_on_plate"`` (:func:`hertz_sphere_on_plate`), ``"calender"`` and
``"indent"`` (DEM plate runs replayed differentiably from a ``twin calender``/``twin indent`` case
file), and ``"combined"`` (the curves of several simulators, e.g. porosity–pressure and
indentation of one electrode, fitted together).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from twin.physics.cohesion import COHESION_MODELS, wall_contact_area
from twin.physics.hertz import hertz_normal_force
from twin.physics.materials import Materials, pair_table

Curves = dict[str, tuple[np.ndarray, jnp.ndarray]]
Simulator = Callable[[Materials], Curves]

MICRO_NEWTON_PER_MICRO_FORCE = 1e-3     # micro force unit pg·µm/µs² = 1 nN

SIMULATORS: dict[str, Callable[[dict, Path], Simulator]] = {}


def register(kind: str):
    """Decorator registering ``factory(settings, config_dir) -> simulator`` under ``kind``."""
    def decorate(factory):
        SIMULATORS[kind] = factory
        return factory
    return decorate


def make_simulator(table: dict, config_dir=".") -> Simulator:
    """The simulator of a ``[simulation]`` table (``kind`` plus the factory's settings)."""
    table = dict(table)
    kind = table.pop("kind", None)
    if kind not in SIMULATORS:
        raise ValueError(f"unknown simulation kind {kind!r}: registered kinds are "
                         f"{sorted(SIMULATORS)}")
    return SIMULATORS[kind](table, Path(config_dir))


def forward_version(simulator: Simulator) -> Simulator | None:
    """The version of ``simulator`` that forward mode can differentiate: itself, unless it sets
    ``forward_mode = False``; then its ``forward`` attribute, or None (module docstring)."""
    if getattr(simulator, "forward_mode", True):
        return simulator
    return getattr(simulator, "forward", None)


def check_settings(kind: str, settings: dict, defaults: dict) -> dict:
    """``defaults`` updated with ``settings``; ValueError naming any unknown key."""
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(f"[simulation] kind {kind!r}: unknown keys {unknown}; allowed keys are "
                         f"{sorted(defaults)}")
    return {**defaults, **settings}


HERTZ_DEFAULTS = {"sphere": "AM", "wall": "steel", "radius_um": 5.0, "max_overlap_um": 0.05,
                  "points": 40, "cohesion": "sjkr2", "curve": "load_displacement"}


@register("hertz_sphere_on_plate")
def hertz_sphere_on_plate(settings: dict, config_dir: Path | None = None) -> Simulator:
    """Quasi-static load–displacement of one sphere pressed on a flat wall.

    F(δ) = 4/3 E* sqrt(R δ) δ − CED_sw · A(δ),   A = 2π R δ (``sjkr2``) or π(2Rδ − δ²) (``sjkr``),

    with E* and CED_sw the sphere–wall pair values of the materials
    (:func:`twin.physics.materials.pair_table`, :func:`twin.physics.hertz.hertz_normal_force` at
    zero normal speed, :func:`twin.physics.cohesion.wall_contact_area`). At zero speed the
    damping, hence the restitution, drops out, and there is no tangential load, hence no friction:
    the curve constrains E* and CED only, a test case for the identifiability analysis.

    Settings: ``sphere``/``wall`` (type names), ``radius_um``, ``max_overlap_um``, ``points``
    (overlaps evenly spaced in (0, max]), ``cohesion`` (``"none"``, ``"sjkr"``, ``"sjkr2"``),
    ``curve`` (name). Curve: x = overlap δ (µm), y = normal force (µN, compressive > 0).
    """
    s = check_settings("hertz_sphere_on_plate", settings, HERTZ_DEFAULTS)
    if s["cohesion"] not in COHESION_MODELS:
        raise ValueError(f"[simulation] cohesion {s['cohesion']!r}: choose one of "
                         f"{COHESION_MODELS}")
    radius, max_overlap, points = float(s["radius_um"]), float(s["max_overlap_um"]), s["points"]
    if not (radius > 0 and 0 < max_overlap < radius and int(points) >= 2):
        raise ValueError(f"[simulation] needs radius_um > 0, 0 < max_overlap_um < radius_um and "
                         f"points >= 2; got {radius}, {max_overlap}, {points}")
    overlap = np.linspace(0.0, max_overlap, int(points) + 1)[1:]

    def simulate(materials: Materials) -> Curves:
        for name in (s["sphere"], s["wall"]):
            if name not in materials.names:
                raise ValueError(f"[simulation] type {name!r} is not among the materials "
                                 f"{materials.names}")
        i, j = materials.names.index(s["sphere"]), materials.names.index(s["wall"])
        pairs = pair_table(materials)
        delta = jnp.asarray(overlap)
        # zero normal speed: the mass (here 1) and the damping do not enter
        elastic, _ = hertz_normal_force(delta, 0.0, radius, 1.0, pairs.e_star[i, j],
                                        pairs.beta[i, j])
        cohesive = pairs.cohesion_energy_density[i, j] * wall_contact_area(s["cohesion"], delta,
                                                                            radius)
        force = (elastic - cohesive) * MICRO_NEWTON_PER_MICRO_FORCE
        return {s["curve"]: (overlap, force)}

    return simulate


# Replay settings (twin.process.differentiable). checkpoints: of the online-checkpointed scan;
# "all" stores every step (one forward sweep, then the backward pass; memory grows with the
# steps), an integer c stores c states and recomputes the rest (about r extra sweeps with
# binom(c + r, c) >= steps); None: the replay's default (DEFAULT_CHECKPOINTS, memory-lean).
# capacity_margin: neighbour capacities of the replay over those of the forward run at the case's
# materials; a fit that starts far from them (e.g. 50 % off) needs more than the default
# CAPACITY_MARGIN (1.3), else the replay stops with a neighbour-list overflow.
REPLAY_SETTINGS = {"checkpoints": None, "capacity_margin": None}


def _margin(kind: str, margin):
    from twin.process.differentiable import CAPACITY_MARGIN, check_capacity_margin
    if margin is None:
        return CAPACITY_MARGIN
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise ValueError(f"[simulation] kind {kind!r}: capacity_margin = {margin!r}; give a "
                         "number >= 1 (e.g. 2.0)")
    return check_capacity_margin(margin)


def _checkpoints(kind: str, value):
    from twin.process.differentiable import DEFAULT_CHECKPOINTS
    if value is None:
        return DEFAULT_CHECKPOINTS
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"[simulation] kind {kind!r}: checkpoints = {value!r}; give a positive "
                     "integer or \"all\"")


def _plate_case(kind: str, settings: dict, config_dir: Path):
    """The electrode, protocol and base materials of a ``twin calender``/``twin indent`` case."""
    from twin.io.calender_folder import load_calender_case
    if settings.get("case") is None:
        raise ValueError(f"[simulation] kind {kind!r} needs case = \"<{kind} case file>\"")
    case = load_calender_case(Path(config_dir) / settings["case"], kind)
    return case.electrode(), case.protocol, case.materials()


@register("calender")
def calender_porosity_pressure(settings: dict, config_dir: Path) -> Simulator:
    """The porosity–pressure curve of a calendering case (``twin calender`` case file), replayed
    differentiably (:class:`twin.process.differentiable.CalenderReplay`; the forward sweep that
    fixes the turn steps runs once, here, with the case's Table 2 materials).

    Settings: ``case`` (path, relative to the config), ``pressures_MPa`` (list), ``curve``,
    ``checkpoints`` and ``capacity_margin`` (see ``REPLAY_SETTINGS``), ``gradient_from_fraction``
    (None: gradients through the whole run; e.g. 0.9: the short-horizon sensitivity of the
    outcome after recovery, see :mod:`twin.process.differentiable`), ``exact_events`` (false:
    the turn and release events' windowed-slope rules; true: the local derivative of the
    replayed value, see :class:`~twin.process.differentiable.CalenderReplay`).
    Curve: x = target pressure (MPa), y = porosity after recovery (fraction).
    """
    from twin.process.differentiable import CalenderReplay
    s = check_settings("calender", settings, {"case": None, "pressures_MPa": None,
                                              "curve": "porosity_pressure",
                                              "gradient_from_fraction": None,
                                              "exact_events": False, **REPLAY_SETTINGS})
    if not isinstance(s["exact_events"], bool):
        raise ValueError(f"[simulation] kind \"calender\": exact_events = "
                         f"{s['exact_events']!r}; give true or false")
    pressures = np.sort(np.asarray(s["pressures_MPa"] or [], float))
    if pressures.size == 0 or np.any(pressures <= 0) or np.any(np.diff(pressures) <= 0):
        raise ValueError(f"[simulation] pressures_MPa = {s['pressures_MPa']}: give distinct "
                         "positive target pressures")
    checkpoints = _checkpoints("calender", s["checkpoints"])
    margin = _margin("calender", s["capacity_margin"])
    electrode, protocol, materials = _plate_case("calender", s, config_dir)
    replay = CalenderReplay(electrode, pressures, protocol, materials, checkpoints,
                            capacity_margin=margin,
                            gradient_from_fraction=s["gradient_from_fraction"],
                            exact_events=s["exact_events"])

    def simulate(materials: Materials, forward_mode: bool = False) -> Curves:
        return {s["curve"]: (replay.pressures_mpa,
                             replay.replay(materials, forward_mode).porosity)}

    simulate.forward_mode = False
    simulate.forward = functools.partial(simulate, forward_mode=True)
    simulate.collapsing_contacts = replay.collapsing_contacts
    return simulate


@register("indent")
def indentation_curve(settings: dict, config_dir: Path) -> Simulator:
    """The normalised load–displacement curve of an indentation case (``twin indent`` case
    file), replayed differentiably (:class:`twin.process.differentiable.IndentReplay`).

    Settings: ``case``, ``curve`` (name prefix), ``checkpoints``, ``capacity_margin``,
    ``gradient_memory_steps`` (None: gradients through the whole run; e.g. 500: the
    short-horizon sensitivity, see :class:`~twin.process.differentiable.IndentReplay`). Curves
    ``<curve>_loading`` and ``<curve>_unloading``: x = displacement / its maximum (increasing),
    y = force / its maximum.
    """
    from twin.process.differentiable import IndentReplay
    s = check_settings("indent", settings, {"case": None, "curve": "indentation",
                                            "gradient_memory_steps": None, **REPLAY_SETTINGS})
    checkpoints = _checkpoints("indent", s["checkpoints"])
    margin = _margin("indent", s["capacity_margin"])
    electrode, protocol, materials = _plate_case("indent", s, config_dir)
    replay = IndentReplay(electrode, protocol, materials, checkpoints, capacity_margin=margin,
                          gradient_memory_steps=s["gradient_memory_steps"])
    x = replay.displacement_um / replay.displacement_um.max()
    peak = int(np.argmax(x))

    def simulate(materials: Materials, forward_mode: bool = False) -> Curves:
        y = replay.replay(materials, forward_mode).force_normalised
        return {f"{s['curve']}_loading": (x[:peak + 1], y[:peak + 1]),
                f"{s['curve']}_unloading": (x[peak:][::-1], y[peak:][::-1])}

    simulate.forward_mode = False
    simulate.forward = functools.partial(simulate, forward_mode=True)
    simulate.collapsing_contacts = replay.collapsing_contacts
    return simulate


@register("combined")
def combined(settings: dict, config_dir: Path) -> Simulator:
    """The curves of several simulators together, e.g. the porosity–pressure curve and the
    indentation curve of one electrode, so that one fit matches both (as the paper's hand
    calibration did)::

        [simulation]
        kind = "combined"
        [[simulation.parts]]
        kind = "calender"
        case = "calender_case.toml"
        pressures_MPa = [10.0, 20.0]
        [[simulation.parts]]
        kind = "indent"
        case = "indent_case.toml"

    Each part is a ``[simulation]`` table of its own; two parts may not produce the same curve
    name (give one a different ``curve``). Traceable and forward-differentiable only if every part
    is.
    """
    s = check_settings("combined", settings, {"parts": None})
    parts = s["parts"]
    if not isinstance(parts, list) or len(parts) < 2 or not all(isinstance(p, dict)
                                                                 for p in parts):
        raise ValueError("[simulation] kind \"combined\" needs two or more [[simulation.parts]] "
                         "tables, each with its own kind")
    if any(p.get("kind") == "combined" for p in parts):
        raise ValueError("[simulation] a combined part cannot itself be \"combined\": list its "
                         "parts directly")
    simulators = [make_simulator(part, config_dir) for part in parts]

    def curves_of(materials: Materials, simulators) -> Curves:
        curves = {}
        for part, simulator in zip(parts, simulators):
            produced = simulator(materials)
            twice = sorted(set(produced) & set(curves))
            if twice:
                raise ValueError(f"[simulation] combined parts produce the curves {twice} twice "
                                 f"(again in the {part['kind']!r} part): set a distinct 'curve'")
            curves.update(produced)
        return curves

    def simulate(materials: Materials) -> Curves:
        return curves_of(materials, simulators)

    def collapsing_contacts(materials: Materials) -> list[str]:
        return sorted({line for f in simulators
                       for line in getattr(f, "collapsing_contacts", lambda m: [])(materials)})

    simulate.collapsing_contacts = collapsing_contacts
    simulate.traceable = all(getattr(f, "traceable", True) for f in simulators)
    simulate.forward_mode = all(getattr(f, "forward_mode", True) for f in simulators)
    forward = [forward_version(f) for f in simulators]
    if not simulate.forward_mode and None not in forward:
        simulate.forward = functools.partial(curves_of, simulators=forward)
    return simulate
