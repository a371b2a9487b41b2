"""`twin dem CASE.toml --out DIR` end to end on a tiny case, and its error path."""

import csv
import json

import numpy as np

from helpers import pressed_column
from twin.cli import main
from twin.io.lammps import read_sphere_data, write_sphere_data

CASE = """
[particles]
data = "column.data"
materials = {{ "1" = "CBD", "2" = "AM" }}

[box]
periodic = [true, true, false]
z_um = [-1.0, {top}]

[materials.CBD]
youngs_modulus_GPa = 2.0
poisson = 0.49
restitution = 0.15
friction = 0.3
cohesion_energy_density_micro = 7.0e4

[materials.AM]
youngs_modulus_GPa = 200.0
poisson = 0.3
restitution = 0.15
friction = 0.3
cohesion_energy_density_J_m3 = 6.0e8

[materials.Al]
youngs_modulus_GPa = 69.0
poisson = 0.3
restitution = 0.5
friction = 1.2
cohesion_energy_density_micro = 5.5e5

[materials.steel]
youngs_modulus_GPa = 200.0
poisson = 0.3
restitution = 0.78
friction = 0.76
cohesion_energy_density_micro = 6.0e5

[contact]
cohesion = "sjkr2"
mixing = "{mixing}"

[[walls]]
name = "current_collector"
material = "Al"
z_um = 0.0
normal = "+z"

[[walls]]
name = "calender_plate"
material = "steel"
z_um = {plate}
normal = "-z"
velocity_um_us = -3.0

[run]
dt_us = 1.0e-4
steps = 600
trajectory_every = 200
walls_every = 20
skin_um = 0.2
"""


def write_case(tmp_path, mixing="artistic", plate=None):
    column = pressed_column()
    top = float((column.position[:, 2] + column.radius).max())
    write_sphere_data(tmp_path / "column.data", column.ids, column.types + 1, 2 * column.radius,
                      column.density, column.position, column.box.lo, column.box.hi, 2)
    path = tmp_path / "column.toml"
    path.write_text(CASE.format(top=top + 5.0, mixing=mixing,
                                plate=top if plate is None else plate))
    return path, column


def test_dem_command_writes_a_complete_run_folder(tmp_path, capsys):
    path, column = write_case(tmp_path)
    assert main(["dem", str(path), "--out", str(tmp_path / "run")]) == 0
    run = tmp_path / "run"
    printed = capsys.readouterr().out
    assert "particle-steps/s" in printed and "µN" in printed
    with open(run / "trajectory.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "time_us", "id", "x", "y", "z", "vx", "vy", "vz",
                             "wx", "wy", "wz", "fx", "fy", "fz"]
    assert len(rows) == 4 * len(column.ids)                     # steps 0, 200, 400, 600
    first = rows[0]
    assert int(first["step"]) == 0 and int(first["id"]) == column.ids[0]
    np.testing.assert_allclose([float(first[c]) for c in "xyz"], column.position[0])
    with open(run / "walls.csv") as f:
        walls = list(csv.DictReader(f))
    assert list(walls[0]) == ["step", "time_us", "wall", "z_um", "force_z"]
    plate = [w for w in walls if w["wall"] == "calender_plate"]
    assert len(plate) == 30
    top = float((column.position[:, 2] + column.radius).max())
    assert abs(float(plate[-1]["z_um"]) - (top - 3.0 * 600 * 1e-4)) < 1e-9
    assert any(float(w["force_z"]) != 0.0 for w in plate), "the plate never touched"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["precision"] == "float64" and summary["particles"] == len(column.ids)
    assert summary["units"]["force"].startswith("nN")
    final = read_sphere_data(run / "final.data")
    assert len(final.ids) == len(column.ids)
    assert np.isfinite(final.position).all()
    dump = (run / "trajectory.dump").read_text()
    assert dump.count("ITEM: TIMESTEP") == 4
    assert "ITEM: ATOMS id type radius x y z" in dump


def test_dem_command_reports_bad_input(tmp_path, capsys):
    path, _ = write_case(tmp_path, plate=-0.5)
    assert main(["dem", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "wall 'calender_plate' at z = -0.5 µm" in capsys.readouterr().err
    path, _ = write_case(tmp_path, mixing="harmonic")
    assert main(["dem", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "mixing = 'harmonic'" in capsys.readouterr().err


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    """A run cut after its first segment and resumed writes the same files as an uninterrupted one."""
    from twin.io.case import load_case
    from twin.io.run_folder import run_case

    path, _ = write_case(tmp_path)
    run_case(load_case(path), tmp_path / "whole")

    class Interrupt(Exception):
        pass

    def stop_after_first_segment(done, total):
        if done == 200:
            raise Interrupt

    try:
        run_case(load_case(path), tmp_path / "cut", progress=stop_after_first_segment)
    except Interrupt:
        pass
    assert json.loads((tmp_path / "cut" / "checkpoint.json").read_text())["steps_done"] == 200
    assert main(["dem", str(path), "--out", str(tmp_path / "cut"), "--resume"]) == 0
    for name in ("trajectory.csv", "walls.csv", "trajectory.dump", "final.data"):
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "whole" / name).read_text(), name
