"""Distance transform, local thickness, PSD and mercury intrusion; checked against scipy and
against PoreSpy goldens (tools/reference/porespy_psd.py). Integer results, so comparisons are
exact; precision: int32 squared distances."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from images_pores import case_image
from twin.analysis.pores import (local_thickness, invasion_radius, mercury_intrusion,
                                 pore_size_distribution, squared_distance_transform,
                                 washburn_pressure_mpa)

GOLDEN = Path(__file__).parent / "golden" / "porespy"


def golden(name):
    return json.loads((GOLDEN / f"psd_{name}.json").read_text())


def assert_same_image(image, summary):
    image = np.asarray(image).astype(np.uint8)
    assert np.bincount(image.ravel()).tolist() == summary["counts"]
    for *ijk, value in summary["samples"]:
        assert image[tuple(ijk)] == value
    assert hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest() == summary["sha256"]


@pytest.mark.parametrize("periodic", [(False, False, False), (True, True, False),
                                      (True, False, True)])
def test_distance_transform_is_exact(periodic):
    rng = np.random.default_rng(2)
    pore = rng.random((23, 17, 30)) > 0.01
    reps = [3 if p else 1 for p in periodic]
    tiled = ndimage.distance_transform_edt(np.tile(pore, reps)) ** 2
    middle = tuple(slice(n, 2 * n) if p else slice(None) for n, p in zip(pore.shape, periodic))
    reference = np.rint(tiled[middle]).astype(np.int64)
    assert np.array_equal(np.asarray(squared_distance_transform(pore, periodic)), reference)


@pytest.mark.parametrize("name", ["electrode_xy_periodic", "electrode_open",
                                  "electrode_all_periodic"])
def test_local_thickness_equals_porespy(name):
    ref = golden(name)
    pore = case_image(ref["case"])[0] == 0
    thickness = local_thickness(pore, ref["periodic"], ref["thickness_z_walls"])
    assert_same_image(thickness, ref["local_thickness"])


@pytest.mark.parametrize("name", ["electrode_xy_periodic", "electrode_open"])
def test_mercury_intrusion_equals_porespy(name):
    ref = golden(name)
    labels = case_image(ref["case"])[0]
    collector_wall = ref["intrusion_z_walls"][0]
    size = invasion_radius(labels == 0, ref["periodic"], collector_wall)
    assert_same_image(size, ref["invasion_radius"])


SMALL = (10, 10, 20)   # one shape for the hand-made images (one compilation)


def test_local_thickness_of_a_slot_and_a_ball():
    pore = np.zeros(SMALL, bool)
    pore[:, :, 5:12] = True                        # a slot 7 voxels thick, periodic in x, y
    thickness = local_thickness(pore)
    assert set(np.unique(thickness[pore])) == {4}  # dt = 4 at the mid-plane: open ball r 4 fits
    centre = np.indices(SMALL) - np.array([5, 5, 10])[:, None, None, None]
    ball = (centre**2).sum(0) < 16                 # a spherical void: centres within distance < 4
    thickness = local_thickness(ball)
    assert set(np.unique(thickness[ball])) == {4}  # dt(centre) = 4: the ball is the void
    assert thickness[~ball].max() == 0


def test_walls_limit_balls_at_the_z_faces():
    pore = np.ones(SMALL, bool)
    pore[:, :, 19] = False                         # a solid lid on top
    walled = local_thickness(pore, (True, True, False), z_walls=(True, False))
    open_floor = local_thickness(pore, (True, True, False), z_walls=(False, False))
    assert walled.max() == 10 and open_floor.max() == 19
    pore[:, :, 19] = True                          # default: walls at both faces
    assert set(np.unique(local_thickness(pore))) == {10}


def test_psd_units_and_normalisation():
    labels = case_image("electrode")[0]
    mass_g = 2.5e-9
    psd = pore_size_distribution(labels, 0.25, mass_g=mass_g)
    pore_um3 = (labels == 0).sum() * 0.25**3
    assert psd.volume_um3.sum() == pytest.approx(pore_um3)
    assert psd.volume_fraction.sum() == pytest.approx(1.0)
    assert np.allclose(psd.radius_um, 0.25 * np.arange(1, len(psd.radius_um) + 1))
    integral = (psd.dv_dr_ml_g_um * 0.25).sum()    # mL/g over all radii
    assert integral == pytest.approx(pore_um3 * 1e-12 / mass_g)


def test_washburn_pressure():
    # P = -2 γ cos θ / r, γ 0.485 N/m, θ 130°: 0.6235 MPa at 1 µm
    assert washburn_pressure_mpa(1.0) == pytest.approx(2 * 0.485 * 0.6427876097, rel=1e-9)
    assert washburn_pressure_mpa(0.25) == pytest.approx(4 * washburn_pressure_mpa(1.0))


def test_intrusion_stops_at_isolated_pores():
    pore = np.zeros(SMALL, bool)
    pore[:, :, 12:] = True                          # open to the top face
    pore[3:6, 3:6, 3:6] = True                      # a closed cavity
    curve = mercury_intrusion(np.where(pore, 0, 1).astype(np.uint8), 0.25,
                              (True, True, False))
    assert np.all(np.diff(curve.radius_um) < 0) and np.all(np.diff(curve.pressure_mpa) > 0)
    assert np.all(np.diff(curve.intruded_voxels) >= 0)
    assert curve.intruded_voxels[-1] == pore[:, :, 12:].sum()
    assert curve.intruded_fraction[-1] == pytest.approx(800 / (800 + 27))


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match=r"labels \[3, 7\] are not phases"):
        pore_size_distribution(np.array([0, 1, 3, 7]).reshape(1, 1, 4), 0.25)
    with pytest.raises(ValueError, match="no pore voxels"):
        mercury_intrusion(np.ones((4, 4, 4), np.uint8), 0.25)
    with pytest.raises(ValueError, match="unbounded"):
        local_thickness(np.ones((4, 4, 4), bool), (True, True, True))
    with pytest.raises(ValueError, match=r"z_walls=\(True, False\) needs a non-periodic z"):
        local_thickness(np.ones((4, 4, 4), bool), (True, True, True), z_walls=(True, False))
