"""Indentation: replication, displacement-controlled turn at the pressed fraction, normalised
curve and contact area; the command writes its run folder."""

import json

import numpy as np
import pytest

from golden_cases import read_csv
from test_calender import mini_electrode, write_plate_case
from twin.cli import main
from twin.process.indent import IndentProtocol, plate_contact_area, replicate


@pytest.fixture(scope="module")
def electrode():
    return mini_electrode()


def test_replicate_tiles_the_cell(electrode):
    tiled = replicate(electrode, 3)
    assert len(tiled.radius) == 9 * len(electrode.radius)
    np.testing.assert_allclose(np.asarray(tiled.box.length)[:2],
                               3 * np.asarray(electrode.box.length)[:2])
    assert len(np.unique(tiled.ids)) == len(tiled.ids)
    shifted = tiled.position[len(electrode.radius):2 * len(electrode.radius)] - electrode.position
    np.testing.assert_allclose(shifted, np.tile([0.0, electrode.box.length[1], 0.0],
                                                (len(electrode.radius), 1)))


def test_plate_contact_area_of_a_sphere_cap():
    count, area = plate_contact_area(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -5.0]]),
                                     np.array([1.0, 1.0]), 0.8)
    assert count == 1
    assert area == pytest.approx(np.pi * (1.0 - 0.8**2))     # circle of radius sqrt(r² - z²)


def test_indentation_presses_the_requested_depth_and_releases(electrode, tmp_path):
    case = write_plate_case(tmp_path, electrode, "depth_fraction = 0.1\nreplicas = 2\n"
                                                 "plate_speed_m_s = 2.0\nrecord_every = 20\n")
    assert main(["indent", str(case), "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    trace = read_csv(tmp_path / "run" / "trace.csv")
    depth = 0.1 * summary["electrode_thickness_um"]
    # Displacement-controlled: the turn lies within one record of plate travel past the depth.
    assert depth <= summary["max_displacement_um"] < depth + 20 * 2.0 * 1e-4 + 1e-9
    assert summary["max_force_mN"] > 0
    assert trace["force_normalised"].max() == pytest.approx(1.0)
    assert trace["displacement_normalised"].max() == pytest.approx(1.0)
    assert 0 < summary["residual_displacement_um"] <= summary["max_displacement_um"]
    assert summary["plate_contacts"] > 0
    assert 0 < summary["contact_area_um2"] < summary["nominal_area_um2"]
    assert summary["nominal_area_um2"] == pytest.approx(4 * 14.0**2)
    assert (tmp_path / "run" / "indent.png").stat().st_size > 0


def test_bad_indent_protocol_is_refused():
    for bad in (dict(depth_fraction=0.0), dict(depth_fraction=0.6), dict(replicas=0),
                dict(replicas=2.5)):
        with pytest.raises(ValueError):
            IndentProtocol(**bad).validate()
