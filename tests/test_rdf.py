"""g(r): freud agreement in periodic boxes, the slab edge correction on uniform points, and the
contact peak of the carbon-binder spheres of a real packing.

Goldens: tests/golden/freud (tools/reference/freud_rdf.py, freud 3.x, float32 inside freud;
the dyadic point sets make its binning exact, see that script).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import load_script
from twin.analysis.rdf import ball_slab_volume, partial_rdfs, rdf
from twin.analysis.surfaces import contacts
from twin.physics.space import Box

ROOT = Path(__file__).resolve().parents[1]
FREUD = ROOT / "tests" / "golden" / "freud"
PACKING = ROOT / "tests" / "golden" / "liggghts" / "compaction_small"


def _freud_script():
    return load_script("tools/reference/freud_rdf.py")


def _packing(state):
    initial = np.genfromtxt(PACKING / "initial.csv", delimiter=",", names=True)
    phases = 3 - initial["type"].astype(int)      # file: 1 CBD, 2 AM -> labels 1 AM, 2 CBD
    table = initial if state == "initial" else np.genfromtxt(PACKING / f"{state}.csv",
                                                              delimiter=",", names=True)
    assert (table["id"] == initial["id"]).all()
    positions = np.stack([table["x"], table["y"], table["z"]], axis=1)
    return positions, initial["radius"], phases


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["one_component", "partial"])
def test_matches_freud_in_a_periodic_box(name, dtype):
    script = _freud_script()
    case = json.loads((FREUD / "cases.json").read_text())["cases"][name]
    assert case == script.CASES[name]
    reference = np.genfromtxt(FREUD / f"rdf_{name}.csv", delimiter=",", names=True)
    a, b = script.case_points(case)
    half = script.BOX_LENGTH / 2
    box = Box(np.full(3, -half), np.full(3, half), (True, True, True))
    result = rdf(a.astype(dtype), None if b is None else b.astype(dtype), box, case["r_max"],
                 case["bins"], r_min=case["r_min"])
    np.testing.assert_allclose(result.r, reference["r"], rtol=1e-7)
    counts = np.diff(np.round(result.cumulative * len(a)), prepend=0)
    np.testing.assert_array_equal(counts, reference["bin_count"])
    filled = reference["g"] > 0
    assert filled.sum() > 0.9 * len(filled)
    assert (result.g[~filled] == 0).all()
    assert np.max(np.abs(result.g[filled] / reference["g"][filled] - 1)) < 1e-6
    assert np.max(np.abs(result.cumulative[filled] / reference["n_r"][filled] - 1)) < 1e-6


def _uniform_slab(n, seed, lateral=20.0, thickness=5.0):
    rng = np.random.default_rng(seed)
    return rng.uniform([0, 0, 0], [lateral, lateral, thickness], (n, 3))


def test_uniform_points_in_a_slab_give_one_at_every_r():
    """20 000 uniform points in a 20 × 20 × 5 µm slab (periodic x, y), r up to the thickness.

    Tolerance: a bin holding C ordered pairs (C/2 independent unordered ones for one component)
    has a relative standard deviation of about sqrt(2/C); allow 4 of them per bin (the point set
    is seeded, so the test is deterministic; a fresh seed would fail with probability ~1e-4).
    """
    n, thickness = 20_000, 5.0
    box = Box(np.zeros(3), np.array([20.0, 20.0, thickness]), (True, True, False))
    result = rdf(_uniform_slab(n, seed=1), None, box, r_max=5.0, n_bins=10)
    counts = np.diff(result.cumulative * n, prepend=0)
    sigma = np.sqrt(2.0 / counts)
    assert sigma.max() < 0.01                      # the bins hold enough pairs to say "1 ± few %"
    assert np.all(np.abs(result.g - 1) < 4 * sigma), (result.g, sigma)
    # Without the correction g would fall towards ~0.5 at r = thickness: the test has power.
    edges = np.linspace(0, 5.0, 11)
    naive = 20 * 20 * thickness * counts / (n * n * 4 * np.pi / 3 * np.diff(edges**3))
    assert naive[-1] < 0.7


def test_partial_rdf_between_two_uniform_sets_in_a_slab():
    box = Box(np.zeros(3), np.array([20.0, 20.0, 5.0]), (True, True, False))
    a, b = _uniform_slab(4000, seed=2), _uniform_slab(8000, seed=3)
    for reference, counted in ((a, b), (b, a)):
        result = rdf(reference, counted, box, r_max=5.0, n_bins=10)
        counts = np.diff(result.cumulative * len(reference), prepend=0)
        sigma = 1 / np.sqrt(counts)                # distinct sets: every pair counted once
        assert np.all(np.abs(result.g - 1) < 4 * sigma), (result.g, sigma)


def test_partials_add_up_to_the_total_in_a_periodic_box():
    """N² g = Σ_pq N_p N_q g_pq holds bin by bin when g_pq = g_qp (no edge correction)."""
    rng = np.random.default_rng(4)
    positions = rng.uniform(0, 12, (900, 3))
    phases = np.where(rng.random(900) < 0.3, 1, 2)
    box = Box(np.zeros(3), np.full(3, 12.0), (True, True, True))
    parts = partial_rdfs(positions, phases, box, r_max=6.0, n_bins=30)
    n_am, n_cbd = (phases == 1).sum(), (phases == 2).sum()
    mixed = n_am**2 * parts["AM-AM"].g + n_cbd**2 * parts["CBD-CBD"].g \
        + 2 * n_am * n_cbd * parts["AM-CBD"].g
    np.testing.assert_allclose(mixed, 900**2 * parts["total"].g, rtol=1e-12)


def test_ball_slab_volume_is_the_spherical_zone():
    r = 2.0
    assert np.isclose(ball_slab_volume(r, 5.0, 0.0, 10.0), 4 / 3 * np.pi * r**3)
    assert np.isclose(ball_slab_volume(r, 0.0, 0.0, 10.0), 2 / 3 * np.pi * r**3)
    h = 0.5  # ball poking 0.5 below the floor: the whole ball minus a cap π h² (3r − h) / 3
    assert np.isclose(ball_slab_volume(r, r - h, 0.0, 10.0),
                      4 / 3 * np.pi * r**3 - np.pi * h**2 * (3 * r - h) / 3)
    assert np.isclose(ball_slab_volume(r, 1.0, 0.0, 1.0),  # slab thinner than the ball
                      np.pi * (r**2 * 1.0 - (0.0**3 - (-1.0) ** 3) / 3))


@pytest.mark.parametrize("state", ["initial", "loaded"])
def test_carbon_binder_contact_peak_on_the_compacted_electrode(state):
    """CBD spheres (R = 0.65 µm) touch with small overlaps, so the largest g_CBD-CBD lies below
    contact 2R = 1.3 µm (and, initially, above 2R minus the largest overlap recorded by the
    reference preparation, below which g is 0); the pairs closer than 2R are exactly the
    CBD–CBD contacts of surfaces.contacts."""
    positions, radii, phases = _packing(state)
    diameter = 2 * radii[phases == 2][0]
    assert np.all(radii[phases == 2] == diameter / 2)
    top = (positions[:, 2] + radii).max()
    box = Box(np.array([-16.0, -16.0, 0.0]), np.array([16.0, 16.0, top]), (True, True, False))
    result = rdf(positions[phases == 2], None, box, r_max=2 * diameter, n_bins=52)
    width = result.r[1] - result.r[0]
    peak = np.argmax(result.g)
    assert result.r[peak] + width / 2 <= diameter + 1e-12
    assert result.g[peak] > 5.0
    contact_bin = int(np.argmin(np.abs(result.r + width / 2 - diameter)))  # upper edge 2R
    found = contacts(positions, radii, phases, box)
    n_cbd = (phases == 2).sum()
    assert np.isclose(result.cumulative[contact_bin], 2 * found.count["CBD-CBD"] / n_cbd,
                      rtol=1e-12)
    if state == "initial":
        case = json.loads((PACKING / "case.json").read_text())
        closest = diameter - case["checks"]["initial_overlaps"]["max_um"]
        assert result.r[peak] + width / 2 > closest
        assert np.all(result.g[result.r + width / 2 < closest] == 0)


def test_refusals():
    box = Box(np.zeros(3), np.array([10.0, 12.0, 5.0]), (True, True, False))
    points = _uniform_slab(50, seed=5, lateral=10.0)
    with pytest.raises(ValueError, match=r"r_max = 5.5 µm exceeds half .*10 µm / 2 = 5 µm"):
        rdf(points, None, box, r_max=5.5, n_bins=10)
    with pytest.raises(ValueError, match="outside the slab"):
        rdf(points, None, box, r_max=4.0, n_bins=10, z_range=(0.0, 2.0))
    with pytest.raises(ValueError, match="not supported"):
        rdf(points, None, Box(box.lo, box.hi, (True, False, False)), r_max=4.0, n_bins=10)
    with pytest.raises(ValueError, match="n_bins"):
        rdf(points, None, box, r_max=4.0, n_bins=0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        rdf(points[:, :2], None, box, r_max=4.0, n_bins=10)
    with pytest.raises(ValueError, match="phases"):
        partial_rdfs(points, np.zeros(50), box, r_max=4.0, n_bins=10)
