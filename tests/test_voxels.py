"""Voxelisation (hard and smooth) and porosity from particles and from voxels (float64)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from images_pores import VOXEL_UM, case_image
from twin.analysis.porosity import porosity_particles, porosity_voxels, sphere_volume_in_slab
from twin.analysis.voxels import smooth_phase_fractions, voxelize

COMPACTION = Path(__file__).parent / "golden" / "liggghts" / "compaction_small"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_voxelize_matches_brute_force_rasterisation(dtype):
    labels, positions, radii, phases, box = case_image("electrode")
    image = np.asarray(voxelize(positions.astype(dtype), radii.astype(dtype), phases, (0, 0, 0),
                                box, (True, True, False), None, VOXEL_UM))
    assert image.dtype == np.uint8 and image.shape == labels.shape
    assert np.array_equal(image, labels)


def test_am_wins_wraps_and_cuts():
    positions = np.array([[0.2, 2.0, 2.0], [0.9, 2.0, 2.0], [2.0, 2.0, -0.5]])
    radii = np.array([0.6, 0.6, 1.0])
    phases = np.array([2, 1, 1])
    image = np.asarray(voxelize(positions, radii, phases, (0, 0, -2), (4, 4, 6),
                                (True, True, False), (0.0, 4.0), 0.1))
    assert image.shape == (40, 40, 40)
    assert image[5, 19, 19] == 1            # x 0.55 is inside both: AM wins
    assert image[39, 19, 19] == 2           # x 3.95 ≡ -0.05: the CBD sphere wrapped around x
    assert image[19, 19, 0] == 1            # the sphere below the collector is cut at z = 0
    assert image[19, 19, 5] == 0            # z 0.55 > -0.5 + 1.0
    # a voxel centre exactly on a sphere surface counts as inside
    on_surface = voxelize(np.array([[0.375, 0.375, 0.375]]), np.array([0.25]), np.array([1]),
                          (0, 0, 0), (1, 1, 1), (True, True, True), None, 0.25)
    assert int(np.sum(np.asarray(on_surface) == 1)) == 7


def test_coarse_voxels_warn_and_bad_input_is_refused():
    positions, radii, phases = np.array([[1.0, 1.0, 1.0]]), np.array([0.2]), np.array([2])
    with pytest.warns(UserWarning, match="voxel size 0.25 µm is larger than the smallest "
                                         "particle radius 0.2 µm"):
        voxelize(positions, radii, phases, (0, 0, 0), (2, 2, 2))
    with pytest.raises(ValueError,
                       match=r"not a whole number of 0.3 µm voxels.*use 0.285714 or 0.25 µm"):
        voxelize(positions, radii + 1, phases, (0, 0, 0), (2, 2, 2), voxel_um=0.3)
    with pytest.raises(ValueError, match=r"sphere phases \[0, 3\] unknown"):
        voxelize(np.zeros((2, 3)) + 1, np.ones(2), np.array([0, 3]), (0, 0, 0), (2, 2, 2))
    with pytest.raises(ValueError, match="z is periodic, so the image must span the box z"):
        voxelize(positions, radii + 1, phases, (0, 0, 0), (2, 2, 2), (True, True, True), (0, 1))


def test_particle_porosity_uses_exact_caps():
    r = jnp.array([1.0, 1.0, 1.0, 2.0])
    z = jnp.array([0.0, 5.0, -2.0, 1.0])      # half, whole, outside, cut by the floor
    volume = np.asarray(sphere_volume_in_slab(z, r, 0.0, 6.0))
    assert volume == pytest.approx([2 * np.pi / 3, 4 * np.pi / 3, 0.0,
                                    4 * np.pi / 3 * 8 - np.pi * 1 * (6 - 1) / 3], rel=1e-12)
    # the authors' +2 % AM diameters: removing it scales AM volumes by 1/1.02³
    positions = np.array([[1.0, 1.0, 3.0], [3.0, 3.0, 3.0]])
    result = porosity_particles(positions, np.array([1.02, 0.5]), np.array([1, 2]), (0, 0, 0),
                                (4, 4, 8), (0.0, 6.0), am_expansion=1.02)
    assert float(result.am_fraction) == pytest.approx(4 / 3 * np.pi / 96, rel=1e-12)
    assert float(result.cbd_fraction) == pytest.approx(4 / 3 * np.pi * 0.125 / 96, rel=1e-12)
    with pytest.raises(ValueError, match="z_range"):
        porosity_particles(positions, np.ones(2), np.array([1, 2]), (0, 0, 0), (4, 4, 8), (3, 3))


def test_voxel_porosity_and_label_checks():
    labels = np.array([0, 0, 1, 2]).reshape(1, 2, 2)
    assert porosity_voxels(labels) == (0.5, 0.25, 0.25)
    with pytest.raises(ValueError, match=r"labels \[5\] are not phases"):
        porosity_voxels(np.array([0, 5]).reshape(1, 1, 2))


def test_smooth_fractions_follow_the_hard_image():
    labels, positions, radii, phases, box = case_image("electrode")
    hard = np.bincount(labels.ravel(), minlength=3) / labels.size
    smooth = np.asarray(smooth_phase_fractions(positions, radii, phases, (0, 0, 0), box))
    assert smooth.sum() == pytest.approx(1.0, abs=1e-12)
    # O((w/r)²) band curvature and grid sampling; measured 1.2e-3 on this image
    assert np.abs(smooth - hard).max() < 3e-3


def test_smooth_fractions_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    positions = rng.uniform(0.0, 3.0, (12, 3))
    radii = rng.uniform(0.5, 0.6, 12)
    phases = np.where(np.arange(12) < 5, 1, 2)
    reach = radii + 0.05 + 0.2

    def fractions(x, r):
        return smooth_phase_fractions(x, r, phases, (0, 0, 0), (3, 3, 3), (True, True, False),
                                      (0.5, 2.5), 0.1, reach_um=reach)

    with pytest.raises(ValueError, match="reach_um must be at least radius"):
        smooth_phase_fractions(positions, radii, phases, (0, 0, 0), (3, 3, 3), voxel_um=0.1,
                               reach_um=radii)
    weights = jnp.array([0.3, -1.0, 2.0])
    loss = lambda x, r: jnp.dot(weights, fractions(x, r))   # noqa: E731
    gx, gr = jax.grad(loss, argnums=(0, 1))(jnp.asarray(positions), jnp.asarray(radii))
    assert np.isfinite(gx).all() and np.isfinite(gr).all() and np.abs(gr).max() > 0
    eps = 1e-6
    for i, axis in [(0, 0), (7, 2)]:
        step = np.zeros_like(positions)
        step[i, axis] = eps
        fd = (loss(positions + step, radii) - loss(positions - step, radii)) / (2 * eps)
        assert float(gx[i, axis]) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)
    for i in (6,):
        step = np.zeros_like(radii)
        step[i] = eps
        fd = (loss(positions, radii + step) - loss(positions, radii - step)) / (2 * eps)
        assert float(gr[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)


def read_compaction(name):
    initial = np.genfromtxt(COMPACTION / "initial.csv", delimiter=",", names=True)
    frame = np.genfromtxt(COMPACTION / f"{name}.csv", delimiter=",", names=True)
    assert np.array_equal(initial["id"], frame["id"])
    positions = np.stack([frame["x"], frame["y"], frame["z"]], axis=1)
    return positions, initial["radius"], np.where(initial["type"] == 2, 1, 2)


def lens_volume(positions, radii, lateral):
    """Σ of the lens volumes of overlapping pairs (minimum image in x, y)."""
    d = positions[:, None] - positions[None]
    d[..., :2] -= lateral * np.round(d[..., :2] / lateral)
    i, j = np.triu_indices(len(radii), 1)
    dist = np.linalg.norm(d[i, j], axis=1)
    a, b = radii[i], radii[j]
    overlap = dist < a + b
    dist, a, b = dist[overlap], a[overlap], b[overlap]
    return np.sum(np.pi * (a + b - dist) ** 2 * (dist**2 + 2 * dist * (a + b) - 3 * (a - b) ** 2)
                  / (12 * dist))


@pytest.mark.slow
def test_compacted_electrode_voxel_porosity_exceeds_particle_porosity_by_the_overlaps():
    """LIGGGHTS' small electrode at maximum compression, cut at the plate (35.388 µm): particle
    porosity counts the Hertz overlaps twice, the voxel image once; the gap converges to the
    pair-lens volume fraction (2.09 %; triple overlaps neglected) as the voxels shrink."""
    positions, radii, phases = read_compaction("loaded")
    box_lo, box_hi, z_range = (-16, -16, -1), (16, 16, 42.6879344738315), (0.0, 35.38793447383149)
    particles = float(porosity_particles(positions, radii, phases, box_lo, box_hi,
                                         z_range).porosity)
    lens = lens_volume(positions, radii, 32.0) / (32 * 32 * z_range[1])
    gaps = []
    for voxel in (0.25, 0.125):
        image = voxelize(positions, radii, phases, box_lo, box_hi, (True, True, False), z_range,
                         voxel)
        gaps.append(porosity_voxels(image).porosity - particles)
    assert particles == pytest.approx(0.2871, abs=1e-4)
    assert abs(gaps[1] - lens) < abs(gaps[0] - lens) < 3e-3     # measured 2.0e-3 and 3e-4
    assert abs(gaps[1] - lens) < 1e-3
