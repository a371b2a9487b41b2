"""LIGGGHTS' own run-to-run spread on the compaction case: the measured stage rerun on 2 MPI ranks.

The many-particle compaction is chaotic: a different summation order (2 ranks instead of 1)
makes LIGGGHTS diverge from itself from step ~30 000 on. This script reruns the measured stage of
tests/golden/liggghts/compaction_small with `mpirun -np 2` and writes its wall forces as
walls_2ranks.csv (same columns as walls.csv), the yardstick for comparing the twin's curve.

    apt-get install -y liggghts openmpi-bin && python tools/reference/liggghts_compaction_ranks.py
"""

import json
import tempfile
from pathlib import Path

import numpy as np

import liggghts_compaction as reference

OUT = reference.OUT


def main():
    doc = json.loads((OUT / "case.json").read_text())
    ids, _, types, radius, density, position = reference.read_initial()
    z0 = doc["results"]["plate_start_z_um"]
    load = doc["plate_schedule"][0]["to_step"]
    unload = doc["plate_schedule"][1]["to_step"] - load
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        z_hi = z0 + reference.V_PLATE * reference.DT * max(unload - load, 0) + 1.0
        reference.write_data(work / "initial.data", ids, types, radius, density, position,
                             reference.LATERAL, -1.0, z_hi)
        reference.write_stl(work / "floor.stl", 0.0, reference.LATERAL, "floor")
        reference.write_stl(work / "plate.stl", z0, reference.LATERAL, "plate")
        (work / "in.measure.liggghts").write_text(reference.measure_input(z0, load, unload))
        reference.run_liggghts(work, "in.measure.liggghts", "log.measure", nproc=2)
        table = np.loadtxt(work / "walls.txt")
    dt, v = reference.DT, reference.V_PLATE
    with open(OUT / "walls_2ranks.csv", "w") as f:
        f.write("step,time_us,wall,z,fx,fy,fz\n")
        for step, *forces in table:
            step = int(step)
            plate_z = z0 - v * dt * min(step, load) + v * dt * max(step - load, 0)
            floor_f = ",".join(f"{x:.17g}" for x in forces[:3])
            plate_f = ",".join(f"{x:.17g}" for x in forces[3:])
            f.write(f"{step},{step * dt:.10g},floor,0,{floor_f}\n")
            f.write(f"{step},{step * dt:.10g},plate,{plate_z:.17g},{plate_f}\n")


if __name__ == "__main__":
    main()
