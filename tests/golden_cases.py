"""Load the LIGGGHTS reference cases of tests/golden/liggghts (written by tools/reference)."""

import json
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from twin.io.case import Case, WallSpec, prepare
from twin.physics.dem import setup_forces
from twin.physics.simulate import concatenate_records, simulate
from twin.physics.materials import Materials
from twin.physics.space import Box

GOLDEN = Path(__file__).parent / "golden" / "liggghts"


def load_reference_case(folder) -> tuple[Case, dict]:
    """A :class:`Case` equivalent to the LIGGGHTS input, plus the raw json (micro units)."""
    folder = Path(folder)
    doc = json.loads((folder / "case.json").read_text())
    names = tuple(doc.get("type_names") or doc.get("types"))
    materials = Materials(np.array(doc["youngs_modulus"]), np.array(doc["poisson"]),
                          np.array(doc["restitution"]), np.array(doc["friction"]),
                          np.array(doc["ced"]), names)
    particles = doc["particles"] if isinstance(doc.get("particles"), list) \
        else _initial_csv_particles(folder / "initial.csv")
    walls = [WallSpec(w["name"], w["type"] - 1, w["z"], w["normal_z"], w["velocity_z"])
             for w in doc.get("walls", [])]
    case = Case(
        name=doc["name"], ids=np.array([p["id"] for p in particles]),
        types=np.array([p["type"] - 1 for p in particles]),
        radius=np.array([p["radius"] for p in particles], float),
        density=np.array([p["density"] for p in particles], float),
        position=np.array([p["x"] for p in particles], float),
        velocity=np.array([p["v"] for p in particles], float),
        angular_velocity=np.array([p["omega"] for p in particles], float),
        box=Box(np.array(doc["box"]["lo"]), np.array(doc["box"]["hi"]),
                tuple(doc["box"]["periodic"])),
        materials=materials, walls=walls, cohesion=doc["cohesion"], dt=doc["dt"],
        steps=doc["steps"], trajectory_every=doc["steps"], walls_every=doc["steps"])
    return case, doc


def _initial_csv_particles(path):
    table = read_csv(path)
    return [{"id": int(table["id"][k]), "type": int(table["type"][k]),
             "radius": table["radius"][k], "density": table["density"][k],
             "x": [table["x"][k], table["y"][k], table["z"][k]], "v": [0.0, 0.0, 0.0],
             "omega": [0.0, 0.0, 0.0]} for k in range(len(table["id"]))]


def liggghts_run_setup(state, materials, box, config):
    """What LIGGGHTS does at the start of every later ``run`` command: forces re-evaluated at
    x(n) with the full-step velocities, walls taken at rest, histories not advanced."""
    resting = eqx.tree_at(lambda s: s.walls.velocity_z, state, jnp.zeros_like(state.walls.velocity_z))
    force, torque, wall_force = setup_forces(resting, materials, box, config)
    return eqx.tree_at(lambda s: (s.spheres.force, s.spheres.torque, s.wall_force), state,
                       (force, torque, wall_force))


def run_like_liggghts(case, doc, every, record_particles=True, progress=None):
    """Run a reference case as LIGGGHTS did: its ``runs`` (wall velocities per segment), each
    later separate ``run`` starting with LIGGGHTS' set-up pass. Returns the joined records."""
    state, spec, config, box, materials = prepare(case)
    if "plate_schedule" in doc:   # one LIGGGHTS run whose plate velocity switches
        runs = [{"steps": s["to_step"] - s["from_step"], "velocity_z": {"plate": s["velocity_z"]}}
                for s in doc["plate_schedule"]]
        separate_runs = False
    else:
        runs = doc.get("runs") or [{"steps": case.steps, "velocity_z": {}}]
        separate_runs = "ONE LIGGGHTS run" not in doc.get("description", "")
    records = []
    for number, segment in enumerate(runs):
        velocities = [segment["velocity_z"].get(w.name, w.velocity_z) for w in case.walls]
        if velocities:
            state = eqx.tree_at(lambda s: s.walls.velocity_z, state,
                                jnp.asarray(velocities, state.walls.z.dtype))
        if number > 0 and separate_runs:
            state = liggghts_run_setup(state, materials, box, config)
        result = simulate(state, materials, box, spec, config, segment["steps"], every,
                          record_particles=record_particles, progress=progress)
        state, spec = result.state, result.spec
        records += result.records
    return concatenate_records(records), state


def read_csv(path) -> dict[str, np.ndarray]:
    with open(path) as f:
        header = f.readline().strip().split(",")
    text_columns = [k for k, name in enumerate(header) if name == "wall"]
    table = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=None, encoding="utf-8")
    return {name: np.array([row[k] for row in table]) for k, name in enumerate(header)} \
        if text_columns else dict(zip(header, np.loadtxt(path, delimiter=",", skiprows=1).T))
