"""LAMMPS data files (``atom_style sphere``) in and LAMMPS/OVITO text dumps out.

Data file ``Atoms # sphere`` lines: ``id type diameter density x y z [ix iy iz]`` (LAMMPS manual,
``read_data``). Diameters in µm and densities in g/cm³ = pg/µm³ under ``units micro``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPHERE_COLUMNS = ("id", "type", "diameter", "density", "x", "y", "z")


@dataclass(frozen=True)
class SphereData:
    """Contents of a LAMMPS sphere data file (numpy arrays, micro units)."""

    ids: np.ndarray
    types: np.ndarray
    diameter: np.ndarray
    density: np.ndarray
    position: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray
    n_types: int
    source: str


def _fail(path, line_number, message):
    raise ValueError(f"{path}:{line_number}: {message}")


def read_sphere_data(path) -> SphereData:
    """Read a LAMMPS data file written with ``atom_style sphere``; strict about its columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LAMMPS data file not found: {path}")
    lines = path.read_text().splitlines()
    n_atoms = n_types = None
    bounds = {}
    atoms_start = None
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#")[0].strip()
        words = text.split()
        if len(words) == 2 and words[1] == "atoms":
            n_atoms = int(words[0])
        elif len(words) == 3 and words[1:] == ["atom", "types"]:
            n_types = int(words[0])
        elif len(words) == 4 and words[2].endswith("lo") and words[3].endswith("hi"):
            bounds[words[2][0]] = (float(words[0]), float(words[1]))
        elif raw.strip().startswith("Atoms"):
            style = raw.split("#")[1].strip() if "#" in raw else "sphere"
            if style != "sphere":
                _fail(path, number, f"atom style '{style}' is not supported: write the file with "
                                    "atom_style sphere (id type diameter density x y z)")
            atoms_start = number
            break
    if n_atoms is None or atoms_start is None:
        raise ValueError(f"{path}: not a LAMMPS data file (needs an 'N atoms' line and an "
                         "'Atoms # sphere' section)")
    if set(bounds) != {"x", "y", "z"}:
        raise ValueError(f"{path}: box bounds missing for axes {sorted({'x', 'y', 'z'} - set(bounds))}")
    rows = []
    number = atoms_start
    for raw in lines[atoms_start:]:
        number += 1
        text = raw.split("#")[0].strip()
        if not text:
            if rows:
                break
            continue
        words = text.split()
        if words[0][0].isalpha():
            break
        if len(words) not in (7, 10):
            _fail(path, number, f"expected 7 columns ({' '.join(SPHERE_COLUMNS)}) or 10 with image "
                                f"flags, found {len(words)}: '{text}'")
        try:
            rows.append([float(w) for w in words[:7]])
        except ValueError:
            _fail(path, number, f"non-numeric value in '{text}'")
    if len(rows) != n_atoms:
        raise ValueError(f"{path}: header says {n_atoms} atoms, Atoms section has {len(rows)}")
    table = np.asarray(rows)
    ids, types = table[:, 0].astype(int), table[:, 1].astype(int)
    diameter, density = table[:, 2], table[:, 3]
    for label, values in (("diameter", diameter), ("density", density)):
        bad = values <= 0
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"{path}: particle id {ids[k]} has {label} {values[k]}; every "
                             f"{label} must be > 0")
    if n_types is not None and (types.min() < 1 or types.max() > n_types):
        raise ValueError(f"{path}: atom types must lie in 1..{n_types}; found {types.min()}..{types.max()}")
    lo = np.array([bounds[a][0] for a in "xyz"])
    hi = np.array([bounds[a][1] for a in "xyz"])
    return SphereData(ids, types, diameter, density, table[:, 4:7], lo, hi,
                      n_types or int(types.max()), str(path))


def write_sphere_data(path, ids, types, diameter, density, position, box_lo, box_hi, n_types,
                      title="written by twin"):
    """Write a LAMMPS ``atom_style sphere`` data file that LAMMPS, LIGGGHTS and OVITO read."""
    position = np.asarray(position)
    with open(path, "w") as out:
        out.write(f"LAMMPS data file, {title}\n\n{len(ids)} atoms\n{n_types} atom types\n\n")
        for axis, name in enumerate("xyz"):
            out.write(f"{box_lo[axis]:.17g} {box_hi[axis]:.17g} {name}lo {name}hi\n")
        out.write("\nAtoms # sphere\n\n")
        for k in range(len(ids)):
            x, y, z = position[k]
            out.write(f"{ids[k]} {types[k]} {diameter[k]:.17g} {density[k]:.17g} "
                      f"{x:.17g} {y:.17g} {z:.17g}\n")


def write_dump(out, frames, box_lo, box_hi, periodic, ids, types, radius):
    """Write frames of a LAMMPS text dump (``ITEM: ATOMS id type radius x y z vx vy vz fx fy fz``)
    to the open text file ``out``.

    ``frames`` is an iterable of (step, position, velocity, force) numpy arrays. OVITO reads it
    directly (the radius column becomes the particle radius).
    """
    bounds = " ".join("pp" if p else "ff" for p in periodic)
    for step, position, velocity, force in frames:
        out.write(f"ITEM: TIMESTEP\n{int(step)}\nITEM: NUMBER OF ATOMS\n{len(ids)}\n")
        out.write(f"ITEM: BOX BOUNDS {bounds}\n")
        for axis in range(3):
            out.write(f"{box_lo[axis]:.10g} {box_hi[axis]:.10g}\n")
        out.write("ITEM: ATOMS id type radius x y z vx vy vz fx fy fz\n")
        block = np.column_stack([ids, types, radius, position, velocity, force])
        np.savetxt(out, block, fmt=["%d", "%d"] + ["%.10g"] * 10)
