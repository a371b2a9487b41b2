"""Orthorhombic box with per-axis periodicity: minimum-image displacements and wrapping."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax import Array


class Box(eqx.Module):
    """Axis-aligned box [lo, hi) in µm; ``periodic`` per axis (static), e.g. (True, True, False).

    lo and hi are arrays (not static) so that a barostat may change them during a run.
    Along a non-periodic axis the box is the region the neighbour grid covers: particles must stay
    inside it (walls usually bound it).
    """

    lo: Array
    hi: Array
    periodic: tuple[bool, bool, bool] = eqx.field(static=True)

    @property
    def length(self) -> Array:
        return self.hi - self.lo


def minimum_image(displacement: Array, box: Box) -> Array:
    """Shortest periodic image of displacement vectors (..., 3) along the periodic axes."""
    length = box.length
    periodic = jnp.asarray(box.periodic)
    wrapped = displacement - length * jnp.round(displacement / length)
    return jnp.where(periodic, wrapped, displacement)


def wrap_positions(position: Array, box: Box) -> Array:
    """Map positions back into [lo, hi) along the periodic axes."""
    periodic = jnp.asarray(box.periodic)
    wrapped = box.lo + jnp.mod(position - box.lo, box.length)
    return jnp.where(periodic, wrapped, position)


def rewrap_positions(position: Array, box: Box) -> Array:
    """:func:`wrap_positions` for positions less than one box length outside [lo, hi) (wrapped
    positions moved by one time step), bit for bit: with y = x - lo in [-L, 2L), mod(y, L) is y,
    y + L or y - L (the last exact, Sterbenz). Selects instead of the floating-point remainder,
    which XLA on CPU evaluates with a libm call per coordinate (~60 µs of a ~1.3 ms DEM step
    for 3945 spheres, measured; the selects ~4 µs)."""
    length = box.length
    y = position - box.lo
    y = jnp.where(y < 0.0, y + length, jnp.where(y >= length, y - length, y))
    return jnp.where(jnp.asarray(box.periodic), box.lo + y, position)
