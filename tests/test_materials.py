"""Material tables: Table 2 of the paper, both mixing rules, Rayleigh times from FACTS.md."""

import numpy as np
import pytest

from twin.physics.materials import Materials, damping_beta, rayleigh_time

NAMES = ("CBD", "AM", "Al", "steel")
TABLE2 = dict(youngs_modulus=np.array([2e6, 200e6, 69e6, 200e6]),
              poisson=np.array([0.5, 0.3, 0.3, 0.3]),
              restitution=np.array([0.15, 0.15, 0.5, 0.78]),
              friction=np.array([0.001, 0.001, 1.2, 0.76]),
              cohesion_energy_density=np.array([7e4, 6e5, 5.5e5, 6e5]))


def test_geometric_mixing_is_the_square_root_of_products():
    m = Materials.from_types(NAMES, **TABLE2, mixing="geometric")
    e, mu, ced = TABLE2["restitution"], TABLE2["friction"], TABLE2["cohesion_energy_density"]
    np.testing.assert_allclose(m.restitution, np.sqrt(np.outer(e, e)), rtol=1e-15)
    np.testing.assert_allclose(m.friction, np.sqrt(np.outer(mu, mu)), rtol=1e-15)
    np.testing.assert_allclose(m.cohesion_energy_density, np.sqrt(np.outer(ced, ced)), rtol=1e-15)


def test_artistic_mixing_applies_only_the_script_exceptions():
    geometric = Materials.from_types(NAMES, **TABLE2, mixing="geometric")
    artistic = Materials.from_types(NAMES, **TABLE2, mixing="artistic")
    assert float(artistic.restitution[0, 3]) == pytest.approx((0.15 * 0.78) ** (2 / 3), rel=1e-14)
    assert float(artistic.restitution[3, 0]) == float(artistic.restitution[0, 3])
    ced = TABLE2["cohesion_energy_density"]
    np.testing.assert_allclose(artistic.cohesion_energy_density[3], (ced * 6e5) ** 0.45, rtol=1e-14)
    np.testing.assert_allclose(artistic.cohesion_energy_density[:, 3], (ced * 6e5) ** 0.45,
                               rtol=1e-14)
    untouched = np.ones((4, 4), bool)
    untouched[3, :] = untouched[:, 3] = False
    np.testing.assert_array_equal(artistic.cohesion_energy_density[untouched],
                                  geometric.cohesion_energy_density[untouched])
    e_untouched = np.ones((4, 4), bool)
    e_untouched[0, 3] = e_untouched[3, 0] = False
    np.testing.assert_array_equal(artistic.restitution[e_untouched],
                                  geometric.restitution[e_untouched])
    np.testing.assert_array_equal(artistic.friction, geometric.friction)


def test_unknown_mixing_rule_and_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match="unknown mixing rule 'harmonic'"):
        Materials.from_types(NAMES, **TABLE2, mixing="harmonic")
    with pytest.raises(ValueError, match=r"poisson has shape \(3,\); expected one value per type"):
        Materials.from_types(NAMES, **dict(TABLE2, poisson=np.array([0.3, 0.3, 0.3])))


def test_damping_vanishes_for_elastic_contacts():
    assert float(damping_beta(1.0)) == 0.0
    assert -1.0 < float(damping_beta(0.15)) < 0.0


def test_rayleigh_times_quoted_in_facts():
    # FACTS.md: CBD d 1.3 -> 2.5e-3 µs, AM d 2.5 -> 1.0e-3 µs.
    assert float(rayleigh_time(0.65, 0.93, 2e6, 0.5)) == pytest.approx(2.5e-3, rel=0.02)
    assert float(rayleigh_time(1.25, 4.65, 200e6, 0.3)) == pytest.approx(1.0e-3, rel=0.05)


@pytest.mark.parametrize("model", ["sjkr", "sjkr2"])
@pytest.mark.parametrize("wall", [False, True])
def test_equilibrium_overlap_balances_hertz_repulsion_and_sjkr_attraction(model, wall):
    """At δ_c = ratio · R* the contact law's Hertz force equals its SJKR cohesion (exactly for
    sjkr2 and for the sjkr plane area to first order, here at a small ratio)."""
    from twin.physics.cohesion import (equilibrium_overlap_ratio, sphere_contact_area,
                                       wall_contact_area)
    from twin.physics.hertz import hertz_normal_force
    r_i, r_j, e_star, ced = 0.65, 0.65, 1.0e6, 2.0e4
    r_star = r_i if wall else r_i * r_j / (r_i + r_j)
    overlap = float(equilibrium_overlap_ratio(model, ced, e_star, wall)) * r_star
    repulsion = float(hertz_normal_force(overlap, 0.0, r_star, 1.0, e_star, 0.0)[0])
    area = wall_contact_area(model, overlap, r_i) if wall else \
        sphere_contact_area(model, overlap, r_i + r_j - overlap, r_i, r_j)
    exact = model == "sjkr2"
    assert repulsion == pytest.approx(ced * float(area), rel=1e-12 if exact else 0.02)


def test_collapsing_pairs_names_the_carbon_binder_at_soft_and_sticky_values():
    from twin.physics.materials import collapsing_pairs
    table2 = Materials.from_types(NAMES, **TABLE2, mixing="artistic")
    assert collapsing_pairs(table2, "sjkr2", [0, 1], [2, 3]) == []
    soft = dict(TABLE2, youngs_modulus=TABLE2["youngs_modulus"] * [0.5, 1, 1, 1],
                cohesion_energy_density=TABLE2["cohesion_energy_density"] * [1.5, 1, 1, 1])
    lines = collapsing_pairs(Materials.from_types(NAMES, **soft, mixing="artistic"), "sjkr2",
                             [0, 1], [2, 3])
    assert [line.split(" (")[0] for line in lines] == ["CBD–CBD: δ_c/R* = 2.2",
                                                       "CBD–AM: δ_c/R* = 3.19"]
    assert collapsing_pairs(Materials.from_types(NAMES, **soft, mixing="artistic"), "none",
                            [0, 1], [2, 3]) == []
