"""Calendering and indentation case files (TOML) and their run folders.

Case file (every key optional except the calendering target pressure; units in the keys)::

    [electrode]
    data = "dried.data"          # LAMMPS data of a dried electrode (type 1 CBD, 2..7 AM classes),
                                 # relative to this file; without it: the authors' small example
                                 # electrode compacted affinely (twin.process.pack)
    solid_fraction = 0.5         # only without `data`: the compaction of the built-in electrode
    lateral_scale = 0.4          # only without `data`: x, y scale of the authors' 80 µm cell

    [materials]
    mixing = "artistic"          # geometric | artistic (Table 2 materials)

    [protocol]
    target_pressure_MPa = 50.0
    plate_speed_m_s = 2.0        # = µm/µs
    dt_us = 1.0e-4
    am_expansion = 1.02
    release_fraction = 0.01      # recovery thickness: plate force ≥ this × its maximum
    clearance_um = 1.0
    record_every = 20
    precision = "float64"        # or float32 (mixed precision)
    depth_fraction = 0.10        # indentation only: pressed fraction of the thickness
    replicas = 4                 # indentation only: n × n copies of the electrode in x, y
    viscous_damping_per_us = 0.0 # background drag F = −γ m v (quasi-static device; 0: LIGGGHTS)
    force_filter_us = 0.05       # time constant of the plate-force low-pass read by the turn
                                 # controller (0: the instantaneous force)

Run folders: ``trace.csv`` (calendering: time_us, plate_z_um, force_N, pressure_MPa,
pressure_filtered_MPa (the plate pressure low-passed with ``force_filter_us``, what the turn
controller reads), porosity;
indentation: displacement_um, force_mN, displacement_normalised, force_normalised),
``summary.json``, ``final.data`` (LAMMPS data, unexpanded diameters), ``final.dump`` (OVITO) and a
PNG of the curve.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from twin.io.lammps import write_dump, write_sphere_data
from twin.process.calender import CalenderProtocol, CalenderResult
from twin.process.indent import IndentProtocol, IndentResult
from twin.process.materials import table2_materials
from twin.process.pack import (artistic_electrode, compact_affine, default_artistic_path,
                               remove_overlaps)

PROTOCOL_KEYS = {"target_pressure_MPa": "target_pressure_mpa",
                 "plate_speed_m_s": "plate_speed_um_us", "dt_us": "dt_us",
                 "am_expansion": "am_expansion", "release_fraction": "release_fraction",
                 "clearance_um": "clearance_um", "record_every": "record_every",
                 "precision": "precision", "gap_um": "gap_um", "max_steps": "max_steps",
                 "skin_um": "skin_um", "viscous_damping_per_us": "viscous_damping_per_us",
                 "force_filter_us": "force_filter_us"}
INDENT_KEYS = {"depth_fraction": "depth_fraction", "replicas": "replicas"}


@dataclass
class CalenderCase:
    electrode_data: Path | None
    solid_fraction: float
    lateral_scale: float
    mixing: str
    protocol: CalenderProtocol | IndentProtocol

    def electrode(self, progress=None):
        """The dried electrode this case calenders."""
        if self.electrode_data is not None:
            return artistic_electrode(self.electrode_data)
        electrode = artistic_electrode(default_artistic_path())
        return remove_overlaps(compact_affine(electrode, self.solid_fraction, self.lateral_scale),
                               progress=progress)

    def materials(self):
        return table2_materials(self.mixing)


def load_calender_case(path, kind="calender") -> CalenderCase:
    """Read a calendering (``kind="calender"``) or indentation (``"indent"``) case file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"case file {path} does not exist (see twin/io/calender_folder.py "
                                "for its keys)")
    with open(path, "rb") as f:
        document = tomllib.load(f)
    unknown = set(document) - {"electrode", "materials", "protocol"}
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {sorted(unknown)}; expected electrode, "
                         "materials, protocol")
    protocol_table = document.get("protocol", {})
    keys = dict(PROTOCOL_KEYS)
    if kind == "indent":
        keys.pop("target_pressure_MPa")
        keys.update(INDENT_KEYS)
    bad = set(protocol_table) - set(keys)
    if bad:
        raise ValueError(f"{path}: unknown [protocol] key(s) {sorted(bad)} for {kind}; known: "
                         f"{sorted(keys)}")
    if kind == "calender" and "target_pressure_MPa" not in protocol_table:
        raise ValueError(f"{path}: [protocol] needs target_pressure_MPa")
    protocol_class = IndentProtocol if kind == "indent" else CalenderProtocol
    protocol = protocol_class(**{keys[k]: v for k, v in protocol_table.items()})
    protocol.validate()
    electrode_table = document.get("electrode", {})
    data = electrode_table.get("data")
    if data is not None:
        data = (path.parent / data).resolve()
        if not data.exists():
            raise FileNotFoundError(f"{path}: electrode data file {data} does not exist")
    return CalenderCase(data, float(electrode_table.get("solid_fraction", 0.5)),
                        float(electrode_table.get("lateral_scale", 0.4)),
                        document.get("materials", {}).get("mixing", "artistic"), protocol)


def _write_packing(out: Path, electrode, position, steps, title):
    """final.data (unexpanded diameters, the authors' types 1 CBD, 2..7 AM) and final.dump."""
    radius = electrode.radius
    lo = np.array([electrode.box.lo[0], electrode.box.lo[1],
                   float(np.min(position[:, 2] - radius)) - 1.0])
    hi = np.array([electrode.box.hi[0], electrode.box.hi[1],
                   float(np.max(position[:, 2] + radius)) + 1.0])
    types = electrode.am_class + 1
    write_sphere_data(out / "final.data", electrode.ids, types, 2 * radius, electrode.density,
                      position, lo, hi, 7, title=title)
    zeros = np.zeros_like(position)
    with open(out / "final.dump", "w") as f:
        write_dump(f, [(steps, position, zeros, zeros)], lo, hi, (True, True, False),
                   electrode.ids, types, radius)


def _write_summary(out: Path, summary: dict, units: dict, notes) -> dict:
    summary = dict(summary)
    summary.update({"units": units, "device": jax.devices()[0].device_kind,
                    "platform": jax.devices()[0].platform, "notes": notes or {}})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def write_calender_folder(result: CalenderResult, out, notes: dict | None = None) -> dict:
    """Write the run folder of a calendering run; return the summary written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([result.time_us, result.plate_z_um, result.force_n,
                             result.pressure_mpa, result.pressure_filtered_mpa,
                             result.porosity_between_walls])
    np.savetxt(out / "trace.csv", table, delimiter=",", fmt="%.10g", comments="",
               header="time_us,plate_z_um,force_N,pressure_MPa,pressure_filtered_MPa,porosity")
    _write_packing(out, result.electrode, result.final_position, result.summary["steps"],
                   "calendered electrode (unexpanded diameters)")
    summary = _write_summary(out, result.summary, {
        "thickness_um": "µm", "pressure": "MPa", "force": "N", "time": "µs",
        "porosity": "volume fraction (spheres in the slab, overlaps counted twice)",
        "plate_z_um": "µm above the current collector"}, notes)
    _plot(result, out / "calender.png")
    return summary


def write_indent_folder(result: IndentResult, out, notes: dict | None = None) -> dict:
    """Write the run folder of an indentation run; return the summary written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([result.displacement_um, result.force_mn,
                             result.displacement_um / result.displacement_um.max(),
                             result.force_mn / result.force_mn.max()])
    np.savetxt(out / "trace.csv", table, delimiter=",", fmt="%.10g", comments="",
               header="displacement_um,force_mN,displacement_normalised,force_normalised")
    _write_packing(out, result.electrode, result.final_position, result.summary["steps"],
                   "indented electrode (unexpanded diameters)")
    summary = _write_summary(out, result.summary, {
        "displacement": "µm from the highest sphere top", "force": "mN", "area": "µm²"}, notes)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(table[:, 2], table[:, 3], lw=1)
    axes.set_xlabel("displacement / max displacement")
    axes.set_ylabel("force / max force")
    axes.set_title(f"max {summary['max_force_mN']:.3g} mN at "
                   f"{summary['max_displacement_um']:.3g} µm", fontsize=9)
    figure.tight_layout()
    figure.savefig(out / "indent.png", dpi=120)
    plt.close(figure)
    return summary


def _plot(result: CalenderResult, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(result.plate_z_um, result.pressure_mpa, lw=0.6, color="0.6", label="instantaneous")
    left.plot(result.plate_z_um, result.pressure_filtered_mpa, lw=1, color="C0",
              label=f"low-passed ({result.summary['force_filter_us']:g} µs)")
    left.axvline(result.summary["thickness_um"], color="k", ls="--", lw=0.8,
                 label=f"thickness after recovery {result.summary['thickness_um']:.2f} µm")
    left.set_xlabel("plate height above collector (µm)")
    left.set_ylabel("plate pressure (MPa)")
    left.legend(fontsize=8)
    right.scatter([result.summary["max_pressure_MPa"]], [100 * result.summary["final_porosity"]],
                  color="C3", label="after recovery")
    right.plot(result.pressure_filtered_mpa, 100 * result.porosity_between_walls, lw=1, color="C0",
               label="under the plate")
    right.set_xlabel("pressure (MPa)")
    right.set_ylabel("porosity (%)")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
