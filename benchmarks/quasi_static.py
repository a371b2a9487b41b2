"""Quasi-static acceleration of calendering: the fastest plate protocol whose outcome matches a slow
reference (issue #4: porosity within 0.3 percentage points, loading curve within 1 %).

The paper's plate speed (0.002 m/s at dt = 1e-4 µs) needs ~1e8 steps. A faster plate is
inertial (inertial number I = γ̇ d sqrt(ρ/P) above ~1e-3); a background drag F = −γ m v
(``viscous_damping_per_us``) removes the kinetic energy that the plate pumps in, at the price of a
drag force ≈ γ M v/2 on the plate. Each protocol (plate speed, γ) calenders the same electrode to
the same target pressure and is compared with the reference (the slowest speed, undamped):

* Δporosity (pp) of the recovered electrode;
* pointwise loading-curve error max |P(h) − P_ref(h)| / P_target over the plate gaps h where the
  reference carries more than 5 % of the target (P interpolated onto the reference's gaps);
* binned loading-curve error: the same on the mean pressure in ``--bins`` equal gap bins over the
  reference's loaded stroke;
* porosity–pressure curve error (pp): max |φ(P) − φ_ref(P)| over ``--bins`` pressure levels from 5 %
  to 95 % of the target, φ(P) the porosity between the walls when the pressure first reaches P —
  the curve of Fig. 2B, and with the final porosity the criterion (both within 0.3 pp). P(h) is
  steep near the target, so a small gap shift moves P(h) by tens of percent of the target: the
  two P(h) errors are diagnostics;
* the inertial number at the target, steps, wall time and the speed-up over the reference.

The many-sphere trajectory is chaotic, so the reference itself is only defined to within a noise
floor: ``--ensemble N`` reruns the reference protocol N times with every centre moved by a random
``--jitter-um`` (1e-9 µm, round-off size) and reports the largest difference of a member from the
reference — no protocol can be asked to agree better than that. Measured on the 709-sphere
electrode (benchmarks/RESULTS.md, 2026-12-06): 1.07 pp in porosity and 2.45 pp in φ(P) at
0.25 m/s, above the criterion, so there it cannot rank protocols one run against one run.

``--members M`` compares ensemble means instead: every protocol, the reference included, runs
from M starts (the unjittered one and M − 1 jittered ones), and each protocol's mean final
porosity and mean φ(P) curve are compared with the reference's means. The standard error of a
difference of two means is sqrt(s₁²/M₁ + s₂²/M₂) (s the sample standard deviation of a
protocol's M members): the means "agree" when both differences are within 0.3 pp, and the
comparison is "resolved" where twice both standard errors are within 0.3 pp too. Measured with
16 members (benchmarks/RESULTS.md, 2026-12-07): the offset of the mean φ(P) curves against
0.125 m/s is linear in the plate speed, 0.54 pp per m/s (+0.14 / +0.26 / +0.49 / +1.05 ± 0.11–0.13
pp at 0.25 / 0.5 / 1 / 2 m/s); the recovered porosity differs by less than 2 standard errors
(~0.2 pp) up to 1 m/s.

    python benchmarks/quasi_static.py --pressure 20 --speeds 0.25 0.5 1 2 5 --dampings 0 10 30 \
        --ensemble 3
    python benchmarks/quasi_static.py --speeds 0.25 0.5 1 2 --dampings 0 --members 16 --resume
    python benchmarks/quasi_static.py --speeds 0.125 0.25 --reference-speed 0.25 --dampings 0 \
        --members 16 --resume          # add a slower protocol to the same --out

``--out`` is written after every run, and ``--resume`` keeps the runs already in it (same
electrode, pressure, bins, jitter and reference speed; anything else is refused).

Electrode: the 14 × 14 µm column of the small example electrode used by tests/test_calender.py
(709 spheres), or ``--electrode DATA`` (a LAMMPS data file, e.g. the paper-size dried electrode);
``--replicas n`` tiles it n × n in x y (``twin.process.indent.replicate``): a wider cell over
which the chaotic rearrangements average out, to measure how the floor falls with the cell size.
Float64 throughout. Prints one line per protocol and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOADED_FRACTION = 0.05
TOP_LEVEL = 0.95   # highest pressure level of φ(P): records (every 20 steps) may miss the target itself


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


def binned_pressure(gap, pressure, edges):
    """Mean pressure (MPa) of the records in each gap bin [edges[k], edges[k+1]) (NaN if empty)."""
    index = np.digitize(gap, edges) - 1
    inside = (index >= 0) & (index < len(edges) - 1)
    total = np.bincount(index[inside], pressure[inside], minlength=len(edges) - 1)
    count = np.bincount(index[inside], minlength=len(edges) - 1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def compare(result, reference, target_mpa, bins) -> dict:
    """Porosity difference (pp), the pointwise and binned loading-curve errors (fractions of the
    target pressure) and the porosity–pressure curve error (pp) of ``result`` against
    ``reference``."""
    gap_ref, pressure_ref = loading_curve(reference)
    gap, pressure = loading_curve(result)
    loaded = pressure_ref > LOADED_FRACTION * target_mpa
    loaded &= (gap_ref >= gap.min()) & (gap_ref <= gap.max())
    interpolated = np.interp(gap_ref[loaded], gap[::-1], pressure[::-1])
    levels = pressure_levels(target_mpa, bins)
    edges = np.linspace(gap_ref[loaded].min(), gap_ref[loaded].max(), bins + 1)
    binned_difference = binned_pressure(gap, pressure, edges) \
        - binned_pressure(gap_ref, pressure_ref, edges)
    return {
        "porosity_difference_pp": 100.0 * (result.summary["final_porosity"]
                                           - reference.summary["final_porosity"]),
        "loading_curve_error": float(np.max(np.abs(interpolated - pressure_ref[loaded]))
                                     / target_mpa),
        "binned_curve_error": float(np.nanmax(np.abs(binned_difference)) / target_mpa),
        "porosity_curve_error_pp": float(100.0 * np.max(np.abs(
            porosity_at_pressures(result, levels) - porosity_at_pressures(reference, levels)))),
    }


def pressure_levels(target_mpa, count):
    """The pressures (MPa) at which φ(P) is read: ``count`` levels from 5 % to 95 % of the
    target."""
    return np.linspace(LOADED_FRACTION, TOP_LEVEL, count) * target_mpa


def porosity_at_pressures(result, levels_mpa):
    """Porosity between the walls when the pressure first reaches each level (loading stroke)."""
    turn = int(np.argmin(result.plate_z_um))
    envelope = np.maximum.accumulate(result.pressure_mpa[:turn + 1])
    first = np.searchsorted(envelope, levels_mpa)
    if first.max() > turn:
        raise ValueError(f"the loading stroke never reached {levels_mpa.max():.3g} MPa "
                         f"(peak {envelope[-1]:.3g} MPa)")
    return result.porosity_between_walls[first]


def ensemble_means(rows, reference_key) -> list[dict]:
    """Per protocol (plate speed, drag): the number of members, mean final porosity and its
    standard error (pp), and against the reference protocol ``reference_key``: the difference of
    the mean porosities and of the mean φ(P) curves (largest over the levels), each with the
    standard error of a difference of two means (pp). The largest difference over the levels
    is biased upwards by noise (the largest of ``levels`` noisy numbers), so the curves are also
    compared by their offset: the difference of the members' φ(P) averaged over the levels, with
    its standard error from the members' level averages (which carries the levels'
    correlation). Rows carry ``final_porosity`` and ``porosity_curve`` (φ at the common pressure
    levels)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["plate_speed_m_s"], row["viscous_damping_per_us"]), []).append(row)

    def statistics(members):
        porosity = 100.0 * np.array([row["final_porosity"] for row in members])
        curves = 100.0 * np.array([row["porosity_curve"] for row in members])
        count = len(members)
        spread = (lambda x: x.std(axis=0, ddof=1) / np.sqrt(count)) if count > 1 \
            else (lambda x: np.full(x.shape[1:], np.nan))
        level_means = curves.mean(axis=1)    # one number per member: its φ(P) over the levels
        return (count, porosity.mean(), spread(porosity), curves.mean(axis=0), spread(curves),
                level_means.mean(), spread(level_means))

    (_, porosity_ref, error_ref, curve_ref, curve_error_ref, level_mean_ref,
     level_error_ref) = statistics(groups[reference_key])
    summary = []
    for (speed, damping), members in sorted(groups.items()):
        count, porosity, error, curve, curve_error, level_mean, level_error = statistics(members)
        curve_difference = np.abs(curve - curve_ref)
        worst = int(np.argmax(curve_difference))
        difference = porosity - porosity_ref
        row = {"plate_speed_m_s": speed, "viscous_damping_per_us": damping, "members": count,
               "mean_porosity_pct": float(porosity), "porosity_standard_error_pp": float(error),
               "mean_porosity_difference_pp": float(difference),
               "difference_standard_error_pp": float(np.hypot(error, error_ref)),
               "mean_curve_difference_pp": float(curve_difference[worst]),
               "curve_difference_standard_error_pp": float(np.hypot(curve_error[worst],
                                                                    curve_error_ref[worst])),
               "curve_offset_pp": float(level_mean - level_mean_ref),
               "curve_offset_standard_error_pp": float(np.hypot(level_error, level_error_ref))}
        row["means_agree"] = bool(abs(difference) <= 0.3 and curve_difference[worst] <= 0.3)
        row["resolved"] = bool(2.0 * max(row["difference_standard_error_pp"],
                                         row["curve_difference_standard_error_pp"]) <= 0.3)
        summary.append(row)
    return summary


def jittered(electrode, seed: int, jitter_um: float):
    """The electrode with every centre moved by a Gaussian vector of rms ``jitter_um`` per axis."""
    shift = jitter_um * np.random.default_rng(seed).standard_normal(electrode.position.shape)
    return dataclasses.replace(electrode, position=electrode.position + shift)


RUN_KEYS = ("electrode", "replicas", "particles", "target_pressure_MPa", "bins", "jitter_um",
            "reference_speed_m_s")


def reference_trace_path(out: Path) -> Path:
    """Where the reference run's loading curve is kept, for ``--resume``."""
    return out.with_suffix(".reference.npz")


def save_reference_trace(out: Path, result, seconds: float):
    np.savez(reference_trace_path(out), plate_z_um=result.plate_z_um,
             pressure_mpa=result.pressure_mpa,
             porosity_between_walls=result.porosity_between_walls,
             final_porosity=result.summary["final_porosity"], wall_seconds=seconds)


def load_reference_trace(out: Path):
    """The reference's (trace, wall seconds) saved by an earlier run, or None."""
    path = reference_trace_path(out)
    if not path.exists():
        return None
    stored = np.load(path)
    trace = SimpleNamespace(plate_z_um=stored["plate_z_um"], pressure_mpa=stored["pressure_mpa"],
                            porosity_between_walls=stored["porosity_between_walls"],
                            summary={"final_porosity": float(stored["final_porosity"])})
    return trace, float(stored["wall_seconds"])


def previous_rows(out: Path, document: dict) -> list[dict]:
    """The runs of an earlier ``--out`` of the same case (``--resume``); a different case is an
    error naming the key that differs."""
    if not out.exists():
        return []
    previous = json.loads(out.read_text())
    previous.setdefault("reference_speed_m_s", min(
        row["plate_speed_m_s"] for row in previous["protocols"]))
    for key in RUN_KEYS:
        if previous.get(key) != document[key]:
            raise SystemExit(f"--resume: {out} has {key} = {previous.get(key)!r}, this run "
                             f"{document[key]!r}; use another --out or the same settings")
    return previous["protocols"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--electrode", default=None, help="LAMMPS data file (default: mini)")
    parser.add_argument("--replicas", type=int, default=1, help="tile the electrode n × n in x y")
    parser.add_argument("--pressure", type=float, default=20.0, help="target pressure (MPa)")
    parser.add_argument("--speeds", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 5.0],
                        help="plate speeds (m/s)")
    parser.add_argument("--reference-speed", type=float, default=None,
                        help="plate speed (m/s) of the reference, undamped (default: the slowest)")
    parser.add_argument("--dampings", type=float, nargs="+", default=[0.0, 10.0, 30.0],
                        help="background drag γ (1/µs)")
    parser.add_argument("--bins", type=int, default=20,
                        help="gap bins over the reference's loaded stroke for the binned error")
    parser.add_argument("--ensemble", type=int, default=0,
                        help="reruns of the reference from jittered centres (noise floor)")
    parser.add_argument("--members", type=int, default=1,
                        help="runs of every protocol from jittered starts; compare their means")
    parser.add_argument("--jitter-um", type=float, default=1e-9,
                        help="rms displacement per axis of the ensemble's centres (µm)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "quasi_static.json"),
                        help="JSON written after every run (the reference's trace beside it)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in --out and run only the missing ones")
    args = parser.parse_args(argv)
    if (args.bins < 1 or args.ensemble < 0 or not args.jitter_um > 0 or args.replicas < 1
            or args.members < 1):
        parser.error("--bins, --replicas and --members must be >= 1, --ensemble >= 0 and "
                     "--jitter-um > 0")
    speeds = sorted(set(args.speeds) | ({args.reference_speed} - {None}))
    reference_speed = speeds[0] if args.reference_speed is None else args.reference_speed

    from twin.process.calender import CalenderProtocol, calender
    from twin.process.indent import replicate
    electrode = replicate(electrode_from(args.electrode), args.replicas)
    out = Path(args.out)
    document = {"electrode": args.electrode or "mini (tests/test_calender.py)",
                "replicas": args.replicas, "particles": int(len(electrode.radius)),
                "target_pressure_MPa": args.pressure, "reference_speed_m_s": reference_speed,
                "bins": args.bins, "jitter_um": args.jitter_um,
                "precision": "float64", "machine": platform.processor() or platform.machine()}
    rows = previous_rows(out, document) if args.resume else []
    reference = load_reference_trace(out) if args.resume else None
    done = {(row["plate_speed_m_s"], row["viscous_damping_per_us"], row["jitter_seed"])
            for row in rows}
    runs = [("reference", reference_speed, 0.0, 0)]
    runs += [("ensemble", reference_speed, 0.0, seed)
             for seed in range(1, max(args.ensemble + 1, args.members))]
    runs += [("protocol", v, g, seed) for v in speeds for g in args.dampings
             for seed in range(args.members) if (v, g) != (reference_speed, 0.0)]
    runs = [run for run in runs if run[1:] not in done or (run[0] == "reference" and not reference)]
    levels = pressure_levels(args.pressure, args.bins)
    print(f"{len(electrode.radius)} spheres, target {args.pressure} MPa, float64; "
          f"{len(rows)} runs kept from {out}, {len(runs)} to run" if args.resume else
          f"{len(electrode.radius)} spheres, target {args.pressure} MPa, float64")
    for kind, speed, damping, seed in runs:
        protocol = CalenderProtocol(target_pressure_mpa=args.pressure, plate_speed_um_us=speed,
                                    viscous_damping_per_us=damping, record_every=20)
        start = time.perf_counter()
        result = calender(jittered(electrode, seed, args.jitter_um) if seed else electrode,
                          protocol)
        seconds = time.perf_counter() - start
        if kind == "reference":
            reference = (result, seconds)
            save_reference_trace(out, result, seconds)
        s = result.summary
        row = {"kind": kind, "jitter_seed": seed, "plate_speed_m_s": speed,
               "viscous_damping_per_us": damping,
               "final_porosity": s["final_porosity"], "thickness_um": s["thickness_um"],
               "recovery_um": s["recovery_um"], "inertial_number": s["inertial_number"],
               "steps": s["steps"], "wall_seconds": seconds,
               "speed_up": reference[1] / seconds,
               "porosity_curve": porosity_at_pressures(result, levels).tolist(),
               **compare(result, reference[0], args.pressure, args.bins)}
        row["agrees"] = bool(abs(row["porosity_difference_pp"]) <= 0.3
                             and row["porosity_curve_error_pp"] <= 0.3)
        rows = [r for r in rows if (r["plate_speed_m_s"], r["viscous_damping_per_us"],
                                    r["jitter_seed"]) != (speed, damping, seed)] + [row]
        label = f"jitter seed {seed}" if seed else kind
        print(f"{label:14s} v = {speed:5.3f} m/s  γ = {damping:5.1f} /µs  porosity "
              f"{100 * row['final_porosity']:.2f} % (Δ {row['porosity_difference_pp']:+.2f} pp)  "
              f"curve error {100 * row['loading_curve_error']:.2f} % pointwise, "
              f"{100 * row['binned_curve_error']:.2f} % binned, φ(P) {row['porosity_curve_error_pp']:.2f} pp  "
              f"I = {row['inertial_number']:.2g}  "
              f"{row['steps']} steps  {seconds:.0f} s  ×{row['speed_up']:.1f}  "
              f"{'agrees' if row['agrees'] else 'differs'}", flush=True)
        out.write_text(json.dumps({**document, "protocols": rows}, indent=2))
    members = [row for row in rows if row["kind"] == "ensemble"]
    floor = {key: max(abs(row[key]) for row in members) for key in
             ("porosity_difference_pp", "loading_curve_error", "binned_curve_error",
              "porosity_curve_error_pp")
             } if members else None
    if floor:
        print(f"noise floor ({len(members)} jittered references): porosity "
              f"{floor['porosity_difference_pp']:.2f} pp, curve "
              f"{100 * floor['loading_curve_error']:.2f} % pointwise, "
              f"{100 * floor['binned_curve_error']:.2f} % binned, φ(P) "
              f"{floor['porosity_curve_error_pp']:.2f} pp")
    means = ensemble_means(rows, (reference_speed, 0.0)) if len(members) else None
    for row in means or []:
        print(f"means of {row['members']:2d}: v = {row['plate_speed_m_s']:5.3f} m/s  "
              f"γ = {row['viscous_damping_per_us']:5.1f} /µs  porosity "
              f"{row['mean_porosity_pct']:.2f} ± {row['porosity_standard_error_pp']:.2f} %  "
              f"Δ {row['mean_porosity_difference_pp']:+.2f} ± "
              f"{row['difference_standard_error_pp']:.2f} pp  φ(P) "
              f"{row['mean_curve_difference_pp']:.2f} ± "
              f"{row['curve_difference_standard_error_pp']:.2f} pp (offset "
              f"{row['curve_offset_pp']:+.2f} ± {row['curve_offset_standard_error_pp']:.2f})  "
              f"{'agree' if row['means_agree'] else 'differ'}"
              f"{'' if row['resolved'] else ' (not resolved: 2 s.e. > 0.3 pp)'}", flush=True)
    out.write_text(json.dumps({**document, "noise_floor": floor, "ensemble_means": means,
                               "protocols": rows}, indent=2))


if __name__ == "__main__":
    main()
