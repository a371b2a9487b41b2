"""Label images (0 pore, 1 AM, 2 CBD; uint8; axes x, y, z; voxel size in µm) in and out.

* TIFF stack (``.tif``/``.tiff``, via tifffile, ImageJ hyperstack): one page per z slice, each page
  rows = y and columns = x, i.e. the file holds the array in (z, y, x) order; the voxel size is
  the ImageJ ``spacing`` (z) and the resolution (x, y), unit "um". Fiji/ImageJ open it as is.
  The origin is not stored (it reads back as 0).
* ``.npy``: the (x, y, z) uint8 array, with a sidecar ``<name>.json``
  ``{"voxel_um": h, "axes": "xyz", "labels": {...}}``.
* ``.vtk``: legacy VTK ``STRUCTURED_POINTS``, binary (big-endian), one cell per voxel: DIMENSIONS
  nx+1 ny+1 nz+1, SPACING h h h (µm), ORIGIN, CELL_DATA ``labels`` unsigned_char with x varying
  fastest (VTK file formats, Kitware). ParaView opens it as image data. The reader also takes the
  ASCII variant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from twin.analysis.voxels import check_labels

LABEL_NAMES = {"0": "pore", "1": "AM", "2": "CBD"}


class LabelImage(NamedTuple):
    labels: np.ndarray                    # uint8 (nx, ny, nz)
    voxel_um: float
    origin_um: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _check_voxel(voxel_um):
    voxel_um = float(voxel_um)
    if not voxel_um > 0:
        raise ValueError(f"voxel size {voxel_um} µm must be positive")
    return voxel_um


def _format(path):
    suffix = Path(path).suffix.lower()
    if suffix not in (".tif", ".tiff", ".npy", ".vtk"):
        raise ValueError(f"{path}: unknown image format '{suffix}'; use .tif, .npy or .vtk")
    return suffix


def write_labels(path, labels, voxel_um, origin_um=(0.0, 0.0, 0.0)) -> Path:
    """Write a label image (x, y, z) with its voxel size (µm) as .tif, .npy (+ .json) or .vtk."""
    path = Path(path)
    labels = check_labels(labels)
    voxel_um = _check_voxel(voxel_um)
    suffix = _format(path)
    if suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, np.ascontiguousarray(labels.transpose(2, 1, 0)), imagej=True,
                         resolution=(1.0 / voxel_um, 1.0 / voxel_um),
                         metadata={"spacing": voxel_um, "unit": "um", "axes": "ZYX"})
    elif suffix == ".npy":
        np.save(path, labels)
        path.with_suffix(".json").write_text(json.dumps(
            {"voxel_um": voxel_um, "axes": "xyz", "origin_um": list(map(float, origin_um)),
             "labels": LABEL_NAMES}, indent=1) + "\n")
    else:
        nx, ny, nz = labels.shape
        header = ("# vtk DataFile Version 3.0\ntwin label image (0 pore, 1 AM, 2 CBD), um\n"
                  "BINARY\nDATASET STRUCTURED_POINTS\n"
                  f"DIMENSIONS {nx + 1} {ny + 1} {nz + 1}\n"
                  f"SPACING {voxel_um!r} {voxel_um!r} {voxel_um!r}\n"
                  f"ORIGIN {' '.join(repr(float(o)) for o in origin_um)}\n"
                  f"CELL_DATA {labels.size}\nSCALARS labels unsigned_char 1\n"
                  "LOOKUP_TABLE default\n")
        with open(path, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(np.ascontiguousarray(labels.transpose(2, 1, 0)).tobytes())
            f.write(b"\n")
    return path


def read_labels(path) -> LabelImage:
    """Read a label image written by :func:`write_labels` (or another tool, same layouts)."""
    path = Path(path)
    suffix = _format(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    if suffix in (".tif", ".tiff"):
        return _read_tiff(path)
    if suffix == ".npy":
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise ValueError(f"{path}: no voxel-size sidecar {sidecar.name} "
                             '({"voxel_um": ..., "axes": "xyz"})')
        meta = json.loads(sidecar.read_text())
        if meta.get("axes", "xyz") != "xyz":
            raise ValueError(f"{sidecar}: axes {meta['axes']!r}; only 'xyz' is supported")
        return LabelImage(check_labels(np.load(path)), _check_voxel(meta["voxel_um"]),
                          tuple(meta.get("origin_um", (0.0, 0.0, 0.0))))
    return _read_vtk(path)


def _read_tiff(path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        meta = tif.imagej_metadata or {}
        page = tif.pages[0]
        resolution = page.tags.get("XResolution")
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a z stack of 2-D pages, got shape {data.shape}")
    voxel = meta.get("spacing")
    if voxel is None and resolution is not None:
        numerator, denominator = resolution.value
        voxel = denominator / numerator
    if voxel is None:
        raise ValueError(f"{path}: no voxel size (ImageJ spacing or resolution) in the file")
    return LabelImage(check_labels(data.transpose(2, 1, 0)), _check_voxel(voxel))


def _read_vtk(path):
    raw = path.read_bytes()
    fields, offset = {}, 0
    for _ in range(12):                    # header lines up to LOOKUP_TABLE
        end = raw.index(b"\n", offset)
        line = raw[offset:end].decode("ascii", "replace").strip()
        offset = end + 1
        words = line.split()
        if words:
            fields[words[0].upper()] = words[1:]
        if line.upper() in ("ASCII", "BINARY"):
            fields["ENCODING"] = line.upper()
        if words and words[0].upper() == "LOOKUP_TABLE":
            break
    if fields.get("DATASET") != ["STRUCTURED_POINTS"] or "CELL_DATA" not in fields:
        raise ValueError(f"{path}: expected DATASET STRUCTURED_POINTS with CELL_DATA labels")
    if fields.get("SCALARS", [None, None])[1] not in ("unsigned_char", "char"):
        raise ValueError(f"{path}: labels must be unsigned_char, got {fields.get('SCALARS')}")
    shape = tuple(int(n) - 1 for n in fields["DIMENSIONS"])
    spacing = {float(s) for s in fields["SPACING"]}
    if len(spacing) != 1:
        raise ValueError(f"{path}: voxels must be cubic, got SPACING {fields['SPACING']}")
    count = int(np.prod(shape))
    if fields.get("ENCODING") == "BINARY":
        data = np.frombuffer(raw, np.uint8, count, offset)
    else:
        data = np.array(raw[offset:].split()[:count], dtype=np.int64)
    if data.size != count:
        raise ValueError(f"{path}: {data.size} values for {shape} voxels")
    labels = data.reshape(shape[::-1]).transpose(2, 1, 0)
    return LabelImage(check_labels(labels), _check_voxel(spacing.pop()),
                      tuple(float(o) for o in fields.get("ORIGIN", (0, 0, 0))))
