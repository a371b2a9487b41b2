"""Target curves read from CSV: two named numeric columns, x and y, validated.

A target is the curve ``curve`` of a simulator (e.g. ``"load_displacement"``) measured at points
(x_i, y_i). The file has a header row; other columns are ignored. Errors name the file, the
column and the row, and say what to fix.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_POINTS = 3


@dataclass(frozen=True)
class Target:
    """A target curve: points (x, y), its weight, and the scale its residuals are divided by."""

    curve: str
    x: np.ndarray
    y: np.ndarray
    weight: float = 1.0
    scale: float | None = None        # None: root mean square of y
    columns: tuple[str, str] = ("x", "y")
    source: str = ""

    @property
    def y_scale(self) -> float:
        return float(np.sqrt(np.mean(self.y**2))) if self.scale is None else float(self.scale)


def read_columns(path, columns) -> dict[str, np.ndarray]:
    """The named numeric ``columns`` of a CSV file with a header row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"target file {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"target file {path} is empty: it needs a header row naming the columns")
    header = [cell.strip() for cell in rows[0]]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"target file {path} has no column {', '.join(map(repr, missing))}; its "
                         f"columns are {header}: fix the column names in the config or the file")
    out = {}
    for column in columns:
        k = header.index(column)
        values = []
        for line, row in enumerate(rows[1:], start=2):
            cell = row[k].strip() if k < len(row) else ""
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(f"target file {path}, line {line}, column {column!r}: "
                                 f"{cell!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"target file {path}, line {line}, column {column!r}: "
                                 f"{cell!r} is not finite; remove the row or fill in the value")
            values.append(value)
        out[column] = np.asarray(values, dtype=float)
    return out


def load_target(path, columns, curve, weight=1.0, scale=None) -> Target:
    """A :class:`Target` from the CSV ``path``; ``columns`` = (x column, y column)."""
    columns = tuple(columns)
    if len(columns) != 2:
        raise ValueError(f"target {curve!r}: 'columns' must name two columns (x, y), got "
                         f"{list(columns)}")
    data = read_columns(path, columns)
    return make_target(curve, data[columns[0]], data[columns[1]], weight, scale, columns,
                       str(path))


def make_target(curve, x, y, weight=1.0, scale=None, columns=("x", "y"), source="") -> Target:
    """A validated :class:`Target` from arrays."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    where = f"target {curve!r}" + (f" ({source})" if source else "")
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"{where}: x and y must be 1-D of equal length, got {x.shape} and "
                         f"{y.shape}")
    if len(x) < MIN_POINTS:
        raise ValueError(f"{where} has {len(x)} points; a curve needs at least {MIN_POINTS}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{where} contains NaN or infinite values")
    weight = float(weight)
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"{where}: weight {weight!r} must be a positive number")
    target = Target(curve, x, y, weight, None if scale is None else float(scale), columns, source)
    if not (math.isfinite(target.y_scale) and target.y_scale > 0):
        raise ValueError(f"{where}: the residual scale is {target.y_scale!r} (all y zero?); set "
                         "a positive 'scale' in the y unit")
    return target
