#!/usr/bin/env python3
"""Many-particle LIGGGHTS 3.8 reference: compaction of the small example electrode by a steel plate.

Produces ``tests/golden/liggghts/compaction_small/``:

* ``initial.csv``  dense relaxed packing (result of the preparation, the start of the measured stage)
* ``case.json``    everything needed to rerun the measured stage (materials, walls, plate schedule)
* ``walls.csv``    total particle force on each wall (fix mesh/surface/stress), every dump_every steps
* ``final.csv``    particle state at the end of the measured stage
* ``timing.json``  LIGGGHTS wall time of the measured stage on 1 (and 2) MPI ranks
* ``in.prepare.liggghts``, ``in.measure.liggghts``  the generated LIGGGHTS inputs (for the record)

Everything is in LIGGGHTS ``units micro`` (µm, µs, pg; force 1e-9 N, pressure 1e3 Pa).

Protocol (see ``tools/reference/README.md``):

1. Read the authors' random initial structure (3945 spheres, box 80×80×200 µm), set the stage
   diameters (CBD 1.3 µm; AM 2.5 … 10.35 µm by class, no 2 % expansion) and count overlaps.
2. numpy: shrink the box laterally to ``LATERAL`` µm (x, y scaled by LATERAL/80) and z into
   [0, 100] µm (the authors' own drying shrinks all three dimensions; an 80×80 µm film of this
   solid volume would be 7 µm thick, thinner than the largest particle), then push overlapping
   pairs apart until no overlap is left.
3. LIGGGHTS preparation (real materials throughout): sediment under an artificial body force onto
   the Al floor, press with the steel plate until a target pressure or thickness, lift the plate,
   switch the body force off and relax (viscous damping, then undamped) until at rest.
4. LIGGGHTS measured stage from ``initial.csv`` at rest (fresh start: zero velocity, no contact
   history): steel plate starts GAP above the highest particle top, moves down at V_PLATE for
   LOAD_STEPS, then up at V_PLATE for UNLOAD_STEPS.

Usage: python3 tools/reference/liggghts_compaction.py [--workdir DIR] [--skip-prepare]
       [--prepare-only] [--no-spread] [--timing-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "artistic" / "small_electrode_initial.data"
OUT = ROOT / "tests" / "golden" / "liggghts" / "compaction_small"
LIGGGHTS = shutil.which("liggghts") or "/usr/bin/liggghts"

# ---- stage recipe -------------------------------------------------------------------------------
CLASS_DIAMETER = {1: 1.3, 2: 2.5, 3: 3.5, 4: 4.5, 5: 5.86, 6: 8.28, 7: 10.35}   # µm, by data type
DENSITY = {1: 0.93, 2: 4.65}                                                      # pg/µm³ by twin type
TYPE_NAMES = ["CBD", "AM", "Al", "steel"]                                         # types 1..4
YOUNG = [2e6, 200e6, 69e6, 200e6]          # micro (1 GPa = 1e6)
POISSON = [0.5, 0.3, 0.3, 0.3]             # LIGGGHTS 3.8 accepts 0.5 (checked)
RESTITUTION = [0.15, 0.15, 0.5, 0.78]
FRICTION = [0.001, 0.001, 1.2, 0.76]
CED = [7e4, 6e5, 5.5e5, 6e5]               # micro (1e3 J/m³)

LATERAL = 32.0        # µm, periodic box edge in x and y after the lateral shrink (80 × 0.4)
PREP_Z_TOP = 100.0    # µm, gas is mapped into z in [0, PREP_Z_TOP] before sedimentation
DT = 1e-4             # µs
GAP = 0.05            # µm, plate start above the highest particle top
V_PLATE = 1.0         # µm/µs (= m/s)
COMPRESSION = 0.15    # fraction of the layer thickness the plate travels after contact
DUMP_EVERY = 100      # steps between walls.csv rows
UNLOAD_FRACTION = 0.5 # unloading travel / loading travel
PERTURB = 1e-9        # µm, uniform position perturbation of the spread run

# preparation
PREP_G = 2.0              # µm/µs², artificial body force for the sedimentation
PREP_V_PRESS = 2.0        # µm/µs, plate speed while pressing and lifting
PRESS_PHI = 0.62          # stop pressing at this packing fraction (porosity 38 %) ...
PRESS_PRESSURE = 500.0    # ... or at this plate pressure (micro; 0.5 MPa), whichever first
PREP_LIFT = 10.0          # µm, plate lift after pressing
SETTLE_STEPS = 20000      # steps per settle round (fresh start from positions)
SETTLE_ROUNDS = 8
SETTLE_TOL = 2e-3         # µm, stop when no particle moved more than this in a round


def pair_matrix(values):
    v = np.asarray(values, float)
    return np.sqrt(v[:, None] * v[None, :])


# ---- input data ---------------------------------------------------------------------------------
def read_authors_data(path=DATA):
    lines = path.read_text().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("Atoms"))
    n = int(next(line.split()[0] for line in lines if line.strip().endswith("atoms")))
    rows = np.array([line.split()[:7] for line in lines[start + 2:start + 2 + n]], float)
    ids = rows[:, 0].astype(int)
    cls = rows[:, 1].astype(int)
    pos = rows[:, 4:7].copy()
    radius = np.array([CLASS_DIAMETER[c] for c in cls]) / 2.0
    return ids, cls, radius, pos


def pair_overlaps(pos, radius, box_xy, periodic_z=None):
    """All overlapping pairs (i<j), periodic in x, y (and z if periodic_z is a length)."""
    from scipy.spatial import cKDTree
    q = pos.copy()
    q[:, :2] = np.mod(q[:, :2] + box_xy / 2, box_xy)
    if periodic_z is None:
        q[:, 2] -= q[:, 2].min()
        size = [box_xy, box_xy, 1e9]
    else:
        q[:, 2] = np.mod(q[:, 2], periodic_z)
        size = [box_xy, box_xy, periodic_z]
    tree = cKDTree(q, boxsize=size)
    pairs = tree.query_pairs(2 * radius.max() + 1e-9, output_type="ndarray")
    d = pos[pairs[:, 0]] - pos[pairs[:, 1]]
    d[:, :2] -= box_xy * np.round(d[:, :2] / box_xy)
    if periodic_z is not None:
        d[:, 2] -= periodic_z * np.round(d[:, 2] / periodic_z)
    dist = np.linalg.norm(d, axis=1)
    ov = radius[pairs[:, 0]] + radius[pairs[:, 1]] - dist
    keep = ov > 0
    return pairs[keep], ov[keep], d[keep], dist[keep]


def overlap_report(pos, radius, box_xy, periodic_z=None):
    pairs, ov, _, _ = pair_overlaps(pos, radius, box_xy, periodic_z)
    if len(ov) == 0:
        return {"pairs": 0, "max_um": 0.0, "max_rel_smaller_radius": 0.0}
    rmin = np.minimum(radius[pairs[:, 0]], radius[pairs[:, 1]])
    return {"pairs": int(len(ov)), "max_um": float(ov.max()),
            "max_rel_smaller_radius": float((ov / rmin).max()),
            "mean_rel_smaller_radius": float((ov / rmin).mean())}


def deoverlap(pos, radius, box_xy, z_lo, z_hi, margin=0.02, max_iter=5000):
    """Push overlapping spheres apart (mass-weighted, under-relaxed) until none overlap."""
    p = pos.copy()
    r_eff = radius + margin / 2
    for it in range(max_iter):
        p[:, :2] = np.mod(p[:, :2] + box_xy / 2, box_xy) - box_xy / 2
        p[:, 2] = np.clip(p[:, 2], z_lo + r_eff, z_hi - r_eff)
        pairs, ov, d, dist = pair_overlaps(p, r_eff, box_xy)
        if len(ov) == 0 or ov.max() < margin / 2:     # true radii then keep a gap >= margin/2
            return p, it
        n = d / dist[:, None]
        m_i, m_j = r_eff[pairs[:, 0]] ** 3, r_eff[pairs[:, 1]] ** 3
        w_i = m_j / (m_i + m_j)
        disp = np.zeros_like(p)
        np.add.at(disp, pairs[:, 0], (0.6 * ov * w_i)[:, None] * n)
        np.add.at(disp, pairs[:, 1], -(0.6 * ov * (1 - w_i))[:, None] * n)
        p += disp
    raise RuntimeError("de-overlap did not converge")


# ---- LIGGGHTS files -----------------------------------------------------------------------------
def write_stl(path, z, lateral, name):
    a = lateral / 2
    v = [(-a, -a, z), (a, -a, z), (a, a, z), (-a, a, z)]
    with open(path, "w") as f:
        f.write(f"solid {name}\n")
        for tri in ((0, 1, 2), (0, 2, 3)):
            f.write(" facet normal 0 0 1\n  outer loop\n")
            for k in tri:
                f.write("   vertex %.17g %.17g %.17g\n" % v[k])
            f.write("  endloop\n endfacet\n")
        f.write(f"endsolid {name}\n")


def write_data(path, ids, types, radius, density, pos, lateral, z_lo, z_hi):
    with open(path, "w") as f:
        f.write("compaction_small (generated by tools/reference/liggghts_compaction.py)\n\n")
        f.write(f"{len(ids)} atoms\n4 atom types\n\n")
        f.write(f"{-lateral / 2!r} {lateral / 2!r} xlo xhi\n{-lateral / 2!r} {lateral / 2!r} ylo yhi\n")
        f.write(f"{float(z_lo)!r} {float(z_hi)!r} zlo zhi\n\nAtoms\n\n")
        for i, t, r, rho, (x, y, z) in zip(ids, types, radius, density, pos):
            f.write(f"{int(i)} {int(t)} {float(2 * r)!r} {float(rho)!r} {float(x)!r} {float(y)!r} "
                    f"{float(z)!r}\n")


def materials_block():
    lines = [
        "fix m1 all property/global youngsModulus peratomtype " + " ".join(f"{v:.10g}" for v in YOUNG),
        "fix m2 all property/global poissonsRatio peratomtype " + " ".join(f"{v:.10g}" for v in POISSON),
    ]
    for k, (name, vals) in enumerate((("coefficientRestitution", RESTITUTION),
                                      ("coefficientFriction", FRICTION),
                                      ("cohesionEnergyDensity", CED)), start=3):
        m = pair_matrix(vals)
        lines.append(f"fix m{k} all property/global {name} peratomtypepair 4 "
                     + " ".join(f"{v:.17g}" for v in m.ravel()))
    return "\n".join(lines)


HEADER = """# generated by tools/reference/liggghts_compaction.py -- LIGGGHTS 3.8, units micro (um, us, pg)
units           micro
atom_style      granular
atom_modify     map array
boundary        p p f
newton          off
communicate     single vel yes
read_data       {data}
neighbor        {skin} bin
neigh_modify    delay 0
{materials}
pair_style      gran model hertz tangential history cohesion sjkr2
pair_coeff      * *
timestep        {dt}
fix             floor all mesh/surface/stress file floor.stl type 3
fix             plate all mesh/surface/stress file plate.stl type 4
fix             walls all wall/gran model hertz tangential history cohesion sjkr2 mesh n_meshes 2 meshes floor plate
fix             integ all nve/sphere
compute         ke all ke
compute         rke all erotate/sphere
variable        ftop equal f_plate[3]
variable        fbot equal f_floor[3]
thermo_style    custom step atoms c_ke c_rke f_floor[3] f_plate[3]
thermo_modify   norm no lost error
thermo          {thermo}
"""


def prepare_input(plate_start, press_bottom, press_force, lift, g, v_press):
    """Sediment, press, lift, relax. The plate stl is written at z = plate_start."""
    chunk = 500
    return HEADER.format(data="prep.data", skin=0.4, materials=materials_block(), dt=DT,
                         thermo=5000) + f"""
# ---- A: sedimentation under an artificial body force (g = {g} um/us^2), plate parked above
fix             grav all gravity {g} vector 0 0 -1
variable        loopA loop 60
label           sediment
run             5000
variable        kpp equal c_ke/atoms
if              "${{kpp}} < 1e-2" then "jump SELF sedimented"
next            loopA
jump            SELF sediment
label           sedimented
print           "PREP sedimented at step $(step) ke/atom ${{kpp}}"

# ---- B: press with the steel plate ({v_press} um/us, body force still on) until the plate
#      reaches z = {press_bottom:.6g} um or its force exceeds {press_force:.6g} (micro); hold 2 us
variable        zp equal {float(plate_start)!r}
fix             press all move/mesh mesh plate linear 0 0 {-v_press!r}
variable        loopB loop 1000
label           pressing
run             {chunk}
variable        zp equal ${{zp}}-{v_press * chunk * DT!r}
print           "PREP plate z ${{zp}} force ${{ftop}}"
if              "${{ftop}} > {float(press_force)!r}" then "jump SELF pressed"
if              "${{zp}} < {float(press_bottom)!r}" then "jump SELF pressed"
next            loopB
jump            SELF pressing
label           pressed
unfix           press
run             20000
print           "PREP held plate z ${{zp}} force ${{ftop}}"

# ---- C: body force off, lift the plate by {lift} um, relax: viscous damping, then repeated
#      velocity resets, then an undamped check run
unfix           grav
fix             lift all move/mesh mesh plate linear 0 0 {v_press!r}
run             {int(round(lift / v_press / DT))}
unfix           lift
fix             visc all viscous 0.5
run             100000
unfix           visc
variable        kpp equal c_ke/atoms
print           "PREP relaxed at step $(step) ke/atom ${{kpp}}"
write_dump      all custom prepared.dump id type radius x y z vx vy vz modify format "%d %d %.17g %.17g %.17g %.17g %.17g %.17g %.17g"
"""


def settle_input(steps):
    """A fresh start from positions only (v = ω = 0, no contact history), plate out of reach."""
    return HEADER.format(data="settle.data", skin=0.3, materials=materials_block(), dt=DT,
                         thermo=steps // 10) + f"""
compute         dsp all displace/atom
compute         dmax all reduce max c_dsp[4]
thermo_style    custom step atoms c_ke c_rke f_floor[3] f_plate[3] c_dmax
run             {steps}
print           "SETTLE ke $(c_ke) rke $(c_rke) max_displacement $(c_dmax)"
write_dump      all custom settled.dump id type radius x y z vx vy vz modify format "%d %d %.17g %.17g %.17g %.17g %.17g %.17g %.17g"
"""


def measure_input(z0, load_steps, unload_steps):
    n = load_steps + unload_steps
    return HEADER.format(data="initial.data", skin=0.3, materials=materials_block(), dt=DT,
                         thermo=DUMP_EVERY * 10) + f"""
# plate.stl is written at z0 = {float(z0)!r} um ({GAP} um above the highest particle top).
# One run; the mesh moves in step n with the velocity evaluated at step n, so the plate is at
# z0 - v dt min(n, {load_steps}) + v dt max(n - {load_steps}, 0) when the forces of step n are computed.
variable        zero equal 0
variable        vplate equal "(step <= {load_steps}) * {-V_PLATE!r} + (step > {load_steps}) * {V_PLATE!r}"
fix             mv all move/mesh mesh plate linear/variable v_zero v_zero v_vplate
variable        s equal step
variable        f1 equal f_floor[1]
variable        f2 equal f_floor[2]
variable        f3 equal f_floor[3]
variable        p1 equal f_plate[1]
variable        p2 equal f_plate[2]
variable        p3 equal f_plate[3]
fix             wallout all print {DUMP_EVERY} "${{s}} ${{f1}} ${{f2}} ${{f3}} ${{p1}} ${{p2}} ${{p3}}" file walls.txt screen no title "# step floor_fx floor_fy floor_fz plate_fx plate_fy plate_fz"
dump            snap all custom {load_steps} snap*.dump id x y z
dump_modify     snap sort id format "%d %.10g %.10g %.10g"
run             {n}
write_dump      all custom final.dump id x y z vx vy vz modify format "%d %.17g %.17g %.17g %.17g %.17g %.17g"
write_dump      all mesh/stl plate_final*.stl plate
"""

LAST_CPU_S = [0.0]   # user + system CPU seconds of the last LIGGGHTS process tree


def run_liggghts(workdir, infile, log, nproc=1):
    cmd = [LIGGGHTS, "-in", infile, "-log", log, "-screen", log + ".screen"]   # -screen none segfaults in the STL reader
    if nproc > 1:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(nproc)] + cmd
    t = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU_S[0] = (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime)
    if proc.returncode != 0:
        tail = (Path(workdir) / log).read_text()[-3000:] if (Path(workdir) / log).exists() else ""
        raise RuntimeError(f"LIGGGHTS failed ({proc.returncode}): {proc.stderr[-2000:]}\n{tail}")
    return elapsed


def read_dump(path):
    lines = Path(path).read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS"))
    cols = lines[k].split()[2:]
    arr = np.array([line.split() for line in lines[k + 1:]], float)
    order = np.argsort(arr[:, 0])
    return {c: arr[order, j] for j, c in enumerate(cols)}


def loop_times(log):
    """(steps, seconds) of every `Loop time` line of a LIGGGHTS log."""
    out = []
    for m in re.finditer(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps",
                         Path(log).read_text()):
        out.append((int(m.group(3)), float(m.group(1))))
    return out


# ---- stages -------------------------------------------------------------------------------------
def prepare(work: Path, report: dict, reuse=False):
    ids, cls, radius, pos = read_authors_data()
    report["authors_file_overlaps"] = {
        "periodic_xy_open_z": overlap_report(pos, radius, 80.0),
        "periodic_xyz": overlap_report(pos, radius, 80.0, periodic_z=200.0)}
    s = LATERAL / 80.0
    p = pos.copy()
    p[:, :2] *= s
    p[:, 2] = (pos[:, 2] + 100.0) * PREP_Z_TOP / 200.0
    report["after_shrink_overlaps"] = overlap_report(p, radius, LATERAL)
    p, iters = deoverlap(p, radius, LATERAL, 0.0, PREP_Z_TOP + 5.0)
    report["deoverlap_iterations"] = iters
    types = np.where(cls == 1, 1, 2)
    density = np.array([DENSITY[t] for t in types])
    solid = (4.0 / 3.0 * np.pi * radius ** 3).sum()
    press_bottom = solid / (LATERAL ** 2 * PRESS_PHI)
    press_force = PRESS_PRESSURE * LATERAL ** 2
    plate_start = PREP_Z_TOP + 10.0
    write_data(work / "prep.data", ids, types, radius, density, p, LATERAL, -1.0, plate_start + 2.0)
    write_stl(work / "floor.stl", 0.0, LATERAL, "floor")
    write_stl(work / "plate.stl", plate_start, LATERAL, "plate")
    text = prepare_input(plate_start, press_bottom, press_force, lift=PREP_LIFT, g=PREP_G,
                         v_press=PREP_V_PRESS)
    (work / "in.prepare.liggghts").write_text(text)
    if not (reuse and (work / "prepared.dump").exists()):
        report["prepare_wall_s"] = run_liggghts(work, "in.prepare.liggghts", "log.prepare")
    report["prepare_protocol"] = {
        "lateral_um": LATERAL, "gas_z_um": [0.0, PREP_Z_TOP], "press_bottom_um": press_bottom,
        "press_force_limit_micro": press_force, "press_pressure_limit_MPa": PRESS_PRESSURE * 1e-3,
        "press_packing_fraction_target": PRESS_PHI, "press_speed_um_us": PREP_V_PRESS,
        "lift_um": PREP_LIFT, "body_force_um_us2": PREP_G}
    d = read_dump(work / "prepared.dump")
    assert np.array_equal(d["id"].astype(int), np.sort(ids))
    # settle rounds: each a fresh LIGGGHTS start from the positions alone (as the measured stage
    # starts), which also removes the spin that "velocity set" cannot reset
    rounds = []
    for k in range(SETTLE_ROUNDS):
        pos_k = np.stack([d["x"], d["y"], d["z"]], 1)
        top = float((pos_k[:, 2] + d["radius"]).max())
        write_data(work / "settle.data", d["id"].astype(int), d["type"].astype(int), d["radius"],
                   np.array([DENSITY[int(t)] for t in d["type"]]), pos_k, LATERAL, -1.0, top + 5.0)
        write_stl(work / "plate.stl", top + 3.0, LATERAL, "plate")
        (work / "in.settle.liggghts").write_text(settle_input(SETTLE_STEPS))
        run_liggghts(work, "in.settle.liggghts", "log.settle")
        text = (work / "log.settle").read_text()
        mm = re.search(r"^SETTLE ke (\S+) rke (\S+) max_displacement (\S+)", text, re.M)
        rounds.append({"steps": SETTLE_STEPS, "ke_end": float(mm.group(1)),
                       "rke_end": float(mm.group(2)), "max_displacement_um": float(mm.group(3))})
        print("settle round", k, rounds[-1], flush=True)
        d = read_dump(work / "settled.dump")
        if rounds[-1]["max_displacement_um"] < SETTLE_TOL:
            break
    report["settle_rounds"] = rounds
    return ids, cls, types, radius, density, d


def write_initial(ids, cls, types, radius, density, d):
    order = np.argsort(ids)
    with open(OUT / "initial.csv", "w") as f:
        f.write("id,type,radius,density,x,y,z,class\n")
        for k in order:
            j = int(np.searchsorted(d["id"], ids[k]))
            f.write(f"{int(ids[k])},{int(types[k])},{float(radius[k])!r},{float(density[k])!r},"
                    f"{float(d['x'][j])!r},{float(d['y'][j])!r},{float(d['z'][j])!r},{int(cls[k])}\n")


def read_initial():
    a = np.genfromtxt(OUT / "initial.csv", delimiter=",", names=True)
    pos = np.stack([a["x"], a["y"], a["z"]], 1)
    return (a["id"].astype(int), a["class"].astype(int), a["type"].astype(int), a["radius"],
            a["density"], pos)


def measure_setup(work: Path, load_steps: int | None = None, unload_steps: int | None = None):
    """Write the measured stage's inputs into ``work``; by default the full protocol (plate down
    by COMPRESSION of the thickness, then up by UNLOAD_FRACTION of that), or the given step counts
    (the benchmark times a shorter stroke)."""
    ids, cls, types, radius, density, pos = read_initial()
    top = float((pos[:, 2] + radius).max())
    z0 = top + GAP
    travel = COMPRESSION * top + GAP          # floor at z = 0: thickness = top
    if load_steps is None:
        load_steps = int(math.ceil(travel / V_PLATE / DT / DUMP_EVERY)) * DUMP_EVERY
    if unload_steps is None:
        unload_steps = int(math.ceil(UNLOAD_FRACTION * load_steps / DUMP_EVERY)) * DUMP_EVERY
    z_box_hi = z0 + V_PLATE * DT * max(unload_steps - load_steps, 0) + 1.0
    write_data(work / "initial.data", ids, types, radius, density, pos, LATERAL, -1.0, z_box_hi)
    write_stl(work / "floor.stl", 0.0, LATERAL, "floor")
    write_stl(work / "plate.stl", z0, LATERAL, "plate")
    (work / "in.measure.liggghts").write_text(measure_input(z0, load_steps, unload_steps))
    return dict(ids=ids, types=types, radius=radius, density=density, pos=pos, top=top, z0=z0,
                load_steps=load_steps, unload_steps=unload_steps, z_box_hi=z_box_hi,
                steps=load_steps + unload_steps)


def run_measure_copy(work: Path, sub: str, nproc=1, perturb=0.0, m=None):
    """Rerun the measured stage in work/sub (nproc ranks, optional position perturbation)."""
    w = work / sub
    w.mkdir(exist_ok=True)
    for name in ("initial.data", "floor.stl", "plate.stl", "in.measure.liggghts"):
        shutil.copy(work / name, w / name)
    if perturb:
        rng = np.random.default_rng(12345)
        pos = m["pos"] + rng.uniform(-perturb, perturb, m["pos"].shape)
        write_data(w / "initial.data", m["ids"], m["types"], m["radius"], m["density"], pos,
                   LATERAL, -1.0, m["z_box_hi"])
    wall = run_liggghts(w, "in.measure.liggghts", "log.measure", nproc=nproc)
    loop = next(sec for n, sec in loop_times(w / "log.measure") if n == m["steps"])
    return w, {"loop_time_s": loop, "process_wall_s": wall, "process_cpu_s": LAST_CPU_S[0],
               "particle_steps_per_s": len(m["ids"]) * m["steps"] / loop,
               "particle_steps_per_cpu_s": len(m["ids"]) * m["steps"] / LAST_CPU_S[0]}


def timing_block(m, ranks_1, ranks_2=None):
    timing = {"machine": lscpu_model(), "nproc_machine": os.cpu_count(),
              "liggghts": "LIGGGHTS-PUBLIC 3.8.0 (Debian 3.8.0+repack1-9+b2)",
              "stage": "measured stage (in.measure.liggghts), output as committed",
              "particles": int(len(m["ids"])), "steps": m["steps"],
              "note": "loop_time_s is LIGGGHTS' own 'Loop time'; the machine was shared with other "
                      "jobs (see load_average_before), so particle_steps_per_s is a lower bound; "
                      "process_cpu_s (user+system of the process tree, whole run incl. setup and "
                      "output) is less sensitive to that",
              "ranks_1": ranks_1}
    if ranks_2:
        timing["ranks_2"] = ranks_2
    return timing


def measure(work: Path, spread: bool):
    m = measure_setup(work)
    load_before = os.getloadavg()
    wall1 = run_liggghts(work, "in.measure.liggghts", "log.measure")
    t1 = next(sec for n, sec in loop_times(work / "log.measure") if n == m["steps"])
    ranks_1 = {"loop_time_s": t1, "process_wall_s": wall1, "process_cpu_s": LAST_CPU_S[0],
               "particle_steps_per_s": len(m["ids"]) * m["steps"] / t1,
               "particle_steps_per_cpu_s": len(m["ids"]) * m["steps"] / LAST_CPU_S[0],
               "load_average_before": load_before}
    ranks_2 = None
    m["spread"] = {}
    if spread:
        if shutil.which("mpirun"):
            w2, ranks_2 = run_measure_copy(work, "np2", nproc=2, m=m)
            ranks_2["load_average_before"] = load_before
            m["spread"]["np2"] = np.loadtxt(w2 / "walls.txt", comments="#")
        wp, _ = run_measure_copy(work, "perturbed", perturb=PERTURB, m=m)
        m["spread"]["perturbed"] = np.loadtxt(wp / "walls.txt", comments="#")
    m["final"] = read_dump(work / "final.dump")
    m["timing"] = timing_block(m, ranks_1, ranks_2)
    return m


def lscpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def plate_z(step, z0, load_steps):
    step = np.asarray(step, float)
    down = z0 - V_PLATE * DT * np.minimum(step, load_steps)
    return down + V_PLATE * DT * np.maximum(step - load_steps, 0)


def write_outputs(work: Path, m: dict, report: dict):
    wl = np.loadtxt(work / "walls.txt", comments="#")
    rows = ["step,time_us,wall,z,fx,fy,fz"]
    for r in wl:
        step = int(r[0])
        if step == 0:
            continue
        t = step * DT
        rows.append(f"{step},{t:.10g},floor,0,{r[1]:.10g},{r[2]:.10g},{r[3]:.10g}")
        rows.append(f"{step},{t:.10g},plate,{plate_z(step, m['z0'], m['load_steps']):.10g},"
                    f"{r[4]:.10g},{r[5]:.10g},{r[6]:.10g}")
    (OUT / "walls.csv").write_text("\n".join(rows) + "\n")
    d = m["final"]
    with open(OUT / "final.csv", "w") as f:
        f.write("id,x,y,z,vx,vy,vz\n")
        for k in range(len(d["id"])):
            f.write(f"{int(d['id'][k])},{d['x'][k]:.12g},{d['y'][k]:.12g},{d['z'][k]:.12g},"
                    f"{d['vx'][k]:.9g},{d['vy'][k]:.9g},{d['vz'][k]:.9g}\n")
    snap = read_dump(work / f"snap{m['load_steps']}.dump")
    with open(OUT / "loaded.csv", "w") as f:
        f.write("id,x,y,z\n")
        for k in range(len(snap["id"])):
            f.write(f"{int(snap['id'][k])},{snap['x'][k]:.9g},{snap['y'][k]:.9g},{snap['z'][k]:.9g}\n")
    shutil.copy(work / "in.measure.liggghts", OUT / "in.measure.liggghts")
    # plate position check against the mesh LIGGGHTS wrote
    n_steps = m["load_steps"] + m["unload_steps"]
    stl_z = [float(line.split()[3]) for line in
             (work / f"plate_final{n_steps}.stl").read_text().splitlines()
             if line.strip().startswith("vertex")]
    report["plate_final_z_liggghts_stl"] = stl_z[0]
    report["plate_final_z_schedule"] = float(plate_z(n_steps, m["z0"], m["load_steps"]))
    (OUT / "timing.json").write_text(json.dumps(m["timing"], indent=2) + "\n")
    return wl


def curve_metrics(wl, m, solid):
    steps_all, plate_force = wl[:, 0], wl[:, 6]
    zp = plate_z(steps_all, m["z0"], m["load_steps"])
    kmax = int(np.argmax(plate_force))
    touching = (steps_all > m["load_steps"]) & (plate_force > 0)
    last = float(zp[touching].max()) if touching.any() else None
    return {"kmax": kmax, "last_contact_z": last, "plate_force_max_micro": float(plate_force[kmax]),
            "plate_force_max_step": int(steps_all[kmax]),
            "packing_fraction_final_last_contact": solid / (LATERAL ** 2 * last) if last else None}


def spread_outputs(wl, m, solid):
    """walls_spread.csv and the LIGGGHTS-vs-LIGGGHTS differences (chaos floor for comparisons)."""
    names = list(m["spread"])
    rows = ["step,z," + ",".join(f"plate_fz_{n},floor_fz_{n}" for n in names)]
    for k, step in enumerate(wl[:, 0].astype(int)):
        vals = []
        for n in names:
            other = m["spread"][n]
            assert int(other[k, 0]) == step
            vals += [f"{other[k, 6]:.10g}", f"{other[k, 3]:.10g}"]
        rows.append(f"{step},{plate_z(step, m['z0'], m['load_steps']):.10g}," + ",".join(vals))
    (OUT / "walls_spread.csv").write_text("\n".join(rows) + "\n")
    ref = wl[:, 6]
    out = {"what": "the measured stage rerun by LIGGGHTS itself with 2 MPI ranks (np2: other "
                   "summation order) and with positions perturbed by uniform +-1e-9 um (perturbed); "
                   "plate forces in walls_spread.csv. rms_rel = RMS(F - F_ref) / RMS(F_ref) over "
                   "all walls.csv rows; smoothed_rms_rel after a 50-row (5000-step) running mean.",
           "reference": {k: v for k, v in curve_metrics(wl, m, solid).items() if k != "kmax"}}
    box = np.ones(50) / 50
    for n in names:
        f = m["spread"][n][:, 6]
        cm = curve_metrics(m["spread"][n], m, solid)
        cm.pop("kmax")
        cm["rms_rel"] = float(np.sqrt(np.mean((f - ref) ** 2)) / np.sqrt(np.mean(ref ** 2)))
        sa, sb = np.convolve(ref, box, "same"), np.convolve(f, box, "same")
        cm["smoothed_rms_rel"] = float(np.sqrt(np.mean((sa - sb) ** 2)) / np.sqrt(np.mean(sa ** 2)))
        out[n] = cm
    return out


NOTES = [
    "Box: the authors' 80x80x200 um random structure is shrunk laterally to 32x32 um (x, y scaled by "
    "0.4) before compaction: at 80x80 um the solid volume (25 839 um^3) makes a 7 um film at 42 % "
    "porosity, thinner than the largest particle (10.35 um); the authors' own drying shrinks all three "
    "box dimensions. Particle positions were then relaxed by the preparation (see preparation).",
    "Start of the measured stage: initial.csv positions, all velocities and spins zero, no contact "
    "history. The floor (type 3, Al) is the plane z = 0 (normal +z), the plate (type 4, steel) a plane "
    "with normal -z starting 0.05 um above the highest particle top.",
    "Plate schedule: one LIGGGHTS run (fix move/mesh linear/variable). In step n (1-based) the mesh moves "
    "by v(n) dt before the forces of step n are computed, v(n) = -v_plate for n <= load steps, +v_plate "
    "after; so the plate height used in step n is z0 - v dt min(n, N_load) + v dt max(n - N_load, 0), "
    "which is the z column of walls.csv. Checked against the mesh LIGGGHTS writes at the last step "
    "(checks.plate_final_z_*).",
    "walls.csv: force exerted BY the particles ON each wall (fix mesh/surface/stress, total over the "
    "mesh), micro units (1 = 1e-9 N), at the end of step n, every dump_every steps from dump_every on. "
    "Step 0 is not written: LIGGGHTS' setup pass leaves the mesh force at 0. Floor fz < 0 and plate "
    "fz > 0 when the layer is squeezed.",
    "Walls are STL planes of two triangles exactly covering the periodic x, y extent: every particle "
    "centre lies over the mesh, so they act as infinite planes. Mesh contact model: same hertz + "
    "history + sjkr2 as the particles (sjkr2 wall area 2 pi r delta).",
    "Mixing: geometric mean sqrt(a_i a_j) for restitution, friction and CED (not the authors' script "
    "exponents). Poisson 0.5 for CBD is accepted by LIGGGHTS 3.8 and used.",
    "final.csv: x(N), v(N) after the last full velocity-Verlet step; loaded.csv: positions at the end "
    "of the loading segment (step N_load), 9 significant digits.",
    "Packing fraction = total sphere volume / (lx ly h), h = height of the highest particle top above "
    "the floor (initial, final) or the plate height (at maximum compression; last plate position "
    "with a positive force while unloading). No sphere crosses the floor by more than "
    "initial_floor_overlap_max_um, so no wall cut-off correction is applied.",
    "The many-particle trajectory is chaotic (contacts open/close, slips): compare the plate force "
    "curve and packing fractions, smoothed or at the level of their fluctuations, not per-row or "
    "per-particle to round-off.",
]


# ---- main ---------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--skip-prepare", action="store_true",
                    help="reuse the committed initial.csv; rerun only the measured stage")
    ap.add_argument("--reuse-prepared", action="store_true",
                    help="debugging: keep WORKDIR/prepared.dump instead of rerunning in.prepare")
    ap.add_argument("--prepare-only", action="store_true", help="stop after writing initial.csv")
    ap.add_argument("--no-spread", action="store_true",
                    help="skip the two extra measured-stage runs (2 MPI ranks; positions perturbed "
                         "by 1e-9 um) that give walls_spread.csv and the reproducibility block")
    ap.add_argument("--timing-only", action="store_true",
                    help="rerun the measured stage on 1 and 2 ranks and rewrite timing.json only")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="compaction_small_"))
    work.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.timing_only:
        m = measure_setup(work)
        load_before = os.getloadavg()
        _, r1 = run_measure_copy(work, "time1", m=m)
        r1["load_average_before"] = load_before
        r2 = None
        if shutil.which("mpirun"):
            load_before = os.getloadavg()
            _, r2 = run_measure_copy(work, "time2", nproc=2, m=m)
            r2["load_average_before"] = load_before
        (OUT / "timing.json").write_text(json.dumps(timing_block(m, r1, r2), indent=2) + "\n")
        print((OUT / "timing.json").read_text())
        return 0
    report = {}
    if (args.skip_prepare or args.timing_only) and (OUT / "preparation.json").exists():
        report = json.loads((OUT / "preparation.json").read_text())
    if not args.skip_prepare:
        ids, cls, types, radius, density, d = prepare(work, report, reuse=args.reuse_prepared)
        write_initial(ids, cls, types, radius, density, d)
        shutil.copy(work / "in.prepare.liggghts", OUT / "in.prepare.liggghts")
        shutil.copy(work / "in.settle.liggghts", OUT / "in.settle.liggghts")
        ke = 0.5 * (density * 4 / 3 * np.pi * radius ** 3) * (d["vx"] ** 2 + d["vy"] ** 2 + d["vz"] ** 2)
        report["prepared_kinetic_energy_micro"] = float(ke.sum())
        (OUT / "preparation.json").write_text(json.dumps(report, indent=2) + "\n")
        if args.prepare_only:
            print(json.dumps(report, indent=2))
            return 0
    ids, cls, types, radius, density, pos = read_initial()
    checks = {"initial_overlaps": overlap_report(pos, radius, LATERAL),
              "initial_floor_overlap_max_um": float(np.maximum(radius - pos[:, 2], 0).max())}
    m = measure(work, spread=not args.no_spread)
    wl = write_outputs(work, m, checks)
    fin = m["final"]
    fin_pos = np.stack([fin["x"], fin["y"], fin["z"]], 1)
    fin_rad = radius[np.searchsorted(ids, fin["id"].astype(int))]
    steps_all = wl[:, 0]
    plate_force = wl[:, 6]
    solid = float((4 / 3 * np.pi * radius ** 3).sum())
    area = LATERAL ** 2
    cm = curve_metrics(wl, m, solid)
    kmax, last_contact_z = cm["kmax"], cm["last_contact_z"]
    p_max = plate_force[kmax] / area
    reproducibility = {}
    if m["spread"]:
        reproducibility = spread_outputs(wl, m, solid)
    top_final = float((fin_pos[:, 2] + fin_rad).max())
    am = types == 2
    d_am = float((2 * radius[am] ** 4).sum() / (radius[am] ** 3).sum())   # volume-weighted
    case = {
        "name": "compaction_small",
        "units": "LIGGGHTS micro: um, us, pg; force 1e-9 N; pressure 1e3 Pa; energy 1e-15 J",
        "particles": "initial.csv (id,type,radius,density,x,y,z,class); type 1 CBD, 2 AM; class = "
                     "the authors' data type 1..7 (2..7 AM classes); velocities zero, no contact "
                     "history at step 0",
        "dt": DT, "steps": m["load_steps"] + m["unload_steps"], "dump_every": DUMP_EVERY,
        "box": {"lo": [-LATERAL / 2, -LATERAL / 2, -1.0],
                "hi": [LATERAL / 2, LATERAL / 2, m["z_box_hi"]],
                "periodic": [True, True, False]},
        "types": TYPE_NAMES,
        "cohesion": "sjkr2", "normal": "hertz", "tangential": "history", "mixing": "geometric",
        "youngs_modulus": YOUNG, "poisson": POISSON,
        "restitution": pair_matrix(RESTITUTION).tolist(),
        "friction": pair_matrix(FRICTION).tolist(),
        "ced": pair_matrix(CED).tolist(),
        "walls": [
            {"name": "floor", "type": 3, "z": 0.0, "normal_z": 1.0, "velocity_z": 0.0},
            {"name": "plate", "type": 4, "z": m["z0"], "normal_z": -1.0, "velocity_z": -V_PLATE}],
        "plate_schedule": [
            {"from_step": 0, "to_step": m["load_steps"], "velocity_z": -V_PLATE},
            {"from_step": m["load_steps"], "to_step": m["load_steps"] + m["unload_steps"],
             "velocity_z": V_PLATE}],
        "results": {
            "initial_top_um": m["top"], "plate_start_z_um": m["z0"],
            "plate_lowest_z_um": float(plate_z(m["load_steps"], m["z0"], m["load_steps"])),
            "compression_after_contact_um": float(m["z0"] - GAP - plate_z(m["load_steps"], m["z0"], m["load_steps"])),
            "solid_volume_um3": solid,
            "packing_fraction_initial": solid / (area * m["top"]),
            "packing_fraction_at_max_compression": solid / (area * float(plate_z(m["load_steps"], m["z0"], m["load_steps"]))),
            "packing_fraction_final_top_particle": solid / (area * top_final),
            "packing_fraction_final_last_contact": (solid / (area * last_contact_z)
                                                    if last_contact_z else None),
            "final_top_um": top_final,
            "last_plate_contact_z_during_unload_um": last_contact_z,
            "plate_force_max_micro": float(plate_force[kmax]),
            "plate_force_max_uN": float(plate_force[kmax] * 1e-3),
            "plate_force_max_step": int(steps_all[kmax]),
            "plate_pressure_max_MPa": float(p_max * 1e-3),
            "floor_force_z_at_plate_max_micro": float(wl[kmax, 3]),
            "inertial_number_at_max_force": {
                "formula": "I = gdot d sqrt(rho/P), gdot = v_plate / initial thickness, P = plate "
                           "force / (lx ly)",
                "gdot_per_us": V_PLATE / m["top"],
                "d_um_CBD_1.3_rho_0.93": V_PLATE / m["top"] * 1.3 * math.sqrt(0.93 / p_max),
                "d_um_AM_volume_mean_rho_4.65": V_PLATE / m["top"] * d_am * math.sqrt(4.65 / p_max),
                "d_AM_volume_mean_um": d_am},
        },
        "reproducibility": reproducibility,
        "checks": checks,
        "preparation": report,
        "notes": NOTES,
    }
    (OUT / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    print(json.dumps(case["results"], indent=2))
    print(json.dumps(checks, indent=2))
    print(json.dumps(m["timing"], indent=2))
    print("workdir", work)


if __name__ == "__main__":
    sys.exit(main())
