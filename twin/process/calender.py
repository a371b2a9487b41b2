"""Calendering: a steel plate presses the dried electrode on its aluminium current collector to a
target pressure, then rises; the electrode's thickness after elastic recovery and its porosity.

Protocol (Ngandjong et al. 2021, §2.3 and "Calendering" in Methods; ``../shared/FACTS.md``):

1. optionally expand the AM diameters by 2 % (the authors' way to start from a packing with Hertz
   overlap; the porosity is computed with the unexpanded diameters, as in the paper);
2. the plate starts ``gap_um`` above the highest sphere top and descends at ``v``; the pressure is
   the plate force over the cell area, P = F_z / (l_x l_y);
3. as soon as P reaches the target the plate reverses and rises at ``v`` (a per-step controller
   inside the jitted loop, :class:`PlateReversal`, so the turn happens at the exact step). The
   controller reads the plate force low-passed with time constant ``force_filter_us``
   (:func:`twin.physics.dem.filter_wall_force`), as a load cell would: at a plate speed of m/s the
   first touch of a resting sphere gives a spike of ~MPa for a Hertz contact time (~0.03 µs),
   and an unfiltered controller turns on that spike (measured in issue #4: a 1 MPa target turned
   at first touch, 41.5 % porosity); ``max_pressure_MPa`` is the filtered maximum. The price is a
   lag: on a loading ramp the filtered force trails the force by Ḟ τ, so the plate turns τ
   later (v τ = 0.1 µm of travel at 2 m/s with the default τ = 0.05 µs). Measured on the
   paper-size dried electrode at 2 m/s (per-step force, float64): the first touch gives a
   transient of 1.87 MPa lasting ~0.1 µs (the top layer is set in motion), after which the
   force falls back to 0.1–0.5 MPa; its filtered maximum is 1.69 / 1.31 / 0.77 / 0.38 MPa for
   τ = 0.01 / 0.03 / 0.1 / 0.3 µs. Targets below ~1 MPa at m/s plate speeds need a longer τ or a
   slower plate;
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
from twin.process.pack import Electrode, inertial_number

MICRO_FORCE_TO_N = 1e-9
MICRO_PRESSURE_TO_MPA = 1e-3
DEFAULT_FORCE_FILTER_US = 0.05  # µs: see the module docstring, step 3


@dataclass(kw_only=True)
class PlateProtocol:
    """Settings shared by every plate run (units in the names; speeds in µm/µs = m/s)."""

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
    viscous_damping_per_us: float = 0.0
    force_filter_us: float = DEFAULT_FORCE_FILTER_US

    def validate(self) -> None:
        if not (np.isfinite(self.gap_um) and self.gap_um > 0):
            raise ValueError(f"plate protocol: gap_um = {self.gap_um} would start the plate "
                             "inside the particles (it starts gap_um above the highest sphere "
                             "top): use a positive gap, e.g. 0.5")
        positive = {"plate_speed_um_us": self.plate_speed_um_us, "dt_us": self.dt_us,
                    "clearance_um": self.clearance_um}
        for name, value in positive.items():
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"plate protocol: {name} = {value} must be a positive number")
        if not (np.isfinite(self.force_filter_us) and self.force_filter_us >= 0):
            raise ValueError(f"plate protocol: force_filter_us = {self.force_filter_us} must be "
                             "≥ 0 (the time constant of the plate-force low-pass; 0: none)")
        if not (np.isfinite(self.viscous_damping_per_us) and self.viscous_damping_per_us >= 0):
            raise ValueError(f"plate protocol: viscous_damping_per_us = "
                             f"{self.viscous_damping_per_us} must be ≥ 0 (0: no background drag)")
        if not 0.0 < self.release_fraction < 1.0:
            raise ValueError(f"plate protocol: release_fraction = {self.release_fraction} must "
                             "lie in (0, 1) (the paper's non-zero force is ~0; 0.01 recommended)")
        if not 1.0 <= self.am_expansion <= 1.1:
            raise ValueError(f"plate protocol: am_expansion = {self.am_expansion} must lie in "
                             "[1, 1.1] (the authors use 1.02)")
        if self.chunk_steps % self.record_every:
            raise ValueError(f"chunk_steps = {self.chunk_steps} must be a multiple of "
                             f"record_every = {self.record_every}")


@dataclass(kw_only=True)
class CalenderProtocol(PlateProtocol):
    """Calendering: press to ``target_pressure_mpa``, then release."""

    target_pressure_mpa: float

    def validate(self) -> None:
        super().validate()
        if not np.isfinite(self.target_pressure_mpa) or self.target_pressure_mpa <= 0:
            raise ValueError(f"calender protocol: target_pressure_mpa = "
                             f"{self.target_pressure_mpa} must be a positive number")


class PlateReversal(eqx.Module):
    """Per-step controller: the plate moves down at ``speed`` until the filtered force on it
    reaches ``target_force`` (micro units) or its height reaches ``turn_z``, then up at ``speed``
    for the rest of the run (the turn happens at the exact step, inside the jitted loop)."""

    plate: int = eqx.field(static=True)
    target_force: Array
    turn_z: Array
    speed: Array

    def __call__(self, state):
        velocity = state.walls.velocity_z[self.plate]
        reached = (velocity < 0) & ((state.wall_force_filtered[self.plate, 2] >= self.target_force)
                                    | (state.walls.z[self.plate] <= self.turn_z))
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
    pressure_filtered_mpa: np.ndarray   # what the turn controller reads (force_filter_us)
    porosity_between_walls: np.ndarray
    summary: dict
    final_position: np.ndarray
    radius: np.ndarray          # unexpanded radii (µm)
    electrode: Electrode
    state: object = dataclasses.field(repr=False, default=None)
    spec: object = dataclasses.field(repr=False, default=None)   # neighbour layout at the end


def calender_case(electrode: Electrode, protocol: PlateProtocol,
                  materials: Materials | None = None) -> Case:
    """The DEM case of a calendering run: floor (Al) under the lowest sphere, plate (steel) above
    the highest, AM radii expanded by ``protocol.am_expansion``."""
    materials = materials if materials is not None else table2_materials("artistic")
    radius = electrode.with_am_expansion(protocol.am_expansion).radius
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
        precision=protocol.precision, viscous_damping=protocol.viscous_damping_per_us,
        wall_force_filter_time=protocol.force_filter_us)


def recovered_thickness(plate_z, force, rising, threshold):
    """Highest plate position during the rise with force ≥ threshold. If no rising record carries
    it (the electrode let go of the plate within one record interval: recovery below the record
    resolution v · record_every · dt), the turning position, the lowest plate position."""
    carrying = rising & (force >= threshold)
    return float(np.max(plate_z[carrying])) if np.any(carrying) else float(np.min(plate_z))


def calender(electrode: Electrode, protocol: CalenderProtocol, materials: Materials | None = None,
             progress=None) -> CalenderResult:
    """Run the calendering protocol (see the module docstring) and measure the recovery.

    ``progress`` is an optional callable ``(steps_done, plate_z_um, pressure_mpa, phase)``.
    Raises ValueError if the plate reaches the collector region (solid fraction above 0.95 of the
    gap) without reaching the target pressure.
    """
    protocol.validate()
    run = PlateRun(electrode, protocol, materials)
    target_force = protocol.target_pressure_mpa / MICRO_PRESSURE_TO_MPA * run.area
    run.press(run.control(target_force=target_force), protocol.max_steps, progress,
              f"target pressure {protocol.target_pressure_mpa} MPa")
    return _result(electrode, protocol, run)


def calender_sweep(electrode: Electrode, pressures_mpa, protocol: CalenderProtocol,
                   materials: Materials | None = None, progress=None) -> list[CalenderResult]:
    """The porosity–pressure curve: one calendering per target pressure, sharing the loading.

    The loading stroke is identical for every target up to its turn, so it is run once: each
    target continues from the start of the chunk in which the previous (lower) target turned,
    then unloads. Cost ≈ one loading to the highest pressure + one unloading per target.
    """
    pressures = sorted(float(p) for p in pressures_mpa)
    if not pressures:
        raise ValueError("calender_sweep needs at least one target pressure")
    protocol.validate()
    for pressure in pressures:
        dataclasses.replace(protocol, target_pressure_mpa=pressure).validate()
    run = PlateRun(electrode, protocol, materials)
    results = []
    for pressure in pressures:
        if run.loading_snapshot is not None:
            run.restore(run.loading_snapshot)
        target = dataclasses.replace(protocol, target_pressure_mpa=pressure)
        force = pressure / MICRO_PRESSURE_TO_MPA * run.area
        run.press(run.control(target_force=force), protocol.max_steps, progress,
                  f"target pressure {pressure} MPa")
        results.append(_result(electrode, target, run))
    return results


class PlateRun:
    """A plate pressing an electrode on its collector and rising again (shared by calendering and
    indentation): the DEM case, the chunked run and its records."""

    plate = 1

    def __init__(self, electrode: Electrode, protocol: PlateProtocol, materials=None):
        self.electrode, self.protocol = electrode, protocol
        self.case = calender_case(electrode, protocol, materials)
        self.case.validate()
        self.state, self.spec, self.config, self.box, self.materials = prepare(self.case)
        self.area = float(np.prod(np.asarray(self.box.length)[:2]))
        self.floor = self.case.walls[0].z
        self.records, self.steps, self.seconds, self.rate = [], 0, 0.0, 0.0
        self.loading_snapshot = None

    def snapshot(self):
        """What :meth:`restore` needs to go back to this point of the run."""
        return self.state, self.spec, len(self.records), self.steps

    def restore(self, snapshot):
        self.state, self.spec, n_records, self.steps = snapshot
        del self.records[n_records:]

    def control(self, target_force=np.inf, turn_z=-np.inf) -> PlateReversal:
        dtype = self.state.walls.z.dtype
        return PlateReversal(self.plate, jnp.asarray(target_force, dtype),
                             jnp.asarray(turn_z, dtype),
                             jnp.asarray(self.protocol.plate_speed_um_us, dtype))

    def advance(self, control, n_steps):
        start = time.perf_counter()
        result = simulate(self.state, self.materials, self.box, self.spec, self.config, n_steps,
                          self.protocol.record_every, record_particles=False, control=control)
        self.seconds += time.perf_counter() - start
        self.state, self.spec, self.rate = result.state, result.spec, \
            result.particle_steps_per_second
        self.records.extend(result.records)
        self.steps += n_steps

    def trace(self) -> "PlateTrace":
        records = concatenate_records(self.records)
        plate_z = np.asarray(records.wall_z[:, self.plate])
        return PlateTrace(step=np.asarray(records.step), plate_z=plate_z,
                          force=np.asarray(records.wall_force[:, self.plate, 2]),
                          force_filtered=np.asarray(records.wall_force_filtered[:, self.plate, 2]),
                          rising=np.concatenate([[False], np.diff(plate_z) > 0]))

    def loading_steps(self) -> int:
        """Steps before the plate turned, from the first rising record: a plate that started at
        z0 and turned after n steps is at z0 − v dt n + v dt (s − n) after step s."""
        trace = self.trace()
        k = int(np.argmax(trace.rising))
        z0 = self.case.walls[self.plate].z
        travel = self.protocol.plate_speed_um_us * self.protocol.dt_us
        return int(round((z0 + travel * int(trace.step[k]) - trace.plate_z[k]) / (2.0 * travel)))

    def plate_rising(self) -> bool:
        """Whether the plate has turned (its velocity is upward now)."""
        return float(self.state.walls.velocity_z[self.plate]) > 0.0

    def press(self, control, max_steps, progress, target_description):
        """Chunks until the plate has turned and risen ``clearance_um`` above its last position
        carrying ``release_fraction`` of the maximum force. ``loading_snapshot`` keeps the
        start of the chunk in which the plate turned (all steps before it are pure loading).

        The turn is read from the plate's velocity, not from the records: a plate that turned
        in the second half of a chunk's last record interval is still below the previous record
        at the chunk's end."""
        protocol = self.protocol
        densest_plate_z = self.floor + self.electrode.solid_volume / self.area / 0.95
        turned = self.plate_rising()
        while True:
            if not turned:
                self.loading_snapshot = self.snapshot()    # start of the chunk that turns
            self.advance(control, protocol.chunk_steps)
            trace = self.trace()
            plate_z = trace.plate_z
            turned = self.plate_rising()
            pressure = float(trace.force_filtered[-1] / self.area * MICRO_PRESSURE_TO_MPA)
            if progress is not None:
                progress(self.steps, float(plate_z[-1]) - self.floor, pressure,
                         "unloading" if turned else "loading")
            if not turned and plate_z[-1] < densest_plate_z:
                raise ValueError(
                    f"{target_description} not reached: the plate is at "
                    f"{plate_z[-1] - self.floor:.4g} µm above the collector, where the solid "
                    f"fraction would exceed 0.95, with {pressure:.4g} MPa. Lower the target.")
            if self.steps >= max_steps:
                raise ValueError(f"plate run not finished after max_steps = {max_steps} steps: "
                                 "raise max_steps or the plate speed")
            if turned and plate_z[-1] > trace.release_z(protocol.release_fraction) \
                    + protocol.clearance_um:
                return


@dataclass
class PlateTrace:
    """The records of a plate run: step, plate height (µm), plate force and its low-pass
    (1e-9 N), and whether the plate rose since the previous record."""

    step: np.ndarray
    plate_z: np.ndarray
    force: np.ndarray
    force_filtered: np.ndarray
    rising: np.ndarray

    def release_z(self, fraction: float) -> float:
        """Recovered height: the highest rising-plate position whose force is at least
        ``fraction`` of the maximum filtered force (:func:`recovered_thickness`)."""
        threshold = fraction * float(np.max(self.force_filtered))
        return recovered_thickness(self.plate_z, self.force, self.rising, threshold)


def _result(electrode, protocol, run: PlateRun) -> CalenderResult:
    trace = run.trace()
    plate_z, force = trace.plate_z, trace.force
    case, state, area, floor = run.case, run.state, run.area, run.floor
    max_force = float(np.max(trace.force_filtered))
    thickness_z = trace.release_z(protocol.release_fraction)
    literal_z = recovered_thickness(plate_z, force, trace.rising, np.finfo(float).tiny)
    position = np.asarray(state.spheres.position)
    lo = np.asarray(case.box.lo)
    hi = np.asarray(case.box.hi)

    phases = np.where(electrode.is_am, 1, 2)

    def porosity(top_z):
        return float(porosity_particles(position, electrode.radius, phases, lo, hi,
                                        (floor, top_z)).porosity)

    between = 1.0 - electrode.solid_volume / (area * np.maximum(plate_z - floor, 1e-12))
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
        "max_pressure_instantaneous_MPa": float(np.max(force)) / area * MICRO_PRESSURE_TO_MPA,
        "force_filter_us": protocol.force_filter_us,
        "target_pressure_MPa": protocol.target_pressure_mpa,
        "min_plate_gap_um": float(plate_z[turn]) - floor,
        "collector_z_um": floor,
        "recovery_um": thickness_z - float(plate_z[turn]),
        "particles_above_thickness": int(np.sum(position[:, 2] - electrode.radius > thickness_z)),
        "plate_speed_m_s": protocol.plate_speed_um_us,
        "inertial_number": inertial_number(electrode.radius, electrode.density,
                                           protocol.plate_speed_um_us / (initial_top - floor),
                                           max_force / area),
        "am_expansion": protocol.am_expansion,
        "release_fraction": protocol.release_fraction,
        "steps": run.steps, "loading_steps": run.loading_steps(), "dt_us": protocol.dt_us,
        "wall_seconds": run.seconds, "particle_steps_per_second": run.rate,
        "precision": protocol.precision, "particles": int(len(electrode.radius)),
        "cell_um": [float(x) for x in np.asarray(case.box.length)[:2]],
    }
    return CalenderResult(
        time_us=np.asarray(trace.step) * protocol.dt_us, plate_z_um=plate_z - floor,
        force_n=force * MICRO_FORCE_TO_N, pressure_mpa=force / area * MICRO_PRESSURE_TO_MPA,
        pressure_filtered_mpa=trace.force_filtered / area * MICRO_PRESSURE_TO_MPA,
        porosity_between_walls=between, summary=summary, final_position=position,
        radius=electrode.radius, electrode=electrode, state=state, spec=run.spec)
