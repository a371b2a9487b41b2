"""The same compaction in the twin and in LIGGGHTS 3.8: particle-steps per second and their ratio.

Case: tests/golden/liggghts/compaction_small (3945 spheres of the small example electrode,
periodic x y, steel plate descending at 1 µm/µs onto an aluminium floor, hertz + tangential history
+ sjkr2), the first ``--steps`` steps of its loading stroke. LIGGGHTS runs the input written by
tools/reference/liggghts_compaction.py (its `Loop time`, i.e. without set-up); the twin is timed
after compilation. Each is run on 1 core (taskset) and on all cores (LIGGGHTS: mpirun -np N; the
twin: as many XLA devices as ``--devices`` says), in float64 and in the twin's mixed float32.

``--devices N`` (all-cores row only; default 1): the twin process gets N host CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``) and splits the pair phase of every step
over them (``DEMConfig.mesh = pair_mesh(N)``, :mod:`twin.physics.dem`): each device runs the
contact law on its block of pair slots, one psum adds the partial forces. With 1 device XLA's CPU
runtime gains little from a second core (~10 % on this case).

    python benchmarks/dem_vs_liggghts.py --steps 10000 --devices 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "tests" / "golden" / "liggghts" / "compaction_small"


def twin_rate(steps: int, precision: str, devices: int) -> dict:
    """Worker: time the twin on this process's cores (call through a subprocess, with
    ``XLA_FLAGS`` forcing ``devices`` host devices)."""
    import jax

    sys.path.insert(0, str(ROOT / "tests"))
    from golden_cases import load_reference_case

    from twin.io.case import prepare
    from twin.physics.dem import pair_mesh
    from twin.physics.simulate import simulate

    case, doc = load_reference_case(CASE)
    case.precision = precision
    state, spec, config, box, materials = prepare(case)
    if devices > 1:
        config = dataclasses.replace(config, mesh=pair_mesh(devices))
    chunk = 1000
    simulate(state, materials, box, spec, config, chunk, chunk, record_particles=False,
             chunk_steps=chunk)                                   # compile
    start = time.perf_counter()
    result = simulate(state, materials, box, spec, config, steps, chunk, record_particles=False,
                      chunk_steps=chunk)
    seconds = time.perf_counter() - start
    return {"code": "twin", "precision": precision, "seconds": seconds,
            "particle_steps_per_second": len(case.radius) * steps / seconds,
            "reallocations": result.reallocations, "device": jax.devices()[0].device_kind,
            "devices": devices}


def liggghts_rate(steps: int, ranks: int) -> dict:
    sys.path.insert(0, str(ROOT / "tools" / "reference"))
    import liggghts_compaction as reference

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        stage = reference.measure_setup(work, load_steps=steps, unload_steps=0)
        reference.run_liggghts(work, "in.measure.liggghts", "log.bench", nproc=ranks)
        seconds = next(s for n, s in reference.loop_times(work / "log.bench") if n == steps)
    return {"code": "LIGGGHTS 3.8", "precision": "float64", "ranks": ranks, "seconds": seconds,
            "particle_steps_per_second": len(stage["ids"]) * steps / seconds}


def _subprocess(args: list[str], cores: str | None, devices: int = 1) -> dict:
    command = [sys.executable, __file__, *args]
    if cores:
        command = ["taskset", "-c", cores] + command
    env = dict(os.environ)
    if devices > 1:   # must be set before JAX initialises in the worker
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                            + f" --xla_force_host_platform_device_count={devices}").strip()
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--worker", choices=["twin-float64", "twin-float32", "liggghts"])
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--devices", type=int, default=1,
                        help="XLA host devices for the twin on all cores (pair phase split "
                             "over them); the 1-core row always uses 1")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.worker == "liggghts":
        print(json.dumps(liggghts_rate(args.steps, args.ranks)))
        return
    if args.worker:
        print(json.dumps(twin_rate(args.steps, args.worker.split("-")[1], args.devices)))
        return
    if not 1 <= args.devices <= os.cpu_count():
        sys.exit(f"--devices {args.devices}: use 1..{os.cpu_count()} (one per core)")
    if shutil.which("liggghts") is None:
        sys.exit("LIGGGHTS is not installed: apt-get install -y liggghts (and openmpi-bin)")
    rows = []
    for cores, label in (("0", "1 core"), (None, f"{os.cpu_count()} cores")):
        ranks = 1 if cores else os.cpu_count()
        devices = 1 if cores else args.devices
        reference = _subprocess(["--worker", "liggghts", "--steps", str(args.steps),
                                 "--ranks", str(ranks)], cores)
        for precision in ("float64", "float32"):
            twin = _subprocess(["--worker", f"twin-{precision}", "--steps", str(args.steps),
                                "--devices", str(devices)], cores, devices)
            ratio = twin["particle_steps_per_second"] / reference["particle_steps_per_second"]
            rows.append({"cores": label, "twin": twin, "liggghts": reference, "ratio": ratio})
            print(f"{label:>8s}  twin {precision} ({devices} device{'s' if devices > 1 else ''}): "
                  f"{twin['particle_steps_per_second']:.3g} "
                  f"particle-steps/s   LIGGGHTS ({ranks} rank{'s' if ranks > 1 else ''}): "
                  f"{reference['particle_steps_per_second']:.3g} particle-steps/s   "
                  f"ratio twin/LIGGGHTS = {ratio:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
