"""Throughput of the DEM step on dense packings of N equal spheres (particle-steps per second).

A cubic lattice at 0.995 × contact spacing (every sphere touches its six neighbours), damped,
frictional and cohesive, fully periodic: the contact-dominated regime of a calendered electrode.
The issue's GPU target is >= 3e8 particle-steps/s for 1e5 particles in float32.

    python benchmarks/dem_scaling.py --sizes 1000 8000 100000 --precision float32
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import lattice_gas, uniform_materials  # noqa: E402

from twin.io.case import prepare  # noqa: E402
from twin.physics.dem import run  # noqa: E402


def throughput(n_side: int, precision: str, steps: int) -> dict:
    case = lattice_gas(n_side=n_side, spacing=1.99, speed=0.001, steps=steps,
                       materials=uniform_materials(restitution=0.5, friction=0.5, ced=1e4),
                       cohesion="sjkr2")
    case.precision = precision
    state, spec, config, box, materials = prepare(case)
    advance = jax.jit(lambda s: run(s, materials, box, spec, config, 1, steps, False)[0])
    state = jax.block_until_ready(advance(state))          # compile + warm up
    start = time.perf_counter()
    state = jax.block_until_ready(advance(state))
    seconds = time.perf_counter() - start
    n = n_side**3
    return {"particles": n, "steps": steps, "precision": precision, "seconds": seconds,
            "particle_steps_per_second": n * steps / seconds,
            "timesteps_per_second": steps / seconds, "overflow": bool(state.neighbors.overflow)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000, 27000])
    parser.add_argument("--precision", choices=["float64", "float32"], default="float64")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()}), host {platform.node()}")
    results = []
    for n in args.sizes:
        n_side = round(n ** (1 / 3))
        result = throughput(n_side, args.precision, args.steps)
        results.append(result)
        print(f"N = {result['particles']:>7d} ({args.precision}): "
              f"{result['particle_steps_per_second']:.3g} particle-steps/s, "
              f"{result['timesteps_per_second']:.3g} timesteps/s")
    if args.json:
        args.json.write_text(json.dumps({"device": device.device_kind, "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
