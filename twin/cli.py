"""The ``twin`` command line (thin: parses arguments, calls the package, prints with units)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _progress_printer(label):
    start = time.perf_counter()

    def report(done, total):
        elapsed = time.perf_counter() - start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        print(f"\r{label}: step {done}/{total} ({100 * done / total:5.1f} %), "
              f"{elapsed:7.1f} s elapsed, ETA {eta:7.1f} s", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)

    return report


def _dem(args):
    from twin.io.case import load_case
    from twin.io.run_folder import run_case
    from twin.process.demo import small_electrode_calendering

    if args.case is None:
        print("no case file: running the built-in default, a short calendering of the small "
              "example electrode", file=sys.stderr)
        case = small_electrode_calendering(
            progress=lambda k, largest: print(f"\rremoving overlaps: round {k}, largest overlap "
                                              f"{largest:.3g} µm", end="", file=sys.stderr))
        print(file=sys.stderr)
    else:
        case = load_case(args.case)
    summary = run_case(case, args.out, progress=_progress_printer(case.name), resume=args.resume)
    print(f"{summary['particles']} particles, {summary['steps']} steps of {summary['dt_us']:g} µs "
          f"({summary['precision']}, {summary['platform']}): "
          f"{summary['wall_seconds_stepping']:.1f} s stepping, "
          f"{summary['particle_steps_per_second']:.3g} particle-steps/s")
    for wall in summary["walls"]:
        print(f"  wall {wall['name']}: z = {wall['z_um_final']:.4f} µm, "
              f"F_z = {wall['force_z_nN_final'] * 1e-3:.4g} µN")
    print(f"run folder: {Path(args.out).resolve()}")


def _plate_case(args, kind):
    """The case of a calender/indent command, and its electrode (built-in one without a file)."""
    from twin.io.calender_folder import CalenderCase, load_calender_case
    from twin.process.calender import CalenderProtocol
    from twin.process.indent import IndentProtocol

    if args.case is None:
        print(f"no case file: {kind} of the built-in small example electrode", file=sys.stderr)
        protocol = (CalenderProtocol(target_pressure_mpa=50.0, plate_speed_um_us=2.0)
                    if kind == "calender" else IndentProtocol(replicas=2, plate_speed_um_us=2.0))
        case = CalenderCase(None, 0.5, 0.4, "artistic", protocol)
    else:
        case = load_calender_case(args.case, kind)
    electrode = case.electrode(progress=lambda k, largest: print(
        f"\rremoving overlaps: round {k}, largest overlap {largest:.3g} µm", end="",
        file=sys.stderr))
    print(file=sys.stderr)
    return case, electrode


def _plate_progress(label):
    start = time.perf_counter()

    def progress(steps, plate_z, pressure, phase):
        print(f"\r{label}: step {steps}, plate {plate_z:.3f} µm above the collector, "
              f"{pressure:8.3f} MPa, {phase}, {time.perf_counter() - start:6.0f} s", end="",
              file=sys.stderr, flush=True)

    return progress


def _run_plate(args, kind):
    """Build the case, run calendering or indentation with progress, write the run folder."""
    from twin.io.calender_folder import write_calender_folder, write_indent_folder
    from twin.process.calender import calender
    from twin.process.indent import indent

    run, write, label = {"calender": (calender, write_calender_folder, "calendering"),
                         "indent": (indent, write_indent_folder, "indentation")}[kind]
    case, electrode = _plate_case(args, kind)
    result = run(electrode, case.protocol, case.materials(), progress=_plate_progress(label))
    print(file=sys.stderr)
    return write(result, args.out, notes={
        "electrode": str(case.electrode_data or "built-in small example electrode")})


def _indent(args):
    summary = _run_plate(args, "indent")
    print(f"{summary['particles']} particles ({summary['replicas']}×{summary['replicas']} "
          f"replicas), {summary['steps']} steps ({summary['precision']}): max force "
          f"{summary['max_force_mN']:.4g} mN at {summary['max_displacement_um']:.3f} µm, "
          f"residual {summary['residual_displacement_um']:.3f} µm, contact area "
          f"{summary['contact_area_um2']:.4g} µm² of {summary['nominal_area_um2']:.4g} µm², "
          f"{summary['wall_seconds']:.0f} s")
    print(f"run folder: {Path(args.out).resolve()}")


def _calender(args):
    summary = _run_plate(args, "calender")
    print(f"{summary['particles']} particles, {summary['steps']} steps ({summary['precision']}): "
          f"max pressure {summary['max_pressure_MPa']:.2f} MPa, thickness after recovery "
          f"{summary['thickness_um']:.3f} µm (recovery {summary['recovery_um']:.3f} µm), "
          f"porosity {100 * summary['initial_porosity']:.2f} % -> "
          f"{100 * summary['final_porosity']:.2f} %, inertial number "
          f"{summary['inertial_number']:.2g}, {summary['wall_seconds']:.0f} s")
    print(f"run folder: {Path(args.out).resolve()}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="twin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    dem = commands.add_parser("dem", help="run a DEM case file (TOML) into a run folder")
    dem.add_argument("case", nargs="?", default=None,
                     help="case file (TOML; keys in twin/io/case.py); without it, the built-in "
                          "default: a short calendering of the small example electrode")
    dem.add_argument("--out", required=True, help="run folder to write")
    dem.add_argument("--resume", action="store_true",
                     help="continue from the run folder's checkpoint instead of starting anew")
    dem.set_defaults(handler=_dem)
    plate_commands = {
        "calender": (_calender, "calender a dried electrode to a target pressure and measure "
                                "the recovery"),
        "indent": (_indent, "indent a replicated dried electrode by a fraction of its "
                            "thickness and release")}
    for name, (handler, description) in plate_commands.items():
        command = commands.add_parser(
            name, help=f"{description} (case keys in twin/io/calender_folder.py)")
        command.add_argument("case", nargs="?", default=None,
                             help=f"{name} case file (TOML); without it, the built-in small "
                                  "example electrode")
        command.add_argument("--out", required=True, help="run folder to write")
        command.set_defaults(handler=handler)
    from twin.analysis import command as analyze_command
    analyze_command.add_parser(commands)
    from calibrate import cli as calibrate_cli
    calibrate_cli.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"twin {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
