"""Run folders: what a DEM run writes, and the segmented run that writes it.

Layout (micro units throughout: µm, µs, µm/µs, rad/µs; force pg·µm/µs² = nN):

* ``trajectory.csv``  step, time_us, id, x, y, z, vx, vy, vz, wx, wy, wz, fx, fy, fz
* ``walls.csv``       step, time_us, wall, z_um, force_z  (force the particles exert, nN)
* ``trajectory.dump`` LAMMPS text dump (OVITO opens it)
* ``final.data``      LAMMPS data file of the last state
* ``summary.json``    settings, precision, device, timings, units
"""

from __future__ import annotations

import csv
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

from twin.io.case import Case, prepare
from twin.io.lammps import write_dump, write_sphere_data
from twin.physics.simulate import concatenate_records, simulate

UNITS = {"length": "µm", "time": "µs", "velocity": "µm/µs (= m/s)", "angular_velocity": "rad/µs",
         "force": "nN (= pg·µm/µs²)", "mass": "pg", "pressure": "kPa (= pg/(µm·µs²))"}


def _trajectory_rows(step, dt, ids, spheres):
    position, velocity, omega, force = (np.asarray(a) for a in (
        spheres.position, spheres.velocity, spheres.angular_velocity, spheres.force))
    time_us = step * dt
    return np.column_stack([np.full(len(ids), step), np.full(len(ids), time_us), ids,
                            position, velocity, omega, force])


def run_case(case: Case, out_dir, progress=None) -> dict:
    """Run ``case`` and write a run folder; return the summary dictionary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state, spec, config, box, materials = prepare(case)
    header = "step,time_us,id,x,y,z,vx,vy,vz,wx,wy,wz,fx,fy,fz"
    trajectory = open(out / "trajectory.csv", "w")
    trajectory.write(header + "\n")
    fmt = ["%d", "%.10g", "%d"] + ["%.10g"] * 12
    np.savetxt(trajectory, _trajectory_rows(0, case.dt, case.ids, state.spheres), fmt=fmt)
    frames = [(0, *(np.asarray(a) for a in (state.spheres.position, state.spheres.velocity,
                                            state.spheres.force)))]
    wall_records = []
    reallocations, done, wall_seconds = 0, 0, 0.0
    start = time.perf_counter()
    while done < case.steps:
        result = simulate(state, materials, box, spec, config, case.trajectory_every,
                          case.walls_every, record_particles=False)
        state, spec = result.state, result.spec
        reallocations += result.reallocations
        wall_seconds += result.wall_seconds
        done += case.trajectory_every
        wall_records.append(concatenate_records(result.records))
        np.savetxt(trajectory, _trajectory_rows(done, case.dt, case.ids, state.spheres), fmt=fmt)
        frames.append((done, *(np.asarray(a) for a in (
            state.spheres.position, state.spheres.velocity, state.spheres.force))))
        if progress is not None:
            progress(done, case.steps)
    trajectory.close()
    elapsed = time.perf_counter() - start
    with open(out / "walls.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "time_us", "wall", "z_um", "force_z"])
        for record in wall_records:
            for k, step in enumerate(np.asarray(record.step)):
                for w, wall in enumerate(case.walls):
                    writer.writerow([int(step), f"{step * case.dt:.10g}", wall.name,
                                     f"{record.wall_z[k, w]:.10g}",
                                     f"{record.wall_force[k, w, 2]:.10g}"])
    lo, hi = np.asarray(case.box.lo), np.asarray(case.box.hi)
    write_dump(out / "trajectory.dump", frames, lo, hi, case.box.periodic, case.ids,
               case.types + 1, case.radius)
    write_sphere_data(out / "final.data", case.ids, case.types + 1, 2 * case.radius,
                      case.density, np.asarray(state.spheres.position), lo, hi,
                      len(case.materials.names), title=f"final state of {case.name}")
    particle_steps = len(case.radius) * case.steps
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
        "wall_seconds_total": elapsed, "wall_seconds_stepping": wall_seconds,
        "particle_steps_per_second": particle_steps / max(wall_seconds, 1e-12),
        "units": UNITS,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
