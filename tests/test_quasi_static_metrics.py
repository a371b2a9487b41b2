"""The curve metrics of benchmarks/quasi_static.py on hand-made traces."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import load_script

quasi_static = load_script("benchmarks/quasi_static.py")


def trace(plate_z, pressure, porosity, final_porosity):
    return SimpleNamespace(plate_z_um=np.asarray(plate_z, float),
                           pressure_mpa=np.asarray(pressure, float),
                           porosity_between_walls=np.asarray(porosity, float),
                           summary={"final_porosity": final_porosity})


def test_binned_pressure_averages_each_gap_bin_and_leaves_empty_bins_nan():
    binned = quasi_static.binned_pressure(np.array([0.1, 0.4, 1.2, 1.6]),
                                          np.array([1.0, 3.0, 5.0, 7.0]),
                                          np.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(binned[:2], [2.0, 6.0])
    assert np.isnan(binned[2])


def test_porosity_at_pressures_takes_the_first_crossing_of_the_loading_envelope():
    # a stick–slip drop (4 → 2 MPa) does not make the 3 MPa level cross again
    result = trace([10, 9, 8, 7, 6, 7], [0, 4, 2, 6, 10, 0], [0.5, 0.4, 0.35, 0.3, 0.2, 0.25], 0.25)
    np.testing.assert_allclose(quasi_static.porosity_at_pressures(result, np.array([3.0, 5.0])),
                               [0.4, 0.3])
    with pytest.raises(ValueError, match="never reached 12"):
        quasi_static.porosity_at_pressures(result, np.array([12.0]))


def test_compare_against_itself_is_zero_and_a_shifted_curve_is_not():
    porosity = [0.5, 0.45, 0.4, 0.35, 0.3, 0.31]
    reference = trace([10, 9, 8, 7, 6, 7], [0, 2, 5, 9, 20, 0], porosity, 0.31)
    same = quasi_static.compare(reference, reference, 20.0, bins=4)
    assert all(value == 0.0 for value in same.values())
    shifted = trace([10, 9, 8, 7, 6, 7], [0, 1, 3, 6, 20, 0], porosity, 0.32)
    different = quasi_static.compare(shifted, reference, 20.0, bins=4)
    assert different["porosity_difference_pp"] == pytest.approx(1.0)
    assert different["porosity_curve_error_pp"] == pytest.approx(5.0)  # 7 MPa: 0.30 vs 0.35
    assert different["binned_curve_error"] > 0.0


def test_ensemble_means_compare_each_protocol_mean_with_the_reference_mean():
    def row(speed, porosity, curve):
        return {"plate_speed_m_s": speed, "viscous_damping_per_us": 0.0,
                "final_porosity": porosity, "porosity_curve": curve}

    rows = [row(0.25, 0.200, [0.40, 0.30]), row(0.25, 0.204, [0.42, 0.30]),
            row(1.0, 0.210, [0.40, 0.31]), row(1.0, 0.210, [0.40, 0.33])]
    means = {r["plate_speed_m_s"]: r for r in quasi_static.ensemble_means(rows, (0.25, 0.0))}
    reference, fast = means[0.25], means[1.0]
    assert reference["members"] == 2 and reference["mean_porosity_difference_pp"] == 0.0
    assert reference["mean_porosity_pct"] == pytest.approx(20.2)
    # sample s.d. of (20.0, 20.4) is 0.2828 pp, so the standard error of the mean is 0.2 pp
    assert reference["porosity_standard_error_pp"] == pytest.approx(0.2)
    assert fast["mean_porosity_difference_pp"] == pytest.approx(0.8)
    assert fast["difference_standard_error_pp"] == pytest.approx(0.2)   # fast members agree
    # mean curves: reference (41, 30) %, fast (40, 32) %: the largest difference is 2 pp at the
    # second level, where the reference members agree and the fast ones differ by 2 pp
    assert fast["mean_curve_difference_pp"] == pytest.approx(2.0)
    assert fast["curve_difference_standard_error_pp"] == pytest.approx(1.0)
    # offsets: member level-averages (35.0, 36.0) % vs (35.5, 36.5) %: +0.5 ± hypot(0.5, 0.5)
    assert fast["curve_offset_pp"] == pytest.approx(0.5)
    assert fast["curve_offset_standard_error_pp"] == pytest.approx(np.hypot(0.5, 0.5))
    assert not fast["means_agree"] and reference["means_agree"]
    assert not fast["resolved"]   # 2 × 1.0 pp > 0.3 pp


def test_resume_keeps_the_reference_trace_and_refuses_another_case(tmp_path):
    out = tmp_path / "qs.json"
    reference = trace([10, 9, 8, 9], [0, 5, 20, 0], [0.5, 0.4, 0.3, 0.32], 0.32)
    quasi_static.save_reference_trace(out, reference, 12.5)
    loaded, seconds = quasi_static.load_reference_trace(out)
    assert seconds == 12.5 and loaded.summary == reference.summary
    np.testing.assert_array_equal(loaded.pressure_mpa, reference.pressure_mpa)
    assert quasi_static.compare(loaded, reference, 20.0, bins=2)["porosity_curve_error_pp"] == 0.0

    case = {"electrode": "mini", "replicas": 1, "particles": 709, "target_pressure_MPa": 20.0,
            "bins": 20, "jitter_um": 1e-9, "reference_speed_m_s": 0.25}
    assert quasi_static.previous_rows(out, case) == []          # nothing run yet
    rows = [{"plate_speed_m_s": 0.25, "viscous_damping_per_us": 0.0, "jitter_seed": 0}]
    out.write_text(json.dumps({**case, "protocols": rows}))
    assert quasi_static.previous_rows(out, case) == rows
    with pytest.raises(SystemExit, match="target_pressure_MPa = 20.0, this run 30.0"):
        quasi_static.previous_rows(out, {**case, "target_pressure_MPa": 30.0})
