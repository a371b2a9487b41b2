"""twin: a differentiable JAX digital twin of lithium-ion electrode manufacturing.

Units inside the package are LAMMPS ``micro`` (mass pg, length µm, time µs); see
:mod:`twin.units` for conversions at the edges. 64-bit types are enabled on import so that
physics comparisons run in float64; a simulation may still be run in float32 by passing
float32 arrays (each result records which precision it used).
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
