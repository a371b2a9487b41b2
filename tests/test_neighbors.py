"""The polydisperse pair list finds exactly the brute-force pairs, flags overflow, and the
driver re-allocates without losing contacts or shear history."""

import jax.numpy as jnp
import numpy as np
import pytest

from helpers import lattice_gas
from twin.io.case import prepare
from twin.physics.neighbors import (allocate_neighbors, build_pairs, carry_shear_history,
                                    needs_rebuild)
from twin.physics.simulate import simulate
from twin.physics.space import Box


def brute_force_pairs(position, radius, box, skin):
    d = position[:, None, :] - position[None, :, :]
    length = np.asarray(box.length)
    for axis, periodic in enumerate(box.periodic):
        if periodic:
            d[..., axis] -= length[axis] * np.round(d[..., axis] / length[axis])
    close = np.linalg.norm(d, axis=-1) < radius[:, None] + radius[None, :] + skin
    i, j = np.nonzero(np.triu(close, k=1))
    return {(min(a, b), max(a, b)) for a, b in zip(i, j)}


def electrode_like(n_small=600, n_large=12, seed=3):
    """CBD-sized and AM-sized spheres (radius ratio ~8) at random, periodic in x and y."""
    rng = np.random.default_rng(seed)
    box = Box(np.array([0.0, 0.0, 0.0]), np.array([30.0, 30.0, 12.0]), (True, True, False))
    radius = np.concatenate([np.full(n_small, 0.65), rng.choice([1.25, 2.93, 5.175], n_large)])
    position = rng.uniform([0, 0, 0], [30, 30, 12], (len(radius), 3))
    return position, radius, box


@pytest.mark.parametrize("skin", [0.1, 0.4])
def test_pair_list_matches_brute_force(skin):
    position, radius, box = electrode_like()
    spec, pair_list = allocate_neighbors(position, radius, box, skin)
    assert not bool(pair_list.overflow)
    pairs = np.asarray(pair_list.pairs)[: int(pair_list.count)]
    found = {(min(a, b), max(a, b)) for a, b in pairs}
    assert len(found) == len(pairs), "duplicate pairs in the list"
    assert found == brute_force_pairs(position, radius, box, skin)
    owners_larger = radius[pairs[:, 0]] >= radius[pairs[:, 1]]
    assert owners_larger.all(), "a pair must be owned by its larger sphere"


def test_wall_lists_hold_exactly_the_spheres_within_reach():
    position, radius, box = electrode_like()
    wall_z, wall_normal_z, skin = np.array([0.0, 12.0]), np.array([1.0, -1.0]), 0.3
    spec, pair_list = allocate_neighbors(position, radius, box, skin, wall_z=wall_z,
                                         wall_normal_z=wall_normal_z)
    assert not bool(pair_list.overflow)
    for w in range(2):
        gap = (position[:, 2] - wall_z[w]) * wall_normal_z[w] - radius
        listed = np.asarray(pair_list.wall_particles[w])
        assert set(listed[listed < len(radius)]) == set(np.flatnonzero(gap < skin))
    _, tight = allocate_neighbors(position, radius, box, skin, wall_z=wall_z,
                                  wall_normal_z=wall_normal_z, wall_capacity=3)
    assert bool(tight.overflow)
    # The list expires once a wall has moved skin/2, even if no sphere moved.
    assert not bool(needs_rebuild(pair_list, jnp.asarray(position), box, skin, wall_z + 0.14))
    assert bool(needs_rebuild(pair_list, jnp.asarray(position), box, skin, wall_z + 0.16))


def test_overflow_is_flagged_never_silent():
    position, radius, box = electrode_like()
    spec, pair_list = allocate_neighbors(position, radius, box, 0.3, pair_capacity=10)
    assert int(pair_list.count) > 10
    assert bool(pair_list.overflow)
    spec, pair_list = allocate_neighbors(position, radius, box, 0.3, candidate_capacity=10)
    assert bool(pair_list.overflow)


def test_shear_history_follows_pair_identity():
    position, radius, box = electrode_like()
    spec, old = allocate_neighbors(position, radius, box, 0.3)
    n = len(radius)
    count = int(old.count)
    shear = jnp.where((jnp.arange(old.pairs.shape[0]) < count)[:, None],
                      jnp.asarray(old.pairs[:, :1] * 1000 + old.pairs[:, 1:], float)
                      * jnp.array([1.0, -1.0, 0.5]), 0.0)
    shifted = position + np.random.default_rng(0).normal(scale=0.05, size=position.shape)
    new = build_pairs(jnp.asarray(shifted), jnp.asarray(radius), box, spec)
    carried = np.asarray(carry_shear_history(old.pairs, shear, new.pairs, n))
    old_keys = {tuple(p) for p in np.asarray(old.pairs)[:count]}
    for (i, j), value in zip(np.asarray(new.pairs)[: int(new.count)], carried):
        expected = (i * 1000 + j) * np.array([1.0, -1.0, 0.5]) if (i, j) in old_keys else 0.0
        np.testing.assert_array_equal(value, expected)


def test_reallocation_reproduces_a_roomy_run():
    case = lattice_gas(n_side=5, spacing=2.3, speed=1.0, steps=4000, dt=2.5e-4)
    state, spec, config, box, materials = prepare(case)
    roomy = simulate(state, materials, box, spec, config, case.steps, 1000)
    tight_spec, tight_list = allocate_neighbors(state.spheres.position, state.spheres.radius,
                                                box, spec.skin, pair_capacity=4)
    tight_state = prepare(case)[0]
    import equinox as eqx
    tight_state = eqx.tree_at(lambda s: (s.neighbors, s.pair_shear), tight_state,
                              (tight_list, jnp.zeros((4, 3))))
    # The initial list is incomplete on purpose; the driver must detect it at the first chunk.
    tight = simulate(tight_state, materials, box, tight_spec, config, case.steps, 1000)
    assert tight.reallocations >= 1
    np.testing.assert_allclose(tight.state.spheres.position, roomy.state.spheres.position,
                               rtol=0, atol=1e-9)
