"""The small example electrode (3945 spheres, periodic x y) compacted by a steel plate and
released, in LIGGGHTS 3.8 and in the twin with the same protocol (float64).

Golden data: tools/reference/liggghts_compaction.py. Until the trajectory turns chaotic (contacts
opening and slipping amplify round-off by ~10× per 2000 steps from step ~20 000 on), the twin
reproduces LIGGGHTS' wall forces to round-off: that is checked over the first 15 000 steps.

Over the whole stroke, LIGGGHTS itself run on 2 MPI ranks instead of 1 (only the summation order
changes) differs from its 1-rank curve by 14.8 % RMS of the plate force (8.7 % even after a
0.5 µm moving average): no code can meet a 3 % pointwise criterion on this protocol. The whole curve
is therefore held to LIGGGHTS' own spread — the twin's RMS difference to the 1-rank run at most
1.5 × that of the 2-rank run (walls_spread.csv, written by tools/reference/liggghts_compaction.py) —
and the packing fraction after unloading must agree within 0.5 percentage points.

That packing fraction uses the thickness at which the rising plate last carries 1 % of its maximum
force. The paper's literal "last non-zero force" hangs on single particles clinging to the plate by
cohesion: LIGGGHTS gives 0.7035 (1 rank), 0.7020 (2 ranks) and 0.6992 (positions moved by 1e-9 µm,
walls_spread.csv) with it, the twin 0.6950; with the 1 % threshold LIGGGHTS gives 0.7043, 0.7025,
0.7051 and the twin 0.7037 (measured 2026-11-25).
"""

import numpy as np
import pytest

from golden_cases import GOLDEN, load_reference_case, read_csv, run_like_liggghts

FOLDER = GOLDEN / "compaction_small"
SPREAD_FACTOR = 1.5   # the twin may differ from LIGGGHTS by at most 1.5 × LIGGGHTS from itself
RECOVERY_FORCE_FRACTION = 0.01


def reference_walls(name):
    walls = read_csv(FOLDER / "walls.csv")
    mine = walls["wall"] == name
    return walls["step"][mine].astype(int), walls["z"][mine].astype(float), \
        walls["fz"][mine].astype(float)


def packing_fraction_after_unloading(plate_z, plate_force, unloading, solid_volume, area):
    """Thickness after elastic recovery: the highest plate position while unloading at which the
    plate still carries RECOVERY_FORCE_FRACTION of its maximum force."""
    carrying = unloading & (plate_force > RECOVERY_FORCE_FRACTION * plate_force.max())
    return solid_volume / (area * plate_z[carrying].max())


def test_wall_forces_match_liggghts_to_round_off_before_chaos():
    case, doc = load_reference_case(FOLDER)
    case.steps = case.trajectory_every = case.walls_every = 15_000
    doc = dict(doc, plate_schedule=[dict(doc["plate_schedule"][0], to_step=case.steps)])
    record, _ = run_like_liggghts(case, doc, doc["dump_every"], record_particles=False)
    for k, wall in enumerate(case.walls):
        steps, z, force = reference_walls(wall.name)
        n = len(record.step)
        np.testing.assert_array_equal(record.step, steps[:n])
        np.testing.assert_allclose(record.wall_z[:, k], z[:n], rtol=0, atol=1e-7)
        scale = np.abs(force[:n]).max()
        assert scale > 1e5, f"wall {wall.name} carries no load: the test would prove nothing"
        error = np.abs(record.wall_force[:, k, 2] - force[:n]).max()
        assert error <= 1e-6 * scale, f"wall {wall.name}: {error:.3g} nN of {scale:.3g} nN"


@pytest.mark.slow
def test_compaction_curve_and_packing_fraction_match_liggghts():
    case, doc = load_reference_case(FOLDER)
    record, _ = run_like_liggghts(case, doc, doc["dump_every"], record_particles=False)
    _, their_z, their_force = reference_walls("plate")
    their_other_force = read_csv(FOLDER / "walls_spread.csv")["plate_fz_np2"].astype(float)
    k = [w.name for w in case.walls].index("plate")
    our_z, our_force = record.wall_z[:, k], record.wall_force[:, k, 2]
    np.testing.assert_allclose(our_z, their_z, rtol=0, atol=1e-7)

    def rms(x):
        return float(np.sqrt(np.mean(x**2)))

    ours = rms(our_force - their_force)
    liggghts_spread = rms(their_other_force - their_force)
    assert ours <= SPREAD_FACTOR * liggghts_spread, (
        f"plate force RMS difference to LIGGGHTS {ours:.4g} nN "
        f"({100 * ours / rms(their_force):.1f} % of the RMS force) exceeds {SPREAD_FACTOR} × "
        f"LIGGGHTS' own 1- vs 2-rank difference {liggghts_spread:.4g} nN")

    unloading = np.asarray(record.step) > doc["plate_schedule"][0]["to_step"]
    lo, hi = np.asarray(case.box.lo), np.asarray(case.box.hi)
    area = (hi[0] - lo[0]) * (hi[1] - lo[1])
    solid = float(np.sum(4.0 / 3.0 * np.pi * case.radius**3))
    ours = packing_fraction_after_unloading(our_z, our_force, unloading, solid, area)
    theirs = packing_fraction_after_unloading(their_z, their_force, unloading, solid, area)
    assert abs(ours - theirs) <= 0.005, f"packing fraction {ours:.4f} vs LIGGGHTS {theirs:.4f}"
