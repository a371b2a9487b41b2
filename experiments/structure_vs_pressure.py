"""Figs. 4 and 5: structure of the paper-size electrode before and after calendering (issue #6).

    python experiments/structure_vs_pressure.py --sweep experiments/out/fig2b --out experiments/out/structure

Electrodes: the dried electrode ``--dried`` (LAMMPS data, pressure 0; default the committed
``experiments/data/dried_paper_electrode.data``) and every ``twin calender`` run folder
``P<p>MPa/`` under ``--sweep`` (written by ``experiments/fig2b_porosity_pressure.py``; pressure =
its ``target_pressure_MPa``). ``--pressures`` picks folders; a missing or unfinished one is
skipped with a message. Each electrode is analysed by ``twin analyze``
(:func:`twin.analysis.command.analyze`) into ``OUT/<label>/``, so its slab is analyze's: the
dried electrode from its lowest sphere bottom to its highest sphere top (the calender's initial
porosity uses the same slab), a calendered one from the current collector to the thickness after
elastic recovery. ``--reuse`` takes an electrode's earlier analysis when it covers the same
analyses, voxel edge and precision.

Voxel edge: the paper's 0.25 µm does not tile the 25.8 µm periodic cell (103.2 voxels) and the
voxeliser refuses a periodic axis that is not a whole number of voxels. ``--voxel-um`` is the
target edge; the edge used is the nearest that tiles the periodic x, y sides (25.8 µm: 103
voxels of 0.250485 µm), printed and recorded.

Precision: ``--precision`` (default float64, analyze's default) applies to the sphere coordinates
(voxelisation, RDF) and to the tortuosity solve.

Outputs in ``OUT``:

* ``tau_vs_pressure.csv``: electrode, pressure_MPa (0 dried), porosity (sphere volumes, the
  authors' definition), porosity_voxels, thickness_um, τ x/y/z in the paper's (GeoDict:
  ε D_pore / D_eff) and TauFactor's (D_mean / D_eff) definitions;
* ``rdf.csv``: one long table (electrode, pressure_MPa, r_um, g_AM_AM, g_AM_CBD, g_CBD_CBD,
  g_total) of analyze's partial g(r) (AM–CBD: AM centres as reference, as the paper's Fig. 4B);
* ``rdf_am_cbd_by_class.csv``: g(r) of CBD around the AM spheres of each size class
  (electrode, pressure_MPa, am_class, radius_um, r_um, g): which AM–CBD peak is which class's;
* ``summary.json``: settings, per electrode the porosity, τ and the g(r) peaks (:func:`find_peaks`)
  with their comparison to the paper (CBD–CBD near 1.25 and 2 µm; AM–CBD just above the six AM
  radii; AM–AM just above sums of two AM radii), and per τ definition and axis whether τ rises
  strictly with pressure (:func:`rises_with_pressure`); skipped electrodes with the reason;
* ``fig4_rdf.png`` (CBD–CBD, AM–CBD, AM–AM g(r)) and ``fig5_tortuosity.png`` (τ vs pressure).

Measured on the authors' CGMD-dried electrode (2026-12-06, float64, 0.248981 µm voxels; the
authors' ``coord_out_electrode.sys`` through :func:`twin.process.pack.authors_dried_electrode`,
calendered by ``fig2b_porosity_pressure.py --am-expansion 1.02 --cbd-density 0.93`` at 2 m/s):

* As written (pre-stressed, 43.5 %): CBD–CBD peaks at 1.232 µm (g 27.7) and 2.054 µm (g 6.95),
  the paper's two shells; AM–CBD peaks weak (g 1.4–2.3) at R_k + 0.63 µm.
* Calendered as written to 20 MPa (27.6 %): the 2 µm shell is gone (a weak peak at 2.31 µm,
  g 2.1), the first peak drops to g 12.2 at 1.221 µm; AM–CBD peaks strong (g 2.5–5.5) at
  R_k + 0.43…0.45 µm for all six classes. These are the paper's Fig. 4 statements: the second
  shell's order is lost and the first peak loses height to its tail on calendering, CBD covers
  the AM spheres more closely and more orderly. τ (paper, x / z) 1.339 / 1.459 → 1.531 / 1.644.
* Relaxed free-standing first (``authors_dried_electrode.py``, 45.6 %), then 1, 2, 5, 10,
  20 MPa (33.4 → 26.6 %): the same picture at every pressure (CBD–CBD 1.221–1.225 and
  2.32–2.34 µm, first-peak g 17.9 → 12.2; AM–CBD at R_k + 0.42…0.45 µm, independent of the
  pressure as in the paper); τ (paper) x 1.310 → 1.451 → 1.465 → 1.484 → 1.487 → 1.518 and
  z 1.445 → 1.641, rising strictly on x, y and z in both definitions.
* The stand-in DEM-dried electrode has no 2 µm shell even before calendering (second peak at
  2.32–2.36 µm): the shell comes from the CGMD drying, which the stand-in does not model.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SWEEP = ROOT / "experiments" / "out" / "fig2b"
DEFAULT_OUT = ROOT / "experiments" / "out" / "structure"
DEFAULT_DRIED = ROOT / "experiments" / "data" / "dried_paper_electrode.data"
DEFAULT_WHAT = "porosity,rdf,tortuosity"
PAPER_VOXEL_UM = 0.25
PAPER_CBD_CBD_PEAKS_UM = (1.25, 2.0)        # Fig. 4A: first and second shell
PAIRS = ("CBD-CBD", "AM-CBD", "AM-AM")
AXES = "xyz"
TAU_DEFINITIONS = ("paper", "taufactor")
PEAK_SMOOTH_UM = 0.05          # one bin of analyze's default RDF bins
PEAK_MIN_PROMINENCE = 0.2
FOLDER = re.compile(r"^P(?P<pressure>[0-9.eE+-]+)MPa$")


class Peak(NamedTuple):
    r_um: float          # position (parabola through the smoothed maximum and its neighbours)
    g: float             # smoothed g at the maximum bin
    g_raw: float         # largest unsmoothed g within one bin of it
    prominence: float    # height above the higher of its two bases
    width_um: float      # width at half prominence


class Electrode(NamedTuple):
    label: str
    pressure_mpa: float
    source: Path


def _class_radii():
    from twin.process.pack import AM_CLASS_DIAMETERS_UM, CBD_DRIED_DIAMETER_UM
    return np.asarray(AM_CLASS_DIAMETERS_UM) / 2.0, CBD_DRIED_DIAMETER_UM / 2.0


# ---------------------------------------------------------------- peaks and trends

def gaussian_smooth(values, sigma_bins):
    """``values`` convolved with a unit-area Gaussian of ``sigma_bins`` bins (cut at 4σ), the
    ends extended by their edge values; sigma_bins = 0 returns a copy."""
    values = np.asarray(values, float)
    if sigma_bins == 0:
        return values.copy()
    half = int(math.ceil(4.0 * sigma_bins))
    offsets = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_bins) ** 2)
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def find_peaks(r, g, smooth_um=PEAK_SMOOTH_UM, min_prominence=PEAK_MIN_PROMINENCE) -> list[Peak]:
    """Peaks of a g(r) on uniform bins, in increasing r.

    g is smoothed by a Gaussian of standard deviation ``smooth_um`` (bin noise, not structure,
    makes most local maxima of a raw histogram). A peak is an interior local maximum of the
    smoothed curve whose topographic prominence, its height above the higher of the two lowest
    points reached before the curve climbs above it again on either side (or the range ends),
    is at least ``min_prominence`` (in units of g). Its position is refined by the vertex of the
    parabola through the maximum bin and its two neighbours; its width is measured where the
    smoothed curve falls to half the prominence below the peak (linear interpolation). A contact
    peak one bin wide comes out about 2.4 smoothing σ wide: widths and smoothed heights of such
    peaks measure the resolution, not the structure (``g_raw`` keeps the histogram's height).
    """
    r, g = np.asarray(r, float), np.asarray(g, float)
    if r.ndim != 1 or r.shape != g.shape or len(r) < 3:
        raise ValueError(f"r and g must be 1-D of the same length >= 3; got shapes {r.shape} and "
                         f"{g.shape}")
    step = np.diff(r)
    if not (np.isfinite(g).all() and np.isfinite(r).all()):
        raise ValueError("r and g must be finite: drop the NaN/inf bins first")
    if not (step > 0).all() or np.ptp(step) > 1e-6 * step[0]:
        raise ValueError("r must be increasing with a uniform bin width (bin centres of a "
                         "histogram)")
    if smooth_um < 0 or min_prominence <= 0:
        raise ValueError(f"smooth_um {smooth_um} must be >= 0 and min_prominence "
                         f"{min_prominence} > 0")
    dr = step[0]
    s = gaussian_smooth(g, smooth_um / dr)
    peaks = []
    for i in range(1, len(s) - 1):
        if not (s[i] > s[i - 1] and s[i] >= s[i + 1]):
            continue
        left, right = _base_index(s, i, -1), _base_index(s, i, +1)
        base = max(s[left:i + 1].min(), s[i:right + 1].min())
        prominence = s[i] - base
        if prominence < min_prominence:
            continue
        half = s[i] - 0.5 * prominence
        width = _crossing(r, s, i, right, half) - _crossing(r, s, i, left, half)
        curvature = s[i - 1] - 2.0 * s[i] + s[i + 1]
        shift = 0.5 * (s[i - 1] - s[i + 1]) / curvature if curvature < 0 else 0.0
        peaks.append(Peak(float(r[i] + shift * dr), float(s[i]), float(g[i - 1:i + 2].max()),
                          float(prominence), float(width)))
    return peaks


def _base_index(s, i, direction):
    """Last index reached from peak i in ``direction`` before s rises above s[i] (or the end)."""
    j = i
    while 0 <= j + direction < len(s) and s[j + direction] <= s[i]:
        j += direction
    return j


def _crossing(r, s, i, end, level):
    """r where s first falls below ``level`` going from i towards ``end`` (interpolated)."""
    direction = 1 if end >= i else -1
    for j in range(i, end + direction, direction):
        if s[j] < level:
            previous = j - direction
            return float(r[previous] + (r[j] - r[previous]) * (s[previous] - level)
                         / (s[previous] - s[j]))
    return float(r[end])


def rises_with_pressure(pressures, values) -> dict:
    """Whether ``values`` increase strictly with pressure (sorted by pressure; NaN breaks it,
    +inf counts as larger than any finite value)."""
    pressures, values = np.asarray(pressures, float), np.asarray(values, float)
    if pressures.shape != values.shape or pressures.ndim != 1:
        raise ValueError(f"pressures and values must be 1-D of one length; got {pressures.shape} "
                         f"and {values.shape}")
    if len(np.unique(pressures)) != len(pressures):
        raise ValueError(f"pressures {pressures.tolist()} repeat: one value per pressure")
    order = np.argsort(pressures)
    ordered = values[order]
    with np.errstate(invalid="ignore"):
        steps = np.diff(ordered)
        rising = [bool(b > a) for a, b in zip(ordered[:-1], ordered[1:])]
    return {"pressures_MPa": pressures[order].tolist(), "values": ordered.tolist(),
            "steps": steps.tolist(),
            "strictly_increasing": bool(len(ordered) > 1 and all(rising)),
            "decreasing_steps": int(sum(not x for x in rising))}


def first_peak_in(peaks, lower, upper):
    """The first peak with lower < r ≤ upper, or None."""
    inside = [p for p in peaks if lower < p.r_um <= upper]
    return inside[0] if inside else None


def nearest_peak(peaks, target, window):
    """The peak nearest to ``target`` within ± ``window``, or None."""
    near = [p for p in peaks if abs(p.r_um - target) <= window]
    return min(near, key=lambda p: abs(p.r_um - target)) if near else None


def compare_with_paper(peaks: dict) -> dict:
    """The measured peaks against the paper's Fig. 4 statements.

    CBD–CBD: the peak nearest to 1.25 and to 2 µm within half their spacing. AM–CBD: for each
    class radius R_k the first peak in (R_k, R_k + R_CBD] (a CBD sphere touching an AM sphere
    sits at R_k + R_CBD − overlap). AM–AM: for each peak the nearest sum of two class radii.
    """
    am_radii, cbd_radius = _class_radii()
    window = 0.5 * (PAPER_CBD_CBD_PEAKS_UM[1] - PAPER_CBD_CBD_PEAKS_UM[0])
    cbd_cbd = []
    for target in PAPER_CBD_CBD_PEAKS_UM:
        peak = nearest_peak(peaks["CBD-CBD"], target, window)
        cbd_cbd.append({"paper_um": target, "measured_um": None if peak is None else peak.r_um,
                        "difference_um": None if peak is None else peak.r_um - target})
    am_cbd = []
    for k, radius in enumerate(am_radii):
        peak = first_peak_in(peaks["AM-CBD"], radius, radius + cbd_radius)
        am_cbd.append({"am_class": k + 1, "radius_um": float(radius),
                       "first_peak_um": None if peak is None else peak.r_um,
                       "offset_um": None if peak is None else peak.r_um - float(radius)})
    sums = {(i + 1, j + 1): float(am_radii[i] + am_radii[j])
            for i in range(len(am_radii)) for j in range(i, len(am_radii))}
    am_am = []
    for peak in peaks["AM-AM"]:
        pair, total = min(sums.items(), key=lambda item: abs(item[1] - peak.r_um))
        am_am.append({"peak_um": peak.r_um, "nearest_radius_sum_um": total,
                      "classes": list(pair), "difference_um": peak.r_um - total})
    return {"CBD-CBD_vs_1.25_and_2_um": cbd_cbd, "AM-CBD_vs_class_radii": am_cbd,
            "AM-AM_vs_radius_sums": am_am}


# ---------------------------------------------------------------- inputs

def fitted_voxel_um(target_um, lengths_um) -> float:
    """The voxel edge nearest to ``target_um`` that tiles every periodic side a whole number of
    times (all sides must agree)."""
    if not target_um > 0:
        raise ValueError(f"--voxel-um {target_um} must be positive (the paper: 0.25 µm)")
    lengths_um = np.asarray(lengths_um, float)
    edges = lengths_um / np.maximum(1, np.round(lengths_um / target_um))
    if np.ptp(edges) > 1e-9 * edges[0]:
        raise ValueError(f"periodic sides {lengths_um.tolist()} µm need different voxel edges "
                         f"near {target_um} µm ({edges.tolist()}): choose --voxel-um that divides "
                         "all of them")
    return float(edges[0])


def electrodes(dried, sweep, pressures=None, log=print) -> tuple[list[Electrode], list[dict]]:
    """The dried electrode and the finished run folders of the sweep, by pressure; and the
    skipped folders with the reason."""
    found, skipped = [Electrode("dried", 0.0, Path(dried))], []
    sweep = Path(sweep)
    if not sweep.is_dir():
        log(f"sweep folder {sweep} not found: analysing the dried electrode only (run "
            "experiments/fig2b_porosity_pressure.py first)")
        return found, [{"folder": str(sweep), "reason": "sweep folder not found"}]
    if pressures is None:
        folders = sorted(p for p in sweep.iterdir() if p.is_dir() and FOLDER.match(p.name))
    else:
        folders = [sweep / f"P{p:g}MPa" for p in pressures]
    for folder in folders:
        missing = [n for n in ("final.data", "summary.json") if not (folder / n).is_file()]
        if not folder.is_dir() or missing:
            reason = ("folder not found" if not folder.is_dir()
                      else f"unfinished run folder ({', '.join(missing)} missing)")
            log(f"skipping {folder}: {reason}")
            skipped.append({"folder": str(folder), "reason": reason})
            continue
        summary = json.loads((folder / "summary.json").read_text())
        pressure = summary.get("target_pressure_MPa")
        if pressure is None:
            pressure = float(FOLDER.match(folder.name)["pressure"])
        found.append(Electrode(folder.name, float(pressure), folder))
    return sorted(found, key=lambda e: e.pressure_mpa), skipped


def _reusable(folder, what, voxel_um, precision):
    path = folder / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    same = (set(what) <= set(summary.get("analyses", ())) and summary.get("precision") == precision
            and math.isclose(summary.get("voxel_um", -1.0), voxel_um, rel_tol=1e-12))
    return summary if same else None


def _number(value):
    """A summary.json value as a float ("inf" → inf, None → nan)."""
    if value is None:
        return math.nan
    return math.inf if value == "inf" else float(value)


# ---------------------------------------------------------------- analysis

def am_cbd_by_class(source, r_max_um, n_bins, dtype) -> dict:
    """g(r) of the CBD centres around the AM centres of each size class (class number → RDF), on
    analyze's slab and bins (:func:`twin.analysis.rdf.rdf`, slab edge-corrected)."""
    import jax.numpy as jnp

    from twin.analysis.command import read_packing
    from twin.analysis.rdf import rdf
    from twin.analysis.voxels import AM, CBD
    from twin.physics.space import Box

    packing = read_packing(source)
    z = packing.position[:, 2]
    inside = (z >= packing.z_bottom) & (z <= packing.z_top)
    am_radii, _ = _class_radii()
    am = inside & (packing.phase == AM)
    nearest = np.argmin(np.abs(packing.radius[:, None] - am_radii[None, :]), axis=1)
    off = np.abs(packing.radius[am] / am_radii[nearest[am]] - 1.0)
    if off.size and off.max() > 0.05:
        raise ValueError(f"{source}: an AM radius is {100 * off.max():.1f} % off the nearest "
                         f"class radius {am_radii.tolist()} µm: expected the unexpanded classes")
    box = Box(packing.box_lo, packing.box_hi, packing.periodic)
    cbd = jnp.asarray(packing.position[inside & (packing.phase == CBD)], dtype)
    result = {}
    for k in range(len(am_radii)):
        members = am & (nearest == k)
        if members.any():
            result[k + 1] = rdf(jnp.asarray(packing.position[members], dtype), cbd, box, r_max_um,
                                n_bins, z_range=(packing.z_bottom, packing.z_top))
    return result


def analyse_electrode(electrode: Electrode, out: Path, what, voxel_um, precision, reuse,
                      log=print) -> dict:
    """analyze() one electrode into out/<label> (or reuse it); return its record."""
    from twin.analysis.command import PRECISIONS, analyze

    folder = out / electrode.label
    started = time.perf_counter()
    summary = _reusable(folder, what, voxel_um, precision) if reuse else None
    if summary is not None:
        log(f"{electrode.label}: reusing {folder / 'summary.json'}")
    else:
        summary = analyze(electrode.source, folder, what=",".join(what), voxel_um=voxel_um,
                          precision=precision, log=lambda line: log(f"  {line}"))
    record = {"electrode": electrode.label, "pressure_MPa": electrode.pressure_mpa,
              "source": str(electrode.source), "analysis_folder": str(folder),
              "image_shape": summary["image_shape"],
              "thickness_um": summary["input"]["z_top_um"] - summary["input"]["z_bottom_um"],
              "analyze_wall_seconds": summary["wall_seconds"]}
    if electrode.label != "dried":
        calender = json.loads((electrode.source / "summary.json").read_text())
        record["calender"] = {k: calender.get(k) for k in (
            "max_pressure_MPa", "final_porosity", "thickness_um", "recovery_um")}
    if "porosity" in summary:
        record["porosity"] = summary["porosity"]["particles"]["porosity"]
        record["porosity_voxels"] = summary["porosity"]["voxels"]["porosity"]
    if "tortuosity" in summary:
        tau = summary["tortuosity"]
        record["tau"] = {d: {a: _number(tau[a][f"tau_{d}"]) for a in AXES}
                         for d in TAU_DEFINITIONS}
        record["tau_converged"] = {a: bool(tau[a]["converged"]) for a in AXES}
        record["tau_wall_seconds"] = {a: tau[a]["wall_seconds"] for a in AXES}
    if "rdf" in summary:
        columns = _read_columns(folder / summary["rdf"]["file"])
        peaks = {pair: find_peaks(columns["r_um"], columns["g_" + pair.replace("-", "_")])
                 for pair in PAIRS}
        by_class = am_cbd_by_class(electrode.source, summary["rdf"]["r_max_um"],
                                   summary["rdf"]["bins"], PRECISIONS[precision])
        class_peaks = {k: find_peaks(result.r, result.g) for k, result in by_class.items()}
        am_radii, _ = _class_radii()
        record["rdf"] = columns
        record["rdf_by_class"] = {k: (result.r, result.g) for k, result in by_class.items()}
        record["rdf_peaks"] = {pair: [p._asdict() for p in found] for pair, found in peaks.items()}
        record["vs_paper"] = compare_with_paper(peaks)
        record["vs_paper"]["AM-CBD_by_class_first_peak"] = [
            {"am_class": k, "radius_um": float(am_radii[k - 1]),
             "first_peak_um": found[0].r_um if found else None,
             "offset_um": found[0].r_um - float(am_radii[k - 1]) if found else None}
            for k, found in class_peaks.items()]
    record["wall_seconds"] = time.perf_counter() - started
    return record


def _read_columns(path) -> dict:
    with open(path) as f:
        rows = list(csv.reader(f))
    values = np.array(rows[1:], float)
    return {name: values[:, j] for j, name in enumerate(rows[0])}


# ---------------------------------------------------------------- tables and summary

def tau_table(records) -> list[dict]:
    """One row per electrode for tau_vs_pressure.csv (nan where an analysis was not run)."""
    rows = []
    for rec in records:
        row = {"electrode": rec["electrode"], "pressure_MPa": rec["pressure_MPa"],
               "porosity": rec.get("porosity", math.nan),
               "porosity_voxels": rec.get("porosity_voxels", math.nan),
               "thickness_um": rec["thickness_um"]}
        for definition in TAU_DEFINITIONS:
            for axis in AXES:
                row[f"tau_{definition}_{axis}"] = rec.get("tau", {}).get(definition, {}).get(
                    axis, math.nan)
        rows.append(row)
    return rows


def write_rows(path, rows) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.10g}" if isinstance(v, float) else v
                             for k, v in row.items()})
    return Path(path)


def rdf_rows(records) -> list[dict]:
    rows = []
    for rec in records:
        if "rdf" not in rec:
            continue
        columns = rec["rdf"]
        for j in range(len(columns["r_um"])):
            rows.append({"electrode": rec["electrode"], "pressure_MPa": rec["pressure_MPa"],
                         **{name: float(values[j]) for name, values in columns.items()}})
    return rows


def class_rdf_rows(records) -> list[dict]:
    am_radii, _ = _class_radii()
    rows = []
    for rec in records:
        for k, (r, g) in rec.get("rdf_by_class", {}).items():
            rows += [{"electrode": rec["electrode"], "pressure_MPa": rec["pressure_MPa"],
                      "am_class": k, "radius_um": float(am_radii[k - 1]), "r_um": float(rj),
                      "g": float(gj)} for rj, gj in zip(r, g)]
    return rows


def trends(records) -> dict:
    """Per τ definition and axis: does τ rise strictly with pressure (dried = 0 MPa)?"""
    with_tau = [rec for rec in records if "tau" in rec]
    if len(with_tau) < 2:
        return {}
    pressures = [rec["pressure_MPa"] for rec in with_tau]
    return {definition: {axis: rises_with_pressure(
        pressures, [rec["tau"][definition][axis] for rec in with_tau]) for axis in AXES}
        for definition in TAU_DEFINITIONS}


def assemble(records, skipped, settings) -> dict:
    """summary.json: settings, per-electrode results (without the g(r) arrays), τ trends."""
    kept = ("rdf", "rdf_by_class")
    return {**settings,
            "electrodes": [{k: v for k, v in rec.items() if k not in kept} for rec in records],
            "tau_rises_with_pressure": trends(records), "skipped": skipped,
            "peak_finder": {"smooth_um": PEAK_SMOOTH_UM, "min_prominence": PEAK_MIN_PROMINENCE,
                            "method": "find_peaks: Gaussian smoothing, topographic prominence "
                                      ">= min_prominence (g units), parabolic vertex, width at "
                                      "half prominence"}}


def write_outputs(records, skipped, settings, out: Path, log=print) -> dict:
    from twin.analysis.report import write_json

    out.mkdir(parents=True, exist_ok=True)
    summary = assemble(records, skipped, settings)
    write_rows(out / "tau_vs_pressure.csv", tau_table(records))
    files = ["tau_vs_pressure.csv"]
    for name, rows in (("rdf.csv", rdf_rows(records)),
                       ("rdf_am_cbd_by_class.csv", class_rdf_rows(records))):
        if rows:
            write_rows(out / name, rows)
            files.append(name)
    if any("rdf" in rec for rec in records):
        plot_rdf(out / "fig4_rdf.png", records)
        files.append("fig4_rdf.png")
    if any("tau" in rec for rec in records):
        plot_tortuosity(out / "fig5_tortuosity.png", records)
        files.append("fig5_tortuosity.png")
    summary["files"] = ["summary.json", *files]
    write_json(out / "summary.json", summary)
    log(f"wrote {', '.join(summary['files'])} in {out}")
    return summary


# ---------------------------------------------------------------- plots

def _colours(records):
    from matplotlib import colormaps
    cmap = colormaps["plasma"]
    pressed = [rec for rec in records if rec["pressure_MPa"] > 0]
    colours = {rec["electrode"]: cmap(0.85 * k / max(1, len(pressed) - 1))
               for k, rec in enumerate(pressed)}
    colours["dried"] = "k"
    return colours


def _label(rec):
    return "dried" if rec["pressure_MPa"] == 0 else f"{rec['pressure_MPa']:g} MPa"


def plot_rdf(path, records) -> Path:
    """Fig. 4: g(r) of CBD–CBD, AM–CBD (with the class radii and the CBD radius) and AM–AM."""
    from matplotlib.figure import Figure

    am_radii, cbd_radius = _class_radii()
    colours = _colours(records)
    figure = Figure(figsize=(15, 4.2), layout="constrained")
    axes = figure.subplots(1, 3)
    for ax, pair in zip(axes, PAIRS):
        for rec in records:
            if "rdf" in rec:
                ax.plot(rec["rdf"]["r_um"], rec["rdf"]["g_" + pair.replace("-", "_")],
                        color=colours[rec["electrode"]], lw=1.0, label=_label(rec))
        ax.axhline(1.0, color="0.7", lw=0.6)
        ax.set_xlabel("centre distance r (µm)")
        ax.set_ylabel("g(r)")
        ax.set_title({"CBD-CBD": "A) CBD–CBD", "AM-CBD": "B) CBD around AM",
                      "AM-AM": "C) AM–AM"}[pair])
    for target in PAPER_CBD_CBD_PEAKS_UM:
        axes[0].axvline(target, color="tab:green", ls="--", lw=0.8)
    axes[0].set_xlim(0, 6)
    axes[0].text(0.98, 0.97, "dashed: paper peaks 1.25, 2 µm", transform=axes[0].transAxes,
                 ha="right", va="top", fontsize=8)
    for radius in am_radii:
        axes[1].axvline(radius, color="tab:blue", ls=":", lw=0.9)
    axes[1].axvline(cbd_radius, color="tab:red", ls="-.", lw=0.9)
    axes[1].text(0.98, 0.97, "dotted: the six AM radii\ndash-dot: CBD radius",
                 transform=axes[1].transAxes, ha="right", va="top", fontsize=8)
    axes[2].legend(fontsize=8)
    figure.savefig(path, dpi=130)
    return Path(path)


def plot_tortuosity(path, records) -> Path:
    """Fig. 5: τ x, y, z vs pressure in both definitions (pressure axis linear below 1 MPa, so
    the dried electrode sits at 0), porosity written at each pressure."""
    from matplotlib.figure import Figure

    with_tau = [rec for rec in records if "tau" in rec]
    pressure = np.array([rec["pressure_MPa"] for rec in with_tau])
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, definition, title in zip(axes, TAU_DEFINITIONS,
                                     ("paper / GeoDict: ε D_pore / D_eff",
                                      "TauFactor: D_mean / D_eff")):
        for axis, marker in zip(AXES, "os^"):
            tau = [rec["tau"][definition][axis] for rec in with_tau]
            ax.plot(pressure, tau, marker=marker, label=axis)
        for rec in with_tau:
            if "porosity" in rec:
                ax.annotate(f"{100 * rec['porosity']:.1f} %", (rec["pressure_MPa"], 0.02),
                            xycoords=("data", "axes fraction"), ha="center", fontsize=7,
                            color="0.4")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("calendering pressure (MPa; 0 = dried)")
        ax.set_title(title, fontsize=10)
        ax.legend(title="axis")
    axes[0].set_ylabel("tortuosity factor τ (porosity at the bottom)")
    figure.savefig(path, dpi=130)
    return Path(path)


# ---------------------------------------------------------------- command

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default=str(DEFAULT_SWEEP),
                        help="folder of the P<p>MPa twin calender run folders")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--dried", default=str(DEFAULT_DRIED),
                        help="LAMMPS data of the dried (uncalendered) electrode")
    parser.add_argument("--pressures", type=float, nargs="+", default=None,
                        help="only these pressures (MPa; default every P*MPa folder)")
    parser.add_argument("--voxel-um", type=float, default=PAPER_VOXEL_UM,
                        help="target voxel edge, µm (the nearest edge tiling the periodic cell "
                             "is used)")
    parser.add_argument("--what", default=DEFAULT_WHAT,
                        help="analyze's analyses (comma-separated; e.g. porosity,rdf skips τ)")
    parser.add_argument("--precision", choices=("float64", "float32"), default="float64")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse OUT/<label>/summary.json when it covers the same analyses, "
                             "voxel edge and precision")
    args = parser.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    from twin.analysis.command import parse_what
    from twin.io.lammps import read_sphere_data

    what = parse_what(args.what)
    out = Path(args.out)
    started = time.perf_counter()
    found, skipped = electrodes(args.dried, args.sweep, args.pressures)
    data = read_sphere_data(args.dried)
    voxel_um = fitted_voxel_um(args.voxel_um, (data.box_hi - data.box_lo)[:2])
    print(f"voxel edge {voxel_um:.6g} µm (target {args.voxel_um:g} µm; periodic sides "
          f"{(data.box_hi - data.box_lo)[:2].tolist()} µm); precision {args.precision}; "
          f"analyses {','.join(what)}")
    print(f"electrodes: {', '.join(f'{e.label} ({e.pressure_mpa:g} MPa)' for e in found)}")
    records = []
    for k, electrode in enumerate(found):
        print(f"[{k + 1}/{len(found)}] {electrode.label}: {electrode.source}", flush=True)
        record = analyse_electrode(electrode, out, what, voxel_um, args.precision, args.reuse)
        records.append(record)
        text = f"  done in {record['wall_seconds']:.1f} s"
        if "porosity" in record:
            text += f"; porosity {100 * record['porosity']:.2f} %"
        if "tau" in record:
            text += "; τ paper x y z " + " ".join(f"{record['tau']['paper'][a]:.3f}" for a in AXES)
        print(text, flush=True)
    settings = {"sweep": str(args.sweep), "dried": str(args.dried), "analyses": list(what),
                "voxel_um_target": args.voxel_um, "voxel_um": voxel_um,
                "precision": args.precision,
                "precision_note": "sphere coordinates (voxelisation, RDF) and the tortuosity "
                                  "solve (twin analyze)",
                "units": {"length": "µm", "pressure": "MPa", "porosity": "fraction",
                          "time": "s (wall clock)"},
                "wall_seconds": time.perf_counter() - started}
    summary = write_outputs(records, skipped, settings, out)
    for definition, per_axis in summary["tau_rises_with_pressure"].items():
        print(f"τ ({definition}) rises strictly with pressure: "
              + ", ".join(f"{a} {per_axis[a]['strictly_increasing']}" for a in AXES))
    print(f"total {summary['wall_seconds']:.0f} s")
    return summary


if __name__ == "__main__":
    main()
