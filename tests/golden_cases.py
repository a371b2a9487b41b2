"""Load the LIGGGHTS reference cases of tests/golden/liggghts (written by tools/reference)."""

import json
from pathlib import Path

import numpy as np

from twin.io.case import Case, WallSpec
from twin.physics.materials import Materials
from twin.physics.space import Box

GOLDEN = Path(__file__).parent / "golden" / "liggghts"


def load_reference_case(folder) -> tuple[Case, dict]:
    """A :class:`Case` equivalent to the LIGGGHTS input, plus the raw json (micro units)."""
    folder = Path(folder)
    doc = json.loads((folder / "case.json").read_text())
    names = tuple(doc["type_names"])
    materials = Materials(np.array(doc["youngs_modulus"]), np.array(doc["poisson"]),
                          np.array(doc["restitution"]), np.array(doc["friction"]),
                          np.array(doc["ced"]), names)
    particles = doc["particles"]
    walls = [WallSpec(w["name"], w["type"] - 1, w["z"], w["normal_z"], w["velocity_z"])
             for w in doc.get("walls", [])]
    case = Case(
        name=doc["name"], ids=np.array([p["id"] for p in particles]),
        types=np.array([p["type"] - 1 for p in particles]),
        radius=np.array([p["radius"] for p in particles], float),
        density=np.array([p["density"] for p in particles], float),
        position=np.array([p["x"] for p in particles], float),
        velocity=np.array([p["v"] for p in particles], float),
        angular_velocity=np.array([p["omega"] for p in particles], float),
        box=Box(np.array(doc["box"]["lo"]), np.array(doc["box"]["hi"]),
                tuple(doc["box"]["periodic"])),
        materials=materials, walls=walls, cohesion=doc["cohesion"], dt=doc["dt"],
        steps=doc["steps"], trajectory_every=doc["steps"], walls_every=doc["steps"])
    return case, doc


def read_csv(path) -> dict[str, np.ndarray]:
    with open(path) as f:
        header = f.readline().strip().split(",")
    text_columns = [k for k, name in enumerate(header) if name == "wall"]
    table = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=None, encoding="utf-8")
    return {name: np.array([row[k] for row in table]) for k, name in enumerate(header)} \
        if text_columns else dict(zip(header, np.loadtxt(path, delimiter=",", skiprows=1).T))
