"""Dense overlap-free packings from the authors' initial structure (shared/data/artistic)."""

import numpy as np
import pytest

from twin.process.pack import (artistic_electrode, compact_affine, default_artistic_path,
                               remove_overlaps)


def largest_overlap(position, radius, box):
    d = position[:, None, :] - position[None, :, :]
    length = np.asarray(box.hi) - np.asarray(box.lo)
    for axis in (0, 1):
        d[..., axis] -= length[axis] * np.round(d[..., axis] / length[axis])
    overlap = radius[:, None] + radius[None, :] - np.linalg.norm(d, axis=-1)
    np.fill_diagonal(overlap, -np.inf)
    return overlap.max()


def test_small_electrode_has_the_facts_composition():
    electrode = artistic_electrode(default_artistic_path())
    assert len(electrode.ids) == 3945
    counts = np.bincount(electrode.am_class)
    assert counts[0] == 3786 and list(counts[1:]) == [29, 36, 26, 23, 33, 12]   # FACTS.md
    assert largest_overlap(electrode.position, electrode.radius, electrode.box) > 5.0


def test_compaction_and_overlap_removal():
    electrode = compact_affine(artistic_electrode(default_artistic_path()), 0.45, 0.4)
    box_volume = np.prod(np.asarray(electrode.box.hi) - np.asarray(electrode.box.lo))
    assert electrode.solid_volume / box_volume == pytest.approx(0.45, rel=1e-12)
    relaxed = remove_overlaps(electrode, tolerance=1e-3)
    assert largest_overlap(relaxed.position, relaxed.radius, relaxed.box) < 1e-3
    z, r = relaxed.position[:, 2], relaxed.radius
    assert (z - r > -1e-3).all() and (z + r < electrode.box.hi[2] + 1e-3).all()


def test_impossible_compaction_is_refused():
    electrode = artistic_electrode(default_artistic_path())
    with pytest.raises(ValueError, match="solid fraction 0.7 must lie in"):
        compact_affine(electrode, 0.7)
    with pytest.raises(ValueError, match="thinner than the largest sphere"):
        compact_affine(electrode, 0.6, lateral_scale=3.0)
