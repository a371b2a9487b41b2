"""Run folders: what a DEM run writes, segment by segment, and how it resumes.

Layout (micro units throughout: µm, µs, µm/µs, rad/µs; force pg·µm/µs² = nN):

* ``trajectory.csv``   step, time_us, id, x, y, z, vx, vy, vz, wx, wy, wz, fx, fy, fz
* ``walls.csv``        step, time_us, wall, z_um, force_z  (force the particles exert, nN)
* ``trajectory.dump``  LAMMPS text dump (OVITO opens it)
* ``final.data``       LAMMPS data file of the last state
* ``summary.json``     settings, precision, device, timings, units
* ``checkpoint.eqx`` + ``checkpoint.json``: the state after the last finished segment; a run
  started again with ``resume=True`` continues from there and trims the files to that step.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from twin.io.case import Case, prepare
from twin.io.lammps import write_dump, write_sphere_data
from twin.physics.neighbors import allocate_neighbors
from twin.physics.simulate import concatenate_records, simulate

UNITS = {"length": "µm", "time": "µs", "velocity": "µm/µs (= m/s)", "angular_velocity": "rad/µs",
         "force": "nN (= pg·µm/µs²)", "mass": "pg", "pressure": "kPa (= pg/(µm·µs²))"}
TRAJECTORY_HEADER = "step,time_us,id,x,y,z,vx,vy,vz,wx,wy,wz,fx,fy,fz"
WALLS_HEADER = "step,time_us,wall,z_um,force_z"
TRAJECTORY_FORMAT = ["%d", "%.10g", "%d"] + ["%.10g"] * 12


def _trim_csv(path, header, last_step):
    """Keep the header and the rows whose first column (step) is <= last_step."""
    lines = path.read_text().splitlines()[1:] if path.exists() else []
    kept = [line for line in lines if int(line.split(",", 1)[0]) <= last_step]
    path.write_text("\n".join([header] + kept) + "\n")


def _trim_dump(path, last_step):
    if not path.exists():
        return
    frames = path.read_text().split("ITEM: TIMESTEP\n")[1:]
    kept = [f for f in frames if int(f.split("\n", 1)[0]) <= last_step]
    path.write_text("".join("ITEM: TIMESTEP\n" + f for f in kept))


class RunWriter:
    """Appends trajectory frames and wall records to a run folder as the run goes."""

    def __init__(self, out: Path, case: Case, resume_from_step: int | None):
        self.out, self.case = out, case
        if resume_from_step is None:
            (out / "trajectory.csv").write_text(TRAJECTORY_HEADER + "\n")
            (out / "walls.csv").write_text(WALLS_HEADER + "\n")
            (out / "trajectory.dump").write_text("")
        else:
            _trim_csv(out / "trajectory.csv", TRAJECTORY_HEADER, resume_from_step)
            _trim_csv(out / "walls.csv", WALLS_HEADER, resume_from_step)
            _trim_dump(out / "trajectory.dump", resume_from_step)

    def frame(self, step: int, spheres) -> None:
        case = self.case
        arrays = [np.asarray(a) for a in (spheres.position, spheres.velocity,
                                          spheres.angular_velocity, spheres.force)]
        n = len(case.ids)
        rows = np.column_stack([np.full(n, step), np.full(n, step * case.dt), case.ids, *arrays])
        with open(self.out / "trajectory.csv", "a") as f:
            np.savetxt(f, rows, fmt=TRAJECTORY_FORMAT, delimiter=",")
        with open(self.out / "trajectory.dump", "a") as f:
            write_dump(f, [(step, arrays[0], arrays[1], arrays[3])], np.asarray(case.box.lo),
                       np.asarray(case.box.hi), case.box.periodic, case.ids, case.types + 1,
                       case.radius)

    def walls(self, record) -> None:
        case = self.case
        with open(self.out / "walls.csv", "a") as f:
            for k, step in enumerate(np.asarray(record.step)):
                for w, wall in enumerate(case.walls):
                    f.write(f"{int(step)},{step * case.dt:.10g},{wall.name},"
                            f"{record.wall_z[k, w]:.10g},{record.wall_force[k, w, 2]:.10g}\n")


def _save_checkpoint(out: Path, state, spec, done: int, stepping_seconds: float) -> None:
    eqx.tree_serialise_leaves(out / "checkpoint.eqx", state)
    (out / "checkpoint.json").write_text(json.dumps({
        "steps_done": done, "candidate_capacity": spec.candidate_capacity,
        "pair_capacity": spec.pair_capacity, "wall_capacity": spec.wall_capacity,
        "stepping_seconds": stepping_seconds}))


def _load_checkpoint(out: Path, case: Case, state, box):
    info = json.loads((out / "checkpoint.json").read_text())
    spec, pair_list = allocate_neighbors(
        state.spheres.position, np.asarray(case.radius), box, case.skin,
        wall_z=np.asarray(state.walls.z), wall_normal_z=np.asarray(state.walls.normal_z),
        candidate_capacity=info["candidate_capacity"], pair_capacity=info["pair_capacity"],
        wall_capacity=info["wall_capacity"])
    template = eqx.tree_at(lambda s: (s.neighbors, s.pair_shear), state,
                           (pair_list, jnp.zeros((info["pair_capacity"], 3),
                                                 state.pair_shear.dtype)))
    return eqx.tree_deserialise_leaves(out / "checkpoint.eqx", template), spec, info


def run_case(case: Case, out_dir, progress=None, resume=False) -> dict:
    """Run ``case`` into a run folder (resuming from its checkpoint if asked); return the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state, spec, config, box, materials = prepare(case)
    done, stepping_seconds = 0, 0.0
    if resume and (out / "checkpoint.json").exists():
        state, spec, info = _load_checkpoint(out, case, state, box)
        done, stepping_seconds = info["steps_done"], info["stepping_seconds"]
        writer = RunWriter(out, case, resume_from_step=done)
    else:
        writer = RunWriter(out, case, resume_from_step=None)
        writer.frame(0, state.spheres)
    reallocations = 0
    start = time.perf_counter()
    while done < case.steps:
        result = simulate(state, materials, box, spec, config, case.trajectory_every,
                          case.walls_every, record_particles=False)
        state, spec = result.state, result.spec
        reallocations += result.reallocations
        stepping_seconds += result.wall_seconds
        done += case.trajectory_every
        writer.walls(concatenate_records(result.records))
        writer.frame(done, state.spheres)
        _save_checkpoint(out, state, spec, done, stepping_seconds)
        if progress is not None:
            progress(done, case.steps)
    elapsed = time.perf_counter() - start
    write_sphere_data(out / "final.data", case.ids, case.types + 1, 2 * case.radius,
                      case.density, np.asarray(state.spheres.position), np.asarray(case.box.lo),
                      np.asarray(case.box.hi), len(case.materials.names),
                      title=f"final state of {case.name}")
    summary = {
        "case": case.name, "source": case.notes, "particles": int(len(case.radius)),
        "steps": case.steps, "dt_us": case.dt, "simulated_time_us": case.steps * case.dt,
        "cohesion": case.cohesion, "precision": case.precision,
        "device": jax.devices()[0].device_kind, "platform": jax.default_backend(),
        "host": platform.node(), "periodic": list(case.box.periodic),
        "materials": list(case.materials.names),
        "walls": [{"name": w.name, "z_um_final": float(state.walls.z[k]),
                   "force_z_nN_final": float(state.wall_force[k, 2])}
                  for k, w in enumerate(case.walls)],
        "neighbour_reallocations": reallocations,
        "wall_seconds_this_session": elapsed, "wall_seconds_stepping": stepping_seconds,
        "particle_steps_per_second": len(case.radius) * case.steps / max(stepping_seconds, 1e-12),
        "units": UNITS,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
