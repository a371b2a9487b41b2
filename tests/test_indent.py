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


def test_a_replication_that_does_not_fit_is_refused_with_the_estimate():
    from twin.process.indent import BYTES_PER_SPHERE, check_replicas_fit
    gib = 2**30
    assert check_replicas_fit(10_000, 4, available_bytes=8 * gib) == BYTES_PER_SPHERE * 160_000
    with pytest.raises(ValueError, match=r"replicas = 64 gives 40,960,000 spheres, estimated "
                                         r"305 GiB .* use replicas ≤ 9"):
        check_replicas_fit(10_000, 64, available_bytes=8 * gib)
    with pytest.raises(ValueError, match="use a device with more memory"):
        check_replicas_fit(10_000, 1, available_bytes=1e6)


def test_indent_refuses_before_allocating(electrode, monkeypatch):
    import twin.process.indent as indent_module
    monkeypatch.setattr(indent_module, "available_memory_bytes", lambda device=None: 1e6)
    with pytest.raises(ValueError, match="estimated"):
        indent_module.indent(electrode, IndentProtocol(replicas=2))


@pytest.mark.slow
def test_bytes_per_sphere_bounds_the_compiled_run():
    """The constant of the estimate against XLA's buffer assignment of one chunk (float64)."""
    import equinox as eqx
    from twin.physics.dem import run
    from twin.process.calender import PlateRun
    from twin.process.indent import BYTES_PER_SPHERE
    tiled = replicate(mini_electrode(), 2)
    plate = PlateRun(tiled, IndentProtocol(replicas=1))
    compiled = eqx.filter_jit(run).lower(plate.state, plate.materials, plate.box, plate.spec,
                                         plate.config, 20, 100, False,
                                         control=plate.control()).compile().compiled
    stats = compiled.memory_analysis()
    measured = (stats.argument_size_in_bytes + stats.output_size_in_bytes
                + stats.temp_size_in_bytes) / len(tiled.radius)
    assert 0.25 * BYTES_PER_SPHERE < measured <= BYTES_PER_SPHERE
