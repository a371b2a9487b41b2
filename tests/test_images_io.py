"""Label images in and out: TIFF stacks, .npy + JSON sidecar, legacy VTK."""

import json

import numpy as np
import pytest

from twin.io.images import read_labels, write_labels


@pytest.fixture
def labels():
    return np.random.default_rng(3).integers(0, 3, (7, 5, 4)).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".vtk"])
def test_round_trip(tmp_path, labels, suffix):
    path = write_labels(tmp_path / f"electrode{suffix}", labels, 0.25, origin_um=(-16, -16, 0))
    image = read_labels(path)
    assert image.labels.dtype == np.uint8 and np.array_equal(image.labels, labels)
    assert image.voxel_um == pytest.approx(0.25, rel=1e-12)
    if suffix != ".tif":
        assert image.origin_um == (-16.0, -16.0, 0.0)


def test_tiff_pages_are_z_slices(tmp_path, labels):
    import tifffile

    path = write_labels(tmp_path / "stack.tif", labels, 0.5)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == labels.shape[2]
        assert np.array_equal(tif.pages[1].asarray(), labels[:, :, 1].T)   # rows y, columns x
        assert tif.imagej_metadata["spacing"] == 0.5


def test_npy_sidecar_and_vtk_layout(tmp_path, labels):
    write_labels(tmp_path / "a.npy", labels, 0.25)
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["axes"] == "xyz" and meta["voxel_um"] == 0.25
    raw = write_labels(tmp_path / "a.vtk", labels, 0.25).read_bytes()
    assert b"DIMENSIONS 8 6 5\n" in raw and b"SPACING 0.25 0.25 0.25\n" in raw
    assert raw.endswith(labels.transpose(2, 1, 0).tobytes() + b"\n")   # x varies fastest


def test_ascii_vtk_is_read(tmp_path):
    text = ("# vtk DataFile Version 3.0\nhand\nASCII\nDATASET STRUCTURED_POINTS\n"
            "DIMENSIONS 3 2 2\nSPACING 0.5 0.5 0.5\nORIGIN 0 0 0\nCELL_DATA 2\n"
            "SCALARS labels unsigned_char 1\nLOOKUP_TABLE default\n1 2\n")
    (tmp_path / "h.vtk").write_text(text)
    image = read_labels(tmp_path / "h.vtk")
    assert image.labels.shape == (2, 1, 1) and image.labels.ravel().tolist() == [1, 2]


def test_bad_images_are_refused(tmp_path, labels):
    bad = labels.copy()
    bad[0, 0, 0], bad[1, 0, 0] = 3, 9
    with pytest.raises(ValueError, match=r"labels \[3, 9\] are not phases"):
        write_labels(tmp_path / "bad.npy", bad, 0.25)
    np.save(tmp_path / "bad.npy", bad)
    (tmp_path / "bad.json").write_text('{"voxel_um": 0.25, "axes": "xyz"}')
    with pytest.raises(ValueError, match=r"labels \[3, 9\] are not phases"):
        read_labels(tmp_path / "bad.npy")
    np.save(tmp_path / "lonely.npy", labels)
    with pytest.raises(ValueError, match="no voxel-size sidecar lonely.json"):
        read_labels(tmp_path / "lonely.npy")
    with pytest.raises(ValueError, match="unknown image format '.png'"):
        write_labels(tmp_path / "a.png", labels, 0.25)
    with pytest.raises(ValueError, match="voxel size -1.0 µm must be positive"):
        write_labels(tmp_path / "a.vtk", labels, -1)
