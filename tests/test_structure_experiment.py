"""experiments/structure_vs_pressure.py: its peak finder, the τ trend check, the voxel edge, the
discovery of the sweep's run folders, and the whole command (float64) on two tiny electrodes:
10 µm cubes cut from the authors' small example electrode at solid fractions 0.45 (the "dried"
data file) and 0.55 (written as a `twin calender`-style run folder at 10 MPa), 0.5 µm voxels."""

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from twin.analysis.command import read_packing
from twin.io.lammps import write_sphere_data
from twin.physics.space import Box
from twin.process.pack import Electrode

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "liggghts" / "compaction_small"
CELL_UM = 10.0
VOXEL_UM = 0.5


def _load():
    path = ROOT / "experiments" / "structure_vs_pressure.py"
    spec = importlib.util.spec_from_file_location("structure_vs_pressure", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sv = _load()


def _gauss(r, centre, height, sigma):
    return height * np.exp(-0.5 * ((r - centre) / sigma) ** 2)


# ------------------------------------------------------------------ peak finder

def test_peak_finder_recovers_two_shells_of_known_position_and_width():
    r = 0.025 + 0.05 * np.arange(200)                      # bins of 0.05 µm up to 10 µm
    baseline = np.clip((r - 0.6) / 0.4, 0.0, 1.0)          # no pairs below 0.6 µm, g = 1 from 1
    g = baseline + _gauss(r, 1.25, 6.0, 0.08) + _gauss(r, 2.0, 1.5, 0.15)
    g += np.random.default_rng(0).normal(0.0, 0.03, r.size)
    peaks = sv.find_peaks(r, g)
    assert len(peaks) == 2
    assert peaks[0].r_um == pytest.approx(1.25, abs=0.01)
    assert peaks[1].r_um == pytest.approx(2.0, abs=0.02)
    # the smoothing (σ 0.05 µm) widens the first shell to FWHM = 2.3548 √(0.08² + 0.05²)
    assert peaks[0].width_um == pytest.approx(2.3548 * math.hypot(0.08, sv.PEAK_SMOOTH_UM),
                                              rel=0.08)
    assert peaks[0].prominence > peaks[1].prominence > sv.PEAK_MIN_PROMINENCE
    assert peaks[0].g_raw > peaks[0].g                     # smoothing lowers a sharp peak


def test_peak_position_between_bin_centres_is_refined_below_a_fifth_of_a_bin():
    r = 0.025 + 0.05 * np.arange(120)
    for centre in (3.013, 3.031, 3.049):
        (peak,) = sv.find_peaks(r, 1.0 + _gauss(r, centre, 2.0, 0.2))
        assert peak.r_um == pytest.approx(centre, abs=0.01)


def test_noise_alone_gives_no_peak_and_bad_bins_are_refused():
    r = 0.025 + 0.05 * np.arange(200)
    g = 1.0 + np.random.default_rng(1).normal(0.0, 0.05, r.size)
    assert sv.find_peaks(r, g) == []
    assert len(sv.find_peaks(r, g, smooth_um=0.0, min_prominence=0.05)) > 5   # raw bin noise
    with pytest.raises(ValueError, match="uniform"):
        sv.find_peaks(np.r_[r[:10], r[11:]], np.r_[g[:10], g[11:]])
    with pytest.raises(ValueError, match="finite"):
        sv.find_peaks(r, np.where(r > 5, np.nan, g))


def test_comparison_with_the_paper_matches_peaks_to_shells_and_class_radii():
    am_radii, _ = sv._class_radii()
    peak = lambda r: sv.Peak(r, 2.0, 2.0, 1.0, 0.2)                          # noqa: E731
    peaks = {"CBD-CBD": [peak(1.21), peak(2.3), peak(3.5)],
             "AM-CBD": [peak(1.6), peak(2.15), peak(4.4)],               # classes 1, 2 and 5
             "AM-AM": [peak(3.05)]}
    found = sv.compare_with_paper(peaks)
    cbd = found["CBD-CBD_vs_1.25_and_2_um"]
    assert cbd[0]["measured_um"] == 1.21 and cbd[0]["difference_um"] == pytest.approx(-0.04)
    assert cbd[1]["measured_um"] == 2.3            # within half the 0.75 µm spacing of 2 µm
    am_cbd = {row["am_class"]: row["first_peak_um"] for row in found["AM-CBD_vs_class_radii"]}
    assert am_cbd == {1: 1.6, 2: 2.15, 3: None, 4: None, 5: 4.4, 6: None}   # windows (R, R + 0.65]
    (am_am,) = found["AM-AM_vs_radius_sums"]
    assert am_am["classes"] == [1, 2] and am_am["nearest_radius_sum_um"] == pytest.approx(
        am_radii[0] + am_radii[1])


# ------------------------------------------------------------------ trend and inputs

def test_rises_with_pressure_sorts_by_pressure_and_counts_the_decreases():
    up = sv.rises_with_pressure([10, 0, 2, 5], [1.9, 1.5, 1.6, 1.7])
    assert up["strictly_increasing"] and up["pressures_MPa"] == [0, 2, 5, 10]
    assert up["decreasing_steps"] == 0
    dip = sv.rises_with_pressure([0, 2, 5, 10], [1.5, 1.6, 1.58, 1.9])
    assert not dip["strictly_increasing"] and dip["decreasing_steps"] == 1
    assert sv.rises_with_pressure([0, 5], [1.5, math.inf])["strictly_increasing"]
    assert not sv.rises_with_pressure([0, 5], [1.5, math.nan])["strictly_increasing"]
    assert not sv.rises_with_pressure([0, 5], [1.5, 1.5])["strictly_increasing"]
    with pytest.raises(ValueError, match="repeat"):
        sv.rises_with_pressure([0, 0], [1.0, 2.0])


def test_voxel_edge_is_the_nearest_that_tiles_the_periodic_cell():
    assert sv.fitted_voxel_um(0.25, [25.8, 25.8]) == pytest.approx(25.8 / 103)
    assert sv.fitted_voxel_um(0.25, [10.0, 10.0]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="different voxel edges"):
        sv.fitted_voxel_um(0.25, [25.8, 26.0])
    with pytest.raises(ValueError, match="positive"):
        sv.fitted_voxel_um(0.0, [25.8, 25.8])


def test_missing_and_unfinished_run_folders_are_skipped_with_the_reason(tmp_path):
    dried = tmp_path / "dried.data"
    found, skipped = sv.electrodes(dried, tmp_path / "nowhere", log=lambda line: None)
    assert [e.label for e in found] == ["dried"] and "not found" in skipped[0]["reason"]
    (tmp_path / "sweep" / "P5MPa").mkdir(parents=True)
    (tmp_path / "sweep" / "P5MPa" / "summary.json").write_text("{}")
    messages = []
    found, skipped = sv.electrodes(dried, tmp_path / "sweep", [5, 7], log=messages.append)
    assert [e.label for e in found] == ["dried"]
    assert [s["reason"] for s in skipped] == ["unfinished run folder (final.data missing)",
                                              "folder not found"]
    assert "P7MPa" in messages[1]


# ------------------------------------------------------------------ the command on a tiny electrode

def _cube(solid_fraction) -> Electrode:
    """The lowest spheres of a CELL_UM column of the small example electrode (spheres up to
    4.5 µm) that fill ``solid_fraction`` of a CELL_UM cube, their centres' z scaled so that the
    spheres span exactly CELL_UM: every image is then a cube of one shape (one compilation of
    the tortuosity solve for x, y, z and both electrodes)."""
    t = np.genfromtxt(GOLDEN / "initial.csv", delimiter=",", names=True)
    keep = (np.abs(t["x"]) < CELL_UM / 2) & (np.abs(t["y"]) < CELL_UM / 2) & (t["radius"] <= 2.25)
    order = np.flatnonzero(keep)[np.argsort(t["z"][keep])]
    volume = np.cumsum(4.0 / 3.0 * np.pi * t["radius"][order] ** 3)
    take = order[:np.searchsorted(volume, solid_fraction * CELL_UM**3) + 1]
    radius, z = t["radius"][take], t["z"][take] - t["z"][take].min()

    def span(scale):
        return np.max(scale * z + radius) - np.min(scale * z - radius)

    low, high = 0.01, 10.0                  # bisection: span(low) < CELL_UM < span(high)
    for _ in range(100):
        low, high = ((low + high) / 2, high) if span((low + high) / 2) < CELL_UM \
            else (low, (low + high) / 2)
    assert span(low) == pytest.approx(CELL_UM, abs=1e-9)
    z = low * z - np.min(low * z - radius)                  # lowest sphere bottom at z = 0
    position = np.column_stack([t["x"][take] + CELL_UM / 2, t["y"][take] + CELL_UM / 2, z])
    box = Box(np.zeros(3), np.array([CELL_UM, CELL_UM, CELL_UM]), (True, True, False))
    return Electrode(t["id"][take].astype(int), t["class"][take].astype(int) - 1, radius,
                     t["density"][take], position, box)


def _write(path, electrode):
    write_sphere_data(path, electrode.ids, electrode.am_class + 1, 2 * electrode.radius,
                      electrode.density, electrode.position, electrode.box.lo, electrode.box.hi, 7)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("structure")
    _write(root / "dried.data", _cube(0.45))
    pressed = _cube(0.55)
    folder = root / "sweep" / "P10MPa"
    folder.mkdir(parents=True)
    _write(folder / "final.data", pressed)
    z = pressed.position[:, 2]
    bottom = float((z - pressed.radius).min())
    thickness = float((z + pressed.radius).max()) - bottom
    (folder / "summary.json").write_text(json.dumps({
        "target_pressure_MPa": 10.0, "max_pressure_MPa": 10.2, "collector_z_um": bottom,
        "thickness_um": thickness, "final_porosity": 0.4, "recovery_um": 0.1}))
    (root / "sweep" / "P20MPa").mkdir()                                 # unfinished
    out = root / "out"
    summary = sv.main(["--sweep", str(root / "sweep"), "--out", str(out), "--dried",
                       str(root / "dried.data"), "--voxel-um", str(VOXEL_UM)])
    return {"out": out, "summary": summary, "thickness": thickness}


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_command_writes_its_tables_figures_and_a_strict_json_summary(run):
    out = run["out"]
    for name in ("tau_vs_pressure.csv", "rdf.csv", "rdf_am_cbd_by_class.csv", "summary.json",
                 "fig4_rdf.png", "fig5_tortuosity.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert [e["electrode"] for e in summary["electrodes"]] == ["dried", "P10MPa"]
    assert summary["skipped"] == [{"folder": str(out.parent / "sweep" / "P20MPa"),
                                   "reason": "unfinished run folder (final.data, summary.json "
                                             "missing)"}]
    assert summary["voxel_um"] == VOXEL_UM and summary["precision"] == "float64"


def test_tau_table_holds_what_analyze_wrote_for_each_electrode(run):
    out = run["out"]
    rows = _rows(out / "tau_vs_pressure.csv")
    assert [(r["electrode"], float(r["pressure_MPa"])) for r in rows] == [("dried", 0.0),
                                                                           ("P10MPa", 10.0)]
    for row in rows:
        analysed = json.loads((out / row["electrode"] / "summary.json").read_text())
        assert float(row["porosity"]) == pytest.approx(
            analysed["porosity"]["particles"]["porosity"], rel=1e-9)
        for axis in "xyz":
            tau = analysed["tortuosity"][axis]
            assert float(row[f"tau_paper_{axis}"]) == pytest.approx(tau["tau_paper"], rel=1e-9)
            assert float(row[f"tau_taufactor_{axis}"]) == pytest.approx(tau["tau_taufactor"],
                                                                        rel=1e-9)
    assert float(rows[1]["thickness_um"]) == pytest.approx(run["thickness"])
    assert float(rows[1]["porosity"]) < float(rows[0]["porosity"])       # denser packing
    trend = run["summary"]["tau_rises_with_pressure"]
    for definition in ("paper", "taufactor"):
        for axis in "xyz":
            values = [float(r[f"tau_{definition}_{axis}"]) for r in rows]
            assert trend[definition][axis]["strictly_increasing"] == (values[1] > values[0])


def test_class_resolved_am_cbd_rdfs_add_up_to_analyzes_am_cbd_rdf(run):
    """g_AM,CBD = Σ_k (N_k / N_AM) g_k,CBD exactly (same slab, bins and edge correction), so the
    per-class curves are a partition of the AM–CBD curve of twin analyze."""
    out = run["out"]
    rdf = _rows(out / "rdf.csv")
    by_class = _rows(out / "rdf_am_cbd_by_class.csv")
    for record in run["summary"]["electrodes"]:
        label = record["electrode"]
        packing = read_packing(out.parent / "dried.data" if label == "dried"
                               else out.parent / "sweep" / label)
        z = packing.position[:, 2]
        am_radius = packing.radius[(packing.phase == 1) & (z >= packing.z_bottom)
                                   & (z <= packing.z_top)]
        mixed = np.array([float(r["g_AM_CBD"]) for r in rdf if r["electrode"] == label])
        total = np.zeros_like(mixed)
        for k, radius in enumerate(sv._class_radii()[0]):
            g = [float(r["g"]) for r in by_class
                 if r["electrode"] == label and int(r["am_class"]) == k + 1]
            if g:
                total += np.sum(np.isclose(am_radius, radius)) / len(am_radius) * np.array(g)
        assert total == pytest.approx(mixed, rel=1e-8, abs=1e-9)


def test_summary_peaks_are_the_peak_finder_on_the_written_rdf(run):
    out = run["out"]
    rdf = _rows(out / "rdf.csv")
    for record in run["summary"]["electrodes"]:
        rows = [r for r in rdf if r["electrode"] == record["electrode"]]
        r = np.array([float(x["r_um"]) for x in rows])
        for pair in sv.PAIRS:
            g = np.array([float(x["g_" + pair.replace("-", "_")]) for x in rows])
            expected = [p.r_um for p in sv.find_peaks(r, g)]
            assert [p["r_um"] for p in record["rdf_peaks"][pair]] == pytest.approx(expected,
                                                                                  rel=1e-6)
