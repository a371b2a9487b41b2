"""Table 2 of Ngandjong et al. (2021): DEM materials of the electrode, calender and collector."""

import numpy as np

from twin.physics.materials import Materials
from twin.units import gpa_to_micro

TABLE2_NAMES = ("CBD", "AM", "Al", "steel")
TABLE2 = {  # E (GPa), restitution, Poisson, friction, CED (micro units = 1e3 J/m³)
    "CBD": (2.0, 0.15, 0.5, 0.001, 7e4),
    "AM": (200.0, 0.15, 0.3, 0.001, 6e5),
    "Al": (69.0, 0.5, 0.3, 1.2, 5.5e5),
    "steel": (200.0, 0.78, 0.3, 0.76, 6e5),
}


def table2_materials(mixing="artistic") -> Materials:
    """Types in the order CBD, AM, Al (current collector), steel (calender plate)."""
    rows = np.array([TABLE2[name] for name in TABLE2_NAMES])
    return Materials.from_types(TABLE2_NAMES, gpa_to_micro(rows[:, 0]), rows[:, 2], rows[:, 1],
                                rows[:, 3], rows[:, 4], mixing=mixing)
