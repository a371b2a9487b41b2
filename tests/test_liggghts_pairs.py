"""Two-body collisions, cohesive pairs and plane walls against LIGGGHTS 3.8 (float64).

Golden data: tools/reference/liggghts_pairs.py (Debian LIGGGHTS 3.8.0). Every dumped quantity
(position, velocity, angular velocity, force, torque, wall force) must agree within 1e-6 relative to
the largest magnitude that quantity reaches in the case.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from golden_cases import GOLDEN, load_reference_case, read_csv
from twin.io.case import prepare
from twin.physics.dem import setup_forces
from twin.physics.simulate import concatenate_records, simulate

TOLERANCE = 1e-6
CASES = sorted(p.name for p in (GOLDEN / "pairs").iterdir() if (p / "case.json").exists())


def liggghts_run_setup(state, materials, box, config):
    """What LIGGGHTS does at the start of every later ``run`` command: forces re-evaluated at
    x(n) with the full-step velocities, walls taken at rest, histories not advanced."""
    resting = eqx.tree_at(lambda s: s.walls.velocity_z, state, jnp.zeros_like(state.walls.velocity_z))
    force, torque, wall_force = setup_forces(resting, materials, box, config)
    return eqx.tree_at(lambda s: (s.spheres.force, s.spheres.torque, s.wall_force), state,
                       (force, torque, wall_force))


def run_like_liggghts(case, doc):
    state, spec, config, box, materials = prepare(case)
    reference = read_csv(GOLDEN / "pairs" / doc["name"] / "particles.csv")
    steps = np.unique(reference["step"]).astype(int)
    every = int(steps[1] - steps[0])
    runs = doc.get("runs") or [{"steps": case.steps, "velocity_z": {}}]
    separate_runs = "ONE LIGGGHTS run" not in doc["description"]
    records = []
    for number, segment in enumerate(runs):
        velocities = [segment["velocity_z"].get(w.name, w.velocity_z) for w in case.walls]
        if velocities:
            state = eqx.tree_at(lambda s: s.walls.velocity_z, state,
                                jnp.asarray(velocities, state.walls.z.dtype))
        if number > 0 and separate_runs:
            state = liggghts_run_setup(state, materials, box, config)
        result = simulate(state, materials, box, spec, config, segment["steps"], every)
        state, spec = result.state, result.spec
        records += result.records
    return concatenate_records(records), reference, every


@pytest.mark.parametrize("name", CASES)
def test_matches_liggghts(name):
    case, doc = load_reference_case(GOLDEN / "pairs" / name)
    record, reference, every = run_like_liggghts(case, doc)
    n = len(case.ids)
    ours = {"x": record.position, "v": record.velocity, "w": record.angular_velocity,
            "f": record.force}
    later = reference["step"] > 0
    for prefix, values in ours.items():
        theirs = np.stack([reference[prefix + c] if prefix != "x" else reference[c]
                           for c in "xyz"], axis=-1)[later].reshape(-1, n, 3)
        assert theirs.shape == values.shape
        scale = np.abs(theirs).max()
        error = np.abs(values - theirs).max()
        assert error <= TOLERANCE * scale, f"{prefix}: max error {error:.3g} of scale {scale:.3g}"
    if case.walls:
        walls = read_csv(GOLDEN / "pairs" / name / "walls.csv")
        for k, wall in enumerate(case.walls):
            mine = walls["wall"] == wall.name
            theirs_z = walls["z"][mine][1:].astype(float)
            theirs_f = walls["fz"][mine][1:].astype(float)
            np.testing.assert_allclose(record.wall_z[:, k], theirs_z, rtol=0, atol=1e-9)
            scale = max(np.abs(theirs_f).max(), 1.0)
            assert np.abs(record.wall_force[:, k, 2] - theirs_f).max() <= TOLERANCE * scale
