"""``python -m calibrate fit CONFIG.toml --out DIR [--resume]`` (also ``twin calibrate fit``)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path


def _add_fit(subparsers):
    parser = subparsers.add_parser(
        "fit", help="fit material parameters to target curves (config keys in "
                    "calibrate/config.py)")
    parser.add_argument("config", help="calibration config (TOML)")
    parser.add_argument("--out", required=True,
                        help="folder for fit.json, parameters.csv, history.csv/.json, fit.png "
                             "and the checkpoint")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the folder's checkpoint (same config)")
    parser.add_argument("--quiet", action="store_true", help="no progress line per iteration")
    parser.set_defaults(handler=run)
    return parser


def add_parser(subparsers):
    """Register ``calibrate`` (with its ``fit`` action) on the ``twin`` command's subparsers."""
    parser = subparsers.add_parser(
        "calibrate", help="gradient-based calibration of material parameters",
        description=__doc__)
    _add_fit(parser.add_subparsers(dest="calibrate_command", required=True))
    return parser


def run(args) -> dict:
    """Execute ``fit`` from parsed arguments; print progress (stderr) and a summary; return
    the content of ``fit.json``."""
    from calibrate.run import run_calibration

    print_line = None if args.quiet else functools.partial(print, file=sys.stderr, flush=True)
    summary = run_calibration(args.config, args.out, resume=args.resume, print_line=print_line)
    print(f"loss {summary['loss_start']:.6g} -> {summary['loss']:.6g} in "
          f"{summary['iterations']} iterations ({summary['evaluations']} loss evaluations, "
          f"{summary['wall_seconds']:.1f} s)")
    if not summary["identifiability"]["at_optimum"]:
        fraction = summary["identifiability"]["newton_decrease_fraction"]
        print(f"  warning: not at an optimum (a Gauss–Newton step would remove "
              f"{100 * fraction:.0f} % of the loss): the intervals below are not meaningful; run "
              "more iterations or use lbfgs")
    for row in summary["parameters"]:
        if not row["free"]:
            continue
        unit = f" {row['unit']}" if row["unit"] else ""
        interval = ("not constrained by the data" if not row["constrained"] else
                    f"95 % interval [{row['ci95_lower']:.6g}, {row['ci95_upper']:.6g}]")
        print(f"  {row['name']} = {row['fitted']:.6g}{unit} (start {row['start']:.6g}): "
              f"{interval}")
    for direction in summary["identifiability"]["unconstrained"]:
        combination = " ".join(f"{v:+.3f}·ln {name}" for name, v in
                               direction["direction"].items() if abs(v) > 1e-3)
        print(f"  unconstrained direction (eigenvalue ratio "
              f"{direction['ratio_to_largest']:.2g}): {combination}")
    print(f"output folder: {Path(args.out).resolve()}")
    return summary


def main(argv=None) -> int:
    """``python -m calibrate ...`` is ``twin calibrate ...`` (one error handling for both)."""
    from twin.cli import main as twin_main
    return twin_main(["calibrate", *(sys.argv[1:] if argv is None else argv)])
