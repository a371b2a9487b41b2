#!/usr/bin/env python3
"""Golden reference runs of LIGGGHTS 3.8 for `twin`: two-sphere and sphere-wall contacts.

For every case below this script
  1. writes tests/golden/liggghts/pairs/<case>/case.json (the case, micro units),
  2. writes a LIGGGHTS input (in.liggghts), its data file (data.liggghts) and the plane walls as
     two-triangle STL meshes next to it,
  3. runs /usr/bin/liggghts in a temporary directory (dumping every step, or every 20 steps for
     the long cohesive runs),
  4. writes particles.csv (and walls.csv when the case has walls) keeping every
     ``dump_every``-th step of that dense dump (``--dense``: keep every dumped step),
  5. checks the dense dump against the contact law of /work/shared/FACTS.md re-evaluated in
     numpy from the dumped positions and half-step velocities, and prints one summary line.

``--checks`` additionally runs the side experiments (Poisson 0.5 vs 0.49, `contact_area overlap`
on the walls, one continuous run vs two runs for the moving plate) and prints their outcome.

Units are LIGGGHTS `units micro`: pg, µm, µs; force pg·µm/µs²; torque pg·µm²/µs².
The LIGGGHTS input is written from the LIGGGHTS documentation; no LIGGGHTS source is used.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "golden" / "liggghts" / "pairs"
LIGGGHTS = shutil.which("liggghts") or "/usr/bin/liggghts"
LIGGGHTS_VERSION = "LIGGGHTS-PUBLIC 3.8.0 (Debian package liggghts)"

DT = 1e-4
# Types (LIGGGHTS numbering from 1): 1 CBD, 2 AM, 3 Al (current collector), 4 steel (plate).
TYPE_NAMES = ["CBD", "AM", "Al", "steel"]
YOUNG = [2e6, 200e6, 69e6, 200e6]          # micro units (pg/(µm·µs²) = 1e3 Pa)
POISSON = [0.5, 0.3, 0.3, 0.3]             # LIGGGHTS 3.8 accepts 0.5 (checked with --checks)
RESTITUTION = [0.15, 0.15, 0.5, 0.78]
FRICTION = [0.001, 0.001, 0.001, 0.001]
CED = [7e4, 6e5, 5.5e5, 6e5]               # micro units
DENSITY = {"CBD": 0.93, "AM": 4.65}
CBD, AM, AL, STEEL = 1, 2, 3, 4


def geometric(values):
    v = np.asarray(values, float)
    return np.sqrt(np.outer(v, v))


def particle(pid, ptype, radius, x, v=(0, 0, 0), omega=(0, 0, 0)):
    name = TYPE_NAMES[ptype - 1]
    return {"id": pid, "type": ptype, "radius": radius, "density": DENSITY[name],
            "x": [float(c) for c in x], "v": [float(c) for c in v],
            "omega": [float(c) for c in omega]}


def friction_all(mu):
    return np.full((4, 4), float(mu))


def friction_pair(mu, a, b):
    f = geometric(FRICTION)
    f[a - 1, b - 1] = f[b - 1, a - 1] = mu
    return f


PAIR_BOX = {"lo": [-12.0, -12.0, -12.0], "hi": [12.0, 12.0, 12.0], "periodic": [False] * 3}
WALL_BOX = {"lo": [-60.0, -60.0, -5.0], "hi": [60.0, 60.0, 20.0], "periodic": [False] * 3}
PLATE_BOX = {"lo": [-60.0, -60.0, -5.0], "hi": [60.0, 60.0, 20.0],
             "periodic": [True, True, False]}


def make_cases():
    cases = []
    # 1. head-on AM-AM
    cases.append(dict(
        name="headon_am_am", steps=600, dump_every=10, cohesion="none",
        description="Head-on AM-AM (r 2.5 and 2.0), gap 0.01 µm, ±0.2 µm/µs along x; no cohesion.",
        box=PAIR_BOX, friction=geometric(FRICTION),
        particles=[particle(1, AM, 2.5, (0, 0, 0), (0.2, 0, 0)),
                   particle(2, AM, 2.0, (4.51, 0, 0), (-0.2, 0, 0))]))
    # 2./3. oblique AM-AM
    x2 = math.sqrt(4.51 ** 2 - 2.0 ** 2)
    for mu, tag in ((0.001, "mu0001"), (0.5, "mu05")):
        cases.append(dict(
            name=f"oblique_am_am_{tag}", steps=600, dump_every=10, cohesion="none",
            description=(f"Oblique AM-AM (r 2.5 and 2.0), second sphere offset y = 2.0, gap 0.01 µm, "
                         f"±0.2 µm/µs along x, first sphere spinning ω_z = 0.05 rad/µs; friction "
                         f"{mu} in every type pair; no cohesion."),
            box=PAIR_BOX, friction=friction_all(mu),
            particles=[particle(1, AM, 2.5, (0, 0, 0), (0.2, 0, 0), (0, 0, 0.05)),
                       particle(2, AM, 2.0, (x2, 2.0, 0), (-0.2, 0, 0))]))
    # 4./5. oblique AM-CBD
    x4 = math.sqrt((2.5 + 0.65 + 0.01) ** 2 - 1.0)
    for mu, tag in ((0.001, "mu0001"), (0.5, "mu05")):
        cases.append(dict(
            name=f"oblique_am_cbd_{tag}", steps=600, dump_every=10, cohesion="none",
            description=(f"AM r 2.5 at rest at the origin hit by a CBD r 0.65 moving at "
                         f"(-0.3, 0.1, 0.05) µm/µs from y offset 1.0, gap 0.01 µm; friction {mu} "
                         f"in every type pair; no cohesion."),
            box=PAIR_BOX, friction=friction_all(mu),
            particles=[particle(1, AM, 2.5, (0, 0, 0)),
                       particle(2, CBD, 0.65, (x4, 1.0, 0), (-0.3, 0.1, 0.05))]))
    # 6./7. cohesive AM-CBD settling
    for model in ("sjkr", "sjkr2"):
        cases.append(dict(
            name=f"cohesive_{model}_am_cbd", steps=20000, dump_every=200, liggghts_every=20,
            cohesion=model,
            description=(f"AM r 2.5 at rest and CBD r 0.65 touching with overlap 1e-3 µm, CBD moving "
                         f"(-0.01, 0.002, 0) µm/µs; cohesion {model}; the pair settles."),
            box=PAIR_BOX, friction=geometric(FRICTION),
            particles=[particle(1, AM, 2.5, (0, 0, 0)),
                       particle(2, CBD, 0.65, (3.15 - 1e-3, 0, 0), (-0.01, 0.002, 0))]))
    # 8./9. AM hitting an Al floor
    for model, suffix in (("none", ""), ("sjkr2", "_sjkr2")):
        cases.append(dict(
            name=f"wall_impact_am{suffix}", steps=1500, dump_every=10, cohesion=model,
            description=(f"AM r 2.5 from z = 2.51 at v = (0.1, 0, -0.3) µm/µs, ω = (0.2, 0, 0) "
                         f"rad/µs onto a fixed Al floor at z = 0; friction AM-Al 0.5; cohesion "
                         f"{model}."),
            box=WALL_BOX, friction=friction_pair(0.5, AM, AL),
            particles=[particle(1, AM, 2.5, (0, 0, 2.51), (0.1, 0, -0.3), (0.2, 0, 0))],
            walls=[dict(name="floor", type=AL, z=0.0, normal_z=1.0, velocity_z=0.0)]))
    # 10. AM pressed between an Al floor and a steel plate
    cases.append(dict(
        name="plate_press_am", steps=1000, dump_every=5, cohesion="sjkr2",
        description=("AM r 2.5 resting on an Al floor at z = 0 (zero overlap); a steel plate starting "
                     "at z = 5.01 moves down at 0.5 µm/µs for 400 steps (run 1), then up at 0.5 "
                     "µm/µs for 600 steps (run 2, a new fix move/mesh); cohesion sjkr2; periodic x, y."),
        box=PLATE_BOX, friction=geometric(FRICTION),
        particles=[particle(1, AM, 2.5, (0, 0, 2.5))],
        walls=[dict(name="floor", type=AL, z=0.0, normal_z=1.0, velocity_z=0.0),
               dict(name="ceiling", type=STEEL, z=5.01, normal_z=-1.0, velocity_z=-0.5)],
        runs=[dict(steps=400, velocity_z={"ceiling": -0.5}),
              dict(steps=600, velocity_z={"ceiling": 0.5})]))
    # 11. the same in one LIGGGHTS run (no re-evaluation of the forces at the velocity reversal)
    c = dict(cases[-1], name="plate_press_am_continuous", dump_every=10, continuous_plate=True,
             particles=[dict(p) for p in cases[-1]["particles"]])
    c["description"] = c["description"].replace(
        "(run 1), then up at 0.5 µm/µs for 600 steps (run 2, a new fix move/mesh)",
        "then up at 0.5 µm/µs for 600 steps, in ONE LIGGGHTS run (fix move/mesh linear/variable "
        "with a velocity that switches after step 400)")
    cases.append(c)
    for c in cases:
        c.setdefault("walls", [])
        c.setdefault("runs", [dict(steps=c["steps"], velocity_z={})])
        c.setdefault("liggghts_every", 1)
        if all(p["type"] != CBD for p in c["particles"]) and (not c["walls"] or len(c["runs"]) > 1):
            # LIGGGHTS 3.8 stops with "Atom types must start from 1 for granular simulations" when
            # no atom has type 1 (no mesh, or at the start of a second run): add a resting CBD
            # spectator that never touches anything (outside the wall meshes for plate_press).
            where = (-55, -55, 2.5) if c["walls"] else (-9, -9, -9)
            pid = len(c["particles"]) + 1
            c["particles"].append(particle(pid, CBD, 0.65, where))
            c["description"] += (f" Particle {pid} is a resting CBD spectator at {where} (LIGGGHTS "
                                 "needs an atom of type 1); it never touches anything.")
    return cases


# ----------------------------------------------------------------------------- LIGGGHTS input

def fmt(x):
    return repr(float(x))


def matrix_words(m):
    return " ".join(fmt(v) for v in np.asarray(m).ravel())


MESH_LO, MESH_HI = -45.0, 55.0   # 100 µm squares; the diagonal x + y = 10 stays 7 µm from the axis


def write_stl(path, name, z, normal_z):
    """A square plane of two triangles whose shared edge (x + y = 10) and borders stay far from
    every particle that touches it (checked in summarise)."""
    lo, hi = MESH_LO, MESH_HI
    tri = [((lo, lo), (hi, lo), (lo, hi)), ((hi, lo), (hi, hi), (lo, hi))]
    if normal_z < 0:
        tri = [(a, c, b) for a, b, c in tri]
    lines = [f"solid {name}"]
    for t in tri:
        lines += [f"  facet normal 0 0 {int(normal_z)}", "    outer loop"]
        lines += [f"      vertex {fmt(x)} {fmt(y)} {fmt(z)}" for x, y in t]
        lines += ["    endloop", "  endfacet"]
    lines.append(f"endsolid {name}")
    path.write_text("\n".join(lines) + "\n")


def edge_clearance(x, y):
    """Distance in the plane from (x, y) to the nearest triangle edge of the wall meshes."""
    return min(x - MESH_LO, MESH_HI - x, y - MESH_LO, MESH_HI - y,
               abs(x + y - (MESH_LO + MESH_HI)) / math.sqrt(2))


def write_data(path, case):
    box, ps = case["box"], case["particles"]
    out = [f"LIGGGHTS data for case {case['name']} (atom_style granular)", "",
           f"{len(ps)} atoms", "4 atom types", ""]
    for k, axis in enumerate("xyz"):
        out.append(f"{fmt(box['lo'][k])} {fmt(box['hi'][k])} {axis}lo {axis}hi")
    out += ["", "Atoms", ""]
    # atom_style granular: id type diameter density x y z
    for p in ps:
        out.append(f"{p['id']} {p['type']} {fmt(2 * p['radius'])} {fmt(p['density'])} "
                   + " ".join(fmt(c) for c in p["x"]))
    out += ["", "Velocities", ""]
    # granular velocities: id vx vy vz wx wy wz
    for p in ps:
        out.append(f"{p['id']} " + " ".join(fmt(c) for c in p["v"] + p["omega"]))
    path.write_text("\n".join(out) + "\n")


DUMP_COLUMNS = ["id", "type", "radius", "mass", "x", "y", "z", "vx", "vy", "vz",
                "omegax", "omegay", "omegaz", "fx", "fy", "fz", "tqx", "tqy", "tqz"]


def liggghts_input(case, *, contact_area=None, continuous_plate=False):
    coh = case["cohesion"]
    model = "model hertz tangential history" + ("" if coh == "none" else f" cohesion {coh}")
    every = case["liggghts_every"]
    periodic = "".join("p " if p else "f " for p in case["box"]["periodic"]).strip()
    L = [f"# LIGGGHTS 3.8 input for twin golden case {case['name']} (written by "
         "tools/reference/liggghts_pairs.py)",
         "units           micro",
         "atom_style      granular",
         "atom_modify     map array",
         f"boundary        {periodic}",
         "newton          off",
         "communicate     single vel yes",
         "read_data       data.liggghts",
         "neighbor        0.5 bin",
         "neigh_modify    delay 0",
         "",
         "# materials: types 1 CBD, 2 AM, 3 Al, 4 steel",
         "fix  m1 all property/global youngsModulus peratomtype " + " ".join(map(fmt, YOUNG)),
         "fix  m2 all property/global poissonsRatio peratomtype "
         + " ".join(map(fmt, case["poisson"])),
         "fix  m3 all property/global coefficientRestitution peratomtypepair 4 "
         + matrix_words(case["restitution"]),
         "fix  m4 all property/global coefficientFriction peratomtypepair 4 "
         + matrix_words(case["friction"])]
    if coh != "none":
        L.append("fix  m5 all property/global cohesionEnergyDensity peratomtypepair 4 "
                 + matrix_words(case["ced"]))
    L += ["",
          f"pair_style      gran {model}",
          "pair_coeff      * *",
          f"timestep        {fmt(DT)}",
          "fix  integr all nve/sphere"]
    walls = case["walls"]
    if walls:
        L.append("")
        for w in walls:
            L.append(f"fix  {w['name']} all mesh/surface/stress file {w['name']}.stl type {w['type']}")
        extra = f" contact_area {contact_area}" if contact_area else ""
        L.append(f"fix  walls all wall/gran {model} mesh n_meshes {len(walls)} meshes "
                 + " ".join(w["name"] for w in walls) + extra)
    L += ["",
          f"dump  d all custom {every} dump.txt " + " ".join(DUMP_COLUMNS),
          'dump_modify d sort id format "%d %d' + " %.17g" * (len(DUMP_COLUMNS) - 2) + '"']
    thermo = ["step"] + [f"f_{w['name']}[{k}]" for w in walls for k in (1, 2, 3)]
    L += [f"thermo_style    custom {' '.join(thermo)}",
          "thermo_modify   format float %.17g",
          f"thermo          {every}"]
    moving = [w for w in walls if any(w["name"] in r["velocity_z"] for r in case["runs"])]
    if continuous_plate:   # one run, the plate velocity a step function of the step counter
        w = moving[0]
        (r1, r2) = case["runs"]
        v1, v2 = r1["velocity_z"][w["name"]], r2["velocity_z"][w["name"]]
        L += ["variable vzero equal 0",
              f"variable vplate equal (step<={r1['steps']})*({fmt(v1)})+(step>{r1['steps']})*({fmt(v2)})",
              f"fix  mv_{w['name']} all move/mesh mesh {w['name']} linear/variable v_vzero v_vzero v_vplate",
              f"run  {case['steps']}"]
        return "\n".join(L) + "\n"
    for k, r in enumerate(case["runs"]):
        L.append("")
        for w in moving:
            if k > 0:
                L.append(f"unfix mv_{w['name']}_{k - 1}")
            L.append(f"fix  mv_{w['name']}_{k} all move/mesh mesh {w['name']} linear 0 0 "
                     f"{fmt(r['velocity_z'][w['name']])}")
        L.append(f"run  {r['steps']}")
    return "\n".join(L) + "\n"


def run_liggghts(case, workdir, **kw):
    workdir.mkdir(parents=True, exist_ok=True)
    write_data(workdir / "data.liggghts", case)
    for w in case["walls"]:
        write_stl(workdir / f"{w['name']}.stl", w["name"], w["z"], w["normal_z"])
    text = liggghts_input(case, **kw)
    (workdir / "in.liggghts").write_text(text)
    proc = subprocess.run([LIGGGHTS, "-in", "in.liggghts", "-log", "log.liggghts",
                           ], cwd=workdir, capture_output=True, text=True)
    log = (workdir / "log.liggghts").read_text() if (workdir / "log.liggghts").exists() else ""
    if proc.returncode != 0 or "ERROR" in log:
        raise RuntimeError(f"liggghts failed for {case['name']}:\n{log[-3000:]}\n{proc.stderr}")
    return text, log


# ----------------------------------------------------------------------------- parsing

def parse_dump(path):
    """{step: array (n_atoms, len(DUMP_COLUMNS)) sorted by id}."""
    frames, lines, i = {}, path.read_text().splitlines(), 0
    while i < len(lines):
        assert lines[i].startswith("ITEM: TIMESTEP")
        step = int(lines[i + 1])
        n = int(lines[i + 3])
        cols = lines[i + 8].split()[2:]
        assert cols == DUMP_COLUMNS, cols
        rows = np.array([[float(v) for v in lines[i + 9 + k].split()] for k in range(n)])
        frames.setdefault(step, rows[np.argsort(rows[:, 0])])   # keep the first copy of a step
        i += 9 + n
    return frames


def parse_thermo(log, walls):
    """{step: {wall: (fx, fy, fz)}} from the thermo lines; the first occurrence of a step wins
    (the end-of-run value, not the re-evaluation in the next run's setup)."""
    out, header = {}, None
    ncol = 1 + 3 * len(walls)
    for line in log.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header = True
            continue
        if header and len(words) == ncol:
            try:
                vals = [float(w) for w in words]
            except ValueError:
                header = None
                continue
            step = int(vals[0])
            if step not in out:
                out[step] = {w["name"]: tuple(vals[1 + 3 * k: 4 + 3 * k])
                             for k, w in enumerate(walls)}
        elif header:
            header = None
    return out


def wall_heights(case):
    """{wall: array z(step)} for step = 0..steps, the height at the force evaluation of the step."""
    out = {}
    for w in case["walls"]:
        z = [w["z"]]
        for r in case["runs"]:
            v = r["velocity_z"].get(w["name"], w["velocity_z"] if len(case["runs"]) == 1 else 0.0)
            for _ in range(r["steps"]):
                z.append(z[-1] + v * DT)
        out[w["name"]] = np.array(z)
    return out


# ----------------------------------------------------------------------------- contact law check

def contact_force(case, a, b, hist, *, wall=None, zw=0.0, vw=0.0, update_history=True):
    """Force/torque on sphere a (and torque on sphere b) from the FACTS.md contact law.
    a, b: dicts x, v, w, r, m, t (half-step v and w). Returns (F_a, T_a, T_b, delta, hist)."""
    if wall is None:
        d = a["x"] - b["x"]
        dist = np.linalg.norm(d)
        delta = a["r"] + b["r"] - dist
        Rs = a["r"] * b["r"] / (a["r"] + b["r"])
        ms = a["m"] * b["m"] / (a["m"] + b["m"])
        tb = b["t"]
    else:
        d = np.array([0.0, 0.0, a["x"][2] - zw])
        dist = abs(d[2])
        delta = a["r"] - dist
        Rs, ms, tb = a["r"], a["m"], wall["type"]
    z3 = np.zeros(3)
    if delta <= 0:
        return z3, z3, z3, delta, z3
    n = d / dist
    ti, tj = a["t"] - 1, tb - 1
    nu, E = case["poisson"], YOUNG
    Es = 1.0 / ((1 - nu[ti] ** 2) / E[ti] + (1 - nu[tj] ** 2) / E[tj])
    Gs = 1.0 / (2 * (2 - nu[ti]) * (1 + nu[ti]) / E[ti] + 2 * (2 - nu[tj]) * (1 + nu[tj]) / E[tj])
    e = case["restitution"][ti][tj]
    mu = case["friction"][ti][tj]
    ced = case["ced"][ti][tj]
    beta = math.log(e) / math.sqrt(math.log(e) ** 2 + math.pi ** 2)
    sq = math.sqrt(Rs * delta)
    kn, Sn, kt = 4 / 3 * Es * sq, 2 * Es * sq, 8 * Gs * sq
    gn = -2 * math.sqrt(5 / 6) * beta * math.sqrt(Sn * ms)
    gt = -2 * math.sqrt(5 / 6) * beta * math.sqrt(kt * ms)
    ca = a["r"] - delta / 2
    if wall is None:
        cb = b["r"] - delta / 2
        vr = a["v"] - b["v"]
        wsum = ca * a["w"] + cb * b["w"]
    else:
        cb = 0.0
        vr = a["v"] - np.array([0.0, 0.0, vw])
        wsum = ca * a["w"]
    vn = vr @ n
    vt = vr - vn * n - np.cross(wsum, n)
    Fn = kn * delta - gn * vn
    if update_history:   # LIGGGHTS's setup pass (start of each run) does not increment it
        hist = hist + vt * DT
    hist = hist - (hist @ n) * n
    Ft = -kt * hist
    lim = mu * abs(Fn)
    if np.linalg.norm(Ft) > lim:
        Ft = Ft * lim / np.linalg.norm(Ft)
        hist = -Ft / kt
    else:
        Ft = Ft - gt * vt
    coh = case["cohesion"]
    if coh == "sjkr":
        if wall is None:
            r1, r2 = a["r"], b["r"]
            area = math.pi * (4 * dist ** 2 * r1 ** 2 - (dist ** 2 - r2 ** 2 + r1 ** 2) ** 2) / (4 * dist ** 2)
        else:
            area = math.pi * (2 * a["r"] * delta - delta ** 2)
    elif coh == "sjkr2":
        area = 4 * math.pi * Rs * delta if wall is None else 2 * math.pi * a["r"] * delta
    else:
        area = 0.0
    F = (Fn - ced * area) * n + Ft
    Ta = -ca * np.cross(n, Ft)
    Tb = -cb * np.cross(n, Ft)
    return F, Ta, Tb, delta, hist


def check_contact_law(case, frames, zw):
    """Re-evaluate the dumped forces/torques with FACTS.md's contact law from the dumped positions
    and the half-step velocities v(n-1/2) = v(n) - dt/(2m) f(n) (exact for fix nve/sphere).
    Returns the max |F_pred - F_dump| / max|F_dump| and the same for torques. With sparse dumps
    the tangential history cannot be integrated: only the normal force component is compared."""
    steps = sorted(frames)
    dense = steps[1] - steps[0] == 1
    walls = case["walls"]
    errF = errT = 0.0
    fmax = max(np.abs(fr[:, 13:16]).max() for fr in frames.values()) or 1.0
    tmax = max(np.abs(fr[:, 16:19]).max() for fr in frames.values()) or 1.0
    n_atoms = len(frames[steps[0]])
    hists = {}
    for s in steps[1:]:
        cur = frames[s]
        state = []
        for i in range(n_atoms):
            m, r = cur[i, 3], cur[i, 2]
            inertia = 0.4 * m * r * r
            v = cur[i, 7:10] - DT / (2 * m) * cur[i, 13:16]
            w = cur[i, 10:13] - DT / (2 * inertia) * cur[i, 16:19]
            state.append(dict(x=cur[i, 4:7], v=v, w=w, r=r, m=m, t=int(cur[i, 1])))
        F = np.zeros((n_atoms, 3))
        T = np.zeros((n_atoms, 3))
        normals = []
        for i in range(n_atoms):
            for j in range(i + 1, n_atoms):
                h = hists.get((i, j), np.zeros(3))
                f, ta, tb, delta, h = contact_force(case, state[i], state[j], h)
                hists[(i, j)] = h
                F[i] += f
                F[j] -= f
                T[i] += ta
                T[j] += tb
                d = state[i]["x"] - state[j]["x"]
                normals.append((i, d / np.linalg.norm(d)))
            for wi, w in enumerate(walls):
                h = hists.get((i, "w", wi), np.zeros(3))
                vw = (zw[w["name"]][s] - zw[w["name"]][s - 1]) / DT
                f, ta, _, delta, h = contact_force(case, state[i], None, h, wall=w,
                                                   zw=zw[w["name"]][s], vw=vw)
                hists[(i, "w", wi)] = h
                F[i] += f
                T[i] += ta
        if dense:
            errF = max(errF, np.abs(F - cur[:, 13:16]).max() / fmax)
            errT = max(errT, np.abs(T - cur[:, 16:19]).max() / tmax)
        elif not walls:
            for i, n in normals:
                errF = max(errF, abs((F[i] - cur[i, 13:16]) @ n) / fmax)
    return errF, errT


# ----------------------------------------------------------------------------- summaries, output

def summarise(case, frames, thermo, zw):
    steps = sorted(frames)
    ps = case["particles"]
    max_overlap, contact_steps, min_clear = 0.0, [], np.inf
    fmax = max(np.linalg.norm(fr[:, 13:16], axis=1).max() for fr in frames.values())

    def overlaps(s):
        fr, ov = frames[s], []
        for i in range(len(ps)):
            for j in range(i + 1, len(ps)):
                ov.append(fr[i, 2] + fr[j, 2] - np.linalg.norm(fr[i, 4:7] - fr[j, 4:7]))
            for w in case["walls"]:
                ov.append(fr[i, 2] - abs(fr[i, 6] - zw[w["name"]][s]))
        return ov

    for s in steps:
        o = max(overlaps(s))
        max_overlap = max(max_overlap, o)
        if o > 0:
            contact_steps.append(s)
        for i in range(len(ps)):
            if case["walls"] and any(frames[s][i, 2] - abs(frames[s][i, 6] - zw[w["name"]][s]) > -1
                                     for w in case["walls"]):
                c = edge_clearance(frames[s][i, 4], frames[s][i, 5]) - frames[s][i, 2]
                min_clear = min(min_clear, c)
    if case["walls"] and min_clear < 1.0:
        raise RuntimeError(f"{case['name']}: a particle near a wall comes within {min_clear} µm "
                           "of a mesh triangle edge")
    first, last = frames[steps[0]], frames[steps[-1]]
    if case["walls"]:
        v0, v1 = first[0, 7:10], last[0, 7:10]
        extra = f"final v = ({v1[0]:.4g}, {v1[1]:.4g}, {v1[2]:.4g}) µm/µs"
        if v0[2] < 0:
            extra += f", e_eff = vz_out/|vz_in| = {v1[2] / -v0[2]:.4f}"
    else:
        def vn(fr):
            d = fr[1, 4:7] - fr[0, 4:7]
            return (fr[1, 7:10] - fr[0, 7:10]) @ (d / np.linalg.norm(d))
        extra = f"relative normal speed in {vn(first):+.5g} out {vn(last):+.5g} µm/µs"
        if vn(first) < 0:
            extra += f" (e_eff {vn(last) / -vn(first):.4f})"
    wall_f = ""
    for w in case["walls"]:
        fz = max(abs(v[w["name"]][2]) for v in thermo.values())
        wall_f += f", max |Fz| on {w['name']} {fz:.4g}"
    span = f"contact steps {contact_steps[0]}..{contact_steps[-1]}" if contact_steps else "NO CONTACT"
    return (f"{case['name']}: {span}, max overlap {max_overlap:.5g} µm, final overlap "
            f"{max(overlaps(steps[-1])):.5g} µm, {extra}, max |F| {fmax:.5g}{wall_f}")


def write_outputs(case, folder, frames, thermo, zw, text, keep_every):
    folder.mkdir(parents=True, exist_ok=True)
    steps = [s for s in sorted(frames) if s % keep_every == 0]
    with open(folder / "particles.csv", "w") as f:
        f.write("step,time_us,id,x,y,z,vx,vy,vz,wx,wy,wz,fx,fy,fz,tqx,tqy,tqz\n")
        for s in steps:
            for row in frames[s]:
                vals = [f"{v:.17g}" for v in np.concatenate([row[4:19]])]
                f.write(f"{s},{s * DT:.17g},{int(row[0])}," + ",".join(vals) + "\n")
    if case["walls"]:
        with open(folder / "walls.csv", "w") as f:
            f.write("step,time_us,wall,z,fx,fy,fz\n")
            for s in steps:
                for w in case["walls"]:
                    fx, fy, fz = thermo[s][w["name"]]
                    f.write(f"{s},{s * DT:.17g},{w['name']},{zw[w['name']][s]:.17g},"
                            f"{fx:.17g},{fy:.17g},{fz:.17g}\n")
    (folder / "in.liggghts").write_text(text)


def case_json(case, keep_every):
    d = {"name": case["name"], "description": case["description"], "dt": DT,
         "steps": case["steps"], "dump_every": keep_every, "box": case["box"],
         "cohesion": case["cohesion"], "type_names": TYPE_NAMES,
         "youngs_modulus": YOUNG, "poisson": case["poisson"],
         "restitution": np.asarray(case["restitution"]).tolist(),
         "friction": np.asarray(case["friction"]).tolist(),
         "ced": np.asarray(case["ced"]).tolist(),
         "particles": case["particles"],
         "walls": case["walls"],
         "wall_mesh": ({"x": [MESH_LO, MESH_HI], "y": [MESH_LO, MESH_HI],
                        "triangles": 2, "shared_edge": "x + y = 10"} if case["walls"] else None),
         "liggghts_version": LIGGGHTS_VERSION,
         "notes": ("Dump at the end of each step: x(n), v(n), omega(n) after the full Verlet step; "
                   "f(n), torque(n) evaluated at x(n) with the half-step v(n-1/2), omega(n-1/2). "
                   "Step 0 forces are those of the setup pass (evaluated with v(0), tangential "
                   "history not incremented, i.e. only -gamma_t v_t). walls.csv: total "
                   "force of the particles on each mesh (fix mesh/surface/stress), z = wall height "
                   "used for the step's force evaluation.")}
    if case.get("continuous_plate"):
        d["runs"] = [{"steps": r["steps"], "velocity_z": r["velocity_z"]} for r in case["runs"]]
        d["notes"] += (" The velocity schedule ('runs') is executed inside ONE LIGGGHTS run: no "
                       "force re-evaluation at the switch.")
    elif len(case["runs"]) > 1:
        d["runs"] = [{"steps": r["steps"], "velocity_z": r["velocity_z"]} for r in case["runs"]]
        d["notes"] += (" Several LIGGGHTS runs: at the start of each later run LIGGGHTS re-evaluates "
                       "the forces (setup pass) at x(n) with the full-step v(n), omega(n), the mesh "
                       "velocity taken as 0 and the tangential history not incremented; the first "
                       "half-kick of the new run uses that setup force instead of the f(n) dumped at "
                       "the end of the previous run. The CSVs hold the end-of-run f(n).")
    return d


def prepare(case):
    case["poisson"] = list(POISSON)
    case["restitution"] = geometric(RESTITUTION)
    case["ced"] = geometric(CED)
    return case


def run_case(case, dense=False, tmp_root=None):
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        text, log = run_liggghts(case, Path(tmp),
                                 continuous_plate=case.get("continuous_plate", False))
        frames = parse_dump(Path(tmp) / "dump.txt")
    thermo = parse_thermo(log, case["walls"]) if case["walls"] else {}
    zw = wall_heights(case)
    keep = case["liggghts_every"] if dense else case["dump_every"]
    folder = OUT / case["name"]
    write_outputs(case, folder, frames, thermo, zw, text, keep)
    # keep what a reader needs to rerun LIGGGHTS by hand
    write_data(folder / "data.liggghts", case)
    for w in case["walls"]:
        write_stl(folder / f"{w['name']}.stl", w["name"], w["z"], w["normal_z"])
    (folder / "case.json").write_text(json.dumps(case_json(case, keep), indent=1) + "\n")
    errF, errT = check_contact_law(case, frames, zw)
    print(summarise(case, frames, thermo, zw))
    print(f"    FACTS contact law vs dump: max force error {errF:.2e}, torque error {errT:.2e} "
          f"(relative to the max |F|, |T| of the run)")
    return frames, thermo, zw


# ----------------------------------------------------------------------------- side experiments

def setup_force_check(case, frames, n):
    """The force LIGGGHTS used in the first half-kick of the run that starts after step n,
    extracted from the dump (v(n+1/2) = v(n+1) - dt/2m f(n+1)), against the contact law evaluated
    at x(n) with the full-step v(n), omega(n), for several wall velocities."""
    zw = wall_heights(case)
    steps = sorted(frames)
    hist = {}
    for s in steps[1:n + 1]:                   # tangential history through the first run
        _, hist = law_forces(case, frames[s], zw, s, hist)
    cur, nxt = frames[n], frames[n + 1]
    m, r = cur[:, 3], cur[:, 2]
    inertia = 0.4 * m * r * r
    vh = nxt[:, 7:10] - DT / (2 * m[:, None]) * nxt[:, 13:16]
    wh = nxt[:, 10:13] - DT / (2 * inertia[:, None]) * nxt[:, 16:19]
    f_used = (vh - cur[:, 7:10]) * 2 * m[:, None] / DT
    t_used = (wh - cur[:, 10:13]) * 2 * inertia[:, None] / DT
    out = {}
    for label, vw in (("wall velocity 0", 0.0), ("old wall velocity", "old"),
                      ("new wall velocity", "new")):
        F, _ = law_forces(case, cur, zw, n, hist, full_step=True, wall_velocity=vw,
                          update_history=False)
        out[label] = np.abs(F - f_used).max() / max(np.abs(f_used).max(), 1e-300)
    return out, f_used, cur[:, 13:16], np.abs(t_used).max()


def law_forces(case, fr, zw, s, hist, full_step=False, wall_velocity=None, update_history=True):
    """Contact-law forces on every particle of frame fr (step s); returns (F, new history)."""
    n_atoms = len(fr)
    state = []
    for i in range(n_atoms):
        m, r = fr[i, 3], fr[i, 2]
        inertia = 0.4 * m * r * r
        v, w = fr[i, 7:10], fr[i, 10:13]
        if not full_step:
            v = v - DT / (2 * m) * fr[i, 13:16]
            w = w - DT / (2 * inertia) * fr[i, 16:19]
        state.append(dict(x=fr[i, 4:7], v=v, w=w, r=r, m=m, t=int(fr[i, 1])))
    F = np.zeros((n_atoms, 3))
    new = dict(hist)
    for i in range(n_atoms):
        for j in range(i + 1, n_atoms):
            f, _, _, _, new[(i, j)] = contact_force(case, state[i], state[j],
                                                    hist.get((i, j), np.zeros(3)),
                                                    update_history=update_history)
            F[i] += f
            F[j] -= f
        for wi, w in enumerate(case["walls"]):
            z = zw[w["name"]]
            if wall_velocity is None:
                vw = (z[s] - z[s - 1]) / DT
            elif wall_velocity == "old":
                vw = (z[s] - z[s - 1]) / DT
            elif wall_velocity == "new":
                vw = (z[s + 1] - z[s]) / DT
            else:
                vw = wall_velocity
            f, _, _, _, new[(i, "w", wi)] = contact_force(
                case, state[i], None, hist.get((i, "w", wi), np.zeros(3)), wall=w, zw=z[s], vw=vw,
                update_history=update_history)
            F[i] += f
    return F, new


def side_checks(cases):
    by = {c["name"]: c for c in cases}

    def dense_run(case, **kw):
        with tempfile.TemporaryDirectory() as tmp:
            text, log = run_liggghts(case, Path(tmp), **kw)
            return parse_dump(Path(tmp) / "dump.txt"), log

    # 1. Poisson 0.5 accepted? Compare AM-CBD runs with 0.5 and 0.49 and both against the law.
    c = dict(by["oblique_am_cbd_mu05"])
    f50, log50 = dense_run(c)
    c49 = dict(c, poisson=[0.49, 0.3, 0.3, 0.3])
    f49, _ = dense_run(c49)
    warn = [line for line in log50.splitlines() if "WARN" in line.upper() and "oisson" in line]
    diff = max(np.abs(f50[s][:, 13:16] - f49[s][:, 13:16]).max() for s in f50)
    print(f"[check] Poisson 0.5: accepted without error{' (warnings: ' + str(warn) + ')' if warn else ' or warning'}; "
          f"max |dF| nu 0.5 vs 0.49 runs {diff:.4g}; law(nu 0.5) vs nu-0.5 run "
          f"{check_contact_law(c, f50, {})[0]:.1e}, law(nu 0.5) vs nu-0.49 run "
          f"{check_contact_law(c, f49, {})[0]:.1e}, law(nu 0.49) vs nu-0.49 run "
          f"{check_contact_law(c49, f49, {})[0]:.1e}")
    # 2. contact_area overlap on the wall fix
    c = by["wall_impact_am_sjkr2"]
    a, _ = dense_run(c)
    b, _ = dense_run(c, contact_area="overlap")
    same = all(np.array_equal(a[s], b[s]) for s in a)
    print(f"[check] fix wall/gran ... contact_area overlap: dump bitwise identical to the default: {same}")
    # 3. two runs (new fix move/mesh) vs one continuous run (linear/variable velocity)
    c = by["plate_press_am"]
    a, _ = dense_run(c)
    b, _ = dense_run(c, continuous_plate=True)
    differ = [s for s in sorted(a) if not np.array_equal(a[s], b[s])]
    d = max(np.abs(a[t][:, 13:16] - b[t][:, 13:16]).max() for t in a)
    dx = max(np.abs(a[t][:, 4:7] - b[t][:, 4:7]).max() for t in a)
    print(f"[check] plate_press two runs vs one run: identical up to step {differ[0] - 1 if differ else 'end'}; "
          f"max |dF| {d:.4g}, max |dx| {dx:.3g} µm")
    n = c["runs"][0]["steps"]
    errs, f_used, f_dump, t_used = setup_force_check(c, a, n)
    print(f"[check] first half-kick of run 2 used F = {f_used[0]} (dumped f({n}) = {f_dump[0]}), "
          f"|torque| {t_used:.3g}; law at x({n}), v({n}), no history increment, relative error: "
          + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    # 4. same for the start of run 1 (step 0) with an initial overlap (cohesive case, dense)
    c = dict(by["cohesive_sjkr2_am_cbd"], steps=10, liggghts_every=1,
             runs=[dict(steps=10, velocity_z={})])
    a, _ = dense_run(c)
    F, _ = law_forces(c, a[0], {}, 0, {}, full_step=True, update_history=False)
    F1, _ = law_forces(c, a[0], {}, 0, {}, full_step=True, update_history=True)
    print(f"[check] step-0 (setup) force with an initial overlap: law with v(0), history not "
          f"incremented: error {np.abs(F - a[0][:, 13:16]).max():.1e}; with history incremented "
          f"{np.abs(F1 - a[0][:, 13:16]).max():.1e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dense", action="store_true",
                    help="write every LIGGGHTS dump step into the CSVs (large files)")
    ap.add_argument("--checks", action="store_true", help="also run the side experiments")
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    args = ap.parse_args(argv)
    cases = [prepare(c) for c in make_cases()]
    if args.cases:
        cases = [c for c in cases if c["name"] in args.cases]
    for c in cases:
        run_case(c, dense=args.dense)
    if args.checks:
        side_checks([prepare(c) for c in make_cases()])


if __name__ == "__main__":
    sys.exit(main())
