"""One full calendering of the paper-size electrode: the twin's wall time, and LIGGGHTS 3.8 with the
paper's protocol extrapolated from a timed segment, printed as a ratio.

    python benchmarks/calender.py --pressure 10

Twin: :func:`twin.process.calender.calender` on the committed dried electrode
(``experiments/data/dried_paper_electrode.data``: 9859 spheres, 25.8 × 25.8 µm, 163.8 µm thick),
Table 2 materials with the authors' mixing, the fast protocol of
``experiments/fig2b_porosity_pressure.py`` (plate 2 m/s, no drag, no AM expansion, dt 1e-4 µs),
float64 by default; the wall time includes compilation and every chunk, down to the target
pressure and back up until the recovery is measured.

LIGGGHTS: the same spheres, walls (Al floor, steel plate), Table 2 materials (geometric-mean
mixing everywhere: the authors' two exceptions change the cost of nothing) and contact model
(hertz, tangential history, sjkr2), input written with the helpers of
``tools/reference/liggghts_compaction.py``; ``--liggghts-steps`` steps of the plate descending at
the paper's 0.002 µm/µs from the dried state are timed (`Loop time`) on 1 rank and on one rank
per core, and the particle-step rate is extrapolated to

* the paper's protocol (FACTS.md: dt 1e-4 µs, plate 0.002 m/s down by the twin's measured
  travel and the same back up), and
* the twin's protocol (the twin's own step count), for a like-for-like engine comparison.

The rate is measured on the dried packing; contacts multiply as the electrode densifies, so the
extrapolation is a lower bound on LIGGGHTS' time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ELECTRODE = ROOT / "experiments" / "data" / "dried_paper_electrode.data"
PAPER_PLATE_SPEED_UM_US = 0.002   # FACTS.md: 0.002 m/s
PAPER_DT_US = 1e-4


def twin_calendering(electrode_path: Path, pressure_mpa: float, plate_speed: float,
                     precision: str) -> dict:
    """Run one calendering in this process; wall time from the call to the measured recovery."""
    import jax

    from twin.process.calender import CalenderProtocol, calender
    from twin.process.pack import artistic_electrode

    electrode = artistic_electrode(electrode_path)
    protocol = CalenderProtocol(target_pressure_mpa=pressure_mpa, plate_speed_um_us=plate_speed,
                                am_expansion=1.0, precision=precision)
    start = time.perf_counter()

    def progress(steps, gap_um, pressure, phase):
        print(f"  twin {steps:>8d} steps  gap {gap_um:8.3f} µm  {pressure:7.3f} MPa  {phase}  "
              f"({time.perf_counter() - start:5.0f} s)", file=sys.stderr, flush=True)

    result = calender(electrode, protocol, progress=progress)
    seconds = time.perf_counter() - start
    summary = result.summary
    travel_um = summary["initial_thickness_um"] + protocol.gap_um - summary["min_plate_gap_um"]
    return {"seconds": seconds, "steps": summary["steps"], "particles": summary["particles"],
            "travel_um": travel_um, "final_porosity": summary["final_porosity"],
            "max_pressure_MPa": summary["max_pressure_MPa"], "precision": precision,
            "device": jax.devices()[0].device_kind}


def liggghts_rate(electrode_path: Path, steps: int, ranks: int) -> dict:
    """Particle-steps per second of LIGGGHTS on the dried electrode, plate at the paper's speed."""
    sys.path.insert(0, str(ROOT / "tools" / "reference"))
    import liggghts_compaction as reference

    from twin.process.pack import artistic_electrode

    electrode = artistic_electrode(electrode_path)
    lateral = float(np.asarray(electrode.box.length)[0])
    position = np.asarray(electrode.position) - np.array([lateral / 2, lateral / 2, 0.0])
    types = np.where(electrode.is_am, 2, 1)                 # LIGGGHTS types: 1 CBD, 2 AM
    top = float(np.max(position[:, 2] + electrode.radius))
    plate_z = top + 0.5
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        reference.write_data(work / "electrode.data", electrode.ids, types, electrode.radius,
                             electrode.density, position, lateral, -1.0, plate_z + 1.0)
        reference.write_stl(work / "floor.stl", 0.0, lateral, "floor")
        reference.write_stl(work / "plate.stl", plate_z, lateral, "plate")
        (work / "in.bench").write_text(
            reference.HEADER.format(data="electrode.data", skin=0.3,
                                    materials=reference.materials_block(), dt=PAPER_DT_US,
                                    thermo=steps)
            + f"fix press all move/mesh mesh plate linear 0 0 {-PAPER_PLATE_SPEED_UM_US!r}\n"
            + f"run {steps}\n")
        reference.run_liggghts(work, "in.bench", "log.bench", nproc=ranks)
        seconds = next(s for n, s in reference.loop_times(work / "log.bench") if n == steps)
    return {"ranks": ranks, "steps": steps, "seconds": seconds,
            "particle_steps_per_second": len(electrode.radius) * steps / seconds}


def _worker(args: list[str], cores: str | None) -> dict:
    command = [sys.executable, __file__, *args]
    if cores:
        command = ["taskset", "-c", cores] + command
    out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--electrode", type=Path, default=ELECTRODE)
    parser.add_argument("--pressure", type=float, default=10.0, help="target pressure (MPa)")
    parser.add_argument("--plate-speed", type=float, default=2.0, help="twin plate speed (m/s)")
    parser.add_argument("--precision", default="float64", choices=["float64", "float32"])
    parser.add_argument("--liggghts-steps", type=int, default=2000,
                        help="steps of the timed LIGGGHTS segment")
    parser.add_argument("--skip-twin", type=Path, metavar="JSON",
                        help="reuse the twin result of an earlier --json output")
    parser.add_argument("--worker", choices=["twin", "liggghts"])
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.worker == "twin":
        print(json.dumps(twin_calendering(args.electrode, args.pressure, args.plate_speed,
                                          args.precision)))
        return
    if args.worker == "liggghts":
        print(json.dumps(liggghts_rate(args.electrode, args.liggghts_steps, args.ranks)))
        return
    if shutil.which("liggghts") is None:
        sys.exit("LIGGGHTS is not installed: apt-get install -y liggghts (and openmpi-bin)")

    cores = os.cpu_count()
    if args.skip_twin:
        twin = json.loads(args.skip_twin.read_text())["twin"]
    else:
        twin = _worker(["--worker", "twin", "--electrode", str(args.electrode), "--pressure",
                        str(args.pressure), "--plate-speed", str(args.plate_speed),
                        "--precision", args.precision], None)
    print(f"twin ({twin['precision']}, {cores} cores, {twin['device']}): one calendering to "
          f"{args.pressure:g} MPa of {twin['particles']} spheres, {twin['steps']} steps "
          f"(plate {args.plate_speed:g} m/s, travel {twin['travel_um']:.2f} µm): "
          f"{twin['seconds']:.0f} s = {twin['seconds'] / 60:.1f} min, final porosity "
          f"{100 * twin['final_porosity']:.2f} %", flush=True)
    paper_steps = 2 * twin["travel_um"] / (PAPER_PLATE_SPEED_UM_US * PAPER_DT_US)
    rows = []
    for ranks, pin in ((1, "0"), (cores, None)):
        reference = _worker(["--worker", "liggghts", "--electrode", str(args.electrode),
                             "--liggghts-steps", str(args.liggghts_steps),
                             "--ranks", str(ranks)], pin)
        rate = reference["particle_steps_per_second"]
        paper_seconds = paper_steps * twin["particles"] / rate
        same_seconds = twin["steps"] * twin["particles"] / rate
        rows.append({"ranks": ranks, "liggghts": reference, "paper_protocol_steps": paper_steps,
                     "paper_protocol_seconds": paper_seconds,
                     "twin_protocol_seconds": same_seconds,
                     "speedup_vs_paper_protocol": paper_seconds / twin["seconds"],
                     "speedup_same_protocol": same_seconds / twin["seconds"]})
        print(f"LIGGGHTS 3.8 ({ranks} rank{'s' if ranks > 1 else ''}): {rate:.3g} particle-steps/s "
              f"over {args.liggghts_steps} steps → paper's protocol ({paper_steps:.3g} steps): "
              f"{hours(paper_seconds)}; twin's protocol ({twin['steps']} steps): "
              f"{same_seconds:.0f} s.  Twin faster by {paper_seconds / twin['seconds']:.3g}× "
              f"(paper's protocol) and {same_seconds / twin['seconds']:.2f}× (same protocol)",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps({"twin": twin, "liggghts": rows, "pressure_MPa":
                                         args.pressure}, indent=2))


if __name__ == "__main__":
    main()
