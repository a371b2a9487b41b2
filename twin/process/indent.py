"""Micro-indentation by a flat plate: the dried electrode replicated n × n in x and y, pressed by
a fraction of its thickness and released; load–displacement curve normalised by its maxima.

Protocol (Ngandjong et al. 2021, §2.3 and Methods; ``../shared/FACTS.md``): the electrode is
replicated 4 × 4 (~160 000 spheres for the paper's electrode), the steel plate descends at the
calendering speed until it has pressed 10 % of the electrode thickness (displacement-controlled),
then rises. Displacement is measured from the electrode's highest sphere top, h = z_top - z_plate;
force and displacement are each normalised by their maxima to compare with the experiment
(Vickers tip, Fig. 2A). Reported contact area: the real plate–sphere contact area at maximum depth,
Σ π a² with a² = 2 r δ - δ² (sphere–plane contact circle), and the nominal plate area l_x l_y
(the paper's ~11 600 µm² is close to the nominal area of its 4 × 4 cell, (4 · 25.8 µm)²).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import jax
import numpy as np

from twin.physics.materials import Materials
from twin.physics.space import Box
from twin.process.calender import PlateProtocol, PlateRun
from twin.process.pack import Electrode

MICRO_FORCE_TO_MN = 1e-6
# XLA buffers (arguments + outputs + peak temporaries, ``Compiled.memory_analysis``) of one jitted
# chunk of a plate run, per sphere, float64 on CPU: 4140 B on the paper-size dried electrode (9859
# spheres), 4131 B on its 2 × 2 replica (linear in the sphere count), 6263 B on the 2 × 2 replica
# of the 14 µm test electrode (more neighbour-build candidates per sphere: it dominates the
# temporaries). An upper bound over both; mixed float32 needs less.
BYTES_PER_SPHERE = 8000
USABLE_MEMORY_FRACTION = 0.8   # leave room for the host copies, records and the allocator


@dataclass(kw_only=True)
class IndentProtocol(PlateProtocol):
    """Indentation: press ``depth_fraction`` of the thickness of the ``replicas`` × ``replicas``
    electrode, then release."""

    depth_fraction: float = 0.10
    replicas: int = 4

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.depth_fraction < 0.5:
            raise ValueError(f"indent protocol: depth_fraction = {self.depth_fraction} must lie "
                             "in (0, 0.5) (the paper presses 0.10)")
        if int(self.replicas) != self.replicas or self.replicas < 1:
            raise ValueError(f"indent protocol: replicas = {self.replicas} must be a positive "
                             "integer (the paper uses 4)")


@dataclass
class IndentResult:
    displacement_um: np.ndarray
    force_mn: np.ndarray
    summary: dict
    final_position: np.ndarray
    electrode: Electrode
    spec: object = None          # neighbour layout at the end of the run


def available_memory_bytes(device=None) -> int:
    """Free memory of ``device`` (default: JAX's first device): the accelerator's allocator
    limit minus what is in use, or on CPU the host's ``MemAvailable`` (/proc/meminfo)."""
    device = device if device is not None else jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_replicas_fit(n_spheres: int, replicas: int, available_bytes: int | None = None) -> int:
    """Refuse, before anything is allocated, a replication whose run would not fit in memory.

    Estimate: ``BYTES_PER_SPHERE`` × n_spheres × replicas² (measured, see the constant). Returns
    the estimate in bytes; raises ValueError with the estimate and the largest replication that
    fits when it exceeds ``USABLE_MEMORY_FRACTION`` of ``available_bytes`` (default: the device's
    free memory).
    """
    available = available_memory_bytes() if available_bytes is None else available_bytes
    spheres = n_spheres * replicas**2
    estimate = BYTES_PER_SPHERE * spheres
    usable = USABLE_MEMORY_FRACTION * available
    if estimate > usable:
        fits = math.isqrt(int(usable // (BYTES_PER_SPHERE * n_spheres)))
        advice = f"use replicas ≤ {fits}" if fits >= 1 else "use a device with more memory"
        raise ValueError(
            f"indent protocol: replicas = {replicas} gives {spheres:,} spheres, estimated "
            f"{estimate / 2**30:.3g} GiB ({BYTES_PER_SPHERE} B per sphere), more than "
            f"{USABLE_MEMORY_FRACTION:.0%} of the {available / 2**30:.3g} GiB available on "
            f"{jax.devices()[0].device_kind}: {advice}")
    return estimate


def replicate(electrode: Electrode, replicas: int) -> Electrode:
    """The electrode tiled ``replicas`` × ``replicas`` times in x and y (ids renumbered)."""
    lo, hi = np.asarray(electrode.box.lo, float), np.asarray(electrode.box.hi, float)
    length = hi - lo
    shifts = [np.array([a * length[0], b * length[1], 0.0])
              for a in range(replicas) for b in range(replicas)]
    n = len(electrode.radius)
    return Electrode(
        ids=np.arange(1, n * len(shifts) + 1),
        am_class=np.tile(electrode.am_class, len(shifts)),
        radius=np.tile(electrode.radius, len(shifts)),
        density=np.tile(electrode.density, len(shifts)),
        position=np.concatenate([electrode.position + s for s in shifts]),
        box=Box(lo, lo + length * np.array([replicas, replicas, 1.0]), electrode.box.periodic))


def plate_contact_area(position, radius, plate_z) -> tuple[int, float]:
    """Number of spheres touching the plane z = plate_z from below and Σ π (2 r δ - δ²) (µm²)."""
    overlap = np.asarray(position)[:, 2] + radius - plate_z
    touching = overlap > 0
    delta, r = overlap[touching], np.asarray(radius)[touching]
    return int(touching.sum()), float(np.sum(np.pi * (2 * r * delta - delta**2)))


def indent(electrode: Electrode, protocol: IndentProtocol, materials: Materials | None = None,
           progress=None) -> IndentResult:
    """Run the indentation (see the module docstring). ``progress`` as for calendering."""
    protocol.validate()
    check_replicas_fit(len(electrode.radius), int(protocol.replicas))
    tiled = replicate(electrode, int(protocol.replicas))
    run = PlateRun(tiled, protocol, materials)
    radius = np.asarray(run.case.radius)
    top = float(np.max(tiled.position[:, 2] + radius))
    depth = protocol.depth_fraction * (top - run.floor)
    start_z = run.case.walls[run.plate].z
    travel_per_step = protocol.plate_speed_um_us * protocol.dt_us
    loading_steps = protocol.record_every * math.ceil(
        (start_z - (top - depth)) / travel_per_step / protocol.record_every)
    turn_z = start_z - loading_steps * travel_per_step
    control = run.control(turn_z=turn_z)
    run.advance(control, loading_steps)
    plate_z = float(run.state.walls.z[run.plate])
    contacts, contact_area = plate_contact_area(run.state.spheres.position, radius, plate_z)
    run.press(control, protocol.max_steps, progress, "indentation depth")
    trace = run.trace()
    plate_z_trace, force, rising = trace.plate_z, trace.force, trace.rising
    displacement = top - plate_z_trace
    engaged = displacement >= 0.0
    force_mn = force * MICRO_FORCE_TO_MN
    unloading = rising & (force >= protocol.release_fraction * force.max())
    summary = {
        "max_displacement_um": float(displacement.max()),
        "max_force_mN": float(force_mn.max()),
        "residual_displacement_um": float(np.min(displacement[unloading]))
        if unloading.any() else float("nan"),
        "contact_area_um2": contact_area,
        "plate_contacts": contacts,
        "nominal_area_um2": run.area,
        "electrode_thickness_um": top - run.floor,
        "depth_fraction": protocol.depth_fraction,
        "replicas": int(protocol.replicas),
        "particles": int(len(radius)),
        "plate_speed_m_s": protocol.plate_speed_um_us,
        "steps": run.steps, "loading_steps": loading_steps, "dt_us": protocol.dt_us,
        "wall_seconds": run.seconds,
        "particle_steps_per_second": run.rate, "precision": protocol.precision,
        "am_expansion": protocol.am_expansion,
    }
    return IndentResult(displacement[engaged], force_mn[engaged], summary,
                        np.asarray(run.state.spheres.position), tiled, run.spec)
