"""Fig. 2B: porosity after elastic recovery vs calendering pressure, and the pressures at which the
electrode reaches the paper's calendered porosities (31.5 % and 27.2 %).

    python experiments/fig2b_porosity_pressure.py --pressures 5 10 20 40 80 --out experiments/out/fig2b

Electrode: ``--electrode DATA`` (LAMMPS data of a dried electrode, x y periodic, collector below;
default: the paper-size dried electrode ``experiments/data/dried_paper_electrode.data`` made by
``experiments/dried_electrode.py``; type 1 CBD, types 2..7 the AM classes at their unexpanded
diameters). The authors' own CGMD-dried electrode goes through
``experiments/authors_dried_electrode.py`` first (it is pre-stressed: calendered as it is, it
pushed the plate above 2 MPa within 2000 steps) and is then calendered as the authors' script
does it: ``--electrode experiments/out/authors_dried/authors_relaxed.data --am-expansion 1.02
--cbd-density 0.93``. Measured that way (2026-12-06, float64, 2 m/s, no drag, Table 2 with the
authors' mixing, 1634 s on the 2-core CPU): 33.43 / 32.45 / 29.93 / 28.60 / 26.57 % after
recovery at 1 / 2 / 5 / 10 / 20 MPa, so the paper's 31.5 % at 2.8 MPa and 27.2 % at 16.1 MPa; the
stand-in DEM-dried electrode is much softer (31.5 % at ~0.2 MPa on the loading stroke, 27.2 % at
~4 MPa, issue #4 notes).
Protocol: :class:`twin.process.calender.CalenderProtocol` with the plate speed and background
drag given (``benchmarks/quasi_static.py`` compares speeds and drags with a slow reference; on a
709-sphere cell the chaos noise floor, ~1 pp, is above every difference it measured), Table 2
materials with the authors' mixing, float64. One loading stroke is shared by all pressures
(:func:`twin.process.calender.calender_sweep`).

AM expansion: the authors expand the AM diameters by 2 % because their CGMD-dried packing has no
Hertz overlap (FACTS.md). The stand-in DEM drying stage leaves a packing already in Hertz contact;
expanding it again makes the overlaps jump and the packing push the plate above 2 MPa before any
calendering (measured on the paper-size electrode: the plate turned after 2000 steps), so the
default here is ``--am-expansion 1.0``.

Fig. 2B's experimental points are not in the seed text or FACTS.md (only the two calendered
porosities and the mesh heights are), so they are not plotted; the paper's simulated porosities
appear as horizontal lines. Writes ``porosity_pressure.csv`` (pressure_MPa, porosity,
thickness_um, recovery_um, inertial_number), ``summary.json``, ``porosity_pressure.png`` and one
``twin calender`` run folder per pressure (``P<pressure>MPa/``: trace, summary, final packing),
which the structure-analysis experiments read.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from twin.process.pack import CBD_CALENDERING_DENSITY_G_CM3, CBD_DENSITY_G_CM3

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ELECTRODE = ROOT / "experiments" / "data" / "dried_paper_electrode.data"
PAPER_POROSITIES = (0.315, 0.272)


def pressure_for(porosity_target, pressures, porosities):
    """Pressure (MPa) at which the porosity falls through the target, interpolated linearly in
    log pressure; nan if the sweep does not bracket it."""
    for k in range(len(pressures) - 1):
        a, b = porosities[k], porosities[k + 1]
        if (a - porosity_target) * (b - porosity_target) <= 0 and a != b:
            weight = (a - porosity_target) / (a - b)
            return float(np.exp(np.log(pressures[k])
                                + weight * (np.log(pressures[k + 1]) - np.log(pressures[k]))))
    return float("nan")


def parse_settings(items) -> dict:
    """``["AM.friction=0.3", ...]`` → ``{"AM.friction": 0.3}`` (names checked by calibrate)."""
    values = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"--set {item!r}: expected TYPE.PROPERTY=NUMBER, e.g. "
                             "AM.friction=0.3") from None
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--electrode", default=str(DEFAULT_ELECTRODE))
    parser.add_argument("--pressures", type=float, nargs="+", default=[5, 10, 20, 40, 80],
                        help="target pressures (MPa)")
    parser.add_argument("--plate-speed", type=float, default=2.0, help="m/s")
    parser.add_argument("--damping", type=float, default=0.0, help="background drag γ (1/µs)")
    parser.add_argument("--cbd-density", type=float, default=CBD_DENSITY_G_CM3,
                        help="CBD density (g/cm³): the authors' drying scripts use "
                             f"{CBD_DENSITY_G_CM3}, their calendering script "
                             f"{CBD_CALENDERING_DENSITY_G_CM3}")
    parser.add_argument("--gap-um", type=float, default=0.5,
                        help="initial plate clearance above the highest sphere (µm); a "
                             "pre-stressed packing (the authors' has AM–AM overlaps up to 1.1 µm) "
                             "expands into it before the plate arrives")
    parser.add_argument("--am-expansion", type=float, default=1.0,
                        help="AM diameter factor before calendering (authors: 1.02, see above)")
    parser.add_argument("--set", action="append", default=[], metavar="TYPE.PROPERTY=VALUE",
                        help="replace one Table 2 value, e.g. AM.friction=0.3 (names as in "
                             "calibrate: E_GPa, restitution, friction, ced_J_m3, poisson)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "out" / "fig2b"))
    args = parser.parse_args(argv)
    replaced = parse_settings(args.set)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calibrate.parameters import materials_from_parameters, table2
    from twin.io.calender_folder import write_calender_folder
    from twin.process.calender import CalenderProtocol, calender_sweep
    from twin.process.pack import artistic_electrode

    electrode = artistic_electrode(args.electrode, cbd_density=args.cbd_density)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    protocol = CalenderProtocol(target_pressure_mpa=max(args.pressures),
                                plate_speed_um_us=args.plate_speed,
                                viscous_damping_per_us=args.damping,
                                am_expansion=args.am_expansion, gap_um=args.gap_um)
    start = time.perf_counter()

    def progress(steps, gap_um, pressure_mpa, phase):
        print(f"  {steps:>9d} steps  plate gap {gap_um:8.3f} µm  {pressure_mpa:8.3f} MPa  {phase}"
              f"  ({time.perf_counter() - start:.0f} s)", flush=True)

    materials = materials_from_parameters(table2(), replaced, "artistic")
    results = calender_sweep(electrode, args.pressures, protocol, materials=materials,
                             progress=progress)
    for result in results:
        write_calender_folder(result, out / f"P{result.summary['target_pressure_MPa']:g}MPa",
                              notes={"electrode": str(args.electrode)})
    rows = [(r.summary["target_pressure_MPa"], r.summary["final_porosity"],
             r.summary["thickness_um"], r.summary["recovery_um"], r.summary["inertial_number"])
            for r in results]
    table = np.array(rows)
    np.savetxt(out / "porosity_pressure.csv", table, delimiter=",", comments="",
               header="pressure_MPa,porosity,thickness_um,recovery_um,inertial_number")
    initial = results[0].summary["initial_porosity"]
    summary = {
        "electrode": str(args.electrode), "cbd_density_g_cm3": args.cbd_density,
        "particles": int(len(electrode.radius)),
        "initial_porosity": initial, "plate_speed_m_s": args.plate_speed,
        "viscous_damping_per_us": args.damping, "am_expansion": args.am_expansion,
        "gap_um": args.gap_um,
        "table2_replaced": replaced,
        "precision": "float64",
        "pressure_for_paper_porosity_MPa": {
            f"{p:.3f}": pressure_for(p, table[:, 0], table[:, 1]) for p in PAPER_POROSITIES},
        "wall_seconds": time.perf_counter() - start,
        "machine": platform.processor() or platform.machine(),
        "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True,
                                     capture_output=True).stdout.strip(),
        "rows": [dict(zip(("pressure_MPa", "porosity", "thickness_um", "recovery_um",
                           "inertial_number"), row)) for row in rows],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot(table[:, 0], 100 * table[:, 1], "o-", color="tab:red", label="twin (DEM)")
    axis.axhline(100 * initial, color="0.5", ls=":", label="dried electrode")
    for p in PAPER_POROSITIES:
        axis.axhline(100 * p, color="k", ls="--", lw=0.8)
    axis.set_xscale("log")
    axis.set_xlabel("calendering pressure (MPa)")
    axis.set_ylabel("porosity after recovery (%)")
    axis.set_title("Fig. 2B (paper porosities dashed)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "porosity_pressure.png", dpi=150)
    for row in rows:
        print(f"{row[0]:8.2f} MPa  porosity {100 * row[1]:.2f} %  thickness {row[2]:.2f} µm")
    print(json.dumps(summary["pressure_for_paper_porosity_MPa"]))


if __name__ == "__main__":
    main()
