"""TauFactor 1.2.1 reference tortuosity factors for the synthetic electrode images of `tests/images.py`.

Runs in its own virtualenv (see README_tortuosity.md), never in the project's environment:

    /work/venvs/taufactor/bin/python tools/reference/taufactor_tortuosity.py            # goldens, 128³ and 256³
    /work/venvs/taufactor/bin/python tools/reference/taufactor_tortuosity.py --time 256 multiphase 0

Goldens: `tests/golden/taufactor/electrode<N>.csv`, one row per (axis, mode). Modes and TauFactor solvers:

- binary:          pore (label 0) conducts with D_pore, AM and CBD insulate; ``taufactor.Solver`` (Dirichlet on the
                   outer voxel faces, no-flux lateral faces); D_eff = D_0 · D_rel with D_0 = D_pore.
- binary_periodic: the same with ``taufactor.PeriodicSolver`` (lateral faces periodic).
- multiphase:      pore D_pore, CBD D_CBD, AM insulating; ``taufactor.MultiPhaseSolver`` (harmonic-mean face
                   conductances, Dirichlet at ghost-layer centres one voxel outside, D_eff from (Nx + 1)).

TauFactor always drives the flux along its first axis, so the image is transposed with the chosen axis first
(``np.moveaxis(img, axis, 0)``). TauFactor's τ is D_mean / D_eff (binary: VF · D_0 / D_eff).
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import taufactor
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from images import electrode_image  # noqa: E402  (pure numpy, shared with the tests)

D_PORE, D_CBD = 7.5e-11, 2.46e-11
SEEDS = {128: 128, 256: 256}
MODES = ("binary", "binary_periodic", "multiphase")
FIELDS = ("image", "seed", "axis", "mode", "solver", "precision", "conv_crit", "tau", "d_eff", "iterations",
          "wall_s", "threads")


def use_precision(dtype):
    """TauFactor's solvers do not expose `precision`; route it into their common base class."""
    base = taufactor.taufactor.SORSolver
    original = getattr(base, "_twin_original_init", base.__init__)

    def init(self, img, omega=None, precision=None, device="cuda"):
        original(self, img, omega=omega, precision=dtype, device=device)

    base._twin_original_init = original
    base.__init__ = init


def make_solver(img, axis, mode):
    img = np.ascontiguousarray(np.moveaxis(img, axis, 0))
    if mode == "multiphase":
        phases = np.zeros(img.shape, dtype=np.uint8)          # AM (label 1) -> 0, TauFactor's insulator
        phases[img == 0] = 1
        phases[img == 2] = 2
        return taufactor.MultiPhaseSolver(phases, cond={1: D_PORE, 2: D_CBD}, device="cpu")
    pore = (img == 0).astype(np.uint8)
    cls = taufactor.PeriodicSolver if mode == "binary_periodic" else taufactor.Solver
    return cls(pore, D_0=D_PORE, device="cpu")


def run(size, axis, mode, precision, conv_crit):
    img = electrode_image((size,) * 3, seed=SEEDS[size])
    start = time.perf_counter()
    solver = make_solver(img, axis, mode)
    tau = float(np.ravel(solver.solve(verbose=False, conv_crit=conv_crit, iter_limit=200000))[0])
    wall = time.perf_counter() - start
    return {"image": f"electrode{size}", "seed": SEEDS[size], "axis": axis, "mode": mode,
            "solver": type(solver).__name__, "precision": precision, "conv_crit": conv_crit,
            "tau": repr(tau), "d_eff": repr(float(np.ravel(solver.D_eff)[0])), "iterations": solver.iter,
            "wall_s": round(wall, 3), "threads": torch.get_num_threads()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], choices=sorted(SEEDS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--axes", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2])
    parser.add_argument("--precision", default="float32", choices=["float32", "float64"])
    parser.add_argument("--conv-crit", type=float, default=1e-2, help="TauFactor's flux criterion (its default 1e-2)")
    parser.add_argument("--time", nargs=3, metavar=("SIZE", "MODE", "AXIS"),
                        help="time one solve and print its row as JSON (for benchmarks/tortuosity.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "golden" / "taufactor")
    args = parser.parse_args()
    use_precision(getattr(torch, args.precision))
    if args.time:
        size, mode, axis = int(args.time[0]), args.time[1], int(args.time[2])
        print(json.dumps(run(size, axis, mode, args.precision, args.conv_crit)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        path = args.out / f"electrode{size}.csv"
        for axis in args.axes:
            for mode in args.modes:
                row = run(size, axis, mode, args.precision, args.conv_crit)
                print(row, flush=True)
                write_row(path, row)
        print("wrote", path)


def write_row(path, row):
    """Add or replace the (axis, mode) row of a golden CSV, so that a long run keeps what it finished."""
    rows = []
    if path.exists():
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if (int(r["axis"]), r["mode"]) != (row["axis"], row["mode"])]
    rows.append(row)
    rows.sort(key=lambda r: (int(r["axis"]), MODES.index(r["mode"])))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)

if __name__ == "__main__":
    main()
