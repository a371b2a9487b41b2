"""The authors' own CGMD-dried electrode, relaxed free-standing: the start of calendering on the
paper's electrode (issues #4 and #6).

    python experiments/authors_dried_electrode.py --input coord_out_electrode.sys --out experiments/out/authors_dried

Input: the authors' calendering input ``coord_out_electrode.sys`` (9859 spheres; where to find
it: :func:`twin.process.pack.authors_dried_electrode`; not in ``../shared``, not copied here).
Its AM diameters are already expanded by 2 % and its walls sit at z = ±75.37 µm, inside the
packing (sphere tops up to 3.06 µm above the upper wall, bottoms 2.46 µm below the lower one),
so the authors' calendering starts pre-stressed. Measured on it: 36 306 overlapping pairs, the
AM–AM overlaps up to 1.12 µm, CBD–CBD median 0.07 µm. Between the authors' walls (150.74 µm)
the spheres at the unexpanded class diameters give 41.5 % porosity, the paper's dried 41.6 %.

Stage: :func:`twin.process.dry.relax_free_standing` (Table 2, float64, collector under the
lowest sphere, no plate contact) on the calendering sizes (AM class diameters × 1.02): the packing
springs from 156.25 to 162.31 µm under the drag, then runs free (measured 2026-12-06, float64,
2-core CPU, 377 s: thickness above the collector 162.41 µm, porosity 45.7 % with the unexpanded
diameters, 42.9 % with the expanded ones; the paper's dried 41.6 % is the pre-stressed packing
between the authors' walls). Writes ``authors_relaxed.data``
(LAMMPS sphere data in the twin's layout: type 1 CBD, types 2..7 the AM classes at their
*unexpanded* diameters, as ``experiments/dried_electrode.py`` writes; calendered with
``experiments/fig2b_porosity_pressure.py --am-expansion 1.02 --cbd-density 0.93``, analysed by
``twin analyze`` with the paper's unexpanded sizes) and ``relax_record.json`` (porosity with the
unexpanded diameters, the paper's definition, and with the expanded ones).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import twin  # noqa: F401  (float64)
from twin.io.lammps import write_sphere_data
from twin.process.dry import relax_free_standing
from twin.process.pack import AM_CALENDERING_EXPANSION, authors_dried_electrode

# The undamped phase ends when the AM skeleton's rms velocity is below this (µm/µs): measured on
# this packing, it stays at ~0.02 µm/µs for 6 µs while the highest top holds within 3 nm; the
# calendering plate moves at 2 µm/µs.
AM_RMS_LIMIT_UM_US = 0.05


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True,
                        help="the authors' coord_out_electrode.sys")
    parser.add_argument("--out", type=Path, default=Path("experiments/out/authors_dried"))
    args = parser.parse_args(argv)
    electrode = authors_dried_electrode(args.input)
    start = time.perf_counter()

    def progress(report):
        print(f"  {report.phase:6s} step {report.step:>7d}  highest top {report.top_z:9.4f} µm  "
              f"kinetic energy {report.kinetic_energy:.3g} e-15 J  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    expanded, record = relax_free_standing(electrode.with_am_expansion(AM_CALENDERING_EXPANSION),
                                           am_rms_limit=AM_RMS_LIMIT_UM_US, progress=progress)
    relaxed = dataclasses.replace(electrode, position=expanded.position, box=expanded.box)
    lateral = relaxed.box.hi[:2] - relaxed.box.lo[:2]
    bottom = float(np.min(relaxed.position[:, 2] - expanded.radius))
    volume = float(np.prod(lateral)) * (record["top_after_um"] - bottom)
    record.update(source=str(args.input), n_particles=len(relaxed.radius), precision="float64",
                  lateral_um=[float(v) for v in lateral], am_expansion=AM_CALENDERING_EXPANSION,
                  thickness_um=record["top_after_um"] - bottom,
                  porosity_after=1.0 - relaxed.solid_volume / volume,
                  porosity_after_expanded_am=1.0 - expanded.solid_volume / volume)
    args.out.mkdir(parents=True, exist_ok=True)
    write_sphere_data(args.out / "authors_relaxed.data", relaxed.ids, relaxed.am_class + 1,
                      2 * relaxed.radius, relaxed.density, relaxed.position, relaxed.box.lo,
                      relaxed.box.hi, 7, title="the authors' dried electrode relaxed "
                      f"free-standing ({args.input.name}), AM at the unexpanded class diameters")
    (args.out / "relax_record.json").write_text(json.dumps(record, indent=1))
    print(f"highest top {record['top_before_um']:.3f} -> {record['top_after_um']:.3f} µm, "
          f"thickness {record['thickness_um']:.3f} µm, porosity {100 * record['porosity_after']:.2f} % "
          f"({100 * record['porosity_after_expanded_am']:.2f} % with the AM expanded), "
          f"{record['wall_seconds']:.0f} s; wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
