"""LAMMPS ``units micro`` and conversions at the edges of the twin.

Inside the twin: mass pg, length µm, time µs, hence
force pg·µm/µs² = 1e-9 N, energy 1e-15 J, pressure pg/(µm·µs²) = 1e3 Pa, density pg/µm³ = 1 g/cm³.
"""

PA_PER_MICRO_PRESSURE = 1.0e3


def gpa_to_micro(value_gpa):
    """Young's modulus in GPa -> micro pressure units (1 GPa = 1e6 pg/(µm·µs²))."""
    return value_gpa * 1.0e9 / PA_PER_MICRO_PRESSURE


def j_per_m3_to_micro(value):
    """Cohesion energy density J/m³ (= Pa) -> micro pressure units."""
    return value / PA_PER_MICRO_PRESSURE
