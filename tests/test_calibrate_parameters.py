"""calibrate.parameters and calibrate.targets: transforms, materials, validation of bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calibrate.parameters import (TypeTable, make_parameter, materials_from_parameters,
                                  parameter_set, table2)
from calibrate.targets import load_target, make_target
from twin.process.materials import table2_materials
from twin.units import gpa_to_micro, j_per_m3_to_micro

ENTRIES = [dict(name="AM.E_GPa", start=300.0, lower=20.0, upper=2000.0),
           dict(name="CBD.ced_J_m3", start=1e8, lower=1e6, upper=1e10),
           dict(name="AM.restitution", start=0.3, lower=0.01, upper=0.99),
           dict(name="steel.friction", start=0.5, lower=0.0, upper=1.0),
           dict(name="AM.poisson", start=0.3)]


def test_transforms_round_trip_and_respect_the_bounds():
    parameters = parameter_set(ENTRIES)
    assert parameters.free_names == ["AM.E_GPa", "CBD.ced_J_m3", "AM.restitution",
                                      "steel.friction"]          # poisson fixed by default
    theta = parameters.start_theta()
    values = parameters.values(theta)
    for entry in ENTRIES:
        assert float(values[entry["name"]]) == pytest.approx(entry["start"], rel=1e-12)
    for extreme in (-40.0, 40.0):
        x = np.asarray(parameters.free_vector(jnp.full(4, extreme)))
        for p, v in zip(parameters.free, x):
            assert p.lower <= v <= p.upper
    # "log" is uniform in ln x: the midpoint of theta = 0 is the geometric mean of the bounds
    mid = np.asarray(parameters.free_vector(jnp.zeros(4)))
    assert mid[0] == pytest.approx(np.sqrt(20.0 * 2000.0), rel=1e-12)
    assert mid[2] == pytest.approx(0.5, rel=1e-12)      # "logit" is uniform in x
    with pytest.raises(ValueError, match="AM.E_GPa: 2500 lies outside the open bounds"):
        parameters.theta_from_values({"AM.E_GPa": 2500.0, "CBD.ced_J_m3": 1e8,
                                      "AM.restitution": 0.3, "steel.friction": 0.5})
    samples = np.asarray(jax.vmap(parameters.free_vector)(parameters.sample_theta(200, 3)))
    assert samples.min(axis=0)[0] >= 20.0 and samples.max(axis=0)[0] <= 2000.0


@pytest.mark.parametrize("mixing", ["geometric", "artistic"])
def test_table2_base_reproduces_the_process_materials_and_from_materials_inverts(mixing):
    reference = table2_materials(mixing)
    for base in (table2(), TypeTable.from_materials(reference, mixing)):
        built = materials_from_parameters(base, {}, mixing)
        for field in ("youngs_modulus", "poisson", "restitution", "friction",
                      "cohesion_energy_density"):
            np.testing.assert_allclose(getattr(built, field), getattr(reference, field),
                                       rtol=1e-12)


def test_materials_from_parameters_replaces_the_named_values_differentiably():
    values = {"AM.E_GPa": 150.0, "CBD.ced_J_m3": 5e7, "steel.friction": 0.5}
    m = materials_from_parameters(table2(), values, "geometric")
    am, cbd, steel = m.names.index("AM"), m.names.index("CBD"), m.names.index("steel")
    assert float(m.youngs_modulus[am]) == pytest.approx(gpa_to_micro(150.0))
    assert float(m.cohesion_energy_density[cbd, cbd]) == pytest.approx(j_per_m3_to_micro(5e7))
    assert float(m.friction[steel, am]) == pytest.approx(np.sqrt(0.5 * 0.001))
    grad = jax.grad(lambda e: materials_from_parameters(
        table2(), {"AM.E_GPa": e}, "geometric").youngs_modulus[am])(150.0)
    assert float(grad) == pytest.approx(gpa_to_micro(1.0))


def test_from_materials_rejects_pair_matrices_that_are_not_the_mixing_rule():
    artistic = table2_materials("artistic")
    with pytest.raises(ValueError, match="not the 'geometric' mixing"):
        TypeTable.from_materials(artistic, "geometric")


def test_unknown_parameter_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown parameter name 'AM.youngs'.*AM.E_GPa"):
        make_parameter("AM.youngs", 1.0, 0.5, 2.0)
    with pytest.raises(ValueError, match="unknown parameter name 'NMC.E_GPa'.*CBD.restitution"):
        materials_from_parameters(table2(), {"NMC.E_GPa": 100.0})


@pytest.mark.parametrize("entry, message", [
    (dict(name="AM.E_GPa", start=3000.0, lower=20.0, upper=2000.0), "outside the open bounds"),
    (dict(name="AM.E_GPa", start=20.0, lower=20.0, upper=2000.0), "outside the open bounds"),
    (dict(name="AM.E_GPa", start=1.0, lower=2.0, upper=1.0), "must be below"),
    (dict(name="AM.restitution", start=0.5, lower=0.1, upper=1.5), "physical range"),
    (dict(name="AM.ced_J_m3", start=1e8, lower=0.0, upper=1e9), "log transform needs lower > 0"),
    (dict(name="AM.E_GPa", start=200.0), "needs both 'lower' and 'upper'"),
    (dict(name="AM.E_GPa", start="abc", lower=1.0, upper=2.0), "'abc' is not a number"),
])
def test_bad_bounds_and_starts_are_clear_errors(entry, message):
    with pytest.raises(ValueError, match=message):
        parameter_set([entry])


def test_parameter_set_errors():
    with pytest.raises(ValueError, match="listed twice: AM.E_GPa"):
        parameter_set([ENTRIES[0], ENTRIES[0]])
    with pytest.raises(ValueError, match="no free parameter"):
        parameter_set([dict(name="AM.E_GPa", start=200.0, free=False)])
    with pytest.raises(ValueError, match="unknown keys \\['bounds'\\]"):
        parameter_set([dict(name="AM.E_GPa", start=200.0, bounds=[1, 2])])


def _csv(tmp_path, text):
    path = tmp_path / "target.csv"
    path.write_text(text)
    return path


def test_target_csv_is_read_by_column_name(tmp_path):
    path = _csv(tmp_path, "pressure_MPa,comment,porosity\n0,a,0.45\n10,b,0.40\n50,c,0.31\n")
    target = load_target(path, ["pressure_MPa", "porosity"], "porosity_pressure", weight=2.0)
    np.testing.assert_array_equal(target.x, [0, 10, 50])
    np.testing.assert_array_equal(target.y, [0.45, 0.40, 0.31])
    assert target.y_scale == pytest.approx(np.sqrt(np.mean(target.y**2)))


@pytest.mark.parametrize("text, message", [
    ("pressure_MPa,porosity_pct\n0,45\n10,40\n50,31\n",
     "no column 'porosity'; its columns are \\['pressure_MPa', 'porosity_pct'\\]"),
    ("pressure_MPa,porosity\n0,0.45\n10,high\n50,0.31\n", "line 3, column 'porosity': 'high' is "
                                                          "not a number"),
    ("pressure_MPa,porosity\n0,0.45\n10,nan\n50,0.31\n", "'nan' is not finite"),
    ("pressure_MPa,porosity\n0,0.45\n10,\n50,0.31\n", "line 3, column 'porosity': '' is not"),
    ("pressure_MPa,porosity\n0,0.45\n10,0.40\n", "has 2 points; a curve needs at least 3"),
    ("", "is empty"),
])
def test_bad_target_files_are_clear_errors(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_target(_csv(tmp_path, text), ["pressure_MPa", "porosity"], "porosity_pressure")


def test_target_file_and_array_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_target(tmp_path / "nope.csv", ["x", "y"], "c")
    with pytest.raises(ValueError, match="NaN or infinite"):
        make_target("c", [0.0, 1.0, 2.0], [1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="weight -1.0 must be a positive"):
        make_target("c", [0.0, 1.0, 2.0], [1.0, 1.0, 2.0], weight=-1.0)
    with pytest.raises(ValueError, match="residual scale is 0.0"):
        make_target("c", [0.0, 1.0, 2.0], [0.0, 0.0, 0.0])
