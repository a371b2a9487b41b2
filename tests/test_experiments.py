"""Helpers of the experiment scripts (the scripts themselves run for minutes to hours)."""

import numpy as np
import pytest

from helpers import load_script


def load(name):
    """An experiment script as a module."""
    return load_script(f"experiments/{name}.py")


def test_pressure_for_a_porosity_interpolates_in_log_pressure():
    fig2b = load("fig2b_porosity_pressure")
    pressures, porosities = np.array([10.0, 100.0]), np.array([0.35, 0.25])
    assert fig2b.pressure_for(0.30, pressures, porosities) == pytest.approx(np.sqrt(1000.0))
    assert np.isnan(fig2b.pressure_for(0.20, pressures, porosities))   # not bracketed


def test_table2_replacements_parse_and_reach_the_materials():
    fig2b = load("fig2b_porosity_pressure")
    values = fig2b.parse_settings(["AM.friction=0.3", "CBD.ced_J_m3 = 7e7"])
    assert values == {"AM.friction": 0.3, "CBD.ced_J_m3": 7e7}
    with pytest.raises(SystemExit, match="TYPE.PROPERTY=NUMBER"):
        fig2b.parse_settings(["AM.friction"])
    from calibrate.parameters import materials_from_parameters, table2
    materials = materials_from_parameters(table2(), values, "artistic")
    am = materials.names.index("AM")
    assert float(materials.friction[am, am]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="unknown parameter name"):
        materials_from_parameters(table2(), {"AM.stiffness": 1.0}, "artistic")
