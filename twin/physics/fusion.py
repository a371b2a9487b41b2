"""Fusion boundaries for XLA on CPU: compute an intermediate once, into memory.

XLA's CPU loop fusion evaluates every output element of a fusion on its own. When a fused (K, 3)
intermediate is read at several components later in the same fusion — a dot or cross product,
a norm — every read recomputes the whole chain that produced it, and the chains nest: in the
contact law the tangential velocity feeds the shear update, whose projection, spring norm and
Coulomb test each read all three components. ``lax.optimization_barrier`` does not stop this (the
CPU compiler expands it before fusion); a conditional does, since XLA never fuses across one.

:func:`materialize` therefore passes its operands through an identity ``lax.cond``: both branches
return the operands unchanged, so the value is exactly its input whatever the predicate (taken
from the data, so that XLA cannot fold it). On the 3945-sphere compaction (float64, one core of
an Intel Xeon, JAX 0.10.2) boundaries at the contact geometry, the law's tangential velocity,
projected shear and outputs cut the pair phase from 2.37 to 1.36 ms per step; one more at the
per-contact tangential coefficients (k_t, the Coulomb scale, the damping: before, each of the
three components of the three law outputs recomputed them) cut a whole step on an AMD EPYC core
from 1.54 to 1.26 ms, with the stacked pair constants of :mod:`twin.physics.dem`
(``benchmarks/RESULTS.md``). Off CPU it is the identity without a conditional: a conditional on
GPU reads its predicate back to the host every time it runs.
"""

import jax
from jax import lax


def materialize(tree):
    """``tree`` (floating-point leaves) unchanged, as a fusion boundary on CPU (see the module
    docstring)."""
    leaves = jax.tree.leaves(tree)
    if jax.default_backend() != "cpu" or not leaves or leaves[0].size == 0:
        return tree

    def identity(operands):   # not ``lambda x: x``: JAX would forward those outputs past the cond
        return jax.tree.map(lambda x: x * 1, operands)

    return lax.cond(leaves[0].ravel()[0] > 0, identity, identity, tree)
