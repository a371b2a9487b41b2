"""The calibration config (TOML): what to simulate, what to match, what to fit, how.

::

    [simulation]                 # kind + that simulator's settings (calibrate/simulators.py)
    kind = "hertz_sphere_on_plate"
    sphere = "AM"
    max_overlap_um = 0.05

    [materials]                  # optional: the per-type values the parameters replace
    base = "table2"              # Table 2 of the paper (only choice for now)
    mixing = "artistic"          # or "geometric"

    [[targets]]                  # one table per target curve; file relative to this config
    file = "hertz_twin.csv"
    columns = ["overlap_um", "force_uN"]     # x column, y column
    curve = "load_displacement"              # the simulator's curve it matches
    weight = 1.0                             # optional
    # scale = 100.0                          # optional residual scale in y units (default RMS)

    [[parameters]]               # "material.property" in user units (calibrate/parameters.py)
    name = "AM.E_GPa"
    start = 300.0
    lower = 20.0
    upper = 2000.0
    free = true                  # optional (default true, false for poisson)

    [optimizer]                  # calibrate.fit.OptimizerSettings; all optional
    name = "lbfgs"               # or "adam", "levenberg-marquardt"
    iterations = 50
    learning_rate = 0.05         # adam
    clip = 1.0                   # adam, global norm
    schedule = "cosine"          # adam: constant | cosine | exponential
    damping = 1e-3               # levenberg-marquardt: μ0 / max diag(JᵀJ)
    damping_trials = 1           # levenberg-marquardt: trial steps per Jacobian (μ·10^k)
    then = "levenberg-marquardt" # optional second optimiser, from the first one's last iterate
    then_iterations = 20         # its iteration budget
    smoothing_pairs = 0          # > 0: the (last) optimiser's residuals averaged over that many
    # smoothing_sigma2 = 1e-5    # antithetic pairs of draws of N(0, σ²(JᵀJ)⁻¹) (calibrate/fit.py;
                                 # needed with smoothing_pairs > 0)
    starts = 1                   # > 1: multi-start (calibrate/multistart.py)
    seed = 0

    [identifiability]            # optional
    threshold = 1e-8             # eigenvalue ratio below which a direction is unconstrained
    # sigma2 = 1e-4              # variance of the normalised residuals (default: estimated)

Unknown tables or keys are errors, so that a typo does not silently fall back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from calibrate.fit import OptimizerSettings, optimizer_settings
from calibrate.parameters import ParameterSet, TypeTable, parameter_set, table2
from calibrate.targets import load_target
from twin.physics.materials import MIXING_RULES

BASES = {"table2": table2}
TABLES = {"simulation", "materials", "targets", "parameters", "optimizer", "identifiability"}


@dataclass
class Config:
    """A parsed, validated config; ``directory`` resolves relative paths."""

    directory: Path
    simulation: dict
    base: TypeTable
    mixing: str
    targets: list
    parameters: ParameterSet
    optimizer: OptimizerSettings
    identifiability: dict


def load_config(path) -> Config:
    """Read and validate a TOML config (see the module docstring for its keys)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config {path} is not valid TOML: {error}") from None
    return parse_config(data, path.parent)


def _keys(where, table, allowed, required=()):
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {sorted(allowed)}")
    missing = [k for k in required if k not in table]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")


def parse_config(data: dict, directory=".") -> Config:
    """:class:`Config` from the TOML tables ``data``; relative files from ``directory``."""
    directory = Path(directory)
    _keys("config", data, TABLES, ("simulation", "targets", "parameters"))
    simulation = data["simulation"]
    _keys("[simulation]", simulation, set(simulation), ("kind",))
    materials = data.get("materials", {})
    _keys("[materials]", materials, {"base", "mixing"})
    base_name = materials.get("base", "table2")
    if base_name not in BASES:
        raise ValueError(f"[materials] base {base_name!r}: choose one of {sorted(BASES)}")
    base = BASES[base_name]()
    mixing = materials.get("mixing", "artistic")
    if mixing not in MIXING_RULES:
        raise ValueError(f"[materials] mixing {mixing!r}: choose one of {MIXING_RULES}")
    targets = []
    for k, entry in enumerate(_list("targets", data["targets"])):
        _keys(f"[[targets]] {k + 1}", entry, {"file", "columns", "curve", "weight", "scale"},
              ("file", "columns", "curve"))
        targets.append(load_target(directory / entry["file"], entry["columns"], entry["curve"],
                                   entry.get("weight", 1.0), entry.get("scale")))
    parameters = parameter_set(_list("parameters", data["parameters"]), base.names)
    identifiability = data.get("identifiability", {})
    _keys("[identifiability]", identifiability, {"threshold", "sigma2"})
    return Config(directory, dict(simulation), base, mixing, targets, parameters,
                  optimizer_settings(data.get("optimizer", {})), dict(identifiability))


def _list(name, value) -> list:
    if not isinstance(value, list) or not value:
        raise ValueError(f"config: [[{name}]] must be one or more tables")
    return value

