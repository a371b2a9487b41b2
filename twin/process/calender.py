"""Calendering: a steel plate presses the dried electrode on its aluminium current collector to a
target pressure, then rises; the electrode's thickness after elastic recovery and its porosity.

Protocol (Ngandjong et al. 2021, §2.3 and "Calendering" in Methods; ``../shared/FACTS.md``):

1. optionally expand the AM diameters by 2 % (the authors' way to start from a packing with Hertz
   overlap; the porosity is computed with the unexpanded diameters, as in the paper);
2. the plate starts ``gap_um`` above the highest sphere top and descends at ``v``; the pressure is
   the plate force over the cell area, P = F_z / (l_x l_y);
3. as soon as P reaches the target the plate reverses and rises at ``v`` (a per-step controller
   inside the jitted loop, :class:`PressureReversal`, so the turn happens at the exact step);
4. the run stops once the plate force stayed below ``release_fraction`` of its maximum over
   ``clearance_um`` of rise.

Thickness after recovery, two definitions (both reported):

* ``thickness_um`` (used for the porosity): the highest plate position during the rise at which the
  plate still carries ``release_fraction`` (1 %) of its maximum force;
* ``thickness_literal_um``, the paper's wording: the highest plate position during the rise with a
  non-zero force. It hangs on single CBD particles that cling to the rising plate by cohesion
  (issue #3 note: it scatters by ~0.5 pp of porosity between LIGGGHTS runs that differ by
  round-off), which is why the threshold definition is the default.

Porosity = 1 - (sphere volume inside the slab between collector and thickness, exact caps)
/ (l_x l_y thickness), spheres overlapping each other counted twice (as the paper's particle
volumes do). Pressures in MPa, forces in N, lengths in µm, times in µs at the edges; micro units
inside (force 1e-9 N, pressure 1e3 Pa).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from twin.analysis.porosity import porosity_particles
from twin.io.case import Case, WallSpec, prepare
from twin.physics.materials import Materials
from twin.physics.simulate import concatenate_records, simulate
from twin.physics.space import Box
from twin.process.materials import table2_materials
from twin.process.pack import Electrode

MICRO_FORCE_TO_N = 1e-9
MICRO_PRESSURE_TO_MPA = 1e-3


@dataclass
class CalenderProtocol:
    """Settings of one calendering run (units in the names; speeds in µm/µs = m/s)."""

    target_pressure_mpa: float
    plate_speed_um_us: float = 1.0
    dt_us: float = 1e-4
    am_expansion: float = 1.02
    gap_um: float = 0.5
    release_fraction: float = 0.01
    clearance_um: float = 1.0
    record_every: int = 100
    chunk_steps: int = 2000
    max_steps: int = 2_000_000
    precision: str = "float64"
    cohesion: str = "sjkr2"
    skin_um: float = 0.2

    def validate(self) -> None:
        positive = {"target_pressure_mpa": self.target_pressure_mpa,
                    "plate_speed_um_us": self.plate_speed_um_us, "dt_us": self.dt_us,
                    "clearance_um": self.clearance_um, "gap_um": self.gap_um}
        for name, value in positive.items():
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"calender protocol: {name} = {value} must be a positive number")
        if not 0.0 < self.release_fraction < 1.0:
            raise ValueError(f"calender protocol: release_fraction = {self.release_fraction} must "
                             "lie in (0, 1) (the paper's non-zero force is ~0; 0.01 recommended)")
        if not 1.0 <= self.am_expansion < 1.2:
            raise ValueError(f"calender protocol: am_expansion = {self.am_expansion} must lie in "
                             "[1, 1.2) (the authors use 1.02)")
        if self.chunk_steps % self.record_every:
            raise ValueError(f"chunk_steps = {self.chunk_steps} must be a multiple of "
                             f"record_every = {self.record_every}")


class PressureReversal(eqx.Module):
    """Per-step controller: the plate moves down at ``speed`` until the force on it reaches
    ``target_force`` (micro units), then up at ``speed`` for the rest of the run."""

    plate: int = eqx.field(static=True)
    target_force: Array
    speed: Array

    def __call__(self, state):
        velocity = state.walls.velocity_z[self.plate]
        reached = (velocity < 0) & (state.wall_force[self.plate, 2] >= self.target_force)
        new_velocity = jnp.where(reached, self.speed, velocity)
        return eqx.tree_at(lambda s: s.walls.velocity_z, state,
                           state.walls.velocity_z.at[self.plate].set(new_velocity))


@dataclass
class CalenderResult:
    """Trace (one row per record) and the outcome of a calendering run."""

    time_us: np.ndarray
    plate_z_um: np.ndarray
    force_n: np.ndarray
    pressure_mpa: np.ndarray
    porosity_between_walls: np.ndarray
    summary: dict
    final_position: np.ndarray
    radius: np.ndarray          # unexpanded radii (µm)
    electrode: Electrode
    state: object = dataclasses.field(repr=False, default=None)


def calender_case(electrode: Electrode, protocol: CalenderProtocol,
                  materials: Materials | None = None) -> Case:
    """The DEM case of a calendering run: floor (Al) under the lowest sphere, plate (steel) above
    the highest, AM radii expanded by ``protocol.am_expansion``."""
    materials = materials if materials is not None else table2_materials("artistic")
    radius = np.where(electrode.is_am, electrode.radius * protocol.am_expansion, electrode.radius)
    z = electrode.position[:, 2]
    floor = float(np.min(z - radius))
    top = float(np.max(z + radius)) + protocol.gap_um
    lo, hi = np.asarray(electrode.box.lo, float), np.asarray(electrode.box.hi, float)
    names = materials.names
    types = np.where(electrode.is_am, names.index("AM"), names.index("CBD"))
    return Case(
        name="calender", ids=electrode.ids, types=types, radius=radius,
        density=electrode.density, position=electrode.position,
        box=Box(np.array([lo[0], lo[1], floor - 1.0]), np.array([hi[0], hi[1], top + 1.0]),
                (True, True, False)),
        materials=materials,
        walls=[WallSpec("current_collector", names.index("Al"), floor, 1.0, 0.0),
               WallSpec("calender_plate", names.index("steel"), top, -1.0,
                        -protocol.plate_speed_um_us)],
        cohesion=protocol.cohesion, dt=protocol.dt_us, steps=0, skin=protocol.skin_um,
        precision=protocol.precision)


def recovered_thickness(plate_z, force, rising, threshold):
    """Highest plate position during the rise with force ≥ threshold (nan if none)."""
    carrying = rising & (force >= threshold)
    return float(np.max(plate_z[carrying])) if np.any(carrying) else float("nan")


def calender(electrode: Electrode, protocol: CalenderProtocol, materials: Materials | None = None,
             progress=None) -> CalenderResult:
    """Run the calendering protocol (see the module docstring) and measure the recovery.

    ``progress`` is an optional callable ``(steps_done, plate_z_um, pressure_mpa, phase)``.
    Raises ValueError if the plate reaches the collector region (solid fraction above 0.95 of the
    gap) without reaching the target pressure.
    """
    protocol.validate()
    case = calender_case(electrode, protocol, materials)
    case.validate()
    state, spec, config, box, materials = prepare(case)
    area = float(np.prod(np.asarray(box.length)[:2]))
    plate = 1
    floor = case.walls[0].z
    target_force = protocol.target_pressure_mpa / MICRO_PRESSURE_TO_MPA * area
    control = PressureReversal(plate, jnp.asarray(target_force, state.walls.z.dtype),
                               jnp.asarray(protocol.plate_speed_um_us, state.walls.z.dtype))
    solid_volume = float(np.sum(4.0 / 3.0 * np.pi * electrode.radius**3))
    densest_plate_z = floor + solid_volume / area / 0.95
    records, steps, start = [], 0, time.perf_counter()
    while True:
        result = simulate(state, materials, box, spec, config, protocol.chunk_steps,
                          protocol.record_every, record_particles=False, control=control)
        state, spec = result.state, result.spec
        records.extend(result.records)
        steps += protocol.chunk_steps
        trace = concatenate_records(records)
        plate_z = trace.wall_z[:, plate]
        force = trace.wall_force[:, plate, 2]
        rising = np.concatenate([[False], np.diff(plate_z) > 0])
        phase = "unloading" if rising[-1] else "loading"
        if progress is not None:
            progress(steps, float(plate_z[-1]),
                     float(force[-1] / area * MICRO_PRESSURE_TO_MPA), phase)
        if not rising.any() and plate_z[-1] < densest_plate_z:
            raise ValueError(
                f"target pressure {protocol.target_pressure_mpa} MPa not reached: the plate is at "
                f"{plate_z[-1]:.4g} µm, where the solid fraction would exceed 0.95, with "
                f"{force[-1] / area * MICRO_PRESSURE_TO_MPA:.4g} MPa. Lower the target pressure.")
        if steps >= protocol.max_steps:
            raise ValueError(f"calendering not finished after max_steps = {protocol.max_steps} "
                             "steps: raise max_steps or the plate speed")
        if rising.any():
            turn_z = float(np.min(plate_z))
            threshold = protocol.release_fraction * float(np.max(force))
            released = rising & (plate_z >= turn_z) & (force >= threshold)
            last_contact_z = float(np.max(plate_z[released])) if released.any() else turn_z
            if plate_z[-1] > last_contact_z + protocol.clearance_um:
                break
    seconds = time.perf_counter() - start
    return _result(electrode, protocol, case, state, trace, rising, area, plate, floor, steps,
                   seconds, result.particle_steps_per_second)


def _result(electrode, protocol, case, state, trace, rising, area, plate, floor, steps, seconds,
            rate) -> CalenderResult:
    plate_z = np.asarray(trace.wall_z[:, plate])
    force = np.asarray(trace.wall_force[:, plate, 2])
    max_force = float(np.max(force))
    thickness_z = recovered_thickness(plate_z, force, rising, protocol.release_fraction * max_force)
    literal_z = recovered_thickness(plate_z, force, rising, np.finfo(float).tiny)
    position = np.asarray(state.spheres.position)
    lo = np.asarray(case.box.lo)
    hi = np.asarray(case.box.hi)

    phases = np.where(electrode.is_am, 1, 2)

    def porosity(top_z):
        if not np.isfinite(top_z):
            return float("nan")
        return float(porosity_particles(position, electrode.radius, phases, lo, hi,
                                        (floor, top_z)).porosity)

    solid_volume = float(np.sum(4.0 / 3.0 * np.pi * electrode.radius**3))
    between = 1.0 - solid_volume / (area * np.maximum(plate_z - floor, 1e-12))
    initial_top = float(np.max(electrode.position[:, 2] + electrode.radius))
    turn = int(np.argmin(plate_z))
    summary = {
        "final_porosity": porosity(thickness_z),
        "thickness_um": thickness_z - floor,
        "thickness_literal_um": literal_z - floor,
        "porosity_literal": porosity(literal_z),
        "initial_thickness_um": initial_top - floor,
        "initial_porosity": porosity(initial_top),
        "max_pressure_MPa": max_force / area * MICRO_PRESSURE_TO_MPA,
        "target_pressure_MPa": protocol.target_pressure_mpa,
        "min_plate_gap_um": float(plate_z[turn]) - floor,
        "collector_z_um": floor,
        "recovery_um": thickness_z - float(plate_z[turn]),
        "particles_above_thickness": int(np.sum(position[:, 2] - electrode.radius > thickness_z)),
        "plate_speed_m_s": protocol.plate_speed_um_us,
        "inertial_number": inertial_number(electrode, protocol.plate_speed_um_us,
                                           initial_top - floor, max_force / area),
        "am_expansion": protocol.am_expansion,
        "release_fraction": protocol.release_fraction,
        "steps": steps, "dt_us": protocol.dt_us,
        "wall_seconds": seconds, "particle_steps_per_second": rate,
        "precision": protocol.precision, "particles": int(len(electrode.radius)),
        "cell_um": [float(x) for x in np.asarray(case.box.length)[:2]],
    }
    return CalenderResult(
        time_us=np.asarray(trace.step) * protocol.dt_us, plate_z_um=plate_z - floor,
        force_n=force * MICRO_FORCE_TO_N, pressure_mpa=force / area * MICRO_PRESSURE_TO_MPA,
        porosity_between_walls=between, summary=summary, final_position=position,
        radius=electrode.radius, electrode=electrode, state=state)


def inertial_number(electrode: Electrode, speed_um_us, thickness_um, pressure_micro) -> float:
    """I = γ̇ d sqrt(ρ / P) with γ̇ = v / h, d the volume-weighted mean diameter, ρ the mean
    particle density (GDR MiDi 2004; quasi-static for I ≲ 1e-3)."""
    volume = electrode.radius**3
    diameter = 2.0 * float(np.sum(volume * electrode.radius) / np.sum(volume))
    density = float(np.sum(volume * electrode.density) / np.sum(volume))
    return speed_um_us / thickness_um * diameter * float(np.sqrt(density / max(pressure_micro,
                                                                                1e-300)))

