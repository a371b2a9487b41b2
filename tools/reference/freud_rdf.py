"""freud reference for twin.analysis.rdf: g(r) and cumulative counts in fully periodic boxes.

Run in freud's own virtualenv (see README_freud.md)::

    /work/venvs/freud/bin/python tools/reference/freud_rdf.py

writes ``tests/golden/freud/cases.json`` and one ``rdf_<case>.csv`` (r, g, n_r) per case. The
point sets are not stored: :func:`dyadic_points` regenerates them from a seed with numpy alone,
and tests/test_rdf.py imports it from this file (freud is imported only when run as a script).

freud computes in float32. To make its float32 results exact where it matters, every coordinate
is a multiple of 1/64 µm in a cube of edge 16 µm and every bin edge a multiple of 1/16 µm: the
minimum-image differences, their squares and sums of squares are then exact in float32
(|numerator| < 2^24), so freud bins every pair exactly as an exact computation would (a distance
sqrt(m)/64 is either exactly a bin edge or at least ~2e-5 µm away from it, ≫ the float32 ulp),
and the shell volumes 4π/3 (r_k+1³ − r_k³) have exact cubes. What remains is float32 round-off
of the normalisation, ~1e-7 relative.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

BOX_LENGTH = 16.0        # µm, a power of two: fractional coordinates are exact in float32
GRID = 64                # coordinates are multiples of 1/GRID µm
GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "freud"

CASES = {
    "one_component": dict(seed=11, n_a=2000, n_b=0, r_min=0.0, r_max=6.0, bins=96),
    "partial": dict(seed=12, n_a=700, n_b=1300, r_min=1.0, r_max=6.0, bins=40),
}


def dyadic_points(seed: int, n: int) -> np.ndarray:
    """n distinct points, uniform on the grid of spacing 1/GRID µm in [-L/2, L/2)³, float64."""
    rng = np.random.default_rng(seed)
    cells = int(BOX_LENGTH * GRID)
    while True:
        grid = rng.integers(0, cells, size=(n, 3))
        if len(np.unique(grid, axis=0)) == n:
            return grid / GRID - BOX_LENGTH / 2


def case_points(case: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(A, B) of a case; B is None for one component. A and B share no point."""
    points = dyadic_points(case["seed"], case["n_a"] + case["n_b"])
    if case["n_b"] == 0:
        return points, None
    return points[: case["n_a"]], points[case["n_a"]:]


def main():
    import freud

    GOLDEN.mkdir(parents=True, exist_ok=True)
    box = freud.box.Box.cube(BOX_LENGTH)
    summary = {"freud_version": freud.__version__, "box_length_um": BOX_LENGTH, "grid_um": 1 / GRID,
               "normalization_mode": "exact", "cases": {}}
    for name, case in CASES.items():
        a, b = case_points(case)
        rdf = freud.density.RDF(bins=case["bins"], r_max=case["r_max"], r_min=case["r_min"])
        if b is None:
            rdf.compute((box, a))
        else:  # freud's query points are the reference centres A, its points the counted set B
            rdf.compute((box, b), query_points=a)
        with open(GOLDEN / f"rdf_{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["r", "g", "n_r", "bin_count"])
            for row in zip(rdf.bin_centers, rdf.rdf, rdf.n_r, rdf.bin_counts):
                writer.writerow([f"{row[0]:.9g}", f"{row[1]:.9g}", f"{row[2]:.9g}", int(row[3])])
        summary["cases"][name] = case
        print(f"{name}: {int(np.sum(rdf.bin_counts))} pairs in [{case['r_min']}, "
              f"{case['r_max']}) µm, g(last bin) = {rdf.rdf[-1]:.6f}")
    (GOLDEN / "cases.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
