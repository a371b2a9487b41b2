"""Dense overlap-free packings from the authors' initial structure (shared/data/artistic)."""

import numpy as np
import pytest

from twin.physics.space import Box
from twin.process.pack import (artistic_electrode, compact_affine, contacts_within_rounding,
                               default_artistic_path, inertial_number, remove_overlaps)


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
    with pytest.raises(ValueError, match=r"CBD density -0.93 g/cm³ must be > 0"):
        artistic_electrode(default_artistic_path(), cbd_density=-0.93)


@pytest.mark.parametrize("clearance", [0.0, 2e-3])
def test_compaction_and_overlap_removal(clearance):
    electrode = compact_affine(artistic_electrode(default_artistic_path()), 0.45, 0.4)
    box_volume = np.prod(np.asarray(electrode.box.hi) - np.asarray(electrode.box.lo))
    assert electrode.solid_volume / box_volume == pytest.approx(0.45, rel=1e-12)
    relaxed = remove_overlaps(electrode, tolerance=1e-3, clearance=clearance)
    # with a clearance above the tolerance every pair ends apart, by at least their difference
    assert largest_overlap(relaxed.position, relaxed.radius, relaxed.box) < 1e-3 - clearance
    z, r, wall_gap = relaxed.position[:, 2], relaxed.radius, clearance / 2 - 1e-3
    assert (z - r > wall_gap).all() and (z + r < electrode.box.hi[2] - wall_gap).all()


def test_negative_clearance_is_refused():
    electrode = compact_affine(artistic_electrode(default_artistic_path()), 0.45, 0.4)
    with pytest.raises(ValueError, match="clearance = -0.001 µm must be a number >= 0"):
        remove_overlaps(electrode, clearance=-1e-3)


def test_contacts_within_rounding_counts_pairs_touching_to_round_off():
    """Pairs along x near x = 9 µm (rounding unit ~2e-15 µm): overlaps 1e-14 and 1e-13 µm are
    within 1000 rounding units, 1e-9 µm is a contact, −1e-14 µm a gap."""
    radius, overlaps = 0.65, (1e-14, 1e-13, 1e-9, -1e-14)
    position = []
    for k, overlap in enumerate(overlaps):
        position += [[9.0, 2.0 + 3.0 * k, 5.0], [9.0 + 2 * radius - overlap, 2.0 + 3.0 * k, 5.0]]
    position = np.array(position)
    box = Box(np.zeros(3), np.full(3, 20.0), (True, True, False))
    pairs = np.column_stack(np.triu_indices(len(position), 1))
    padded = np.vstack([pairs, [[len(position), len(position)]]])
    assert contacts_within_rounding(position, np.full(len(position), radius), padded, box) == 2


def test_impossible_compaction_is_refused():
    electrode = artistic_electrode(default_artistic_path())
    with pytest.raises(ValueError, match="solid fraction 0.7 must lie in"):
        compact_affine(electrode, 0.7)
    with pytest.raises(ValueError, match="thinner than the largest sphere"):
        compact_affine(electrode, 0.6, lateral_scale=3.0)


def write_authors_calendering_input(path, rows, box=((-2.0, 2.0), (-2.0, 2.0), (-5.0, 5.0))):
    """A data file in the layout of the authors' coord_out_electrode.sys (tab-separated, no atom
    style comment, 4 atom types)."""
    head = f"  LIGGGHTS Description\n\n\t{len(rows)} atoms\n\n\t4  atom types\n\n"
    bounds = "".join(f"{lo:.3f} {hi:.3f} {a}lo {a}hi\n" for (lo, hi), a in zip(box, "xyz"))
    atoms = "".join("\t".join(f"{v:.2E}" if k > 1 else str(v) for k, v in enumerate(row)) + "\n"
                    for row in rows)
    path.write_text(head + bounds + "\n\tAtoms\n\n" + atoms)


def test_authors_dried_electrode_maps_expanded_diameters_to_classes(tmp_path):
    from twin.process.pack import authors_dried_electrode

    rows = [(1, 1, 1.3, 0.95, 0.0, 0.0, 0.0), (2, 2, 2.55, 4.65, 1.0, 0.0, 1.0),
            (3, 2, 10.6, 4.65, 0.0, 1.0, -1.0), (4, 2, 5.98, 4.65, -1.0, 0.0, 2.0)]
    path = tmp_path / "coord_out_electrode.sys"
    write_authors_calendering_input(path, rows)
    electrode = authors_dried_electrode(path)
    assert electrode.am_class.tolist() == [0, 1, 6, 4]
    assert electrode.radius.tolist() == [0.65, 1.25, 5.175, 2.93]          # unexpanded classes
    expanded = electrode.with_am_expansion(1.02).radius
    np.testing.assert_allclose(expanded, [0.65, 1.275, 5.2785, 2.9886], rtol=1e-12)
    with pytest.raises(ValueError, match="AM diameter expansion 1.5 outside"):
        electrode.with_am_expansion(1.5)
    assert electrode.density.tolist() == [0.93, 4.65, 4.65, 4.65]          # calendering script
    assert electrode.box.periodic == (True, True, False)

    rows[2] = (3, 2, 7.0, 4.65, 0.0, 1.0, -1.0)                             # no class near 7 µm
    write_authors_calendering_input(path, rows)
    with pytest.raises(ValueError, match="AM sphere id 3 has diameter 7.0 µm"):
        authors_dried_electrode(path)
    rows[2] = (3, 3, 10.6, 4.65, 0.0, 1.0, -1.0)                            # a wall type
    write_authors_calendering_input(path, rows)
    with pytest.raises(ValueError, match=r"types 1 \(CBD\) and 2 \(AM\); found types \[1, 2, 3\]"):
        authors_dried_electrode(path)


def test_inertial_number_uses_the_sauter_diameter_and_the_solid_density():
    # monodisperse: I = γ̇ d √(ρ/P) exactly
    assert inertial_number([2.0, 2.0], [3.0, 3.0], 0.5, 12.0) == pytest.approx(0.5 * 4.0 * 0.5)
    # d32 = Σd³/Σd² of radii 1 and 2 is 2 (1 + 8)/(1 + 4) = 3.6; ρ is volume-weighted
    radius, density = np.array([1.0, 2.0]), np.array([1.0, 10.0])
    solid_density = (1.0 + 80.0) / 9.0
    assert inertial_number(radius, density, 1.0, 1.0) == pytest.approx(3.6 * np.sqrt(solid_density))
