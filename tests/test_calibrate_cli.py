"""``python -m calibrate fit``: the example config end to end, resume, and clear config errors."""

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calibrate.cli import main
from calibrate.parameters import table2
from calibrate.simulators import make_simulator

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "calibrate" / "examples"


def test_example_targets_are_the_simulator_at_table2():
    """hertz_twin.csv is reproducible: every second point of the example simulation."""
    with (EXAMPLES / "hertz_twin.csv").open() as handle:
        rows = np.array([[float(v) for v in row] for row in list(csv.reader(handle))[1:]])
    simulate = make_simulator({"kind": "hertz_sphere_on_plate", "sphere": "AM", "wall": "steel",
                               "radius_um": 5.0, "max_overlap_um": 0.05, "points": 40,
                               "cohesion": "sjkr2"})
    x, y = simulate(table2().materials("artistic"))["load_displacement"]
    np.testing.assert_allclose(rows[:, 0], x[1::2], rtol=1e-15)
    np.testing.assert_allclose(rows[:, 1], np.asarray(y)[1::2], rtol=1e-14)


def test_fit_example_config_writes_every_output_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(EXAMPLES / "hertz_twin.toml"), "--out", str(out), "--quiet"]) == 0
    for name in ("fit.json", "history.csv", "history.json", "parameters.csv", "fit.png",
                 "checkpoint.npz", "config.toml"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "fit.json").read_text())
    fitted = {row["name"]: row for row in summary["parameters"]}
    assert fitted["AM.E_GPa"]["fitted"] == pytest.approx(200.0, rel=1e-6)
    assert fitted["AM.ced_J_m3"]["fitted"] == pytest.approx(6e8, rel=1e-6)
    assert not fitted["AM.restitution"]["constrained"]
    assert not fitted["AM.friction"]["constrained"]
    assert summary["identifiability"]["at_optimum"]
    assert summary["iterations"] <= 50 and summary["loss"] < 1e-12 < summary["loss_start"]
    with (out / "history.csv").open() as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == summary["iterations"]
    assert float(history[0]["AM.E_GPa"]) == pytest.approx(300.0)
    printed = capsys.readouterr().out
    assert "AM.restitution = 0.225 (start 0.225): not constrained by the data" in printed
    assert "unconstrained direction" in printed

    assert main(["fit", str(EXAMPLES / "hertz_twin.toml"), "--out", str(out), "--resume",
                 "--quiet"]) == 0
    again = json.loads((out / "fit.json").read_text())
    assert again["parameters"] == summary["parameters"]
    assert again["iterations"] == summary["iterations"]


def _config(tmp_path, replace_from, replace_to):
    text = (EXAMPLES / "hertz_twin.toml").read_text()
    assert replace_from in text
    shutil.copy(EXAMPLES / "hertz_twin.csv", tmp_path / "hertz_twin.csv")
    path = tmp_path / "config.toml"
    path.write_text(text.replace(replace_from, replace_to))
    return path


@pytest.mark.parametrize("replace_from, replace_to, message", [
    ('name = "AM.E_GPa"', 'name = "AM.youngs_modulus"',
     "unknown parameter name 'AM.youngs_modulus': valid names are CBD.E_GPa"),
    ("start = 300.0", "start = 3000.0", "start 3000 GPa lies outside the open bounds"),
    ('columns = ["overlap_um", "force_uN"]', 'columns = ["overlap_um", "force_mN"]',
     "has no column 'force_mN'; its columns are \\['overlap_um', 'force_uN'\\]"),
    ('name = "lbfgs"', 'name = "bfgs"', "name 'bfgs': choose one of"),
    ("iterations = 50", 'iterations = "50"', "iterations = '50' must be of type int"),
    ("iterations = 50", "iterations = 50\nlearning_rat = 0.1", "unknown keys \\['learning_rat'\\]"),
    ('kind = "hertz_sphere_on_plate"', 'kind = "hertz"', "unknown simulation kind 'hertz'"),
    ('curve = "load_displacement"', 'curve = "porosity_pressure"',
     "produces curves \\['load_displacement'\\], not \\['porosity_pressure'\\]"),
    ("max_overlap_um = 0.05", "max_overlap_um = 0.02", "target 'load_displacement' spans x"),
])
def test_config_errors_exit_2_with_a_clear_message(tmp_path, capsys, replace_from, replace_to,
                                                    message):
    config = _config(tmp_path, replace_from, replace_to)
    assert main(["fit", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_non_numeric_target_through_python_dash_m(tmp_path):
    config = _config(tmp_path, "hertz_twin.csv", "bad.csv")
    text = (EXAMPLES / "hertz_twin.csv").read_text().splitlines()
    text[3] = text[3].split(",")[0] + ",n/a"
    (tmp_path / "bad.csv").write_text("\n".join(text) + "\n")
    run = subprocess.run([sys.executable, "-m", "calibrate", "fit", str(config), "--out",
                          str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    assert "line 4, column 'force_uN': 'n/a' is not a number" in run.stderr
