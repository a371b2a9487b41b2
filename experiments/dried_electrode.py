"""The paper-size dried electrode made by the stand-in drying stage (:mod:`twin.process.dry`).

Generated artefact: ``experiments/data/dried_paper_electrode.data`` (LAMMPS sphere data, type 1
CBD, 2..7 AM classes, µm) and ``experiments/data/dried_paper_electrode.json`` (the drying record:
porosity, thickness, steps, wall time, precision, machine, git commit) were written by this script
and copied there; they are not hand-edited. Regenerate them with (float64, ~30–60 min on a 2-core
CPU)::

    python experiments/dried_electrode.py --out experiments/out/dried_paper
    cp experiments/out/dried_paper/dried_electrode.data experiments/data/dried_paper_electrode.data
    cp experiments/out/dried_paper/dried_record.json experiments/data/dried_paper_electrode.json

Input: the authors' initial structure ``shared/data/artistic/thick_electrode_initial.data``
(396 AM + 9463 CBD spheres) in the paper's 25.8 × 25.8 µm cell, pressed to the dried porosity
41.6 % (Table 1). Progress is printed per DEM chunk (1000 steps, 0.1 µs).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import jax

import twin  # noqa: F401  (enables float64)
from twin.process.dry import dried_electrode, save_dried_electrode

REPOSITORY = Path(__file__).resolve().parents[1]


def default_thick_path() -> Path:
    return REPOSITORY.parent / "shared" / "data" / "artistic" / "thick_electrode_initial.data"


def git_state() -> tuple[str, list[str]]:
    """The commit of the code that makes the file and the files of ``twin/`` that differ from it
    (uncommitted changes, e.g. by other people working in the same checkout)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPOSITORY, capture_output=True,
                              text=True).stdout.strip()
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "twin").splitlines()]
    return git("rev-parse", "HEAD"), dirty


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPOSITORY / "experiments/out/dried_paper",
                        help="output folder (dried_electrode.data, dried_record.json)")
    parser.add_argument("--input", type=Path, default=default_thick_path(),
                        help="the authors' initial structure (LAMMPS data)")
    parser.add_argument("--slab-fraction", type=float, default=1.0,
                        help="keep the lowest fraction of the initial box (1: the paper size)")
    args = parser.parse_args(argv)
    if not args.input.is_file():
        raise SystemExit(f"input structure {args.input} not found: pass --input PATH")
    start = time.perf_counter()

    def progress(p):
        print(f"{time.perf_counter() - start:8.1f} s  cycle {p.cycle} {p.phase:6s} "
              f"drag {p.drag_rate:g}/µs  step {p.step:7d}  plate {p.plate_z:8.3f} µm  "
              f"top {p.top_z:8.3f} µm  P {p.plate_pressure:9.3g} kPa  KE {p.kinetic_energy:9.3g}",
              flush=True)

    commit, dirty = git_state()
    electrode, record = dried_electrode(args.input, slab_fraction=args.slab_fraction,
                                        progress=progress)
    data = save_dried_electrode(args.out, electrode, record)
    record_path = args.out / "dried_record.json"
    summary = json.loads(record_path.read_text())
    summary["generated"] = {
        "note": "generated artefact of experiments/dried_electrode.py; regenerate with: python "
                "experiments/dried_electrode.py --out experiments/out/dried_paper (see the "
                "script's docstring)",
        "precision": "float64" if jax.config.jax_enable_x64 else "float32",
        "machine": f"{platform.node()} {platform.machine()} {platform.processor()} "
                   f"({jax.devices()[0].platform}, JAX {jax.__version__})".strip(),
        "git_commit": commit,
        "uncommitted_twin_files": dirty,
        "script_wall_seconds": time.perf_counter() - start,
    }
    record_path.write_text(json.dumps(summary, indent=1))
    print(f"porosity {record.porosity_top:.4f}, thickness {record.thickness_um:.3f} µm, "
          f"steps {record.steps}, wall {record.wall_seconds:.0f} s -> {data}")
    return summary


if __name__ == "__main__":
    main()
