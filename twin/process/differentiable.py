"""Differentiable plate protocols: ``jax.grad`` of calendering and indentation outcomes with
respect to the material parameters, through the whole run.

How it works
------------
A host-side forward run (:class:`~twin.process.calender.PlateRun`, the very code behind
``twin calender`` and ``twin indent``) fixes everything discrete: the number of loading steps
before each turn, the number of unloading steps, and the neighbour-list capacities (with a
margin). A pure JAX *replay* then runs the same protocol with those fixed, so that it can be
differentiated:

* **Memory.** The steps are advanced by an online-checkpointed scan (``equinox.internal.scan``
  with ``kind="checkpointed"``: the treeverse schedule of Stumm & Walther, SIAM J. Sci. Comput.
  32, 2010). The backward pass keeps ``checkpoints`` states plus one step's intermediates and
  recomputes the rest; :func:`memory_ratio` measures peak memory against the forward pass.
* **The turn at the target pressure** is an event: the plate reverses at the first step where its
  force reaches F_target. Its time t* depends on the parameters θ through F(t*; θ) = F_target,
  so dt*/dθ = −(∂F/∂θ) / Ḟ (implicit function theorem), and every state variable y continues
  from y(t*). The replay applies this as a straight-through event rule: at the turn the state
  is shifted by ẏ · (δt − stop_gradient(δt)) with δt = (F_target − F) / Ḟ — zero in value, the
  event derivative in gradient. ẏ is (v, a = F/m, α = T/I, v_plate); Ḟ is the secant of the plate
  force over the last ``record_every`` loading steps (a smoothed slope: the per-step force carries
  contact vibrations), held constant (stop_gradient).
* **The recovered thickness** (highest rising-plate position still carrying ``release_fraction``
  of the target force) is the crossing of that threshold, linearly interpolated between the two
  records that bracket it: z_c = z_k + (F_k − F_thr)(z_{k+1} − z_k)/(F_k − F_{k+1}). This is the
  same event rule with a secant slope, and it resolves the thickness below the record spacing.
  The forward :func:`~twin.process.calender.calender` uses the highest *recorded* position with
  ≥ 1 % of the maximum recorded force; the two differ by less than one record's plate travel.

What is differentiable: every leaf of :class:`~twin.physics.materials.Materials` (E, ν,
restitution, friction and CED of each type, i.e. of AM, CBD, the collector and the plate). The
replay is float64 and deterministic; gradients agree with central finite differences of the
replay itself (tests/test_differentiable.py).
"""

from __future__ import annotations

import math

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from twin.analysis.porosity import sphere_volume_in_slab
from twin.physics.dem import INERTIA_FACTOR, DEMState, initial_state, step
from twin.physics.materials import Materials, pair_table
from twin.physics.neighbors import NeighborSpec, allocate_neighbors
from twin.process.calender import (MICRO_PRESSURE_TO_MPA, CalenderProtocol, PlateRun,
                                   calender_sweep)
from twin.process.indent import IndentProtocol, indent, replicate
from twin.process.pack import Electrode

CAPACITY_MARGIN = 1.3
# Checkpoints per segment of the online-checkpointed scan: 4 keeps the backward pass under 4× the
# forward pass's memory (measured by tests/test_differentiable.py), at a recomputation cost of
# r forward passes with binom(4 + r, 4) ≥ steps (r = 13 for 2000 steps).
DEFAULT_CHECKPOINTS = 4


def _run_segment(state: DEMState, table, box, spec: NeighborSpec, config, steps: int,
                 velocity: float, plate: int, checkpoints):
    """Advance ``steps`` (static) with the plate at ``velocity`` µm/µs; return the state and the
    per-step plate height and force (µm, 1e-9 N). Online-checkpointed in reverse mode (see the
    module docstring)."""
    state = eqx.tree_at(lambda s: s.walls.velocity_z, state,
                        state.walls.velocity_z.at[plate].set(velocity))

    def advance(current, _):
        current = step(current, table, box, spec, config)
        return current, (current.walls.z[plate], current.wall_force[plate, 2])

    return eqxi.scan(advance, state, None, length=steps, kind="checkpointed",
                     checkpoints=checkpoints)


def event_shift(state: DEMState, mismatch, slope):
    """Shift every state variable by ẏ (δt − stop_gradient(δt)), δt = mismatch / slope: the
    straight-through event rule of the module docstring (zero in value)."""
    shift = mismatch / lax.stop_gradient(slope)
    shift = shift - lax.stop_gradient(shift)
    s = state.spheres
    inertia = (INERTIA_FACTOR * s.mass * s.radius**2)[:, None]
    return eqx.tree_at(
        lambda st: (st.spheres.position, st.spheres.velocity, st.spheres.angular_velocity,
                    st.walls.z),
        state, (s.position + shift * s.velocity, s.velocity + shift * s.force / s.mass[:, None],
                s.angular_velocity + shift * s.torque / inertia,
                state.walls.z + shift * state.walls.velocity_z))


def threshold_crossing(plate_z, force, threshold):
    """Plate height where a rising plate's force falls through ``threshold``, interpolated between
    the last record at or above it and the next (differentiable in ``plate_z`` and ``force``).
    If the force never falls below the threshold, the last record's height is returned."""
    above = force >= threshold
    last = jnp.max(jnp.where(above, jnp.arange(force.shape[0]), 0))
    after = jnp.minimum(last + 1, force.shape[0] - 1)
    f_a, f_b, z_a, z_b = force[last], force[after], plate_z[last], plate_z[after]
    drop = jnp.where(after > last, f_a - f_b, 1.0)
    fraction = jnp.where(after > last, jnp.clip((f_a - threshold) / drop, 0.0, 1.0), 0.0)
    return z_a + fraction * (z_b - z_a)


def compiled_peak_bytes(function, *args) -> int:
    """XLA's buffer footprint of ``jax.jit(function)(*args)`` on this backend: arguments, outputs
    and the peak of temporaries (``Compiled.memory_analysis``), in bytes."""
    stats = jax.jit(function).lower(*args).compile().memory_analysis()
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes
            + stats.temp_size_in_bytes)


def check_capacity_margin(margin: float) -> float:
    """``margin`` as a float, or a ValueError naming it: the replay's neighbour capacities over
    its forward run's must be a factor ≥ 1."""
    if not (np.isfinite(margin) and margin >= 1.0):
        raise ValueError(f"capacity_margin = {margin} must be a number >= 1 (default "
                         f"{CAPACITY_MARGIN}; a fit far from the forward run's materials may "
                         "need 2 or more)")
    return float(margin)


def _capacities_with_margin(spec: NeighborSpec, particles: int, margin: float) -> dict:
    """A forward run's neighbour capacities with ``margin`` × more room (a replay under
    perturbed parameters follows a slightly different path)."""
    return dict(candidate_capacity=math.ceil(margin * spec.candidate_capacity),
                pair_capacity=math.ceil(margin * spec.pair_capacity),
                wall_capacity=min(math.ceil(margin * spec.wall_capacity), particles))


class PlateReplay:
    """The start of a plate run, replayed differentiably from any materials with the neighbour
    layout of its forward run (``forward_spec``) plus ``capacity_margin`` (a factor ≥ 1)."""

    def __init__(self, electrode: Electrode, protocol, materials: Materials | None,
                 forward_spec: NeighborSpec, checkpoints: int | None,
                 capacity_margin: float = CAPACITY_MARGIN):
        run = PlateRun(electrode, protocol, materials)
        self.protocol, self.checkpoints, self.plate = protocol, checkpoints, run.plate
        self.start, self.box, self.config = run.state, run.box, run.config
        self.materials, self.area, self.floor = run.materials, run.area, run.floor
        self.start_z = run.case.walls[run.plate].z
        s, walls = self.start.spheres, self.start.walls
        self.spec, self.pair_list = allocate_neighbors(
            np.asarray(s.position), np.asarray(s.radius), self.box, forward_spec.skin,
            wall_z=np.asarray(walls.z), wall_normal_z=np.asarray(walls.normal_z),
            **_capacities_with_margin(forward_spec, s.count, capacity_margin))

    def initial(self, materials: Materials) -> DEMState:
        s = self.start
        return initial_state(s.spheres, s.walls, self.pair_list, materials, self.box,
                             self.config)

    def segment(self, state, table, steps, velocity):
        return _run_segment(state, table, self.box, self.spec, self.config, int(steps),
                            float(velocity), self.plate, self.checkpoints)

    @staticmethod
    def checked(values, state):
        return eqx.error_if(values, state.neighbors.overflow,
                            "neighbour list overflow in a differentiable replay: the path left "
                            "the forward run's layout; raise CAPACITY_MARGIN")


class CalenderOutcome(eqx.Module):
    """Per target pressure: porosity, recovered thickness (µm above the collector), plate force
    at the turn (1e-9 N)."""

    porosity: jax.Array
    thickness_um: jax.Array
    turn_force: jax.Array


class CalenderReplay(PlateReplay):
    """The porosity–pressure curve as a differentiable function of the materials.

    Construction runs the forward sweep (:func:`~twin.process.calender.calender_sweep`) once to
    fix the turn steps and unloading lengths; :meth:`replay` is pure JAX.
    """

    def __init__(self, electrode: Electrode, pressures_mpa, protocol: CalenderProtocol,
                 materials: Materials | None = None, checkpoints: int = DEFAULT_CHECKPOINTS,
                 progress=None, capacity_margin: float = CAPACITY_MARGIN):
        capacity_margin = check_capacity_margin(capacity_margin)   # before the forward sweep
        self.pressures_mpa = np.sort(np.asarray(pressures_mpa, float))
        self.forward = calender_sweep(electrode, self.pressures_mpa, protocol, materials,
                                      progress)
        super().__init__(electrode, protocol, materials, self.forward[-1].spec, checkpoints,
                         capacity_margin)
        self.loading = [r.summary["loading_steps"] for r in self.forward]
        self.unloading = [r.summary["steps"] - r.summary["loading_steps"] for r in self.forward]
        self.unexpanded_radius = jnp.asarray(electrode.radius)

    def replay(self, materials: Materials) -> CalenderOutcome:
        table = pair_table(materials)
        v, every = self.protocol.plate_speed_um_us, self.protocol.record_every
        state, done = self.initial(materials), 0
        porosity, thickness, turn_force = [], [], []
        for pressure, load, unload in zip(self.pressures_mpa, self.loading, self.unloading):
            state, (_, load_force) = self.segment(state, table, load - done, -v)
            done = load
            target = pressure / MICRO_PRESSURE_TO_MPA * self.area
            window = min(every, load_force.shape[0] - 1)
            slope = (load_force[-1] - load_force[-1 - window]) / (window * self.config.dt)
            force_now = state.wall_force[self.plate, 2]
            branch = event_shift(state, target - force_now, slope)
            branch, (plate_z, force) = self.segment(branch, table, unload, v)
            top = threshold_crossing(plate_z[every - 1::every], force[every - 1::every],
                                     self.protocol.release_fraction * target)
            top = self.checked(top, branch)   # every output depends on it: the check survives
            solid = jnp.sum(sphere_volume_in_slab(branch.spheres.position[:, 2],
                                                  self.unexpanded_radius, self.floor, top))
            porosity.append(1.0 - solid / (self.area * (top - self.floor)))
            thickness.append(top - self.floor)
            turn_force.append(force_now)
        return CalenderOutcome(jnp.stack(porosity), jnp.stack(thickness), jnp.stack(turn_force))


class IndentOutcome(eqx.Module):
    """Normalised force F / F_max at the forward run's records with the plate engaged (loading
    and unloading), and the maximum force (1e-9 N)."""

    force_normalised: jax.Array
    max_force: jax.Array


class IndentReplay(PlateReplay):
    """The normalised load–displacement curve as a differentiable function of the materials
    (displacement-controlled: no event; the displacement axis is fixed by the protocol)."""

    def __init__(self, electrode: Electrode, protocol: IndentProtocol,
                 materials: Materials | None = None, checkpoints: int = DEFAULT_CHECKPOINTS,
                 progress=None, capacity_margin: float = CAPACITY_MARGIN):
        capacity_margin = check_capacity_margin(capacity_margin)   # before the forward run
        self.forward = indent(electrode, protocol, materials, progress)
        super().__init__(replicate(electrode, int(protocol.replicas)), protocol, materials,
                         self.forward.spec, checkpoints, capacity_margin)
        s = self.forward.summary
        self.loading, self.unloading = s["loading_steps"], s["steps"] - s["loading_steps"]
        every = protocol.record_every
        top = self.floor + s["electrode_thickness_um"]   # highest (expanded) sphere top
        displacement = top - self.plate_heights()[every - 1::every]
        self.engaged = np.flatnonzero(displacement >= 0.0)
        self.displacement_um = displacement[self.engaged]

    def plate_heights(self) -> np.ndarray:
        """Plate height after every step of the protocol (µm), as the forward run moved it."""
        travel = self.protocol.plate_speed_um_us * self.protocol.dt_us
        k = np.arange(1, self.loading + self.unloading + 1)
        return self.start_z - travel * np.where(k <= self.loading, k, 2 * self.loading - k)

    def replay(self, materials: Materials) -> IndentOutcome:
        table = pair_table(materials)
        v, every = self.protocol.plate_speed_um_us, self.protocol.record_every
        state = self.initial(materials)
        state, (_, load_force) = self.segment(state, table, self.loading, -v)
        state, (_, unload_force) = self.segment(state, table, self.unloading, v)
        force = jnp.concatenate([load_force, unload_force])[every - 1::every][self.engaged]
        force = self.checked(force, state)
        return IndentOutcome(force / jnp.max(force), jnp.max(force))
