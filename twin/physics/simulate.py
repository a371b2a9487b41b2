"""The host-side DEM driver: runs jitted chunks of steps and acts on their flags.

* Neighbour overflow (a cell or the pair list full): the chunk is thrown away, the list
  re-allocated with more room from the chunk's starting state (shear history carried by pair
  identity), and the chunk repeated. No contact is ever dropped.
* A non-finite value: the jitted step records the first step and particle where it appeared; the
  driver replays the chunk up to the step before and raises :class:`SimulationDiverged` naming the
  step and particle and carrying that last good state.
* Time step: :func:`check_time_step` refuses dt above a fraction of the Rayleigh time.
* Several devices (``config.mesh``): the pair list is padded to a multiple of the device count
  (:func:`fit_pairs_to_mesh`) and the state laid out on the mesh before the first chunk and
  after every re-allocation.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from twin.physics.dem import DEMConfig, DEMState, Record, run, state_shardings
from twin.physics.materials import Materials, rayleigh_time
from twin.physics.neighbors import NeighborSpec, allocate_neighbors, carry_shear_history
from twin.physics.space import Box

DEFAULT_RAYLEIGH_FRACTION = 0.2
DEFAULT_CHUNK_STEPS = 2000


class SimulationDiverged(RuntimeError):
    """A run produced NaN/inf; ``last_good_state`` is the state just before that step."""

    def __init__(self, message, last_good_state, step, particle):
        super().__init__(message)
        self.last_good_state = last_good_state
        self.step = step
        self.particle = particle


def check_time_step(dt, radius, density, types, materials: Materials,
                    fraction=DEFAULT_RAYLEIGH_FRACTION) -> float:
    """Refuse dt > fraction × the smallest Rayleigh time; return that Rayleigh time (µs)."""
    radius, density, types = (np.asarray(a) for a in (radius, density, types))
    E = np.asarray(materials.youngs_modulus)[types]
    nu = np.asarray(materials.poisson)[types]
    t_rayleigh = np.asarray(rayleigh_time(radius, density, E, nu))
    k = int(np.argmin(t_rayleigh))
    if dt > fraction * t_rayleigh[k]:
        raise ValueError(
            f"time step dt = {dt:.3g} µs exceeds {fraction:.0%} of the Rayleigh time "
            f"T_R = {t_rayleigh[k]:.3g} µs of particle index {k} (type "
            f"{materials.names[types[k]]}, radius {radius[k]:.3g} µm): use dt <= "
            f"{fraction * t_rayleigh[k]:.3g} µs")
    return float(t_rayleigh[k])


@dataclass
class RunResult:
    state: DEMState
    records: list[Record]
    spec: NeighborSpec
    reallocations: int
    wall_seconds: float
    steps: int

    @property
    def particle_steps_per_second(self) -> float:
        return self.state.spheres.count * self.steps / max(self.wall_seconds, 1e-12)


_run_chunk = eqx.filter_jit(run)


def fit_pairs_to_mesh(state: DEMState, spec: NeighborSpec,
                      mesh: Mesh) -> tuple[NeighborSpec, DEMState]:
    """Pad the pair list and its shear history with empty slots (pair (N, N), zero history) up
    to a multiple of the mesh's device count, so that the slots split evenly; the pairs and
    their order are unchanged (empty slots sort last). Returns the state on the mesh."""
    capacity = spec.pair_capacity
    padded = math.ceil(capacity / mesh.size) * mesh.size
    if padded != capacity:
        n, extra = state.spheres.count, padded - capacity
        pairs = state.neighbors.pairs
        state = eqx.tree_at(
            lambda st: (st.neighbors.pairs, st.pair_shear), state,
            (jnp.concatenate([pairs, jnp.full((extra, 2), n, pairs.dtype)]),
             jnp.concatenate([state.pair_shear,
                              jnp.zeros((extra, 3), state.pair_shear.dtype)])))
        spec = dataclasses.replace(spec, pair_capacity=padded)
    return spec, jax.device_put(state, state_shardings(state, mesh))


def _reallocate(state: DEMState, box: Box, spec: NeighborSpec):
    """A layout with room for the current counts (and at least twice the old capacities), the
    list rebuilt from ``state``; shear history carried by pair identity."""
    s = state.spheres
    position, radius = np.asarray(s.position), np.asarray(s.radius)
    walls = dict(wall_z=np.asarray(state.walls.z), wall_normal_z=np.asarray(state.walls.normal_z))
    needed, _ = allocate_neighbors(position, radius, box, spec.skin, growth=1.5, pair_growth=1.5,
                                   **walls)
    new_spec, pair_list = allocate_neighbors(
        position, radius, box, spec.skin,
        candidate_capacity=max(needed.candidate_capacity, 2 * spec.candidate_capacity),
        pair_capacity=max(needed.pair_capacity, 2 * spec.pair_capacity),
        wall_capacity=min(max(needed.wall_capacity, 2 * spec.wall_capacity), s.count), **walls)
    shear = carry_shear_history(state.neighbors.pairs, state.pair_shear, pair_list.pairs,
                                s.count)
    return new_spec, eqx.tree_at(lambda st: (st.neighbors, st.pair_shear), state,
                                 (pair_list, shear))


def simulate(state: DEMState, materials: Materials, box: Box, spec: NeighborSpec,
             config: DEMConfig, n_steps: int, record_every: int, record_particles: bool = True,
             chunk_steps: int | None = None, progress=None, control=None) -> RunResult:
    """Run ``n_steps`` (a multiple of ``record_every``) in chunks, re-allocating on overflow.

    ``progress`` is an optional callable ``(steps_done, n_steps, state)`` called after each chunk;
    ``control`` an optional protocol applied before every step (see :func:`twin.physics.dem.run`).
    With ``config.mesh`` the pair phase runs split over the mesh's devices (the returned spec
    then has the padded pair capacity, see :func:`fit_pairs_to_mesh`).
    """
    if n_steps % record_every:
        raise ValueError(f"steps = {n_steps} must be a multiple of the record interval "
                         f"{record_every}")
    mesh = config.mesh
    if mesh is not None:
        spec, state = fit_pairs_to_mesh(state, spec, mesh)
    records_per_chunk = max(1, (chunk_steps or DEFAULT_CHUNK_STEPS) // record_every)
    records, reallocations, done = [], 0, 0
    start = time.perf_counter()
    while done < n_steps:
        n_records = min(records_per_chunk, (n_steps - done) // record_every)
        new_state, chunk_records = _run_chunk(state, materials, box, spec, config, n_records,
                                              record_every, record_particles, control=control)
        if bool(new_state.neighbors.overflow):
            spec, state = _reallocate(state, box, spec)
            if mesh is not None:
                spec, state = fit_pairs_to_mesh(state, spec, mesh)
            reallocations += 1
            continue
        bad_step = int(new_state.bad_step)
        if bad_step >= 0:
            particle = int(new_state.bad_particle)
            good_steps = bad_step - 1 - int(state.step)
            last_good = state if good_steps == 0 else _run_chunk(
                state, materials, box, spec, config, 1, good_steps, False, control=control)[0]
            raise SimulationDiverged(
                f"non-finite position/velocity at step {bad_step} for particle index {particle} "
                f"(radius {float(state.spheres.radius[particle]):.4g} µm): the state of step "
                f"{bad_step - 1} is kept. Usual causes: a time step too large, huge initial "
                "overlaps (relax the packing first), or a wall moving through particles.",
                last_good, bad_step, particle)
        state = new_state
        records.append(jax.device_get(chunk_records))
        done += n_records * record_every
        if progress is not None:
            progress(done, n_steps, state)
    jax.block_until_ready(state)
    return RunResult(state, records, spec, reallocations, time.perf_counter() - start, n_steps)


def concatenate_records(records: list[Record]) -> Record:
    """Join the per-chunk records along time (numpy)."""
    def join(*parts):
        return np.concatenate([np.asarray(p) for p in parts], axis=0)
    return jax.tree_util.tree_map(join, *records)

