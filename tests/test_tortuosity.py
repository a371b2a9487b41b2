"""Tortuosity factor (twin.analysis.tortuosity): analytic cases, edge cases, and TauFactor 1.2.1 goldens.

Goldens come from tools/reference/taufactor_tortuosity.py (TauFactor float32; conv_crit in each row) on the
seeded images of tests/images.py; the twin runs in float64 for the comparisons.
"""

import csv
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import twin  # noqa: F401  (float64 on)
from images import electrode_image
from twin.analysis.tortuosity import DEFAULT_DIFFUSIVITY, tortuosity, tortuosity_xyz

GOLDEN = Path(__file__).parent / "golden" / "taufactor"
D_PORE, _, D_CBD = DEFAULT_DIFFUSIVITY
BINARY = (D_PORE, 0.0, 0.0)
# golden mode -> (diffusivity, lateral, dirichlet) reproducing that TauFactor solver
MODES = {"binary": (BINARY, "no_flux", "face"),
         "binary_periodic": (BINARY, "periodic", "face"),
         "multiphase": (DEFAULT_DIFFUSIVITY, "no_flux", "ghost")}


def layered(values, axis, shape=(12, 8, 8)):
    """Image whose label varies only along `axis` (cycling through `values`)."""
    index = np.arange(shape[axis]) % len(values)
    lab = np.asarray(values, dtype=np.uint8)[index]
    return np.broadcast_to(lab.reshape([-1 if a == axis else 1 for a in range(3)]), shape).copy()


@pytest.mark.parametrize("dirichlet", ["face", "ghost"])
def test_layers_in_series(dirichlet):
    """Pore/CBD layers normal to the flux: resistances add, R = Σ 1/D_i (+ half a boundary voxel per end for the
    ghost placement, whose length is N + 1)."""
    img = layered([0, 0, 2], axis=0)
    d = np.array(DEFAULT_DIFFUSIVITY)[img[:, 0, 0]]
    resistance = np.sum(1.0 / d) + (0.5 / d[0] + 0.5 / d[-1] if dirichlet == "ghost" else 0.0)
    length = img.shape[0] + (1 if dirichlet == "ghost" else 0)
    res = tortuosity(img, 0, dirichlet=dirichlet, rtol=1e-8, dtype=jnp.float64)
    assert res.converged and res.percolating
    np.testing.assert_allclose(res.d_eff, length / resistance, rtol=1e-7)
    np.testing.assert_allclose([res.flux_in, res.flux_out], res.d_eff, rtol=1e-7)
    eps = np.mean(img == 0)
    np.testing.assert_allclose(res.tau, eps * D_PORE * resistance / length, rtol=1e-7)
    np.testing.assert_allclose(res.tau_taufactor, (eps * D_PORE + (1 - eps) * D_CBD) * resistance / length, rtol=1e-7)


@pytest.mark.parametrize("lateral", ["no_flux", "periodic"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_parallel_channels(lateral, dtype):
    """Straight pore/CBD/AM sheets along the flux: D_eff = mean diffusivity, so τ_TauFactor = 1."""
    img = layered([0, 1, 2, 0, 1], axis=1)
    res = tortuosity(img, 0, lateral=lateral, rtol=1e-6, dtype=dtype)
    expected = np.mean(np.array(DEFAULT_DIFFUSIVITY)[img])
    np.testing.assert_allclose(res.d_eff, expected, rtol=1e-5)
    np.testing.assert_allclose(res.tau_taufactor, 1.0, rtol=1e-5)
    np.testing.assert_allclose(res.tau, np.mean(img == 0) * D_PORE / expected, rtol=1e-5)


def test_bad_labels_and_empty_pore():
    img = np.zeros((4, 4, 4), dtype=np.uint8)
    img[0, 0, 0], img[1, 1, 1] = 3, 7
    with pytest.raises(ValueError, match=r"\[3, 7\]"):
        tortuosity(img, 0)
    with pytest.raises(ValueError, match="no pore voxels"):
        tortuosity(np.ones((4, 4, 4), dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="axis"):
        tortuosity(np.zeros((4, 4, 4), dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="diffusivity"):
        tortuosity(np.zeros((4, 4, 4), dtype=np.uint8), 0, diffusivity=(0.0, 1.0, 1.0))


def test_not_percolating_is_inf():
    img = layered([0, 0, 1], axis=0)                           # an AM wall across the flux
    res = tortuosity(img, 0)
    assert not res.percolating and res.tau == np.inf and res.tau_taufactor == np.inf and res.d_eff == 0.0


def test_dead_ends_and_floating_clusters_change_nothing():
    """A straight channel plus a floating pore blob and a dead-end branch: same D_eff as the channel alone."""
    img = np.ones((12, 8, 8), dtype=np.uint8)
    img[:, 4, 4] = 0                                           # channel through the sample
    channel = tortuosity(img, 0, rtol=1e-8, dtype=jnp.float64)
    img[5:9, 1:3, 1:3] = 0                                     # floating blob
    img[8, 4, 5:8] = 0                                         # dead end off the channel
    img[0:6, 7, 7] = 0                                         # cluster touching the inlet only
    res = tortuosity(img, 0, rtol=1e-8, dtype=jnp.float64)
    assert res.converged
    np.testing.assert_allclose(res.d_eff, channel.d_eff, rtol=1e-7)
    np.testing.assert_allclose(res.tau * channel.porosity / res.porosity, channel.tau, rtol=1e-7)


def test_periodic_lateral_joins_across_the_boundary():
    """A path that crosses the lateral boundary percolates only with periodic lateral faces."""
    img = np.ones((12, 8, 8), dtype=np.uint8)
    img[:6, 0, 3] = 0
    img[5, 7, 3] = 0                                           # neighbour of (5, 0, 3) across y
    img[5:, 7, 3] = 0
    assert tortuosity(img, 0).tau == np.inf
    res = tortuosity(img, 0, lateral="periodic", rtol=1e-8, dtype=jnp.float64)
    # 13 voxels in series (12 along x plus the one lateral step), resistance 13 / D_pore over 64 columns
    np.testing.assert_allclose(res.d_eff, 12 / 13 * D_PORE / 64, rtol=1e-7)


def load_golden(size):
    path = GOLDEN / f"electrode{size}.csv"
    if not path.exists():
        pytest.skip(f"{path.name} not generated yet: tools/reference/taufactor_tortuosity.py --sizes {size}")
    with open(path) as fh:
        return list(csv.DictReader(fh))


def check_against_taufactor(size, modes, axes=(0, 1, 2)):
    img = electrode_image((size,) * 3, seed=int(load_golden(size)[0]["seed"]))
    rows = [row for row in load_golden(size) if row["mode"] in modes and int(row["axis"]) in axes]
    assert rows
    for row in rows:
        diffusivity, lateral, dirichlet = MODES[row["mode"]]
        res = tortuosity(img, int(row["axis"]), diffusivity=diffusivity, lateral=lateral, dirichlet=dirichlet,
                         rtol=1e-3, dtype=jnp.float64)
        assert res.converged
        np.testing.assert_allclose(res.tau_taufactor, float(row["tau"]), rtol=1e-2, err_msg=str(row))
        np.testing.assert_allclose(res.d_eff, float(row["d_eff"]), rtol=1e-2, err_msg=str(row))


def test_taufactor_128_x():
    check_against_taufactor(128, ("binary", "multiphase"), axes=(0,))


@pytest.mark.slow
def test_taufactor_128_all():
    check_against_taufactor(128, tuple(MODES))


@pytest.mark.slow
def test_taufactor_256():
    check_against_taufactor(256, ("binary", "multiphase"))


def test_xyz_and_paper_definition():
    img = electrode_image((16, 16, 16), seed=3, am_radius=(2.0, 5.0), cbd_radius=(1.0, 1.5))
    results = tortuosity_xyz(img, rtol=1e-4, dtype=jnp.float64)
    assert [r.axis for r in results] == [0, 1, 2]
    for r in results:
        assert r.converged and r.percolating and r.tau > 1.0
        np.testing.assert_allclose(r.tau, r.porosity * D_PORE / r.d_eff, rtol=1e-12)
        np.testing.assert_allclose(r.tau_taufactor / r.tau, r.d_mean / (r.porosity * D_PORE), rtol=1e-12)


def test_clusters_match_scipy_labelling():
    """Our face-connected clusters (no scipy at run time) partition the voxels as scipy does;
    with periodic y, z the clusters touching across those faces are merged."""
    from scipy import ndimage

    from twin.analysis.tortuosity import _components
    conducting = np.random.default_rng(5).random((30, 24, 18)) < 0.45
    ours = _components(conducting, ())
    reference, count = ndimage.label(conducting)
    pairs = np.unique(np.stack([ours[conducting], reference[conducting]]), axis=1)
    assert pairs.shape[1] == count == len(np.unique(ours[conducting]))
    assert np.all(ours[~conducting] == -1)
    wrapped = _components(conducting, (1, 2))
    tiled, _ = ndimage.label(np.tile(conducting, (1, 3, 3)))
    centre = tiled[:, 24:48, 18:36]
    # Two voxels share a periodic cluster iff their copies in the 3×3 tiling are connected
    # through some copy: compare on voxel pairs across the periodic faces.
    for a in (1, 2):
        lo = np.take(conducting, 0, axis=a) & np.take(conducting, -1, axis=a)
        assert np.all(np.take(wrapped, 0, axis=a)[lo] == np.take(wrapped, -1, axis=a)[lo])
    assert len(np.unique(wrapped[conducting])) <= count
    assert len(np.unique(centre[conducting])) >= len(np.unique(wrapped[conducting]))
