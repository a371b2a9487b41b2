"""Bad input is refused with a message that names the value and the fix."""

import dataclasses

import equinox as eqx

import numpy as np
import pytest

from helpers import lattice_gas, pressed_column
from twin.io.case import prepare
from twin.io.lammps import read_sphere_data
from twin.physics.simulate import SimulationDiverged, simulate

HEADER = """LAMMPS data file

2 atoms
2 atom types

0 10 xlo xhi
0 10 ylo yhi
0 10 zlo zhi

Atoms # sphere

"""


def write(tmp_path, body):
    path = tmp_path / "bad.data"
    path.write_text(HEADER + body)
    return path


def test_missing_column_names_the_line(tmp_path):
    path = write(tmp_path, "1 1 1.0 2.5 1 1 1\n2 1 1.0 2.5 5 5\n")
    with pytest.raises(ValueError, match=r"bad.data:13: expected 7 columns .* found 6"):
        read_sphere_data(path)


def test_non_numeric_value(tmp_path):
    path = write(tmp_path, "1 1 1.0 2.5 1 1 1\n2 1 one 2.5 5 5 5\n")
    with pytest.raises(ValueError, match="non-numeric"):
        read_sphere_data(path)


def test_negative_diameter(tmp_path):
    path = write(tmp_path, "1 1 1.0 2.5 1 1 1\n2 1 -1.0 2.5 5 5 5\n")
    with pytest.raises(ValueError, match=r"particle id 2 has diameter -1.0; every diameter must be > 0"):
        read_sphere_data(path)


def test_negative_radius_in_a_case():
    case = lattice_gas(n_side=2)
    case.radius[1] = -0.5
    with pytest.raises(ValueError, match=r"particle id 2 has radius -0.5 µm"):
        case.validate()


def test_particle_outside_non_periodic_box():
    case = pressed_column()
    case.position[0, 2] = -3.0
    with pytest.raises(ValueError, match=r"particle id 1 at z = -3 µm lies outside the non-periodic box"):
        case.validate()


def test_overlapping_walls():
    case = pressed_column()
    case.walls[1] = dataclasses.replace(case.walls[1], z=-0.5)   # plate below the floor
    with pytest.raises(ValueError, match=r"wall 'plate' at z = -0.5 µm has particle id \d+ .* behind it"):
        case.validate()


def test_time_step_above_rayleigh_limit():
    case = pressed_column()
    case.dt = 1e-3
    with pytest.raises(ValueError, match=r"dt = 0.001 µs exceeds 20% of the Rayleigh time .* use dt <="):
        case.validate()


def test_unphysical_material_is_refused():
    case = pressed_column()
    case.materials = eqx.tree_at(lambda m: m.restitution, case.materials,
                                 case.materials.restitution.at[0, 1].set(0.0))
    with pytest.raises(ValueError, match=r"restitution of CBD–AM = 0.0 must lie in \(0, 1\]"):
        case.validate()


def test_nan_stops_with_step_particle_and_last_good_state():
    """A material that bypassed validation (e = 0 gives β = NaN) blows up at the first contact."""
    case = pressed_column(steps=200)
    state, spec, config, box, materials = prepare(case)
    broken = eqx.tree_at(lambda m: m.restitution, materials,
                         materials.restitution.at[:, 3].set(0.0).at[3, :].set(0.0))
    with pytest.raises(SimulationDiverged, match=r"non-finite .* at step \d+ for particle index \d+") as caught:
        simulate(state, broken, box, spec, config, case.steps, 10)
    error = caught.value
    good = error.last_good_state
    assert int(good.step) == error.step - 1
    assert np.isfinite(np.asarray(good.spheres.position)).all()
    assert np.isfinite(np.asarray(good.spheres.velocity)).all()
    tops = np.asarray(case.position[:, 2] + case.radius)
    assert error.particle == int(np.argmax(tops)), "the sphere touching the plate fails first"
