"""The CPU fusion boundary (twin.physics.fusion.materialize) is an exact identity that XLA keeps."""

import jax
import jax.numpy as jnp
import numpy as np

from twin.physics.fusion import materialize


def test_materialize_returns_every_value_bit_for_bit_whatever_its_first_element():
    for first in (1.0, -1.0, 0.0, np.nan):   # the predicate's true and false branches
        values = jnp.array([first, -0.0, np.inf, -np.inf, np.nan, 3.25])
        vectors = jnp.arange(6.0).reshape(2, 3)
        out_values, out_vectors = jax.jit(materialize)((values, vectors))
        assert np.array_equal(np.asarray(out_values).view(np.int64),
                              np.asarray(values).view(np.int64))
        assert np.array_equal(out_vectors, vectors)


def test_materialize_is_a_conditional_in_the_compiled_cpu_program():
    """If JAX or XLA ever removed the identity conditional, the boundary (and the speed of the
    pair phase) would be lost silently."""
    def chain(x):
        y = materialize(x * 2.0 + 1.0)
        return y[:, 0] * y[:, 1] + y[:, 2]

    text = jax.jit(chain).lower(jnp.ones((5, 3))).compile().as_text()
    assert "conditional(" in text


def test_gradients_and_vmap_pass_through_unchanged():
    def loss(x):
        return jnp.sum(materialize(x) ** 2)

    x = jnp.array([[1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(jax.grad(loss)(x), 2.0 * x)
    batched = jax.vmap(materialize)(jnp.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(batched, jnp.arange(6.0).reshape(2, 3))


def test_empty_arrays_pass_without_a_conditional():
    out = materialize(jnp.zeros((0, 3)))
    assert out.shape == (0, 3)
