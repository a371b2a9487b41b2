"""Differentiable plate protocols: ``jax.grad`` of calendering and indentation outcomes with
respect to the material parameters, through the whole run.

How it works
------------
A host-side forward run (:class:`~twin.process.calender.PlateRun`, the very code behind
``twin calender`` and ``twin indent``) fixes the neighbour-list capacities (with a margin) and
the bounds of the loops. A pure JAX *replay* then runs the same protocol from any materials, so
that it can be differentiated:

* **Memory.** The steps are advanced by online-checkpointed loops (``equinox.internal.scan`` and
  ``equinox.internal.while_loop`` with ``kind="checkpointed"``: the treeverse schedule of Stumm &
  Walther, SIAM J. Sci. Comput. 32, 2010). The backward pass keeps ``checkpoints`` states plus
  one step's intermediates and recomputes the rest; :func:`compiled_peak_bytes` measures peak
  memory against the forward pass.
* **Forward mode.** ``replay(materials, forward_mode=True)`` runs the same steps in plain
  ``lax`` loops, which ``jax.jvp`` enters (the checkpointed loops are ``custom_vjp`` functions,
  which it cannot): a Jacobian of p columns then costs one run carrying p tangents and stores no
  trajectory. Measured on the tiled twin experiment (492 spheres, 8 parameters, 15 residuals;
  float64, 2-core Xeon): 14.1 losses, against 31.6 for 15 backward passes and 5.8 for one
  value-and-gradient; the two Jacobians agree to 1.8e-14.
* **The turn at the target pressure** is an event: the plate reverses at the first step n where
  its low-passed force F̄ (``force_filter_us``, :func:`~twin.physics.dem.filter_wall_force`)
  reaches F_target; the replay's loading is a while loop on that condition, so the turn step is
  found anew for every set of materials. Its time t* depends on the parameters θ through
  F̄(t*; θ) = F_target, so dt*/dθ = −(∂F̄/∂θ) / Ḟ̄ (implicit function theorem), and every state
  variable y continues from y(t*). The replay applies this as an event rule: at the turn the
  state is shifted by ẏ · δt. In value δt is the linear interpolation of the crossing inside the
  last step, −(F̄_n − F_target)/(F̄_n − F̄_(n−1)) · dt ∈ (−dt, 0], so that the outcome is
  continuous in θ when the turn moves by a step (to first order); in gradient δt contributes
  (F_target − F̄)/Ḟ̄ with Ḟ̄ the secant of F̄ over the last ``record_every`` steps, held constant
  (stop_gradient): the per-step increment carries contact vibrations. ẏ is (v, a = F/m,
  α = T/I, v_plate).
* **The recovered thickness** (highest rising-plate position still carrying ``release_fraction``
  of the target force) is the crossing of that threshold, found per step by the unloading while
  loop (which stops ``clearance_um`` above it, as the forward run does) and interpolated
  linearly between the last step at or above it and the next:
  z_c = z_a + (F_a − F_thr)(z_b − z_a)/(F_a − F_b), the same event rule with a secant slope.
  The forward :func:`~twin.process.calender.calender` uses the highest *recorded* position with
  ≥ 1 % of the maximum filtered force; the two differ by less than one record's plate travel.
  The replay's porosity takes the sphere heights at that last step at or above the threshold
  (carried by the loop), not at the loop's end, which moves with the materials by whole steps
  (it gave porosity jumps of ~1.4e-4 in an E_AM scan); the forward run uses its final positions.

Chaos, measured (123-sphere electrode of tests/test_differentiable.py, 20 MPa, 5 m/s, drag
100/µs, float64; 21-point scans of ln θ over ±0.2): the turn position is smooth in E_AM and its
full-run derivative agrees with finite differences (AD 0.0262 µm vs FD 0.0251 at h = 0.04), but
the recovered thickness and porosity are not: through the whole run jax.grad gives 0.097 µm and
0.019 against a scan slope of 0.0055 µm and ~1e-3. The tangent of the trajectory carries the
packing's chaotic history (contact rearrangements) into the unloading force, and the local
derivative of a chaotic run is not the slope of its trend. ``gradient_from_fraction`` (e.g.
0.9) cuts that history: the configuration at the step where the filtered force first reaches
that fraction of the target is held fixed (stop_gradient), so gradients see the last part of the
loading, the turn and the unloading only — a short-horizon, quasi-static sensitivity. Measured:
thickness 0.00517 µm (FD 0.0051 at h = 0.04), porosity 9.4e-4 (scan slope 8.5e-4–1.2e-3); the
turn position then loses the history's share (0.0042 vs 0.025 µm), so use it for outcomes after
recovery, the full gradient for the turn.

The indentation has no such event to cut at; ``gradient_memory_steps`` M fades the state's
derivative by exp(−1/M) per step instead (:func:`fade_tangent`). Measured on the twin
experiment's indentation (10 % depth, 5 m/s, drag 100/µs), d loss / d ln E: CBD full run −6.8e-3,
M = 200 / 500 / 1000 / 2000: −4.7 / −5.8 / −6.3 / −6.5e-3, central FD −3.6e-3 (h = 0.04) to
−4.9e-3 (h = 0.01); AM full run −8.2e-4, M = 200 / 500 / 1000: −6.7 / −7.5 / −7.8e-4, FD −8.7e-4.
Short memories tame the chaotic part (CBD) at the price of a bias where the response is slow
(AM); neither is within 5 % for both.

Local derivative, measured (2026-12-07, float64, 2-core Intel Xeon; same electrode, 8
parameters: E, restitution, friction and CED of AM and CBD). Without ``gradient_from_fraction``
and ``gradient_memory_steps``, jax.grad is the exact derivative of the replay where it is smooth.
The replay is piecewise smooth, with kinks (contacts opening, Coulomb slip starting) that the
chaotic packing makes dense: central differences in ln θ converge to jax.grad only at h ≤ 1e-8
(a kink can lie closer: the porosity in AM CED needs 3e-9; the test picks a kink-free step).
For the indentation loss they agree there to ≤ 1e-3 in all eight parameters, while at h = 1e-2,
1e-4 and 1e-6 they differ by up to a factor 3 or in sign (AM CED, CBD E, CBD CED); tested. For
the recovered thickness the turn and crossing rules above take their slopes over
``record_every`` steps, so jax.grad is the derivative of that surrogate: 7–13 % below the
h = 1e-8 differences in seven parameters (AM restitution 13 % above), the porosity's 22–38 %
below (E_AM, CED_CBD). The fall rate over the steps before the crossing is steeper than the
local one (the Hertzian unloading curve flattens towards zero force), so the dF_a / rate term is
too small. ``CalenderReplay(exact_events=True)`` differentiates the one-step interpolations
themselves: turn gap, thickness and porosity then agree with the local differences to 3e-4
(E_AM, CED_CBD; tested for the porosity in all eight). With the short horizon
(``gradient_from_fraction`` 0.9) the windowed rules are the closer to the trend at h = 0.04
(thickness 0.2 % vs 2.4 %, porosity 2.8 % vs 5.2 % off, E_AM), so they stay the default.
Neither derivative is the trend slope at h ≥ 1e-4 of a full run, which is what a calibration
step sees.

What is differentiable: every leaf of :class:`~twin.physics.materials.Materials` (E, ν,
restitution, friction and CED of each type, i.e. of AM, CBD, the collector and the plate). The
replay is float64 and deterministic; tests/test_differentiable.py checks the gradients against
central finite differences of the replay itself: at the trend scale where the outcome is smooth
(the two measured cases above, and the indentation in the plate modulus), and at the local scale
in E, restitution, friction and CED of all four materials (indentation loss; porosity with
``exact_events``).
"""

from __future__ import annotations

import math
import warnings

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
from twin.process.pack import ROUNDING_CONTACT_ULPS, Electrode, contacts_within_rounding

CAPACITY_MARGIN = 1.3
# Checkpoints per segment of the online-checkpointed scan: 4 keeps the backward pass under 4× the
# forward pass's memory (measured by tests/test_differentiable.py), at a recomputation cost of
# r forward passes with binom(4 + r, 4) ≥ steps (r = 13 for 2000 steps).
DEFAULT_CHECKPOINTS = 4
# A replay's unloading loop may run this many times the forward run's unloading steps before it
# stops with an error (the release must come within it).
UNLOADING_BOUND = 4


def fade_tangent(tree, retention):
    """``tree`` in value, with its derivative scaled by ``retention`` (λ): sg(x) + λ (x − sg(x))
    for every floating leaf. Applied to the state before each step, it gives gradients an
    exponential memory: a perturbation's effect on the state k steps later is weighted by λ^k
    (truncated backpropagation with a smooth horizon, cf. the truncated adjoint of chaotic
    systems; Metz et al., "Gradients are not all you need", arXiv:2111.05803, 2021)."""
    def fade(x):
        if not eqx.is_inexact_array(x):
            return x
        held = lax.stop_gradient(x)
        return held + retention * (x - held)
    return jax.tree.map(fade, tree)


def loop_options(checkpoints, forward_steps: int, forward_mode: bool) -> dict:
    """Keyword arguments of the replay's ``equinox.internal`` loops: online-checkpointed
    (``checkpoints`` states, or one per step of the forward run for ``"all"``) for reverse mode;
    plain ``lax`` loops for ``forward_mode``, whose tangents ride along with the steps (the
    checkpointed loops are ``custom_vjp`` functions, which ``jax.jvp`` cannot enter)."""
    if forward_mode:
        return {"kind": "lax"}
    return {"kind": "checkpointed",
            "checkpoints": forward_steps if checkpoints == "all" else checkpoints}


def _run_segment(state: DEMState, table, box, spec: NeighborSpec, config, steps: int,
                 velocity: float, plate: int, loop: dict, gradient_memory: float | None = None):
    """Advance ``steps`` (static) with the plate at ``velocity`` µm/µs; return the state and the
    per-step plate height and force (µm, 1e-9 N). ``loop``: :func:`loop_options`. With
    ``gradient_memory`` M (steps), the state's derivative fades by λ = exp(−1/M) per step
    (:func:`fade_tangent`): values are unchanged; a force's gradient sees the materials through
    the contact law at its configuration and the last ~M steps."""
    state = eqx.tree_at(lambda s: s.walls.velocity_z, state,
                        state.walls.velocity_z.at[plate].set(velocity))
    retention = None if gradient_memory is None else math.exp(-1.0 / gradient_memory)

    def advance(current, _):
        if retention is not None:
            current = fade_tangent(current, retention)
        current = step(current, table, box, spec, config)
        return current, (current.walls.z[plate], current.wall_force[plate, 2])

    return eqxi.scan(advance, state, None, length=steps, **loop)


def event_shift(state: DEMState, mismatch, slope, value_shift=0.0):
    """Move every state variable along its rate ẏ by δt: ``value_shift`` in value (held
    constant), mismatch / slope in gradient (``slope`` held constant) — the event rule of the
    module docstring. With the default ``value_shift`` 0 it is zero in value."""
    event_time = mismatch / lax.stop_gradient(slope)
    return move_along_rates(state, lax.stop_gradient(value_shift) + event_time
                            - lax.stop_gradient(event_time))


def move_along_rates(state: DEMState, shift):
    """y + δt ẏ for the positions, velocities, angular velocities and wall heights, with ẏ =
    (v, F/m, T/I, v_wall) (differentiable in both δt and the state)."""
    s = state.spheres
    inertia = (INERTIA_FACTOR * s.mass * s.radius**2)[:, None]
    return eqx.tree_at(
        lambda st: (st.spheres.position, st.spheres.velocity, st.spheres.angular_velocity,
                    st.walls.z),
        state, (s.position + shift * s.velocity, s.velocity + shift * s.force / s.mass[:, None],
                s.angular_velocity + shift * s.torque / inertia,
                state.walls.z + shift * state.walls.velocity_z))


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


def check_gradient_from_fraction(fraction):
    """``fraction`` (None or a float in (0, 1)), or a ValueError naming it: the fraction of the
    target pressure from which a calendering replay's gradients flow."""
    if fraction is None:
        return None
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0.0 < fraction < 1.0:
        raise ValueError(f"gradient_from_fraction = {fraction!r} must be a number in (0, 1) "
                         "(e.g. 0.9), or None for gradients through the whole run")
    return float(fraction)


def check_gradient_memory(steps):
    """``steps`` (None or a number > 0), or a ValueError naming it: the gradient memory of an
    indentation replay, in steps."""
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, float)) \
            or not (math.isfinite(steps) and steps > 0):
        raise ValueError(f"gradient_memory_steps = {steps!r} must be a number of steps > 0 "
                         "(e.g. 500), or None for gradients through the whole run")
    return float(steps)


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
        self.case = run.case
        self.start_z = run.case.walls[run.plate].z
        s, walls = self.start.spheres, self.start.walls
        self.spec, self.pair_list = allocate_neighbors(
            np.asarray(s.position), np.asarray(s.radius), self.box, forward_spec.skin,
            wall_z=np.asarray(walls.z), wall_normal_z=np.asarray(walls.normal_z),
            **_capacities_with_margin(forward_spec, s.count, capacity_margin))
        frozen = contacts_within_rounding(s.position, s.radius, self.pair_list.pairs, self.box)
        if frozen:
            warnings.warn(
                f"{frozen} sphere pairs start inside contact by at most {ROUNDING_CONTACT_ULPS} "
                "rounding units of their coordinates: a cohesive pull may move such a pair by "
                "less than a rounding unit per step, so that its value stays put while jax.grad "
                "follows its snap-in and grows as exp(t √(4πR*·CED/m*)) (∂r/∂ln CED ~ 1e11 in "
                "the twin experiment). Make the electrode with a gap: "
                "twin.process.pack.remove_overlaps(clearance=...) above its tolerance",
                stacklevel=3)

    def collapsing_contacts(self, materials: Materials) -> list[str]:
        """Where ``materials`` would let cohesion collapse this electrode
        (:meth:`twin.io.case.Case.collapsing_contacts` of the forward run's case)."""
        return self.case.collapsing_contacts(materials)

    def initial(self, materials: Materials) -> DEMState:
        s = self.start
        return initial_state(s.spheres, s.walls, self.pair_list, materials, self.box,
                             self.config)

    def segment(self, state, table, steps, velocity, gradient_memory=None, forward_mode=False):
        return _run_segment(state, table, self.box, self.spec, self.config, int(steps),
                            float(velocity), self.plate,
                            loop_options(self.checkpoints, int(steps), forward_mode),
                            gradient_memory)

    @staticmethod
    def checked(values, state):
        return eqx.error_if(values, state.neighbors.overflow,
                            "neighbour list overflow in a differentiable replay: the path left "
                            "the forward run's layout (its capacities × capacity_margin); raise "
                            "capacity_margin (the replay's argument, or the [simulation] setting "
                            "of calibrate's calender and indent kinds; a fit resumes with "
                            "--resume)")


class CalenderOutcome(eqx.Module):
    """Per target pressure: porosity, recovered thickness and plate height at the turn (µm above
    the collector), filtered plate force at the turn (1e-9 N), steps before the turn."""

    porosity: jax.Array
    thickness_um: jax.Array
    turn_gap_um: jax.Array
    turn_force: jax.Array
    turn_step: jax.Array


class _Loading(eqx.Module):
    """Carry of the loading loop: the state and the filtered plate force of the last steps
    (oldest first), whose secant is the slope Ḟ of the event rule."""

    state: DEMState
    recent_force: jax.Array


class _Unloading(eqx.Module):
    """Carry of the unloading loop: the state; the plate height and force of the last steps
    (oldest first); the last step whose force was at or above the release threshold (plate
    height, force, the force's fall per µm of rise over the steps before it, and the sphere
    heights); the first step after it (height, force); and whether the force is still at or
    above the threshold (``pending``)."""

    state: DEMState
    recent_z: jax.Array
    recent_force: jax.Array
    above_z: jax.Array
    above_sphere_z: jax.Array
    above_force: jax.Array
    above_fall_rate: jax.Array
    below_z: jax.Array
    below_force: jax.Array
    pending: jax.Array

    def crossing(self, threshold, exact: bool = False):
        """Height where the force fell through ``threshold`` (the event rule of the module
        docstring). In value: linear between the last step at or above it and the next,
        z_a + (F_a − F_thr)(z_b − z_a)/(F_a − F_b). In gradient: dz_a + dF_a / (−dF/dz), the
        fall rate taken over the ``record_every`` steps before z_a (a one-step difference carries
        contact vibrations) and held constant; no force term where the force did not fall.
        ``exact``: the derivative of the value itself (all four of z_a, z_b, F_a, F_b)."""
        drop = jnp.where(self.pending, 1.0, self.above_force - self.below_force)
        fraction = jnp.where(self.pending, 0.0,
                             jnp.clip((self.above_force - threshold) / drop, 0.0, 1.0))
        if exact:
            return self.above_z + fraction * (self.below_z - self.above_z)
        offset = lax.stop_gradient(fraction * (self.below_z - self.above_z))
        rate = lax.stop_gradient(jnp.where(self.above_fall_rate > 0, self.above_fall_rate,
                                           jnp.inf))
        return self.above_z + offset + (self.above_force
                                        - lax.stop_gradient(self.above_force)) / rate


class CalenderReplay(PlateReplay):
    """The porosity–pressure curve as a differentiable function of the materials.

    Construction runs the forward sweep (:func:`~twin.process.calender.calender_sweep`) once, for
    the neighbour capacities and the loop bounds. :meth:`replay` is pure JAX and finds the events
    itself, for any materials: the loading is a while loop until the filtered plate force reaches
    the target, the unloading a while loop until the plate has risen ``clearance_um`` above the
    last step carrying ``release_fraction`` of the target. Both are online-checkpointed
    (``equinox.internal.while_loop``, kind ``"checkpointed"``).

    ``exact_events``: differentiate the turn's and the release's one-step interpolations
    themselves instead of the windowed-slope rules (module docstring), so that jax.grad is the
    local derivative of the replayed value.
    """

    def __init__(self, electrode: Electrode, pressures_mpa, protocol: CalenderProtocol,
                 materials: Materials | None = None, checkpoints: int = DEFAULT_CHECKPOINTS,
                 progress=None, capacity_margin: float = CAPACITY_MARGIN,
                 gradient_from_fraction: float | None = None, exact_events: bool = False):
        capacity_margin = check_capacity_margin(capacity_margin)   # before the forward sweep
        self.gradient_from_fraction = check_gradient_from_fraction(gradient_from_fraction)
        self.exact_events = bool(exact_events)
        self.pressures_mpa = np.sort(np.asarray(pressures_mpa, float))
        self.forward = calender_sweep(electrode, self.pressures_mpa, protocol, materials,
                                      progress)
        super().__init__(electrode, protocol, materials, self.forward[-1].spec, checkpoints,
                         capacity_margin)
        self.loading = [r.summary["loading_steps"] for r in self.forward]
        self.unloading = [r.summary["steps"] - r.summary["loading_steps"] for r in self.forward]
        self.unexpanded_radius = jnp.asarray(electrode.radius)
        travel = protocol.plate_speed_um_us * protocol.dt_us
        # Loop bounds: the plate cannot pass the collector; the release must come within
        # UNLOADING_BOUND × the forward run's longest unloading.
        self.max_loading_steps = math.ceil((self.start_z - self.floor) / travel)
        self.max_unloading_steps = UNLOADING_BOUND * max(self.unloading)

    def _load(self, carry: _Loading, table, target, forward_steps, forward_mode):
        plate, spec, box, config = self.plate, self.spec, self.box, self.config

        def advance(c: _Loading):
            state = step(c.state, table, box, spec, config)
            recent = jnp.roll(c.recent_force, -1).at[-1].set(state.wall_force_filtered[plate, 2])
            return _Loading(state, recent)

        return eqxi.while_loop(
            lambda c: c.state.wall_force_filtered[plate, 2] < target, advance, carry,
            max_steps=self.max_loading_steps,
            **loop_options(self.checkpoints, forward_steps, forward_mode))

    def _unload(self, state, table, threshold, forward_steps, forward_mode):
        plate, spec, box, config = self.plate, self.spec, self.box, self.config
        clearance = self.protocol.clearance_um

        def advance(c: _Unloading):
            new = step(c.state, table, box, spec, config)
            z, force = new.walls.z[plate], new.wall_force[plate, 2]
            recent_z = jnp.roll(c.recent_z, -1).at[-1].set(z)
            recent_force = jnp.roll(c.recent_force, -1).at[-1].set(force)
            fall_rate = (recent_force[0] - force) / (z - recent_z[0])
            above = force >= threshold
            first_below = c.pending & ~above
            return _Unloading(
                new, recent_z, recent_force, jnp.where(above, z, c.above_z),
                jnp.where(above, new.spheres.position[:, 2], c.above_sphere_z),
                jnp.where(above, force, c.above_force),
                jnp.where(above, fall_rate, c.above_fall_rate),
                jnp.where(first_below, z, c.below_z), jnp.where(first_below, force, c.below_force),
                above)

        z0, f0 = state.walls.z[plate], state.wall_force[plate, 2]
        window = self.protocol.record_every + 1
        # The recent heights start one step apart below the turn (no division by zero).
        travel = self.protocol.plate_speed_um_us * self.config.dt
        start = _Unloading(state, z0 - travel * jnp.arange(window, 0, -1), jnp.full(window, f0),
                           z0, state.spheres.position[:, 2], f0, jnp.zeros(()), z0, f0,
                           jnp.asarray(True))
        return eqxi.while_loop(
            lambda c: c.pending | (c.state.walls.z[plate] <= c.above_z + clearance), advance,
            start, max_steps=self.max_unloading_steps,
            **loop_options(self.checkpoints, forward_steps, forward_mode))

    def replay(self, materials: Materials, forward_mode: bool = False) -> CalenderOutcome:
        """The outcome at every target pressure; ``forward_mode``: plain loops that ``jax.jvp``
        (and ``jax.jacfwd``) can differentiate, reverse mode then unavailable."""
        table = pair_table(materials)
        v, window = self.protocol.plate_speed_um_us, self.protocol.record_every
        state = self.initial(materials)
        loading = _Loading(state, jnp.full(window + 1, state.wall_force_filtered[self.plate, 2]))
        porosity, thickness, turn_gap, turn_force, turn_step = [], [], [], [], []
        done = 0
        for pressure, load, unload in zip(self.pressures_mpa, self.loading, self.unloading):
            target = pressure / MICRO_PRESSURE_TO_MPA * self.area
            if self.gradient_from_fraction is not None:   # the short-horizon sensitivity
                loading = lax.stop_gradient(self._load(
                    loading, table, self.gradient_from_fraction * target, load - done,
                    forward_mode))
            loading = self._load(loading, table, target, load - done, forward_mode)
            done = load
            turned, recent = loading.state, loading.recent_force
            force_now = recent[-1]
            # The event rule (module docstring): in value, back by the fraction of the last step
            # by which the filtered force overshot the target (linear in that step: continuous
            # in the materials across a change of the turn step); in gradient, the implicit-
            # function derivative with the slope over the last ``window`` steps, or with
            # ``exact_events`` the derivative of that interpolation itself.
            last_step_rise = recent[-1] - recent[-2]
            rose = last_step_rise > 0     # not at a start already above the target
            overshoot_time = jnp.where(
                rose, -(force_now - target) / jnp.where(rose, last_step_rise, 1.0), 0.0
            ) * self.config.dt
            if self.exact_events:
                branch = move_along_rates(turned, overshoot_time)
            else:
                slope = (recent[-1] - recent[0]) / (window * self.config.dt)
                branch = event_shift(turned, target - force_now, slope, overshoot_time)
            branch = eqx.tree_at(lambda s: s.walls.velocity_z, branch,
                                 branch.walls.velocity_z.at[self.plate].set(v))
            threshold = self.protocol.release_fraction * target
            released = self._unload(branch, table, threshold, unload, forward_mode)
            top = self.checked(released.crossing(threshold, self.exact_events),
                               released.state)
            top = eqx.error_if(top, released.pending,
                               "the plate still carried the release threshold after "
                               f"{self.max_unloading_steps} unloading steps "
                               f"({UNLOADING_BOUND}x the forward run's)")
            # The spheres where the plate last carried the threshold: the porosity at the
            # release, not at the loop's end (which moves with the materials by whole steps).
            solid = jnp.sum(sphere_volume_in_slab(released.above_sphere_z,
                                                  self.unexpanded_radius, self.floor, top))
            porosity.append(1.0 - solid / (self.area * (top - self.floor)))
            thickness.append(top - self.floor)
            turn_gap.append(branch.walls.z[self.plate] - self.floor)
            turn_force.append(force_now)
            turn_step.append(turned.step)
        return CalenderOutcome(*(jnp.stack(values) for values in (porosity, thickness, turn_gap,
                                                                   turn_force, turn_step)))


class IndentOutcome(eqx.Module):
    """Normalised force F / F_max at the forward run's records with the plate engaged (loading
    and unloading), and the maximum force (1e-9 N)."""

    force_normalised: jax.Array
    max_force: jax.Array


class IndentReplay(PlateReplay):
    """The normalised load–displacement curve as a differentiable function of the materials
    (displacement-controlled: no event; the displacement axis is fixed by the protocol).

    ``gradient_memory_steps`` M (None: through the whole run) is the indentation's short-horizon
    sensitivity, the counterpart of the calendering's ``gradient_from_fraction``: the state's
    derivative fades by exp(−1/M) per step (:func:`fade_tangent`), so that each recorded force
    responds to the materials through the contact law at its configuration and the relaxation
    of the last ~M steps, not through the packing's chaotic history.
    """

    def __init__(self, electrode: Electrode, protocol: IndentProtocol,
                 materials: Materials | None = None, checkpoints: int = DEFAULT_CHECKPOINTS,
                 progress=None, capacity_margin: float = CAPACITY_MARGIN,
                 gradient_memory_steps: float | None = None):
        capacity_margin = check_capacity_margin(capacity_margin)   # before the forward run
        self.gradient_memory_steps = check_gradient_memory(gradient_memory_steps)
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

    def replay(self, materials: Materials, forward_mode: bool = False) -> IndentOutcome:
        """The normalised curve; ``forward_mode`` as in :meth:`CalenderReplay.replay`."""
        table = pair_table(materials)
        v, every = self.protocol.plate_speed_um_us, self.protocol.record_every
        state = self.initial(materials)
        memory = self.gradient_memory_steps
        state, (_, load_force) = self.segment(state, table, self.loading, -v, memory,
                                              forward_mode)
        state, (_, unload_force) = self.segment(state, table, self.unloading, v, memory,
                                                forward_mode)
        force = jnp.concatenate([load_force, unload_force])[every - 1::every][self.engaged]
        force = self.checked(force, state)
        return IndentOutcome(force / jnp.max(force), jnp.max(force))
