"""Discrete element dynamics of spheres between plane walls: state, forces, velocity Verlet.

Everything here is a pure function of (state, parameters), jit-compiled by the caller; the time
loop is a ``lax.scan``. The Python driver that re-allocates neighbour lists and stops on NaN is
:mod:`twin.physics.simulate`.

Time integration is LIGGGHTS/LAMMPS ``fix nve/sphere`` (velocity Verlet, I = 2/5 m r²):

    v(n+½) = v(n) + dt F(n) / 2m,      ω(n+½) = ω(n) + dt T(n) / 2I
    x(n+1) = x(n) + dt v(n+½)           (walls move by dt · v_wall)
    F(n+1), T(n+1) from x(n+1), v(n+½), ω(n+½)     (damping sees the half-step velocity)
    v(n+1) = v(n+½) + dt F(n+1) / 2m,  ω(n+1) = ω(n+½) + dt T(n+1) / 2I

Several devices (``DEMConfig.mesh``, built by :func:`pair_mesh`): the pair phase — gathering
the two spheres of every pair slot, the contact law and the scatter of the forces, ~3/4 of a step
on one CPU core — is split over the devices with ``jax.shard_map``: each device takes a
contiguous block of the pair slots together with their shear history (sharded along the slots),
the particle data are replicated, and the per-device partial forces and torques are summed by one
``psum`` of (N, 6) per step. Everything else (integration, walls, the neighbour build) runs
replicated on every device, so no other data moves. The same code serves any mesh (1 device, the
host CPU forced into several devices with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``,
or GPUs); the results agree with the single-device path to round-off (the force sums are added in
another order).

Where the speed comes from, on the 3945-sphere compaction (CPU time per step, float64, measured on
a 2-core AMD EPYC before the fusion boundaries below): the pair phase is ~1.0 of ~1.2 ms, the
replicated rest ~0.2 ms (list builds included), the psum of (3945, 6) doubles ~0.02 ms per device.
With a core per device a step costs about rest + pairs / devices + psum instead of rest + pairs, so
on 2 devices the replicated rest is ~1/4 of a step: re-wrapping the moved positions with selects
instead of the floating-point remainder (~60 µs, a libm call per coordinate on CPU) and testing
finiteness with whole-array reductions (~33 µs) took ~0.09 ms off it. XLA's CPU runtime gives each
device its own thread; the devices meet at the psum every step, so a device that loses its core to
another process stalls the others: use one device per otherwise idle core (on a single core two
devices are many times slower), and leave the default (no mesh) elsewhere.

The pair phase is bound by how XLA fuses it on CPU: a loop fusion evaluates each output element on
its own, so per-contact terms shared by the components of a (K, 3) result are recomputed per
component, nested through every dot and cross product of the contact law. The pair phase therefore
has fusion boundaries (:mod:`twin.physics.fusion`): the contact geometry, the law's tangential
velocity with the normal force, the projected shear, the per-contact tangential coefficients and
the outputs are each computed once into memory. The first boundaries took the pair phase from 2.37
to 1.36 ms per step on an Intel Xeon core (float64); the coefficient boundary and one gather of the
stacked pair constants then took a whole step from 1.54 to 1.26 ms on an AMD EPYC core
(``benchmarks/RESULTS.md``). Writing the law on (K,) components (structure of arrays)
made it slower, ``lax.optimization_barrier`` is expanded before fusion on CPU, packing a
boundary's operands into one array made a step 40 % slower, and vectorising the walls changed
nothing measurable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from twin.physics import vector
from twin.physics.cohesion import sphere_contact_area, wall_contact_area
from twin.physics.contact import granular_contact
from twin.physics.fusion import materialize
from twin.physics.materials import Materials, PairTable, pair_table
from twin.physics.neighbors import (NeighborSpec, PairList, carry_shear_history, rebuild_pairs,
                                    needs_rebuild)
from twin.physics.space import Box, minimum_image, rewrap_positions

INERTIA_FACTOR = 0.4


class Spheres(eqx.Module):
    """Particles: kinematics (µm, µm/µs, rad/µs), last forces/torques, and fixed properties."""

    position: Array
    velocity: Array
    angular_velocity: Array
    force: Array
    torque: Array
    radius: Array
    mass: Array
    type: Array

    @property
    def count(self) -> int:
        return self.position.shape[0]


class Walls(eqx.Module):
    """Infinite planes z = z_w with outward normal ±z (+1: a floor, particles above it)."""

    z: Array
    velocity_z: Array
    normal_z: Array
    type: Array


class DEMState(eqx.Module):
    """Everything that evolves in a DEM run. ``wall_force`` is the force of the spheres on each
    wall at this step, ``wall_force_filtered`` its low-pass (:func:`filter_wall_force`)."""

    spheres: Spheres
    walls: Walls
    wall_force: Array
    wall_force_filtered: Array
    neighbors: PairList
    pair_shear: Array
    wall_shear: Array
    step: Array
    bad_step: Array
    bad_particle: Array


class DEMConfig(eqx.Module):
    """Static settings: time step (µs), cohesion model, contact-law precision, background damping.

    ``contact_precision="float32"`` is mixed precision: positions, velocities and the time
    integration stay float64 (x + v dt loses the increment in float32 when dt is 1e-4 µs), while
    the pair geometry is formed in float64 and the contact law evaluated in float32.

    ``viscous_damping`` γ (1/µs) adds a background drag F = −γ m v, T = −γ I ω on every sphere
    (mass-proportional, like LIGGGHTS ``fix viscous`` with γ_i = γ m_i): a quasi-static relaxation
    device, not part of the contact law; 0 (the default) leaves the LIGGGHTS dynamics unchanged.

    ``mesh`` (a :class:`jax.sharding.Mesh`, e.g. from :func:`pair_mesh`) splits the pair phase
    over its devices (see the module docstring); ``None`` (the default) runs on one device.

    ``wall_force_filter_time`` τ (µs) is the time constant of the low-pass filter of the wall
    forces (:func:`filter_wall_force`); 0 (the default) makes the filtered force the force.
    """

    dt: float = eqx.field(static=True)
    cohesion: str = eqx.field(static=True)
    contact_precision: str = eqx.field(static=True, default="float64")
    viscous_damping: float = eqx.field(static=True, default=0.0)
    mesh: Mesh | None = eqx.field(static=True, default=None)
    wall_force_filter_time: float = eqx.field(static=True, default=0.0)


def pair_mesh(devices: int | Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (axis ``"pairs"``) over ``devices``: a count of the first
    ``jax.devices()``, or the devices themselves; ``None``: all of them.

    On a CPU host, N devices exist only if ``XLA_FLAGS`` held
    ``--xla_force_host_platform_device_count=N`` before JAX initialised.
    """
    available = jax.devices()
    if devices is None:
        devices = available
    elif isinstance(devices, int):
        if not 1 <= devices <= len(available):
            hint = (" (on a CPU host set XLA_FLAGS=--xla_force_host_platform_device_count="
                    f"{devices} before JAX initialises)" if available[0].platform == "cpu" else "")
            raise ValueError(f"devices = {devices}: this process has {len(available)} "
                             f"{available[0].platform} device(s); use 1..{len(available)}{hint}")
        devices = available[:devices]
    return Mesh(np.asarray(devices), ("pairs",))


def _slot_axes(mesh: Mesh) -> PartitionSpec:
    """The pair slots split over all axes of the mesh."""
    return PartitionSpec(tuple(mesh.axis_names))


def state_shardings(state: DEMState, mesh: Mesh):
    """Where the sharded step keeps a state: the pair shear history split along the slots like
    the pair work, everything else replicated (a pytree of shardings matching ``state``)."""
    replicated = NamedSharding(mesh, PartitionSpec())
    shardings = jax.tree_util.tree_map(lambda _: replicated, state)
    return eqx.tree_at(lambda st: st.pair_shear, shardings,
                       NamedSharding(mesh, _slot_axes(mesh)))


def _cast(dtype, *arrays):
    return tuple(x.astype(dtype) for x in arrays)


def _pair_constants(table: PairTable, t_i, t_j):
    """(E*, G*, β, μ, CED) of the type pairs (``t_i``, ``t_j``): one gather from the stacked
    (T², 5) table (on CPU ~5 % of a pair-phase step faster than five gathers from the (T, T)
    tables)."""
    types = table.e_star.shape[0]
    stacked = jnp.stack([table.e_star, table.g_star, table.beta, table.friction,
                         table.cohesion_energy_density], axis=-1).reshape(types * types, 5)
    constants = stacked[t_i * types + t_j]
    return tuple(constants[:, k] for k in range(5))


def _slot_forces(spheres: Spheres, pairs, shear, table: PairTable, box: Box, cohesion: str,
                 dt: float):
    """Force and torque (N, 6) on every sphere from the pair slots ``pairs`` (K, 2), and their
    new shear history (K, 3)."""
    n = spheres.count
    valid = pairs[:, 0] < n
    i = jnp.where(valid, pairs[:, 0], 0)
    j = jnp.where(valid, pairs[:, 1], 0)
    # One gather per side of [x, v, ω, r, m] and one scatter of [F, T] for both sides: on CPU this
    # is ~20 % faster than gathering and scattering each quantity separately.
    packed = jnp.concatenate([spheres.position, spheres.velocity, spheres.angular_velocity,
                              spheres.radius[:, None], spheres.mass[:, None]], axis=1)
    a, b = packed[i], packed[j]
    r_i, r_j, m_i, m_j = a[:, 9], b[:, 9], a[:, 10], b[:, 10]
    d = minimum_image(a[:, 0:3] - b[:, 0:3], box)
    distance_sq = vector.norm_squared(d)
    usable = valid & (distance_sq > 0.0)
    distance = jnp.sqrt(jnp.where(usable, distance_sq, 1.0))
    overlap = jnp.where(usable, r_i + r_j - distance, -1.0)
    normal = d / distance[:, None]
    lever_i, lever_j = r_i - 0.5 * overlap, r_j - 0.5 * overlap
    rotational = lever_i[:, None] * a[:, 6:9] + lever_j[:, None] * b[:, 6:9]
    t_i, t_j = spheres.type[i], spheres.type[j]
    area = sphere_contact_area(cohesion, jnp.maximum(overlap, 0.0), distance, r_i, r_j)
    # Fusion boundary (twin.physics.fusion): the geometry is computed once, not per component of
    # every law output and torque that reads it.
    (normal, overlap, relative_velocity, rotational, r_eff, m_eff, area, lever_i,
     lever_j) = materialize((normal, overlap, a[:, 3:6] - b[:, 3:6], rotational,
                             r_i * r_j / (r_i + r_j), m_i * m_j / (m_i + m_j), area, lever_i,
                             lever_j))
    law_inputs = _cast(shear.dtype, normal, overlap, relative_velocity, rotational, r_eff, m_eff,
                       area)
    force, tangential, new_shear = granular_contact(
        *law_inputs, shear, *_cast(shear.dtype, *_pair_constants(table, t_i, t_j)), dt,
        fusion_boundaries=True)
    force, tangential = _cast(normal.dtype, force, tangential)
    moment = vector.cross(normal, tangential)
    on_i = jnp.concatenate([force, -lever_i[:, None] * moment], axis=1)
    on_j = jnp.concatenate([-force, -lever_j[:, None] * moment], axis=1)
    total = jnp.zeros((n, 6), force.dtype).at[jnp.concatenate([i, j])].add(
        jnp.concatenate([on_i, on_j]))
    return total, new_shear


def _pair_forces(spheres: Spheres, pair_list: PairList, shear, table: PairTable, box: Box,
                 config: DEMConfig):
    """Force and torque from all pairs, and the new shear history: on one device, or with the
    slots split over ``config.mesh`` and the partial forces summed across it (one psum)."""
    def slot_forces(spheres, pairs, shear, table, box):
        return _slot_forces(spheres, pairs, shear, table, box, config.cohesion, config.dt)

    mesh = config.mesh
    if mesh is None:
        total, new_shear = slot_forces(spheres, pair_list.pairs, shear, table, box)
    else:
        capacity = pair_list.pairs.shape[0]
        if capacity % mesh.size:
            raise ValueError(
                f"pair capacity {capacity} does not split evenly over the {mesh.size} devices "
                "of DEMConfig.mesh: pad the list with twin.physics.simulate.fit_pairs_to_mesh "
                "(simulate() does it) or allocate a multiple of the device count")
        slots = _slot_axes(mesh)

        def per_device(spheres, pairs, shear, table, box):
            total, new_shear = slot_forces(spheres, pairs, shear, table, box)
            return lax.psum(total, mesh.axis_names), new_shear

        replicated = PartitionSpec()
        total, new_shear = jax.shard_map(
            per_device, mesh=mesh, in_specs=(replicated, slots, slots, replicated, replicated),
            out_specs=(replicated, slots))(spheres, pair_list.pairs, shear, table, box)
    return total[:, :3], total[:, 3:], new_shear


def _wall_forces(spheres: Spheres, walls: Walls, wall_particles, shear, table: PairTable,
                 cohesion: str, dt: float):
    """Forces of each wall on the spheres listed near it (``wall_particles`` (W, K), padding N);
    shear history is stored per sphere, shape (N, W, 3)."""
    n, dtype = spheres.count, spheres.position.dtype
    total = jnp.zeros((n, 6), dtype)
    new_shear, on_walls = shear, []
    unit_z = jnp.zeros(3, dtype).at[2].set(1.0)
    for w in range(walls.z.shape[0]):   # a handful of walls: unrolled
        listed = wall_particles[w]
        k = jnp.where(listed < n, listed, 0)
        radius, mass = spheres.radius[k], spheres.mass[k]
        normal = jnp.broadcast_to(walls.normal_z[w] * unit_z, (k.shape[0], 3))
        overlap = jnp.where(listed < n,
                            radius - (spheres.position[k, 2] - walls.z[w]) * walls.normal_z[w],
                            -1.0)
        lever = radius - 0.5 * overlap
        area = wall_contact_area(cohesion, jnp.maximum(overlap, 0.0), radius)
        wall_type = jnp.full(k.shape, walls.type[w])
        law_inputs = _cast(shear.dtype, normal, overlap,
                           spheres.velocity[k] - walls.velocity_z[w] * unit_z,
                           lever[:, None] * spheres.angular_velocity[k], radius, mass, area)
        force, tangential, shear_w = granular_contact(
            *law_inputs, shear[k, w],
            *_cast(shear.dtype, *_pair_constants(table, spheres.type[k], wall_type)), dt)
        force, tangential = _cast(dtype, force, tangential)
        torque = -lever[:, None] * vector.cross(normal, tangential)
        total = total.at[listed].add(jnp.concatenate([force, torque], axis=1), mode="drop")
        new_shear = new_shear.at[listed, w].set(shear_w, mode="drop")
        on_walls.append(-force.sum(axis=0))
    if not on_walls:
        return total[:, :3], total[:, 3:], shear, jnp.zeros((0, 3), dtype)
    return total[:, :3], total[:, 3:], new_shear, jnp.stack(on_walls)


def contact_forces(state: DEMState, table: PairTable, box: Box, config: DEMConfig):
    """Total force and torque on each sphere, updated histories, and the force on each wall."""
    s = state.spheres
    pair_force, pair_torque, pair_shear = _pair_forces(s, state.neighbors, state.pair_shear,
                                                       table, box, config)
    wall_force_on_spheres, wall_torque, wall_shear, force_on_walls = _wall_forces(
        s, state.walls, state.neighbors.wall_particles, state.wall_shear, table, config.cohesion,
        config.dt)
    return (pair_force + wall_force_on_spheres, pair_torque + wall_torque, pair_shear, wall_shear,
            force_on_walls)


def filter_wall_force(filtered, force, config: DEMConfig):
    """One step of the exponential low-pass of the wall forces, a force sensor with time constant
    τ = ``config.wall_force_filter_time``:

        F̄(n+1) = F̄(n) + (1 − exp(−dt/τ)) (F(n+1) − F̄(n)),

    the exact discretisation of dF̄/dt = (F − F̄)/τ for F held over a step (τ = 0: F̄ = F). A
    contact impact shorter than τ (a plate at m/s hitting a resting sphere: a spike of ~MPa for a
    Hertz contact time of ~0.03 µs) reaches F̄ divided by about τ / its duration, while a force
    ramp Ḟ is followed with a lag of τ (F − F̄ → Ḟ τ).
    """
    if config.wall_force_filter_time <= 0.0:
        return force
    weight = -math.expm1(-config.dt / config.wall_force_filter_time)
    return filtered + weight * (force - filtered)


def setup_forces(state: DEMState, materials: Materials, box: Box, config: DEMConfig):
    """Forces, torques and wall forces of the current state without advancing any shear history
    (LAMMPS/LIGGGHTS ``setup``: a tangential force is then only the damping term -γ_t v_t)."""
    frozen_history = dataclasses.replace(config, dt=0.0)
    force, torque, _, _, wall_force = contact_forces(state, pair_table(materials), box,
                                                     frozen_history)
    return force, torque, wall_force


def initial_state(spheres: Spheres, walls: Walls, pair_list: PairList, materials: Materials,
                  box: Box, config: DEMConfig) -> DEMState:
    """State at step 0 with the set-up forces (LAMMPS ``setup``: histories are not advanced)."""
    n, n_walls, dtype = spheres.count, walls.z.shape[0], spheres.position.dtype
    history_dtype = jnp.dtype(config.contact_precision)
    state = DEMState(
        spheres=spheres, walls=walls, wall_force=jnp.zeros((n_walls, 3), dtype),
        wall_force_filtered=jnp.zeros((n_walls, 3), dtype), neighbors=pair_list,
        pair_shear=jnp.zeros((pair_list.pairs.shape[0], 3), history_dtype),
        wall_shear=jnp.zeros((n, n_walls, 3), history_dtype), step=jnp.zeros((), jnp.int64),
        bad_step=jnp.full((), -1, jnp.int64), bad_particle=jnp.full((), -1, jnp.int64))
    force, torque, wall_force = setup_forces(state, materials, box, config)
    spheres = eqx.tree_at(lambda s: (s.force, s.torque), spheres, (force, torque))
    return eqx.tree_at(lambda st: (st.spheres, st.wall_force, st.wall_force_filtered), state,
                       (spheres, wall_force, wall_force))


def _rebuild(state: DEMState, position, walls: Walls, box: Box, spec: NeighborSpec):
    fresh = rebuild_pairs(state.neighbors, position, state.spheres.radius, box, spec, walls.z,
                          walls.normal_z)
    shear = carry_shear_history(state.neighbors.pairs, state.pair_shear, fresh.pairs,
                                state.spheres.count)
    return fresh, shear


def _all_finite(*arrays):
    """Whether every element is finite: whole-array reductions (on CPU ~5× cheaper per step
    than the per-row test, which :func:`_first_non_finite_row` runs only on a failure)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in arrays]))


def _first_non_finite_row(*arrays):
    """Index of the first row (particle) holding a non-finite value in any of the (N, …) arrays."""
    finite = jnp.all(jnp.isfinite(jnp.concatenate(arrays, axis=1)), axis=1)
    return jnp.argmin(finite)


def step(state: DEMState, table: PairTable, box: Box, spec: NeighborSpec,
         config: DEMConfig) -> DEMState:
    """One velocity-Verlet step (see the module docstring). The first step that produces a
    non-finite value is recorded in ``bad_step``/``bad_particle`` (the driver then recovers the
    last good state by replaying the chunk up to the step before)."""
    s, dt = state.spheres, config.dt
    inverse_mass = (1.0 / s.mass)[:, None]
    inertia = (INERTIA_FACTOR * s.mass * s.radius**2)[:, None]
    inverse_inertia = 1.0 / inertia
    velocity = s.velocity + 0.5 * dt * s.force * inverse_mass
    angular_velocity = s.angular_velocity + 0.5 * dt * s.torque * inverse_inertia
    position = rewrap_positions(s.position + dt * velocity, box)
    walls = eqx.tree_at(lambda w: w.z, state.walls, state.walls.z + dt * state.walls.velocity_z)
    neighbors, pair_shear = lax.cond(
        needs_rebuild(state.neighbors, position, box, spec.skin, walls.z),
        lambda: _rebuild(state, position, walls, box, spec),
        lambda: (state.neighbors, state.pair_shear))
    moved = DEMState(
        spheres=eqx.tree_at(lambda x: (x.position, x.velocity, x.angular_velocity), s,
                            (position, velocity, angular_velocity)),
        walls=walls, wall_force=state.wall_force, wall_force_filtered=state.wall_force_filtered,
        neighbors=neighbors, pair_shear=pair_shear,
        wall_shear=state.wall_shear, step=state.step + 1, bad_step=state.bad_step,
        bad_particle=state.bad_particle)
    force, torque, pair_shear, wall_shear, wall_force = contact_forces(moved, table, box, config)
    if config.viscous_damping:   # drag on the half-step velocities, as the contact damping
        force = force - config.viscous_damping * s.mass[:, None] * velocity
        torque = torque - config.viscous_damping * inertia * angular_velocity
    velocity = velocity + 0.5 * dt * force * inverse_mass
    angular_velocity = angular_velocity + 0.5 * dt * torque * inverse_inertia
    new = eqx.tree_at(
        lambda st: (st.spheres.velocity, st.spheres.angular_velocity, st.spheres.force,
                    st.spheres.torque, st.pair_shear, st.wall_shear, st.wall_force,
                    st.wall_force_filtered),
        moved, (velocity, angular_velocity, force, torque, pair_shear, wall_shear, wall_force,
                filter_wall_force(state.wall_force_filtered, wall_force, config)))
    kinematics = (position, velocity, angular_velocity)
    first_failure = (state.bad_step < 0) & ~_all_finite(*kinematics)
    return eqx.tree_at(
        lambda st: (st.bad_step, st.bad_particle), new,
        (jnp.where(first_failure, state.step + 1, state.bad_step),
         lax.cond(first_failure, lambda: _first_non_finite_row(*kinematics),
                  lambda: state.bad_particle)))


class Record(eqx.Module):
    """What a run records every ``record_every`` steps (particle arrays only if requested)."""

    step: Array
    wall_z: Array
    wall_force: Array
    wall_force_filtered: Array
    position: Array | None
    velocity: Array | None
    angular_velocity: Array | None
    force: Array | None


def _record(state: DEMState, particles: bool) -> Record:
    s = state.spheres
    return Record(state.step, state.walls.z, state.wall_force, state.wall_force_filtered,
                  s.position if particles else None, s.velocity if particles else None,
                  s.angular_velocity if particles else None, s.force if particles else None)


def run(state: DEMState, materials: Materials, box: Box, spec: NeighborSpec, config: DEMConfig,
        n_records: int, record_every: int, record_particles: bool = True,
        checkpoint: bool = False, control=None) -> tuple[DEMState, Record]:
    """Advance ``n_records × record_every`` steps; return the final state and the records.

    Pure and differentiable with respect to ``materials`` and the state. With ``checkpoint``
    the inner ``record_every`` steps are rematerialised in the backward pass, so reverse-mode
    memory grows with ``n_records`` rather than with the number of steps. ``control`` is an
    optional protocol (an ``eqx.Module`` mapping state -> state, e.g. setting wall velocities
    from the wall forces) applied before every step.

    With ``config.mesh`` the pair phase of every step is split over the mesh's devices (see the
    module docstring) and the returned state is laid out as :func:`state_shardings` says, so
    that consecutive chunks compile once.
    """
    table = pair_table(materials)

    def advance(current, _):
        if control is not None:
            current = control(current)
        return step(current, table, box, spec, config), None

    def block(current, _):
        current, _ = lax.scan(advance, current, None, length=record_every)
        return current, _record(current, record_particles)

    if checkpoint:
        block = jax.checkpoint(block)
    state, records = lax.scan(block, state, None, length=n_records)
    if config.mesh is not None:
        state = lax.with_sharding_constraint(state, state_shardings(state, config.mesh))
    return state, records
