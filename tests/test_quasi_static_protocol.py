"""Quasi-static acceleration on a small electrode (issue #4): the fastest plate whose curves agree
with the slow reference, by the criterion of benchmarks/quasi_static.py (float64).

Electrode: the 123-sphere electrode of the DEM twin experiment (tests/test_differentiable.py),
no drag, 20 MPa. Measured (2026-12-07, 2-core Intel Xeon; unjittered runs against 0.25 m/s):

| plate m/s | I (d₃₂) | steps | Δ porosity pp | φ(P) error pp | P(h) error, pointwise |
|---|---|---|---|---|---|
| 0.125 | 5.6e-4 | 200 000 | −0.006 | 0.014 | 1.3 % |
| 0.25 (reference) | 1.1e-3 | 102 000 | — | — | — |
| 0.5 | 2.2e-3 | 52 000 | −0.028 | 0.009 | 1.0 % |
| 1 | 4.1e-3 | 26 000 | +0.43 | 0.036 | 3.0 % |
| 2 | 8.0e-3 | 14 000 | −0.15 | 12.3 | 6.9 % |

Four starts per speed (centres jittered by 1e-9 µm) spread the recovered porosity by 0.04 pp at
0.25 and 0.5 m/s, 0.5 pp at 1 m/s and 0.29 pp at 0.125 m/s (one start of four), and φ(P) by
≤ 0.015 pp up to 1 m/s: on this small packing the loading curve converges by 1 m/s, the recovery
by 0.5 m/s, 2× fewer steps than the reference. The test checks what stays well clear of that
spread: 0.5 m/s agrees with 0.25 m/s in both, the 0.125 m/s loading curve agrees with the
reference's (its recovered porosity is within the spread, not asserted), and 2 m/s fails.
Slow: 41 s on one core.
"""

import pytest

from helpers import load_script
from test_experiments import load
from twin.process.calender import CalenderProtocol, calender

quasi_static = load_script("benchmarks/quasi_static.py")

TARGET_MPA = 20.0
CRITERION_PP = 0.3


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs():
    electrode = load("calibration_twin_experiment").tiny_electrode()
    return {speed: calender(electrode, CalenderProtocol(
        target_pressure_mpa=TARGET_MPA, plate_speed_um_us=speed, record_every=20,
        am_expansion=1.0)) for speed in (0.125, 0.25, 0.5, 2.0)}


def test_half_the_reference_steps_give_the_same_porosity_and_porosity_pressure_curve(runs):
    reference = runs[0.25]
    converged = quasi_static.compare(runs[0.125], reference, TARGET_MPA, bins=20)
    assert converged["porosity_curve_error_pp"] <= CRITERION_PP, converged
    fast = quasi_static.compare(runs[0.5], reference, TARGET_MPA, bins=20)
    assert abs(fast["porosity_difference_pp"]) <= CRITERION_PP, fast
    assert fast["porosity_curve_error_pp"] <= CRITERION_PP, fast
    assert runs[0.5].summary["steps"] <= 0.55 * reference.summary["steps"]
    too_fast = quasi_static.compare(runs[2.0], reference, TARGET_MPA, bins=20)
    assert too_fast["porosity_curve_error_pp"] > CRITERION_PP, too_fast
    # the inertial number at the target, I = γ̇ d₃₂ sqrt(ρ/P) with γ̇ = v / gap, is reported and
    # grows with the plate speed (not exactly ∝ v: a faster plate turns at a wider gap)
    inertial = [runs[speed].summary["inertial_number"] for speed in sorted(runs)]
    assert 0.0 < inertial[0] < inertial[1] < inertial[2] < inertial[3]
