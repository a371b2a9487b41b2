"""Files and text of ``twin analyze``: summary.json, CSV tables, PNG plots, the printed summary.

JSON has no infinity: a non-percolating direction's τ = ∞ is written as the string ``"inf"``
(beside ``"percolating": false`` and a note), and NaN as ``null``, so every reader can parse it.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np


def json_safe(value):
    """``value`` with numpy scalars/arrays as Python numbers/lists, ±inf as "inf"/"-inf", NaN as
    None (standard JSON has no non-finite numbers)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    return value


def write_json(path, summary) -> Path:
    path = Path(path)
    path.write_text(json.dumps(json_safe(summary), indent=2, ensure_ascii=False, allow_nan=False)
                    + "\n")
    return path


def write_table(path, columns: dict) -> Path:
    """CSV with one column per entry of ``columns`` (name -> 1-D array, all the same length)."""
    path = Path(path)
    names = list(columns)
    rows = np.column_stack([np.asarray(columns[n], float) for n in names])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows([[f"{v:.10g}" for v in row] for row in rows])
    return path


def plot_psd(path, psd_columns: dict, intrusion_columns: dict | None = None) -> Path:
    """PSD (volume fraction per radius bin) and, if given, the simulated intrusion curve."""
    from matplotlib.figure import Figure

    panels = 1 if intrusion_columns is None else 2
    figure = Figure(figsize=(5.0 * panels, 3.8), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    radius = psd_columns["radius_um"]
    axes[0].bar(radius, psd_columns["volume_fraction"], width=0.9 * (radius[0] if len(radius)
                                                                    else 1.0))
    axes[0].set_xlabel("pore radius (µm, maximal inscribed sphere)")
    axes[0].set_ylabel("fraction of pore volume")
    axes[0].set_title("pore size distribution")
    if intrusion_columns is not None:
        axes[1].semilogx(intrusion_columns["pressure_mpa"],
                         intrusion_columns["intruded_fraction_of_pores"], "o-", ms=3)
        axes[1].set_xlabel("mercury pressure (MPa, Washburn)")
        axes[1].set_ylabel("intruded fraction of the pore volume")
        axes[1].set_title("simulated intrusion from the top")
    figure.savefig(path, dpi=120)
    return Path(path)


def plot_rdf(path, rdf_columns: dict) -> Path:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = figure.subplots()
    r = rdf_columns["r_um"]
    for name, label in (("g_AM_AM", "AM–AM"), ("g_AM_CBD", "AM–CBD"), ("g_CBD_CBD", "CBD–CBD"),
                        ("g_total", "all")):
        ax.plot(r, rdf_columns[name], label=label, lw=1.2 if name != "g_total" else 0.8)
    ax.axhline(1.0, color="0.6", lw=0.6)
    ax.set_xlabel("centre distance r (µm)")
    ax.set_ylabel("g(r)")
    ax.set_title("radial distribution functions (slab edge-corrected)")
    ax.legend()
    figure.savefig(path, dpi=120)
    return Path(path)


def _percent(value):
    return f"{100.0 * value:.2f} %"


def _tau(value):
    return "∞" if value == "inf" or value == math.inf else f"{value:.3f}"


def human_summary(summary: dict) -> str:
    """A few lines with units for the terminal."""
    lines = []
    source = summary["input"]
    if source["kind"] == "label image":
        lines.append(f"input: label image {source['path']}")
    else:
        lines.append(f"input: {source['kind']} {source['path']}, {source['spheres']} spheres "
                     f"({source['spheres_am']} AM, {source['spheres_cbd']} CBD); electrode "
                     f"z {source['z_bottom_um']:.4g} … {source['z_top_um']:.4g} µm "
                     f"(bottom: {source['z_bottom_from']}; top: {source['z_top_from']})")
    shape = " × ".join(str(n) for n in summary["image_shape"])
    lines.append(f"voxels: {shape} of {summary['voxel_um']:g} µm ({summary['precision']})")
    porosity = summary.get("porosity")
    if porosity:
        text = f"porosity: {_percent(porosity['voxels']['porosity'])} from voxels"
        if "particles" in porosity:
            text += (f", {_percent(porosity['particles']['porosity'])} from particles (sphere "
                     "volumes, overlaps counted twice)")
        lines.append(text)
    tortuosity = summary.get("tortuosity")
    if tortuosity:
        lines.append("tortuosity factor τ (paper/GeoDict ε D_pore/D_eff | TauFactor D_mean/D_eff),"
                     " D_eff:")
        for axis in "xyz":
            t = tortuosity[axis]
            lines.append(f"  {axis}: {_tau(t['tau_paper'])} | {_tau(t['tau_taufactor'])}, "
                         f"D_eff {t['d_eff_m2_s']:.4g} m²/s"
                         + ("" if t["percolating"] else " (no percolating pore path)")
                         + ("" if t["converged"] else " (NOT converged)"))
    psd = summary.get("psd")
    if psd:
        lines.append(f"pore radius (local thickness): mean {psd['mean_radius_um']:.3g} µm, median "
                     f"{psd['median_radius_um']:.3g} µm, largest {psd['max_radius_um']:.3g} µm "
                     "(volume-weighted)")
    intrusion = summary.get("intrusion")
    if intrusion and intrusion["half_intrusion_radius_um"] is None:
        lines.append("mercury intrusion: no pore voxel is reached from the top face")
    elif intrusion:
        lines.append(f"mercury intrusion: {_percent(intrusion['intruded_fraction_of_pores'])} of "
                     f"the pore volume reached from the top; half of it by r ≥ "
                     f"{intrusion['half_intrusion_radius_um']:.3g} µm "
                     f"({intrusion['half_intrusion_pressure_mpa']:.3g} MPa)")
    surfaces = summary.get("surfaces")
    if surfaces:
        for origin, label in (("particles", "from spheres"),
                              ("voxels", "from voxel faces / 1.5 (staircase)")):
            if origin in surfaces:
                key = ("specific_per_um" if origin == "particles"
                       else "specific_per_um_over_staircase")
                values = ", ".join(f"{k} {v:.4g}" for k, v in surfaces[origin][key].items())
                lines.append(f"specific surface (1/µm) {label}: {values}")
    contact = summary.get("contacts")
    if contact:
        counts = ", ".join(f"{k} {v}" for k, v in contact["count"].items())
        coordination = ", ".join(f"{k} {v:.3g}" for k, v in contact["coordination"].items())
        lines.append(f"contacts: {counts}; mean coordination {coordination}")
    rdf = summary.get("rdf")
    if rdf:
        peaks = ", ".join(f"{k} {v:.3g} µm" for k, v in rdf["highest_peak_r_um"].items())
        lines.append(f"RDF highest peaks: {peaks}")
    for name, reason in summary.get("skipped", {}).items():
        lines.append(f"skipped {name}: {reason}")
    lines.append(f"files in {summary['out']}: {', '.join(summary['files'])}")
    return "\n".join(lines)
