"""`twin analyze` end to end (float64): on a packing (the small compacted electrode of
tests/golden/liggghts/compaction_small, 0.5 µm voxels), on its label image (.npy and .tif), on
run folders of `twin dem` and `twin calender`, and its refusals. The files must hold what the
analysis functions return when called directly.

The packing's slab is cut 32 µm high so that the image is 64³ voxels: the tortuosity solve then
has one shape for x, y and z (one compilation), which keeps this file under a minute.
"""

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from twin.analysis import command
from twin.analysis.pores import mercury_intrusion, pore_size_distribution
from twin.analysis.porosity import porosity_particles, sphere_volume_in_slab
from twin.analysis.rdf import partial_rdfs
from twin.analysis.surfaces import contacts, specific_surfaces_particles, specific_surfaces_voxels
from twin.analysis.tortuosity import tortuosity
from twin.analysis.voxels import voxelize
from twin.io.images import read_labels, write_labels
from twin.io.lammps import write_sphere_data
from twin.physics.space import Box

GOLDEN = Path(__file__).parent / "golden" / "liggghts" / "compaction_small"
VOXEL_UM = 0.5
SLAB_UM = 32.0
PERIODIC = (True, True, False)
CSV_RTOL = 1e-9          # the CSVs hold 10 significant digits


def _spheres():
    table = np.genfromtxt(GOLDEN / "initial.csv", delimiter=",", names=True)
    box = json.loads((GOLDEN / "case.json").read_text())["box"]
    position = np.column_stack([table["x"], table["y"], table["z"]])
    return (table["id"].astype(int), table["class"].astype(int), table["radius"],
            table["density"], position, np.asarray(box["lo"]), np.asarray(box["hi"]))


def _cli(argv):
    """``twin analyze ...`` through an argparse parser like twin.cli's."""
    parser = argparse.ArgumentParser(prog="twin")
    command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["analyze", *map(str, argv)])
    return args.handler(args)


def _read_csv(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], float).T


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def packing(tmp_path_factory):
    """The electrode written as a LAMMPS data file in the authors' types (1 CBD, 2..7 AM)."""
    ids, types, radius, density, position, lo, hi = _spheres()
    path = tmp_path_factory.mktemp("packing") / "electrode.data"
    write_sphere_data(path, ids, types, 2 * radius, density, position, lo, hi, 7)
    bottom = float((position[:, 2] - radius).min())
    return {"path": path, "radius": radius, "phase": np.where(types == 1, 2, 1),
            "density": density, "position": position, "lo": lo, "hi": hi,
            "z_range": (bottom, bottom + SLAB_UM)}


@pytest.fixture(scope="module")
def analysed(packing, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis")
    summary = _cli([packing["path"], "--out", out, "--voxel-um", VOXEL_UM,
                    "--z-top-um", repr(packing["z_range"][1])])
    return out, summary


def test_packing_writes_every_file_and_the_slab_it_used(packing, analysed, capsys):
    out, summary = analysed
    for name in ("summary.json", "labels.npy", "labels.json", "psd.csv", "intrusion.csv",
                 "rdf.csv", "psd.png", "rdf.png"):
        assert (out / name).is_file(), name
    assert (out / "psd.png").read_bytes()[:4] == b"\x89PNG"
    saved = _strict_json(out / "summary.json")
    assert saved["files"] == summary["files"]
    source = saved["input"]
    assert source["kind"] == "LAMMPS data file" and source["spheres"] == len(packing["radius"])
    assert source["spheres_am"] == int(np.sum(packing["phase"] == 1))
    assert source["z_bottom_um"] == pytest.approx(packing["z_range"][0], rel=1e-15)
    assert source["z_bottom_from"] == "lowest sphere bottom"
    assert source["z_top_from"] == "--z-top-um"
    assert saved["image_shape"] == [64, 64, 64] and saved["voxel_um"] == VOXEL_UM
    assert saved["precision"] == "float64"
    assert set(saved["wall_seconds"]) >= {"voxelize", "porosity", "psd", "intrusion", "rdf",
                                          "tortuosity x", "tortuosity y", "tortuosity z",
                                          "surfaces", "total"}
    image = read_labels(out / "labels.npy")
    assert image.voxel_um == VOXEL_UM
    assert image.origin_um[2] == pytest.approx(packing["z_range"][0], rel=1e-15)
    direct = np.asarray(voxelize(packing["position"], packing["radius"], packing["phase"],
                                 packing["lo"], packing["hi"], PERIODIC, packing["z_range"],
                                 VOXEL_UM))
    assert np.array_equal(image.labels, direct)


def test_packing_results_equal_the_analysis_functions(packing, analysed):
    out, _ = analysed
    saved = _strict_json(out / "summary.json")
    labels = read_labels(out / "labels.npy").labels
    position, radius, phase = packing["position"], packing["radius"], packing["phase"]
    z_lo, z_hi = packing["z_range"]

    fractions = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert saved["porosity"]["voxels"]["porosity"] == fractions[0]
    particles = porosity_particles(position, radius, phase, packing["lo"], packing["hi"],
                                   packing["z_range"])
    assert saved["porosity"]["particles"]["porosity"] == pytest.approx(float(particles.porosity),
                                                                       rel=1e-14)
    # the particle porosity counts overlaps twice, the voxels once: voxels see more pore
    assert saved["porosity"]["voxels"]["porosity"] > saved["porosity"]["particles"]["porosity"]

    mass_g = float(np.sum(packing["density"] * np.asarray(
        sphere_volume_in_slab(position[:, 2], radius, z_lo, z_hi)))) * 1e-12
    psd = pore_size_distribution(labels, VOXEL_UM, PERIODIC, mass_g=mass_g)
    header, columns = _read_csv(out / "psd.csv")
    assert header[:3] == ["radius_um", "pore_volume_um3", "volume_fraction"]
    np.testing.assert_allclose(columns[0], psd.radius_um, rtol=CSV_RTOL)
    np.testing.assert_allclose(columns[2], psd.volume_fraction, rtol=CSV_RTOL)
    np.testing.assert_allclose(columns[header.index("dv_dr_ml_g_um")], psd.dv_dr_ml_g_um,
                               rtol=CSV_RTOL)
    assert saved["psd"]["mean_radius_um"] == pytest.approx(psd.radius_um @ psd.volume_fraction,
                                                           rel=1e-14)

    curve = mercury_intrusion(labels, VOXEL_UM, PERIODIC)
    header, columns = _read_csv(out / "intrusion.csv")
    np.testing.assert_allclose(columns[header.index("pressure_mpa")], curve.pressure_mpa,
                               rtol=CSV_RTOL)
    np.testing.assert_allclose(columns[header.index("intruded_fraction_of_pores")],
                               curve.intruded_fraction, rtol=CSV_RTOL)

    inside = (position[:, 2] >= z_lo) & (position[:, 2] <= z_hi)
    assert saved["input"]["spheres_in_slab"] == int(inside.sum()) < len(radius)
    box = Box(packing["lo"], packing["hi"], PERIODIC)
    rdfs = partial_rdfs(position[inside], phase[inside], box, 10.0, 200, z_range=(z_lo, z_hi))
    header, columns = _read_csv(out / "rdf.csv")
    assert header == ["r_um", "g_AM_AM", "g_AM_CBD", "g_CBD_CBD", "g_total"]
    np.testing.assert_allclose(columns[0], rdfs["total"].r, rtol=CSV_RTOL)
    for k, pair in enumerate(("AM-AM", "AM-CBD", "CBD-CBD", "total"), start=1):
        np.testing.assert_allclose(columns[k], rdfs[pair].g, rtol=CSV_RTOL, atol=1e-12)

    slab = Box(np.r_[packing["lo"][:2], z_lo], np.r_[packing["hi"][:2], z_hi], PERIODIC)
    args = (position[inside], radius[inside], phase[inside], slab)
    areas = specific_surfaces_particles(*args, wall_z=z_lo, volume=32.0 * 32.0 * SLAB_UM)
    for name, value in areas.specific().items():
        assert saved["surfaces"]["particles"]["specific_per_um"][name] == pytest.approx(value,
                                                                                        rel=1e-14)
    faces = specific_surfaces_voxels(labels, VOXEL_UM, PERIODIC)
    assert saved["surfaces"]["voxels"]["specific_per_um"] == pytest.approx(faces.specific(),
                                                                           rel=1e-14)
    found = contacts(*args, wall_z=z_lo)
    assert saved["contacts"]["count"] == found.count
    assert saved["contacts"]["collector_count"] == found.wall_count

    z = tortuosity(labels, 2, dtype=np.float64)
    assert saved["tortuosity"]["z"]["tau_paper"] == pytest.approx(z.tau, rel=1e-12)
    assert saved["tortuosity"]["z"]["d_eff_m2_s"] == pytest.approx(z.d_eff, rel=1e-12)
    for axis in "xyz":
        t = saved["tortuosity"][axis]
        assert t["percolating"] and t["converged"] and t["tau_paper"] > 1.0
        # the two definitions differ by the volume-averaged diffusivity over ε D_pore
        assert t["tau_taufactor"] / t["tau_paper"] == pytest.approx(
            t["d_mean_m2_s"] / (t["porosity"] * 7.5e-11), rel=1e-12)


def test_printed_summary_and_progress(packing, tmp_path, capsys):
    _cli([packing["path"], "--out", tmp_path, "--voxel-um", VOXEL_UM, "--what",
          "porosity,surfaces", "--z-top-um", repr(packing["z_range"][1])])
    printed = capsys.readouterr()
    assert "porosity:" in printed.out and "from particles" in printed.out
    assert "specific surface (1/µm) from spheres" in printed.out and "contacts:" in printed.out
    assert "electrode z" in printed.out and " µm" in printed.out
    progress = [line for line in printed.err.splitlines() if line.endswith(" s")]
    assert [line.split(":")[0] for line in progress] == ["read packing", "voxelize", "porosity",
                                                         "surfaces"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json", "labels.npy",
                                                          "summary.json"]


def test_label_image_gives_the_same_voxel_results_and_skips_particles(analysed, tmp_path,
                                                                      capsys):
    out, _ = analysed
    packing_summary = _strict_json(out / "summary.json")
    summary = _cli([out / "labels.npy", "--out", tmp_path / "npy", "--what",
                    "porosity,psd,rdf,tortuosity,surfaces"])
    printed = capsys.readouterr()
    note = [line for line in printed.err.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "skipping" in note[0] and "rdf" in note[0]
    assert set(summary["skipped"]) == {"rdf", "porosity from particles",
                                  "surfaces from particles and contacts"}
    assert "rdf" not in summary and "contacts" not in summary
    assert "particles" not in summary["porosity"] and "particles" not in summary["surfaces"]
    written = sorted(p.name for p in (tmp_path / "npy").iterdir())
    assert written == ["psd.csv", "psd.png", "summary.json"]       # no label image, no RDF
    assert summary["porosity"]["voxels"] == packing_summary["porosity"]["voxels"]
    assert summary["surfaces"]["voxels"] == packing_summary["surfaces"]["voxels"]
    for axis in "xyz":
        assert summary["tortuosity"][axis]["tau_paper"] == pytest.approx(
            packing_summary["tortuosity"][axis]["tau_paper"], rel=1e-12)
    header, columns = _read_csv(tmp_path / "npy" / "psd.csv")
    packing_header, packing_columns = _read_csv(out / "psd.csv")
    assert "dv_dr_ml_g_um" not in header                # no particles: no electrode mass
    assert header == packing_header[:-1]
    np.testing.assert_array_equal(columns, packing_columns[:-1])

    labels = read_labels(out / "labels.npy").labels
    write_labels(tmp_path / "labels.tif", labels, VOXEL_UM)
    tiff = _cli([tmp_path / "labels.tif", "--out", tmp_path / "tif", "--what", "porosity"])
    assert tiff["voxel_um"] == pytest.approx(VOXEL_UM, rel=1e-6)
    assert tiff["porosity"]["voxels"] == packing_summary["porosity"]["voxels"]


def test_non_percolating_direction_is_written_not_raised(analysed, tmp_path):
    out, _ = analysed
    labels = read_labels(out / "labels.npy").labels.copy()
    labels[:, :, 30] = 1                               # an AM sheet across the electrode
    write_labels(tmp_path / "blocked.npy", labels, VOXEL_UM)
    _cli([tmp_path / "blocked.npy", "--out", tmp_path / "out", "--what", "tortuosity"])
    saved = _strict_json(tmp_path / "out" / "summary.json")
    z = saved["tortuosity"]["z"]
    assert z["tau_paper"] == "inf" and z["tau_taufactor"] == "inf" and z["d_eff_m2_s"] == 0.0
    assert not z["percolating"] and "no cluster" in z["note"]
    for axis in "xy":
        assert saved["tortuosity"][axis]["percolating"]
        assert math.isfinite(saved["tortuosity"][axis]["tau_paper"])


def _dem_folder(folder, spheres, collector_z, walls_in_summary=True):
    """A finished ``twin dem`` run folder (twin.io.run_folder), materials listed AM first."""
    ids, types, radius, density, position, lo, hi = spheres
    folder.mkdir()
    material_type = np.where(types == 1, 2, 1)         # "AM" is type 1 here, "CBD" type 2
    write_sphere_data(folder / "final.data", ids, material_type, 2 * radius, density, position,
                      lo, hi, 4)
    walls = [{"name": "current_collector", "z_um_final": collector_z, "force_z_nN_final": 0.0},
             {"name": "calender_plate", "z_um_final": collector_z + 20.0,
              "force_z_nN_final": 0.0}]
    summary = {"materials": ["AM", "CBD", "Al", "steel"], "periodic": [True, True, False]}
    if walls_in_summary:
        summary["walls"] = walls
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "walls.csv").write_text(
        "step,time_us,wall,z_um,force_z\n"
        + "".join(f"{step},{step * 1e-4},{w['name']},{w['z_um_final'] + 1.0 - step},0\n"
                  for step in (0, 1) for w in walls))


def test_run_folders_of_twin_dem_and_twin_calender(tmp_path):
    ids, types, radius, density, position, lo, hi = _spheres()
    keep = position[:, 2] < 12.0
    spheres = (ids[keep], types[keep], radius[keep], density[keep], position[keep], lo, hi)
    bottom = float((position[keep, 2] - radius[keep]).min())
    top = float((position[keep, 2] + radius[keep]).max())
    phase = np.where(types[keep] == 1, 2, 1)

    collector = bottom - 0.25
    _dem_folder(tmp_path / "dem", spheres, collector)
    summary = _cli([tmp_path / "dem", "--out", tmp_path / "out", "--voxel-um", VOXEL_UM,
                    "--what", "porosity"])
    source = summary["input"]
    assert source["kind"] == "run folder" and source["types_from"] == "summary.json materials"
    assert source["z_bottom_um"] == collector and "current_collector" in source["z_bottom_from"]
    assert source["z_top_um"] == top and source["z_top_from"] == "highest sphere top"
    assert source["spheres_am"] == int(np.sum(phase == 1))
    assert summary["image_shape"] == [64, 64, round((top - collector) / VOXEL_UM)]
    direct = porosity_particles(position[keep], radius[keep], phase, lo, hi, (collector, top))
    assert summary["porosity"]["particles"]["porosity"] == pytest.approx(
        float(direct.porosity), rel=1e-14)

    _dem_folder(tmp_path / "dem_csv", spheres, collector, walls_in_summary=False)
    summary = _cli([tmp_path / "dem_csv", "--out", tmp_path / "out_csv", "--voxel-um",
                    VOXEL_UM, "--what", "porosity", "--z-top-um", repr(top)])
    assert summary["input"]["z_bottom_um"] == collector   # the last walls.csv row of the wall
    assert summary["input"]["z_top_from"] == "--z-top-um"

    calender = tmp_path / "calender"                      # twin.io.calender_folder's layout
    calender.mkdir()
    write_sphere_data(calender / "final.data", ids[keep], types[keep], 2 * radius[keep],
                      density[keep], position[keep], lo, hi, 7)
    (calender / "summary.json").write_text(json.dumps({"thickness_um": 10.0,
                                                       "am_expansion": 1.02}))
    summary = _cli([calender, "--out", tmp_path / "out_calender", "--voxel-um", VOXEL_UM,
                    "--what", "porosity"])
    source = summary["input"]
    assert source["types_from"] == "authors' types (1 CBD, 2..7 AM)"
    assert source["spheres_am"] == int(np.sum(phase == 1))
    assert source["z_bottom_um"] == bottom and source["z_bottom_from"] == "lowest sphere bottom"
    assert source["z_top_um"] == bottom + 10.0 and "thickness_um" in source["z_top_from"]
    direct = porosity_particles(position[keep], radius[keep], phase, lo, hi,
                                (bottom, bottom + 10.0))
    assert summary["porosity"]["particles"]["porosity"] == pytest.approx(
        float(direct.porosity), rel=1e-14)


def test_bad_input_is_refused_with_the_value_and_the_fix(packing, tmp_path):
    with pytest.raises(ValueError, match=r"unknown analysis 'tortuosty' in --what: choose from "
                                         r"porosity, psd"):
        _cli([packing["path"], "--out", tmp_path, "--what", "porosity,tortuosty"])
    with pytest.raises(FileNotFoundError, match="input not found: .*missing.data"):
        _cli([tmp_path / "missing.data", "--out", tmp_path])
    with pytest.raises(FileNotFoundError, match="not a finished run folder: final.data"):
        _cli([tmp_path, "--out", tmp_path / "out"])

    bad = np.zeros((8, 8, 8), np.uint8)
    bad[0, 0, 0] = 3
    np.save(tmp_path / "bad.npy", bad)
    (tmp_path / "bad.json").write_text(json.dumps({"voxel_um": 0.5, "axes": "xyz"}))
    with pytest.raises(ValueError, match=r"bad.npy: labels \[3\] are not phases: use 0 pore"):
        _cli([tmp_path / "bad.npy", "--out", tmp_path / "out"])

    solid = np.ones((8, 8, 8), np.uint8)
    write_labels(tmp_path / "solid.npy", solid, 0.5)
    with pytest.raises(ValueError, match=r"no pore voxels .* psd, intrusion, tortuosity are "
                                         r"undefined: leave them out of --what"):
        _cli([tmp_path / "solid.npy", "--out", tmp_path / "out"])
    summary = _cli([tmp_path / "solid.npy", "--out", tmp_path / "out", "--what",
                    "porosity,surfaces"])
    assert summary["porosity"]["voxels"]["porosity"] == 0.0

    with pytest.raises(ValueError, match=r"electrode top z = -5 µm \(--z-top-um\) is not above"):
        _cli([packing["path"], "--out", tmp_path, "--z-top-um", "-5"])
    with pytest.raises(ValueError, match="--z-bottom-um/--z-top-um cut a packing"):
        _cli([tmp_path / "solid.npy", "--out", tmp_path, "--z-top-um", "3"])
    ids, types, radius, density, position, lo, hi = _spheres()
    write_sphere_data(tmp_path / "nine.data", ids[:5], np.full(5, 9), 2 * radius[:5],
                      density[:5], position[:5], lo, hi, 9)
    with pytest.raises(ValueError, match=r"atom types 9..9.*authors' types 1 \(CBD\) to 7"):
        _cli([tmp_path / "nine.data", "--out", tmp_path])


def test_cli_exit_code(tmp_path, capsys):
    from twin import cli

    assert cli.main(["analyze", str(tmp_path / "missing.data"), "--out", str(tmp_path)]) == 2
    assert "input not found" in capsys.readouterr().err
