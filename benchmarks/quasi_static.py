"""Quasi-static acceleration of calendering: the fastest plate protocol whose outcome matches a slow
reference (issue #4: porosity within 0.3 percentage points, loading curve within 1 %).

The paper's plate speed (0.002 m/s at dt = 1e-4 µs) needs ~1e8 steps. A faster plate is
inertial (inertial number I = γ̇ d sqrt(ρ/P) above ~1e-3); a background drag F = −γ m v
(``viscous_damping_per_us``) removes the kinetic energy that the plate pumps in, at the price of a
drag force ≈ γ M v/2 on the plate. Each protocol (plate speed, γ) calenders the same electrode to
the same target pressure and is compared with the reference (the slowest speed, undamped):

* Δporosity (pp) of the recovered electrode;
* loading-curve error max |P(h) − P_ref(h)| / P_target over the plate gaps h where the reference
  carries more than 5 % of the target (P interpolated onto the reference's gaps);
* the inertial number at the target, steps, wall time and the speed-up over the reference.

    python benchmarks/quasi_static.py --pressure 20 --speeds 0.25 0.5 1 2 5 --dampings 0 10 30

Electrode: the 14 × 14 µm column of the small example electrode used by tests/test_calender.py
(709 spheres), or ``--electrode DATA`` (a LAMMPS data file, e.g. the paper-size dried electrode).
Float64 throughout. Prints one line per protocol and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOADED_FRACTION = 0.05


def electrode_from(path):
    if path is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from test_calender import mini_electrode
        return mini_electrode()
    from twin.process.pack import artistic_electrode
    return artistic_electrode(path)


def loading_curve(result):
    """Plate gap (µm, decreasing) and pressure (MPa) before the turn."""
    turn = int(np.argmin(result.plate_z_um))
    return result.plate_z_um[:turn + 1], result.pressure_mpa[:turn + 1]


def compare(result, reference, target_mpa) -> dict:
    gap_ref, pressure_ref = loading_curve(reference)
    gap, pressure = loading_curve(result)
    loaded = pressure_ref > LOADED_FRACTION * target_mpa
    loaded &= (gap_ref >= gap.min()) & (gap_ref <= gap.max())
    interpolated = np.interp(gap_ref[loaded], gap[::-1], pressure[::-1])
    return {
        "porosity_difference_pp": 100.0 * (result.summary["final_porosity"]
                                           - reference.summary["final_porosity"]),
        "loading_curve_error": float(np.max(np.abs(interpolated - pressure_ref[loaded]))
                                     / target_mpa),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--electrode", default=None, help="LAMMPS data file (default: mini)")
    parser.add_argument("--pressure", type=float, default=20.0, help="target pressure (MPa)")
    parser.add_argument("--speeds", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 5.0],
                        help="plate speeds (m/s); the slowest, undamped, is the reference")
    parser.add_argument("--dampings", type=float, nargs="+", default=[0.0, 10.0, 30.0],
                        help="background drag γ (1/µs)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "quasi_static.json"))
    args = parser.parse_args(argv)

    from twin.process.calender import CalenderProtocol, calender
    electrode = electrode_from(args.electrode)
    speeds = sorted(args.speeds)
    protocols = [(speeds[0], 0.0)] + [(v, g) for v in speeds for g in args.dampings
                                      if (v, g) != (speeds[0], 0.0)]
    rows, reference = [], None
    print(f"{len(electrode.radius)} spheres, target {args.pressure} MPa, float64")
    for speed, damping in protocols:
        protocol = CalenderProtocol(target_pressure_mpa=args.pressure, plate_speed_um_us=speed,
                                    viscous_damping_per_us=damping, record_every=20)
        start = time.perf_counter()
        result = calender(electrode, protocol)
        seconds = time.perf_counter() - start
        reference = reference or (result, seconds)
        s = result.summary
        row = {"plate_speed_m_s": speed, "viscous_damping_per_us": damping,
               "final_porosity": s["final_porosity"], "thickness_um": s["thickness_um"],
               "recovery_um": s["recovery_um"], "inertial_number": s["inertial_number"],
               "steps": s["steps"], "wall_seconds": seconds,
               "speed_up": reference[1] / seconds,
               **compare(result, reference[0], args.pressure)}
        row["agrees"] = bool(abs(row["porosity_difference_pp"]) <= 0.3
                             and row["loading_curve_error"] <= 0.01)
        rows.append(row)
        print(f"v = {speed:5.2f} m/s  γ = {damping:5.1f} /µs  porosity {100 * row['final_porosity']:.2f} % "
              f"(Δ {row['porosity_difference_pp']:+.2f} pp)  curve error "
              f"{100 * row['loading_curve_error']:.2f} %  I = {row['inertial_number']:.2g}  "
              f"{row['steps']} steps  {seconds:.0f} s  ×{row['speed_up']:.1f}  "
              f"{'agrees' if row['agrees'] else 'differs'}", flush=True)
    document = {"electrode": args.electrode or "mini (tests/test_calender.py)",
                "particles": int(len(electrode.radius)), "target_pressure_MPa": args.pressure,
                "precision": "float64", "machine": platform.processor() or platform.machine(),
                "protocols": rows}
    Path(args.out).write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
