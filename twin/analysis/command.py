"""``twin analyze INPUT --out DIR``: structure analysis of a packing or a label image (issue #6).

INPUT is one of

* a LAMMPS data file (``atom_style sphere``) in the authors' type convention: type 1 CBD, types
  2..7 the AM size classes (:mod:`twin.process.pack`); diameters and densities from the file;
* a run folder: its ``final.data`` and ``summary.json``. From ``twin dem``
  (:mod:`twin.io.run_folder`) atom type t is material ``summary.json["materials"][t - 1]``
  (materials named "AM" and "CBD", any case); from ``twin calender``
  (:mod:`twin.io.calender_folder`, no "materials") the authors' types, unexpanded diameters;
* a label image (``.npy`` with its ``.json`` sidecar, ``.tif``/``.tiff`` or ``.vtk``;
  :mod:`twin.io.images`): 0 pore, 1 AM, 2 CBD, axes x, y, z; its own voxel size.

The electrode of a packing is the slab z_bottom ≤ z ≤ z_top: z_bottom is the current collector,
the final z of the run folder's wall whose name contains "collector" (summary.json "walls", else
walls.csv), else the lowest sphere bottom; z_top is z_bottom + ``summary.json["thickness_um"]``
when the run folder has it (``twin calender``: the thickness after elastic recovery), else the
highest sphere top. Both can be set
with ``--z-bottom-um``/``--z-top-um``. The slab is voxelised (:func:`voxelize`, x and y
periodic as the box, z cut). Particle analyses (RDF, contacts, particle surfaces) use the
spheres whose centres lie in the slab; the particle porosity counts every sphere's exact volume
inside it.

Analyses (``--what``, default all): porosity (particles and voxels), psd (local thickness),
intrusion (simulated mercury intrusion from the top face, Washburn pressures), rdf (partial
g(r), AM–AM, AM–CBD, CBD–CBD, all), tortuosity (x, y, z; the paper's/GeoDict's and TauFactor's
τ with D_eff), surfaces (specific surfaces from spheres and voxel faces, and particle contacts).
On a label image the particle analyses are skipped with a note.
"""

from __future__ import annotations

import csv
import inspect
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from twin.analysis import report
from twin.analysis.pores import mercury_intrusion, pore_size_distribution
from twin.analysis.porosity import porosity_particles, porosity_voxels, sphere_volume_in_slab
from twin.analysis.rdf import partial_rdfs
from twin.analysis.surfaces import (STAIRCASE_FACTOR, contacts, specific_surfaces_particles,
                                    specific_surfaces_voxels)
from twin.analysis.tortuosity import DEFAULT_DIFFUSIVITY, tortuosity
from twin.analysis.voxels import AM, CBD, voxelize
from twin.io.images import read_labels, write_labels
from twin.io.lammps import read_sphere_data
from twin.physics.space import Box

ANALYSES = ("porosity", "psd", "intrusion", "rdf", "tortuosity", "surfaces")
NEEDS_PORE = ("psd", "intrusion", "tortuosity")
PARTICLE_PARTS = {"porosity": "porosity from particles", "rdf": "rdf",
                  "surfaces": "surfaces from particles and contacts"}   # skipped on images
IMAGE_SUFFIXES = (".npy", ".tif", ".tiff", ".vtk")
DEFAULT_VOXEL_UM = 0.25
PERIODIC_CHOICES = {"xy": (True, True, False), "xyz": (True, True, True),
                    "none": (False, False, False)}
PRECISIONS = {"float64": jnp.float64, "float32": jnp.float32}
LATERAL_CHOICES = ("no_flux", "periodic")
RECOVERED_THICKNESS_KEY = "thickness_um"     # twin calender: thickness after recovery
COLLECTOR_WORD = "collector"
RDF_R_MAX_UM = 10.0
RDF_BIN_UM = 0.05
TORTUOSITY_RTOL = inspect.signature(tortuosity).parameters["rtol"].default   # the solver's own
G_PER_PG = 1e-12
UNITS = {"length": "µm", "area": "µm²", "volume": "µm³", "specific_surface": "1/µm",
         "diffusivity": "m²/s", "pressure": "MPa", "mass": "g", "dv_dr_ml_g_um": "mL/g/µm",
         "time": "s (wall clock)", "porosity_and_fractions": "volume fraction (0..1)"}


@dataclass(frozen=True)
class Packing:
    """Spheres of an electrode and its slab (µm; density g/cm³ = pg/µm³; phase 1 AM, 2 CBD)."""

    position: np.ndarray
    radius: np.ndarray
    phase: np.ndarray
    density: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray
    periodic: tuple[bool, bool, bool]
    z_bottom: float
    z_top: float
    description: dict


def parse_what(text) -> tuple[str, ...]:
    """The analyses named in a comma-separated list ("all" for every one), in ANALYSES order."""
    text = text if isinstance(text, str) else ",".join(text)
    names = [w.strip().lower() for w in text.split(",") if w.strip()]
    if not names:
        raise ValueError(f"--what {text!r} names no analysis: choose from {', '.join(ANALYSES)} "
                         "or all")
    if "all" in names:
        return ANALYSES
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analysis {', '.join(map(repr, unknown))} in --what: choose "
                         f"from {', '.join(ANALYSES)} (comma-separated) or all")
    return tuple(n for n in ANALYSES if n in names)


def _authors_phases(types, path):
    if types.min() < 1 or types.max() > 7:
        raise ValueError(f"{path}: atom types {types.min()}..{types.max()}; a LAMMPS data file "
                         "must use the authors' types 1 (CBD) to 7 (AM classes 2..7): renumber "
                         "them, or pass the twin dem run folder whose summary.json names the "
                         "materials")
    return np.where(types == 1, CBD, AM)


def _material_phases(types, names, folder):
    phase_of = {"AM": AM, "CBD": CBD}
    phases = np.zeros(len(types), int)
    for t in np.unique(types):
        name = names[t - 1] if 1 <= t <= len(names) else None
        if name is None or name.upper() not in phase_of:
            raise ValueError(f"{folder}: particles of atom type {t} are material {name!r}, not "
                             f"'AM' or 'CBD' (materials {names}): name the electrode materials "
                             "AM and CBD in the case file")
        phases[types == t] = phase_of[name.upper()]
    return phases


def _collector_z(folder, summary):
    """Final z of the run folder's wall whose name contains "collector" (None if there is none)."""
    if "collector_z_um" in summary:                      # twin calender run folders
        return float(summary["collector_z_um"]), "current_collector"
    if "walls" in summary:
        finals = {w["name"]: float(w["z_um_final"]) for w in summary["walls"]}
    else:
        finals = {}
        walls_csv = folder / "walls.csv"
        if walls_csv.is_file():
            with open(walls_csv) as f:
                for row in csv.DictReader(f):
                    finals[row["wall"]] = float(row["z_um"])      # rows in step order: last wins
    matches = [name for name in finals if COLLECTOR_WORD in name.lower()]
    if len(matches) > 1:
        raise ValueError(f"{folder}: several walls are named like the current collector "
                         f"({matches}): give the collector plane with --z-bottom-um")
    return (finals[matches[0]], matches[0]) if matches else (None, None)


def read_packing(source, z_bottom_um=None, z_top_um=None) -> Packing:
    """Spheres and electrode slab of a LAMMPS data file or a run folder (see the module doc)."""
    source = Path(source)
    periodic = (True, True, False)
    collector, collector_name, thickness = None, None, None
    if source.is_dir():
        data_path, summary_path = source / "final.data", source / "summary.json"
        for needed in (data_path, summary_path):
            if not needed.is_file():
                raise FileNotFoundError(f"{source} is a directory but not a finished run folder: "
                                        f"{needed.name} is missing (finish the run, or pass a "
                                        "LAMMPS data file)")
        summary = json.loads(summary_path.read_text())
        data = read_sphere_data(data_path)
        if summary.get("materials"):        # twin dem: types index the case's materials
            phase = _material_phases(data.types, list(summary["materials"]), source)
            types_from = "summary.json materials"
        else:                               # twin calender: the authors' types
            phase = _authors_phases(data.types, data_path)
            types_from = "authors' types (1 CBD, 2..7 AM)"
        periodic = (*(bool(p) for p in summary.get("periodic", periodic)[:2]), False)
        collector, collector_name = _collector_z(source, summary)
        thickness = summary.get(RECOVERED_THICKNESS_KEY)
        kind = "run folder"
    else:
        data = read_sphere_data(source)
        phase = _authors_phases(data.types, source)
        kind, types_from = "LAMMPS data file", "authors' types (1 CBD, 2..7 AM)"
    position, radius = data.position, data.diameter / 2.0
    if collector is not None:
        bottom, bottom_from = collector, f"wall {collector_name!r} of the run folder"
    else:
        bottom, bottom_from = float((position[:, 2] - radius).min()), "lowest sphere bottom"
    if thickness is not None:
        top = bottom + float(thickness)
        top_from = f"bottom + {RECOVERED_THICKNESS_KEY} of summary.json (after recovery)"
    else:
        top, top_from = float((position[:, 2] + radius).max()), "highest sphere top"
    if z_bottom_um is not None:
        bottom, bottom_from = float(z_bottom_um), "--z-bottom-um"
    if z_top_um is not None:
        top, top_from = float(z_top_um), "--z-top-um"
    if not top > bottom:
        raise ValueError(f"electrode top z = {top:.6g} µm ({top_from}) is not above its bottom "
                         f"z = {bottom:.6g} µm ({bottom_from}): fix --z-bottom-um/--z-top-um")
    description = {"kind": kind, "path": str(source), "types_from": types_from,
                   "spheres": int(len(radius)), "spheres_am": int(np.sum(phase == AM)),
                   "spheres_cbd": int(np.sum(phase == CBD)), "box_lo_um": data.box_lo,
                   "box_hi_um": data.box_hi, "periodic": periodic, "z_bottom_um": bottom,
                   "z_top_um": top, "z_bottom_from": bottom_from, "z_top_from": top_from}
    return Packing(position, radius, phase, data.density, data.box_lo, data.box_hi, periodic,
                   bottom, top, description)


def _read_image(source):
    try:
        return read_labels(source)
    except ValueError as error:
        message = str(error)
        raise ValueError(message if str(source) in message else f"{source}: {message}") from None


class _Clock:
    """Wall time per analysis, with one progress line each on stderr."""

    def __init__(self, log):
        self.seconds, self.log = {}, log

    def run(self, name, function, *args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        self.log(f"{name}: {self.seconds[name]:.2f} s")
        return result


def _stderr(line):
    print(line, file=sys.stderr, flush=True)


def _porosity_entry(fractions, note):
    return {"porosity": float(fractions.porosity), "am_fraction": float(fractions.am_fraction),
            "cbd_fraction": float(fractions.cbd_fraction), "note": note}


def _psd(labels, voxel_um, periodic, mass_g, out):
    psd = pore_size_distribution(labels, voxel_um, periodic, mass_g=mass_g)
    columns = {"radius_um": psd.radius_um, "pore_volume_um3": psd.volume_um3,
               "volume_fraction": psd.volume_fraction,
               "cumulative_fraction_below": np.cumsum(psd.volume_fraction),
               "dv_dr_fraction_per_um": psd.volume_fraction / voxel_um}
    if psd.dv_dr_ml_g_um is not None:
        columns["dv_dr_ml_g_um"] = psd.dv_dr_ml_g_um
    report.write_table(out / "psd.csv", columns)
    median = psd.radius_um[int(np.searchsorted(np.cumsum(psd.volume_fraction), 0.5))]
    entry = {"file": "psd.csv", "method": "local thickness (maximal inscribed spheres), "
             "volume-weighted; walls at the z faces of a non-periodic z",
             "mean_radius_um": float(psd.radius_um @ psd.volume_fraction),
             "median_radius_um": float(median), "max_radius_um": float(psd.radius_um[-1]),
             "pore_volume_um3": float(psd.volume_um3.sum()), "electrode_mass_g": mass_g}
    return entry, columns


def _intrusion(labels, voxel_um, periodic, out):
    curve = mercury_intrusion(labels, voxel_um, periodic)
    columns = {"radius_um": curve.radius_um, "pressure_mpa": curve.pressure_mpa,
               "intruded_fraction_of_pores": curve.intruded_fraction,
               "intruded_volume_fraction": curve.intruded_volume_fraction}
    report.write_table(out / "intrusion.csv", columns)
    reached = curve.intruded_fraction[-1] if len(curve.radius_um) else 0.0
    half = int(np.searchsorted(curve.intruded_fraction, 0.5 * reached)) if reached else None
    entry = {"file": "intrusion.csv", "intruded_fraction_of_pores": float(reached),
             "half_intrusion_radius_um": None if half is None else float(curve.radius_um[half]),
             "half_intrusion_pressure_mpa": None if half is None
             else float(curve.pressure_mpa[half]),
             "note": "mercury enters through the top face (z max); the collector at z = 0 is "
                     "solid when z is not periodic; Washburn, γ 0.485 N/m, θ 130°"}
    return entry, columns


def _rdf(packing, inside, dtype, r_max_um, bin_um, out):
    lengths = (packing.box_hi - packing.box_lo)[:2]
    r_max = float(min(RDF_R_MAX_UM, 0.5 * lengths.min()) if r_max_um is None else r_max_um)
    n_bins = max(1, int(round(r_max / bin_um)))
    phases = packing.phase[inside]
    for phase, name in ((AM, "AM"), (CBD, "CBD")):
        if np.sum(phases == phase) < 2:
            raise ValueError(f"the electrode slab holds {np.sum(phases == phase)} {name} "
                             "sphere(s): partial RDFs need at least two of each phase; drop rdf "
                             "from --what")
    box = Box(packing.box_lo, packing.box_hi, packing.periodic)
    result = partial_rdfs(packing.position[inside].astype(dtype), phases, box, r_max, n_bins,
                          z_range=(packing.z_bottom, packing.z_top))
    columns = {"r_um": result["total"].r}
    for pair, rdf in result.items():
        columns["g_" + pair.replace("-", "_")] = rdf.g
    report.write_table(out / "rdf.csv", columns)
    peaks = {pair: float(rdf.r[int(np.argmax(rdf.g))]) for pair, rdf in result.items()}
    entry = {"file": "rdf.csv", "r_max_um": r_max, "bin_um": r_max / n_bins, "bins": n_bins,
             "highest_peak_r_um": peaks,
             "note": "AM-CBD has AM centres as reference; shells cut by the slab z faces are "
                     "corrected for the part inside the slab"}
    return entry, columns


def _tortuosity(labels, dtype, lateral, rtol, clock):
    entry = {"definitions": {"tau_paper": "GeoDict DiffuDict (the paper): ε D_pore / D_eff, ε the "
                                          "pore (label 0) fraction",
                             "tau_taufactor": "TauFactor: Σ_k ε_k D_k / D_eff over the labels"},
             "diffusivity_m2_s": dict(zip(("pore", "AM", "CBD"), DEFAULT_DIFFUSIVITY)),
             "lateral": lateral, "dirichlet": "face (c = 1, 0 on the outer voxel faces)",
             "rtol": rtol}
    for axis, name in enumerate("xyz"):
        result = clock.run(f"tortuosity {name}", tortuosity, labels, axis, lateral=lateral,
                           rtol=rtol, dtype=dtype)
        entry[name] = {"tau_paper": result.tau, "tau_taufactor": result.tau_taufactor,
                       "d_eff_m2_s": result.d_eff, "d_mean_m2_s": result.d_mean,
                       "porosity": result.porosity, "percolating": result.percolating,
                       "converged": result.converged, "iterations": result.iterations,
                       "flux_spread": result.flux_spread,
                       "wall_seconds": clock.seconds[f"tortuosity {name}"]}
        if not result.percolating:
            entry[name]["note"] = (f"no cluster of conducting voxels joins the two faces normal to "
                                   f"{name}: D_eff = 0 and τ is infinite")
        elif not result.converged:
            entry[name]["note"] = (f"the solver stopped before its criterion was met (plane-flux "
                                   f"spread {result.flux_spread:.3g}, rtol {rtol:g}; float32 "
                                   "rounding stops near 1e-4: use a looser --tortuosity-rtol or "
                                   "float64)")
    return entry


def _surfaces(labels, voxel_um, periodic, packing, inside, dtype):
    voxel_areas = specific_surfaces_voxels(labels, voxel_um, periodic)
    entry = {"voxels": {"area_um2": dict(zip(("AM-pore", "AM-CBD", "CBD-pore"),
                                             voxel_areas[:3])),
                        "volume_um3": voxel_areas.volume,
                        "specific_per_um": voxel_areas.specific(),
                        "specific_per_um_over_staircase": {
                            k: v / STAIRCASE_FACTOR for k, v in voxel_areas.specific().items()},
                        "note": "face counting; a voxelised curved surface is ~1.5× its true "
                                "area (staircase), hence the second entry"}}
    if packing is None:
        return entry, None
    lo, hi = packing.box_lo.copy(), packing.box_hi.copy()
    lo[2], hi[2] = packing.z_bottom, packing.z_top
    box = Box(lo, hi, packing.periodic)
    args = (packing.position[inside].astype(dtype), packing.radius[inside],
            packing.phase[inside], box)
    volume = float(np.prod(hi - lo))
    areas = specific_surfaces_particles(*args, wall_z=packing.z_bottom, volume=volume)
    entry["particles"] = {"area_um2": dict(zip(("AM-pore", "AM-CBD", "CBD-pore"), areas[:3])),
                          "volume_um3": areas.volume, "specific_per_um": areas.specific(),
                          "note": "exact for pairwise overlaps; the collector plane z_bottom "
                                  "cuts the spheres"}
    found = contacts(*args, wall_z=packing.z_bottom)
    contact_entry = {"count": found.count, "area_um2": found.area,
                     "coordination": found.coordination, "collector_count": found.wall_count,
                     "collector_area_um2": found.wall_area,
                     "note": "overlapping sphere pairs (d < R_i + R_j); coordination = mean "
                             "number of partners per sphere of a phase"}
    return entry, contact_entry


def analyze(source, out, *, what="all", voxel_um=None, z_bottom_um=None, z_top_um=None,
            precision="float64", periodic=None, lateral="no_flux",
            tortuosity_rtol=TORTUOSITY_RTOL, rdf_r_max_um=None, rdf_bin_um=RDF_BIN_UM,
            log=_stderr) -> dict:
    """Run the analyses on ``source`` and write their files into ``out``; return the summary.

    Args:
      source: LAMMPS data file, run folder or label image (see the module docstring).
      out: output folder (created).
      what: comma-separated analyses (:data:`ANALYSES`) or "all".
      voxel_um: voxel edge for packings (default 0.25 µm, the paper's); images keep their own.
      z_bottom_um, z_top_um: override the electrode slab of a packing.
      precision: "float64" or "float32": sphere coordinates in voxelisation, RDF and contacts,
        and the tortuosity solve (PSD and intrusion are exact integer arithmetic).
      periodic: label images only: "xy" (calendered electrode, default), "xyz" or "none".
      lateral: tortuosity side faces, "no_flux" (TauFactor's default) or "periodic" (both lateral
        axes wrap: right for the z flux of an x-y periodic slab, not for x or y).
      tortuosity_rtol: flux criterion of the tortuosity solve (spread of the plane fluxes).
      rdf_r_max_um, rdf_bin_um: RDF range (default min(10 µm, half the box side)) and bin width.
      log: callable taking one progress line.
    """
    analyses = parse_what(what)
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {tuple(PRECISIONS)}")
    if lateral not in LATERAL_CHOICES:
        raise ValueError(f"lateral {lateral!r}: choose one of {LATERAL_CHOICES}")
    if voxel_um is not None and not voxel_um > 0:
        raise ValueError(f"voxel size {voxel_um} µm must be positive (the paper: 0.25 µm)")
    if not rdf_bin_um > 0:
        raise ValueError(f"RDF bin width {rdf_bin_um} µm must be positive")
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}: give a LAMMPS data file, a DEM run "
                                "folder, or a label image (.npy with its .json sidecar, .tif)")
    dtype = PRECISIONS[precision]
    out = Path(out)
    clock = _Clock(log)
    started = time.perf_counter()
    summary = {"analyses": list(analyses), "precision": precision,
               "precision_note": "sphere coordinates (voxelisation, RDF, contacts) and the "
                                 "tortuosity solve; porosity, PSD and intrusion are exact counts",
               "units": UNITS, "skipped": {}}
    files = []
    if source.suffix.lower() in IMAGE_SUFFIXES:
        if z_bottom_um is not None or z_top_um is not None:
            raise ValueError("--z-bottom-um/--z-top-um cut a packing's electrode slab; a label "
                             f"image ({source}) is analysed whole: crop the image instead")
        if periodic is not None and periodic not in PERIODIC_CHOICES:
            raise ValueError(f"periodic {periodic!r}: choose one of {tuple(PERIODIC_CHOICES)}")
        image = clock.run("read image", _read_image, source)
        labels, voxel, origin = image.labels, image.voxel_um, image.origin_um
        if voxel_um is not None and voxel_um != voxel:
            log(f"note: --voxel-um {voxel_um} ignored: the image has {voxel:g} µm voxels")
        flags = PERIODIC_CHOICES[periodic or "xy"]
        packing = inside = None
        summary["input"] = {"kind": "label image", "path": str(source), "origin_um": origin}
        summary["skipped"] = {PARTICLE_PARTS[a]: "a label image has no particles"
                              for a in analyses if a in PARTICLE_PARTS}
        if summary["skipped"]:
            log(f"note: {source.name} is a label image: skipping "
                f"{', '.join(summary['skipped'])} (particle analyses)")
    else:
        if periodic is not None:
            raise ValueError("--periodic applies to label images; a packing is periodic in x and "
                             "y as its box, and its electrode slab is cut in z")
        packing = clock.run("read packing", read_packing, source, z_bottom_um, z_top_um)
        voxel = DEFAULT_VOXEL_UM if voxel_um is None else float(voxel_um)
        flags = packing.periodic
        z = packing.position[:, 2]
        inside = (z >= packing.z_bottom) & (z <= packing.z_top)
        summary["input"] = dict(packing.description, spheres_in_slab=int(inside.sum()))
        # box copies: voxel_grid writes the z range into the arrays it is given
        labels = np.asarray(clock.run(
            "voxelize", voxelize, jnp.asarray(packing.position, dtype), packing.radius,
            packing.phase, packing.box_lo.copy(), packing.box_hi.copy(), flags,
            (packing.z_bottom, packing.z_top), voxel))
        origin = (float(packing.box_lo[0]), float(packing.box_lo[1]), packing.z_bottom)
    summary.update(voxel_um=voxel, image_shape=list(labels.shape), image_origin_um=origin,
                   periodic=flags)
    voxel_fractions = porosity_voxels(labels)
    empty_pore = voxel_fractions.porosity == 0.0
    needing = [a for a in analyses if a in NEEDS_PORE]
    if empty_pore and needing:
        raise ValueError(f"{source}: the image has no pore voxels (label 0, porosity 0), so "
                         f"{', '.join(needing)} are undefined: leave them out of --what (e.g. "
                         "--what porosity,surfaces)" + ("" if packing is None else
                                                        " or check the z range and voxel size"))
    out.mkdir(parents=True, exist_ok=True)
    if packing is not None:
        write_labels(out / "labels.npy", labels, voxel, origin)
        files += ["labels.npy", "labels.json"]
    if "porosity" in analyses:
        entry = {"voxels": _porosity_entry(voxel_fractions, "voxel counts (overlaps once)")}
        if packing is not None:
            fractions = clock.run("porosity", porosity_particles, packing.position,
                                  packing.radius, packing.phase, packing.box_lo, packing.box_hi,
                                  (packing.z_bottom, packing.z_top))
            entry["particles"] = _porosity_entry(
                fractions, "exact sphere volumes in the slab (overlaps counted twice, the "
                "authors' definition)")
        summary["porosity"] = entry
    psd_columns = intrusion_columns = None
    if "psd" in analyses:
        mass_g = None
        if packing is not None:
            volume = np.asarray(sphere_volume_in_slab(packing.position[:, 2], packing.radius,
                                                      packing.z_bottom, packing.z_top))
            mass_g = float(np.sum(packing.density * volume)) * G_PER_PG
        summary["psd"], psd_columns = clock.run("psd", _psd, labels, voxel, flags, mass_g, out)
        files.append("psd.csv")
    if "intrusion" in analyses:
        summary["intrusion"], intrusion_columns = clock.run("intrusion", _intrusion, labels,
                                                            voxel, flags, out)
        files.append("intrusion.csv")
    if psd_columns is not None:
        report.plot_psd(out / "psd.png", psd_columns, intrusion_columns)
        files.append("psd.png")
    if "rdf" in analyses and packing is not None:
        summary["rdf"], rdf_columns = clock.run("rdf", _rdf, packing, inside, dtype, rdf_r_max_um,
                                                rdf_bin_um, out)
        report.plot_rdf(out / "rdf.png", rdf_columns)
        files += ["rdf.csv", "rdf.png"]
    if "tortuosity" in analyses:
        summary["tortuosity"] = _tortuosity(labels, dtype, lateral, tortuosity_rtol, clock)
    if "surfaces" in analyses:
        summary["surfaces"], contact_entry = clock.run("surfaces", _surfaces, labels, voxel,
                                                       flags, packing, inside, dtype)
        if contact_entry is not None:
            summary["contacts"] = contact_entry
    summary["wall_seconds"] = dict(clock.seconds, total=time.perf_counter() - started)
    summary["out"] = str(out)
    summary["files"] = ["summary.json"] + files
    report.write_json(out / "summary.json", summary)
    return summary


def add_parser(subparsers):
    """Register ``analyze`` on the ``twin`` command's subparsers."""
    parser = subparsers.add_parser(
        "analyze", help="structure analysis of a packing or a label image",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="LAMMPS data file, run folder (twin dem or twin calender), "
                                      "or label image (.npy "
                                      "with its .json sidecar, .tif, .vtk)")
    parser.add_argument("--out", required=True, help="folder for summary.json, CSVs and PNGs")
    parser.add_argument("--what", default="all",
                        help=f"comma-separated analyses: {','.join(ANALYSES)} (default all)")
    parser.add_argument("--voxel-um", type=float, default=None,
                        help=f"voxel edge for packings, µm (default {DEFAULT_VOXEL_UM}); an image "
                             "keeps its own")
    parser.add_argument("--z-bottom-um", type=float, default=None,
                        help="current collector z, µm (default: the run folder's collector wall, "
                             "else the lowest sphere bottom)")
    parser.add_argument("--z-top-um", type=float, default=None,
                        help="electrode top z, µm (default: collector + the run folder's "
                             "recovered thickness, else the highest sphere top)")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="float64",
                        help="floating point of coordinates and of the tortuosity solve")
    parser.add_argument("--periodic", choices=tuple(PERIODIC_CHOICES), default=None,
                        help="periodic axes of a label image (default xy: calendered electrode)")
    parser.add_argument("--lateral", choices=LATERAL_CHOICES, default="no_flux",
                        help="tortuosity side faces (periodic wraps both lateral axes)")
    parser.add_argument("--tortuosity-rtol", type=float, default=TORTUOSITY_RTOL,
                        help="tortuosity flux criterion, (max - min)/mean of the plane fluxes "
                             f"(default {TORTUOSITY_RTOL:g})")
    parser.add_argument("--rdf-r-max-um", type=float, default=None,
                        help=f"RDF range, µm (default min({RDF_R_MAX_UM:g}, half the box side))")
    parser.add_argument("--rdf-bin-um", type=float, default=RDF_BIN_UM,
                        help=f"RDF bin width, µm (default {RDF_BIN_UM})")
    parser.set_defaults(handler=run)
    return parser


def run(args) -> dict:
    """Execute ``twin analyze`` from parsed arguments; print a short summary; return it."""
    summary = analyze(args.input, args.out, what=args.what, voxel_um=args.voxel_um,
                      z_bottom_um=args.z_bottom_um, z_top_um=args.z_top_um,
                      precision=args.precision, periodic=args.periodic, lateral=args.lateral,
                      tortuosity_rtol=args.tortuosity_rtol, rdf_r_max_um=args.rdf_r_max_um,
                      rdf_bin_um=args.rdf_bin_um)
    print(report.human_summary(summary))
    return summary
