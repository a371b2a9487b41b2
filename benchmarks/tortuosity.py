"""Tortuosity solve: twin (JAX, MG-preconditioned CG) vs TauFactor 1.2.1 (PyTorch SOR) on the same image.

Both run in float32 (TauFactor's default precision) on the CPU, on the seeded electrode image of
tests/images.py, with the same flux criterion: TauFactor's `conv_crit` (max - min)/max of the plane fluxes,
plus its |Δτ| < 2e-3 per 100 iterations; the twin's `rtol` on (max - min)/mean of the plane fluxes and on the
relative change of D_eff per iteration. TauFactor runs in its own venv through
tools/reference/taufactor_tortuosity.py --time (a subprocess that prints its wall time, set-up included).
The twin is timed after a warm-up call; compile time = first call - warm call.

    python benchmarks/tortuosity.py                       # 256³, binary and multiphase, flux along x
    python benchmarks/tortuosity.py --size 128 --rtol 1e-3
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from images import electrode_image  # noqa: E402

from twin.analysis.tortuosity import DEFAULT_DIFFUSIVITY, tortuosity  # noqa: E402

MODES = {"binary": ((DEFAULT_DIFFUSIVITY[0], 0.0, 0.0), "face"), "multiphase": (DEFAULT_DIFFUSIVITY, "ghost")}
SEEDS = {128: 128, 256: 256}


def taufactor_time(python, size, mode, axis, rtol):
    out = subprocess.run([python, str(ROOT / "tools/reference/taufactor_tortuosity.py"), "--time", str(size),
                          mode, str(axis), "--conv-crit", str(rtol)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def twin_time(img, axis, mode, rtol):
    diffusivity, dirichlet = MODES[mode]
    start = time.perf_counter()
    tortuosity(img, axis, diffusivity=diffusivity, dirichlet=dirichlet, rtol=rtol, dtype=jnp.float32)
    first = time.perf_counter() - start
    start = time.perf_counter()
    res = tortuosity(img, axis, diffusivity=diffusivity, dirichlet=dirichlet, rtol=rtol, dtype=jnp.float32)
    warm = time.perf_counter() - start
    return res, warm, first - warm


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, choices=sorted(SEEDS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--axis", type=int, default=0, choices=[0, 1, 2])
    parser.add_argument("--rtol", type=float, default=1e-2, help="flux criterion for both (TauFactor's default)")
    parser.add_argument("--taufactor-python", default="/work/venvs/taufactor/bin/python")
    args = parser.parse_args()
    img = electrode_image((args.size,) * 3, seed=SEEDS[args.size])
    print(f"{args.size}³ electrode image (seed {SEEDS[args.size]}), flux along axis {args.axis}, float32, "
          f"criterion {args.rtol:g}")
    print(f"{'mode':<11}{'TauFactor s':>12}{'iters':>7}{'τ_TF':>10}{'twin s':>9}{'compile s':>10}{'iters':>7}"
          f"{'τ_twin':>10}{'speed-up':>10}")
    for mode in args.modes:
        ref = taufactor_time(args.taufactor_python, args.size, mode, args.axis, args.rtol)
        res, warm, compile_s = twin_time(img, args.axis, mode, args.rtol)
        print(f"{mode:<11}{ref['wall_s']:>12.2f}{ref['iterations']:>7}{float(ref['tau']):>10.5f}{warm:>9.2f}"
              f"{compile_s:>10.2f}{res.iterations:>7}{res.tau_taufactor:>10.5f}{ref['wall_s'] / warm:>9.1f}×",
              flush=True)


if __name__ == "__main__":
    main()
