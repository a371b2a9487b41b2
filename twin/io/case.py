"""DEM case files (TOML) and their validation; turns a case into a ready-to-run state.

A case names its particles (a LAMMPS data file, with optional per-type diameter/density
overrides), the box periodicity, the material of each type, the walls, and the run settings.
Every quantity carries its unit in the key. Example (all keys shown)::

    [particles]
    data = "../shared/data/artistic/small_electrode_initial.data"   # relative to this file
    materials = { "1" = "CBD", "2" = "AM", "3" = "AM" }             # data type -> material
    diameter_um = { "1" = 1.3, "2" = 2.5 }                          # optional overrides
    density_g_cm3 = { "1" = 0.93 }

    [box]
    periodic = [true, true, false]
    z_um = [-100.0, 100.0]          # optional: replaces the data file's z bounds

    [materials.AM]                  # one table per material
    youngs_modulus_GPa = 200.0
    poisson = 0.3
    restitution = 0.15
    friction = 0.001
    cohesion_energy_density_J_m3 = 6.0e8   # or cohesion_energy_density_micro = 6.0e5

    [contact]
    cohesion = "sjkr2"              # none | sjkr | sjkr2
    mixing = "artistic"             # geometric | artistic

    [[walls]]
    name = "current_collector"
    material = "Al"
    z_um = -100.0
    normal = "+z"                   # +z: a floor (particles above), -z: a ceiling
    velocity_um_us = 0.0            # µm/µs = m/s

    [run]
    dt_us = 1.0e-4
    steps = 1000
    trajectory_every = 100
    walls_every = 10
    skin_um = 0.2
    precision = "float64"           # or float32 (mixed: float64 integration, float32 contact law)
    rayleigh_fraction = 0.2
"""

from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from twin.physics.cohesion import COHESION_MODELS
from twin.physics.dem import DEMConfig, Spheres, Walls, initial_state
from twin.physics.materials import (COLLAPSING_OVERLAP_RATIO, MIXING_RULES, Materials,
                                    collapsing_pairs)
from twin.physics.neighbors import allocate_neighbors
from twin.physics.simulate import DEFAULT_RAYLEIGH_FRACTION, check_time_step
from twin.physics.space import Box, wrap_positions
from twin.units import gpa_to_micro, j_per_m3_to_micro

PRECISIONS = ("float64", "float32")


@dataclass(frozen=True)
class WallSpec:
    name: str
    material: int
    z: float
    normal_z: float
    velocity_z: float


@dataclass
class Case:
    """A DEM problem in micro units, numpy arrays; ``types`` index ``materials.names``."""

    name: str
    ids: np.ndarray
    types: np.ndarray
    radius: np.ndarray
    density: np.ndarray
    position: np.ndarray
    box: Box
    materials: Materials
    walls: list[WallSpec]
    cohesion: str = "none"
    dt: float = 1e-4
    steps: int = 1000
    trajectory_every: int = 100
    walls_every: int = 10
    skin: float = 0.2
    precision: str = "float64"
    viscous_damping: float = 0.0     # 1/µs, background drag (DEMConfig); 0 for LIGGGHTS cases
    wall_force_filter_time: float = 0.0   # µs, low-pass of the wall forces (DEMConfig); 0: none
    rayleigh_fraction: float = DEFAULT_RAYLEIGH_FRACTION
    velocity: np.ndarray | None = None
    angular_velocity: np.ndarray | None = None
    notes: dict = field(default_factory=dict)

    @property
    def mass(self) -> np.ndarray:
        return self.density * 4.0 / 3.0 * np.pi * self.radius**3

    def collapsing_contacts(self, materials: Materials | None = None) -> list[str]:
        """:func:`~twin.physics.materials.collapsing_pairs` of this case's sphere types and walls,
        with the case's materials or ``materials`` (e.g. a calibration's trial values)."""
        return collapsing_pairs(self.materials if materials is None else materials,
                                self.cohesion, np.unique(self.types),
                                [w.material for w in self.walls])

    def validate(self) -> None:
        """Raise ValueError naming the offending value and the fix; warn (with the numbers) where
        cohesion would collapse the packing (:meth:`collapsing_contacts`)."""
        n = len(self.radius)
        if n == 0:
            raise ValueError(f"case {self.name!r} has no particles")
        if np.any(self.radius <= 0):
            k = int(np.argmax(self.radius <= 0))
            raise ValueError(f"particle id {self.ids[k]} has radius {self.radius[k]} µm; radii "
                             "must be > 0")
        if self.cohesion not in COHESION_MODELS:
            raise ValueError(f"cohesion = {self.cohesion!r}: choose one of {COHESION_MODELS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision = {self.precision!r}: choose one of {tuple(PRECISIONS)}")
        for label, value in (("dt_us", self.dt), ("skin_um", self.skin)):
            if not value > 0:
                raise ValueError(f"{label} = {value} must be > 0")
        if not (np.isfinite(self.viscous_damping) and self.viscous_damping >= 0):
            raise ValueError(f"viscous_damping = {self.viscous_damping} 1/µs must be ≥ 0")
        if not (np.isfinite(self.wall_force_filter_time) and self.wall_force_filter_time >= 0):
            raise ValueError(f"wall_force_filter_time = {self.wall_force_filter_time} µs must be "
                             "≥ 0 (0: no filter)")
        if self.steps % self.walls_every or self.steps % self.trajectory_every:
            raise ValueError(f"steps = {self.steps} must be a multiple of walls_every = "
                             f"{self.walls_every} and of trajectory_every = {self.trajectory_every}")
        if self.trajectory_every % self.walls_every:
            raise ValueError(f"trajectory_every = {self.trajectory_every} must be a multiple of "
                             f"walls_every = {self.walls_every}")
        self.materials.check()
        collapsing = self.collapsing_contacts()
        if collapsing:
            warnings.warn(f"case {self.name!r}: cohesion beats the Hertz repulsion up to an overlap "
                          f"beyond {COLLAPSING_OVERLAP_RATIO:g} R* for " + "; ".join(collapsing)
                          + ": the packing will collapse into deep overlaps, outside the contact "
                          "law's validity (lower the CED or raise E)", stacklevel=2)
        lo, hi = np.asarray(self.box.lo), np.asarray(self.box.hi)
        for axis, periodic in enumerate(self.box.periodic):
            if periodic:
                continue
            c = self.position[:, axis]
            outside = (c < lo[axis]) | (c > hi[axis])
            if outside.any():
                k = int(np.argmax(outside))
                raise ValueError(
                    f"particle id {self.ids[k]} at {'xyz'[axis]} = {c[k]:.6g} µm lies outside the "
                    f"non-periodic box [{lo[axis]:.6g}, {hi[axis]:.6g}] µm: enlarge the box or "
                    "make the axis periodic")
        for wall in self.walls:
            if wall.normal_z not in (1.0, -1.0):
                raise ValueError(f"wall {wall.name!r}: normal must be '+z' or '-z'")
            behind = (self.position[:, 2] - wall.z) * wall.normal_z < 0
            if behind.any():
                k = int(np.argmax(behind))
                raise ValueError(
                    f"wall {wall.name!r} at z = {wall.z:.6g} µm has particle id {self.ids[k]} "
                    f"(z = {self.position[k, 2]:.6g} µm) behind it: place every floor below and every "
                    "ceiling above all particles (walls must not overlap or cross the packing)")
        check_time_step(self.dt, self.radius, self.density, self.types, self.materials,
                        self.rayleigh_fraction)


def prepare(case: Case):
    """Validate and return (state, neighbour spec, config) ready for :func:`simulate`."""
    case.validate()
    dtype = jnp.float64   # integration state is always float64; precision applies to contacts
    n = len(case.radius)
    zeros = np.zeros((n, 3))
    velocity = case.velocity if case.velocity is not None else zeros
    angular = case.angular_velocity if case.angular_velocity is not None else zeros
    box = Box(jnp.asarray(case.box.lo, dtype), jnp.asarray(case.box.hi, dtype), case.box.periodic)
    position = wrap_positions(jnp.asarray(case.position, dtype), box)
    spheres = Spheres(
        position=position, velocity=jnp.asarray(velocity, dtype),
        angular_velocity=jnp.asarray(angular, dtype), force=jnp.zeros((n, 3), dtype),
        torque=jnp.zeros((n, 3), dtype), radius=jnp.asarray(case.radius, dtype),
        mass=jnp.asarray(case.mass, dtype), type=jnp.asarray(case.types, jnp.int32))
    walls = Walls(
        z=jnp.asarray([w.z for w in case.walls], dtype),
        velocity_z=jnp.asarray([w.velocity_z for w in case.walls], dtype),
        normal_z=jnp.asarray([w.normal_z for w in case.walls], dtype),
        type=jnp.asarray([w.material for w in case.walls], jnp.int32))
    materials = Materials(*(jnp.asarray(a, dtype) for a in (
        case.materials.youngs_modulus, case.materials.poisson, case.materials.restitution,
        case.materials.friction, case.materials.cohesion_energy_density)), case.materials.names)
    spec, pair_list = allocate_neighbors(position, case.radius, box, case.skin, wall_z=walls.z,
                                         wall_normal_z=walls.normal_z)
    config = DEMConfig(case.dt, case.cohesion, case.precision, case.viscous_damping,
                       wall_force_filter_time=case.wall_force_filter_time)
    state = initial_state(spheres, walls, pair_list, materials, box, config)
    return state, spec, config, box, materials


def _material_value(table, name, key, converters):
    for suffix, convert in converters:
        if key + suffix in table:
            return convert(float(table[key + suffix]))
    keys = " or ".join(key + s for s, _ in converters)
    raise ValueError(f"material {name!r} is missing {keys}")


def _per_type(mapping, label):
    try:
        return {int(k): v for k, v in mapping.items()}
    except ValueError as error:
        raise ValueError(f"[particles] {label} keys must be atom types (integers as strings)") from error


def load_case(path) -> Case:
    """Read a TOML case file (see the module docstring)."""
    from twin.io.lammps import read_sphere_data

    path = Path(path)
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    for section in ("particles", "materials", "run"):
        if section not in doc:
            raise ValueError(f"{path}: missing [{section}] section")
    particles = doc["particles"]
    data = read_sphere_data((path.parent / particles["data"]).resolve())
    type_material = _per_type(particles.get("materials", {}), "materials")
    missing = sorted(set(np.unique(data.types)) - set(type_material))
    if missing:
        raise ValueError(f"{path}: [particles] materials does not name a material for atom "
                         f"types {missing}")
    names = list(doc["materials"])
    for t, name in type_material.items():
        if name not in names:
            raise ValueError(f"{path}: atom type {t} uses material {name!r}, which has no "
                             f"[materials.{name}] table (known: {names})")
    diameter = data.diameter.copy()
    density = data.density.copy()
    for t, value in _per_type(particles.get("diameter_um", {}), "diameter_um").items():
        diameter[data.types == t] = float(value)
    for t, value in _per_type(particles.get("density_g_cm3", {}), "density_g_cm3").items():
        density[data.types == t] = float(value)
    mats = doc["materials"]
    contact = doc.get("contact", {})
    mixing = contact.get("mixing", "geometric")
    if mixing not in MIXING_RULES:
        raise ValueError(f"{path}: [contact] mixing = {mixing!r}: choose one of {MIXING_RULES}")
    identity = [("", float)]
    materials = Materials.from_types(
        names,
        np.array([_material_value(mats[m], m, "youngs_modulus",
                                  [("_GPa", gpa_to_micro), ("_micro", float)]) for m in names]),
        np.array([_material_value(mats[m], m, "poisson", identity) for m in names]),
        np.array([_material_value(mats[m], m, "restitution", identity) for m in names]),
        np.array([_material_value(mats[m], m, "friction", identity) for m in names]),
        np.array([_material_value(mats[m], m, "cohesion_energy_density",
                                  [("_J_m3", j_per_m3_to_micro), ("_micro", float)])
                  for m in names]),
        mixing=mixing)
    box_doc = doc.get("box", {})
    periodic = tuple(bool(p) for p in box_doc.get("periodic", [True, True, False]))
    if len(periodic) != 3:
        raise ValueError(f"{path}: [box] periodic needs three booleans (x, y, z)")
    lo, hi = data.box_lo.copy(), data.box_hi.copy()
    if "z_um" in box_doc:
        lo[2], hi[2] = (float(v) for v in box_doc["z_um"])
    walls = []
    for wall in doc.get("walls", []):
        if wall.get("material") not in names:
            raise ValueError(f"{path}: wall {wall.get('name')!r} material "
                             f"{wall.get('material')!r} is not one of {names}")
        normal = {"+z": 1.0, "-z": -1.0}.get(wall.get("normal"))
        if normal is None:
            raise ValueError(f"{path}: wall {wall.get('name')!r} normal must be '+z' or '-z'")
        walls.append(WallSpec(wall.get("name", f"wall{len(walls)}"),
                              names.index(wall["material"]), float(wall["z_um"]), normal,
                              float(wall.get("velocity_um_us", 0.0))))
    run = doc["run"]
    case = Case(
        name=path.stem, ids=data.ids, types=np.array([names.index(type_material[t])
                                                     for t in data.types]),
        radius=diameter / 2.0, density=density, position=data.position,
        box=Box(lo, hi, periodic), materials=materials, walls=walls,
        cohesion=contact.get("cohesion", "none"), dt=float(run["dt_us"]), steps=int(run["steps"]),
        trajectory_every=int(run.get("trajectory_every", run["steps"])),
        walls_every=int(run.get("walls_every", 1)), skin=float(run.get("skin_um", 0.2)),
        precision=run.get("precision", "float64"),
        rayleigh_fraction=float(run.get("rayleigh_fraction", DEFAULT_RAYLEIGH_FRACTION)))
    return replace(case, notes={"source": str(path), "data": data.source, "mixing": mixing})
