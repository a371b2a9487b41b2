"""Small builders shared by the tests (no physics of their own)."""

import importlib.util
from pathlib import Path

import numpy as np

from twin.io.case import Case, WallSpec
from twin.physics.materials import Materials
from twin.physics.space import Box

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path):
    """A script of the repository (``experiments/…``, ``benchmarks/…``, ``tools/…``; not a
    package) imported as a module named after its file."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def uniform_materials(E=1.0e6, poisson=0.3, restitution=1.0, friction=0.0, ced=0.0):
    return Materials.from_types(("grain",), np.array([E]), np.array([poisson]),
                                np.array([restitution]), np.array([friction]), np.array([ced]))


def lattice_gas(n_side=10, spacing=2.5, radius=1.0, density=2.5, speed=0.5, seed=0,
                materials=None, dt=5e-4, steps=100, cohesion="none"):
    """n_side³ equal spheres on a jittered cubic lattice in a fully periodic box."""
    rng = np.random.default_rng(seed)
    grid = np.arange(n_side) * spacing + spacing / 2
    position = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    position += rng.uniform(-0.1, 0.1, position.shape) * (spacing - 2 * radius)
    n = len(position)
    velocity = rng.normal(size=(n, 3)) * speed
    velocity -= velocity.mean(axis=0)
    length = n_side * spacing
    return Case(name="lattice_gas", ids=np.arange(1, n + 1), types=np.zeros(n, int),
                radius=np.full(n, radius), density=np.full(n, density), position=position,
                box=Box(np.zeros(3), np.full(3, length), (True, True, True)),
                materials=materials or uniform_materials(), walls=[], cohesion=cohesion, dt=dt,
                steps=steps, trajectory_every=steps, walls_every=steps, velocity=velocity)


def pressed_column(n_columns=3, plate_speed=-1.0, steps=1000, cohesion="sjkr2", seed=1):
    """Columns of an AM sphere (floor contact) under a CBD sphere, pressed by a steel plate that
    starts touching the tallest column; every sphere starts exactly touching its neighbours.
    Periodic in x and y; Table 2 materials with friction raised to 0.3 so that sliding matters."""
    rng = np.random.default_rng(seed)
    names = ("CBD", "AM", "Al", "steel")
    materials = Materials.from_types(
        names, np.array([2e6, 200e6, 69e6, 200e6]), np.array([0.49, 0.3, 0.3, 0.3]),
        np.array([0.15, 0.15, 0.5, 0.78]), np.array([0.3, 0.3, 1.2, 0.76]),
        np.array([7e4, 6e5, 5.5e5, 6e5]))
    positions, radii, types = [], [], []
    for k in range(n_columns):
        r_am, r_cbd = 1.5 + 0.1 * k, 0.65
        x, y = 2.5 + 5.0 * k, 2.5
        positions.append([x, y, r_am - 0.002])   # slightly pressed into the floor
        # the CBD sphere sits slightly off-axis so that the contact is oblique
        dx = rng.uniform(0.2, 0.4)
        dz = np.sqrt((r_am + r_cbd) ** 2 - dx**2)
        positions.append([x + dx, y, r_am + dz])
        radii += [r_am, r_cbd]
        types += [1, 0]
    positions, radii, types = np.array(positions), np.array(radii), np.array(types)
    top = float((positions[:, 2] + radii).max())
    density = np.where(types == 1, 4.65, 0.93)
    return Case(name="pressed_column", ids=np.arange(1, len(radii) + 1), types=types,
                radius=radii, density=density, position=positions,
                box=Box(np.array([0.0, 0.0, -1.0]), np.array([5.0 * n_columns, 13.0, top + 5.0]),
                        (True, True, False)),
                materials=materials,
                walls=[WallSpec("floor", 2, 0.0, 1.0, 0.0),
                       WallSpec("plate", 3, top, -1.0, plate_speed)],
                cohesion=cohesion, dt=1e-4, steps=steps, trajectory_every=steps,
                walls_every=steps // 10)
