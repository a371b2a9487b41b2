"""Calendering protocol: the plate turns at the target pressure, the electrode recovers
elastically, porosity and thickness follow their definitions; the command writes its run folder."""

import json

import numpy as np
import pytest

from golden_cases import read_csv
from twin.cli import main
from twin.process.calender import CalenderProtocol, PlateRun, calender, recovered_thickness
from twin.process.pack import Electrode, compact_affine, remove_overlaps
from twin.physics.space import Box
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden" / "liggghts" / "compaction_small"
CELL_UM = 14.0


def mini_electrode() -> Electrode:
    """A 14 × 14 µm column cut from the small example electrode (AM up to 4.5 µm diameter),
    re-wrapped periodically, compacted to a solid fraction of 0.5 and freed of overlaps."""
    rows = read_csv(GOLDEN / "initial.csv")
    position = np.column_stack([rows["x"], rows["y"], rows["z"]])
    radius, am_class = rows["radius"], rows["class"].astype(int) - 1
    keep = (np.abs(position[:, 0]) < CELL_UM / 2) & (np.abs(position[:, 1]) < CELL_UM / 2) \
        & (radius <= 2.25)
    position = position[keep] + np.array([CELL_UM / 2, CELL_UM / 2, 0.0])
    box = Box(np.zeros(3), np.array([CELL_UM, CELL_UM, position[:, 2].max() + 3.0]),
              (True, True, False))
    electrode = Electrode(rows["id"][keep].astype(int), am_class[keep], radius[keep],
                          rows["density"][keep], position, box)
    return remove_overlaps(compact_affine(electrode, 0.5))


def write_plate_case(folder, electrode, protocol_lines: str):
    """The electrode as a LAMMPS data file and a case file pointing to it, in ``folder``."""
    from twin.io.lammps import write_sphere_data
    write_sphere_data(folder / "dried.data", electrode.ids, electrode.am_class + 1,
                      2 * electrode.radius, electrode.density, electrode.position,
                      electrode.box.lo, electrode.box.hi, 7)
    case = folder / "case.toml"
    case.write_text(f'[electrode]\ndata = "dried.data"\n[protocol]\n{protocol_lines}')
    return case


@pytest.fixture(scope="module")
def electrode():
    return mini_electrode()


@pytest.fixture(scope="module")
def pressed(electrode):
    protocol = CalenderProtocol(target_pressure_mpa=20.0, plate_speed_um_us=2.0, record_every=20)
    return calender(electrode, protocol)


def test_plate_turns_at_the_target_pressure_and_the_electrode_recovers(pressed):
    s = pressed.summary
    turn = int(np.argmin(pressed.plate_z_um))
    # The controller reverses at the first step with the filtered P ≥ target; records are 20
    # steps apart. The instantaneous pressure runs ahead of the filtered one by Ṗ τ on the ramp
    # (up to the record before the turn: at the turn's record the plate may already have risen
    # for a few steps, and the instantaneous pressure falls at once).
    assert pressed.pressure_filtered_mpa[:turn].max() < 20.0 * 1.02
    upper_ramp = slice(int(np.argmax(pressed.pressure_filtered_mpa > 10.0)), turn)
    lead = (pressed.pressure_mpa - pressed.pressure_filtered_mpa)[upper_ramp]
    assert lead[-1] > 0.0 and lead.mean() > 0.0
    assert 0.9 * 20.0 < s["max_pressure_MPa"] < 1.1 * 20.0
    assert np.all(np.diff(pressed.plate_z_um[:turn]) < 0)
    assert np.all(np.diff(pressed.plate_z_um[turn + 1:]) > 0)
    assert s["min_plate_gap_um"] < s["thickness_um"] < s["initial_thickness_um"]
    assert s["recovery_um"] == pytest.approx(s["thickness_um"] - s["min_plate_gap_um"])
    assert s["recovery_um"] > 0.0
    assert s["thickness_literal_um"] >= s["thickness_um"]
    assert s["final_porosity"] < s["initial_porosity"]
    # The force on the plate at the recorded thickness is ≥ 1 % of the maximum, above it < 1 %.
    rising = np.arange(len(pressed.plate_z_um)) > turn
    above = rising & (pressed.plate_z_um > s["thickness_um"] + 1e-9)
    assert np.all(pressed.force_n[above] < 0.01 * pressed.force_n.max())


def test_porosity_uses_the_unexpanded_spheres_between_collector_and_thickness(pressed):
    s = pressed.summary
    from twin.analysis.porosity import sphere_volume_in_slab
    z = pressed.final_position[:, 2]
    floor = float(np.min(pressed.electrode.position[:, 2] - pressed.electrode.radius
                         * np.where(pressed.electrode.is_am, 1.02, 1.0)))
    volume = np.asarray(sphere_volume_in_slab(z, pressed.radius, floor,
                                              floor + s["thickness_um"])).sum()
    assert s["final_porosity"] == pytest.approx(1 - volume / (CELL_UM**2 * s["thickness_um"]),
                                                rel=1e-9)


def test_recovered_thickness_definition():
    plate_z = np.array([5.0, 4.0, 3.0, 3.5, 4.0, 4.5, 5.0])
    force = np.array([0.0, 1.0, 10.0, 5.0, 0.05, 1e-6, 0.0])
    rising = np.array([False, False, False, True, True, True, True])
    assert recovered_thickness(plate_z, force, rising, 0.1) == 3.5
    assert recovered_thickness(plate_z, force, rising, 1e-300) == 4.5
    # released within one record: no measurable recovery, the turning position
    assert recovered_thickness(plate_z, force, rising, 20.0) == 3.0


def test_force_filter_attenuates_a_short_pulse_and_trails_a_ramp_by_tau():
    """F̄(n+1) = F̄(n) + (1 − e^(−dt/τ))(F(n+1) − F̄(n)): a pulse of height 1 held for n steps
    reaches 1 − e^(−n dt/τ); on a ramp of slope s the lag settles at s dt / (e^(dt/τ) − 1)."""
    import jax
    import jax.numpy as jnp
    from twin.physics.dem import DEMConfig, filter_wall_force

    dt, tau = 1e-4, 0.05
    config = DEMConfig(dt=dt, cohesion="none", wall_force_filter_time=tau)

    def filtered(signal):
        def advance(f, x):
            f = filter_wall_force(f, x, config)
            return f, f
        return np.asarray(jax.lax.scan(advance, jnp.zeros(()), jnp.asarray(signal))[1])

    pulse = np.r_[np.ones(100), np.zeros(400)]           # 0.01 µs, a fifth of τ
    assert filtered(pulse).max() == pytest.approx(1 - np.exp(-100 * dt / tau), rel=1e-9)
    slope = 3.0                                           # per µs
    ramp = slope * dt * np.arange(1, 20001)
    lag = (ramp - filtered(ramp))[-1]
    assert lag == pytest.approx(slope * dt / np.expm1(dt / tau), rel=1e-6)
    assert abs(lag - slope * tau) < slope * dt
    unfiltered = DEMConfig(dt=dt, cohesion="none")
    assert filter_wall_force(jnp.zeros(()), jnp.ones(()), unfiltered) == 1.0


def test_turn_controller_reads_the_filtered_force(electrode):
    import equinox as eqx
    import jax.numpy as jnp
    run = PlateRun(electrode, CalenderProtocol(target_pressure_mpa=1.0), None)
    control = run.control(target_force=5.0)

    def plate_velocity_after(force, filtered):
        state = eqx.tree_at(lambda s: (s.wall_force, s.wall_force_filtered), run.state,
                            (jnp.full((2, 3), force), jnp.full((2, 3), filtered)))
        return float(control(state).walls.velocity_z[run.plate])

    assert plate_velocity_after(force=50.0, filtered=1.0) < 0     # a spike: keeps descending
    assert plate_velocity_after(force=1.0, filtered=6.0) > 0      # the average reached it: turns


def test_unreachable_pressure_is_a_clear_error(electrode):
    few = Electrode(electrode.ids[:40], electrode.am_class[:40] * 0, electrode.radius[:40] * 0
                    + 0.65, electrode.density[:40], electrode.position[:40], electrode.box)
    protocol = CalenderProtocol(target_pressure_mpa=1e6, plate_speed_um_us=20.0, dt_us=5e-5,
                                chunk_steps=1000)
    with pytest.raises(ValueError, match="not reached"):
        calender(few, protocol)


def test_bad_protocol_values_are_refused():
    for bad in (dict(target_pressure_mpa=-1.0), dict(target_pressure_mpa=10.0, dt_us=0.0),
                dict(target_pressure_mpa=10.0, release_fraction=0.0),
                dict(target_pressure_mpa=10.0, am_expansion=0.9)):
        with pytest.raises(ValueError):
            CalenderProtocol(**bad).validate()
    with pytest.raises(ValueError, match="inside the particles"):
        CalenderProtocol(target_pressure_mpa=10.0, gap_um=-2.0).validate()


def test_calender_command_writes_the_run_folder(tmp_path, electrode):
    case = write_plate_case(tmp_path, electrode, "target_pressure_MPa = 10.0\n"
                                                 "plate_speed_m_s = 2.0\nrecord_every = 50\n")
    assert main(["calender", str(case), "--out", str(tmp_path / "run")]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    trace = read_csv(run / "trace.csv")
    assert set(trace) == {"time_us", "plate_z_um", "force_N", "pressure_MPa",
                          "pressure_filtered_MPa", "porosity"}
    assert summary["max_pressure_MPa"] == pytest.approx(trace["pressure_filtered_MPa"].max())
    assert summary["max_pressure_instantaneous_MPa"] == pytest.approx(trace["pressure_MPa"].max())
    for name in ("final.data", "final.dump", "calender.png"):
        assert (run / name).stat().st_size > 0
    assert main(["calender", str(tmp_path / "missing.toml"), "--out", str(run)]) == 2


def test_sweep_shares_the_loading_and_matches_single_runs(electrode, pressed):
    from twin.process.calender import calender_sweep
    protocol = CalenderProtocol(target_pressure_mpa=20.0, plate_speed_um_us=2.0, record_every=20)
    low, high = calender_sweep(electrode, [20.0, 8.0], protocol)
    assert low.summary["target_pressure_MPa"] == 8.0 and high.summary["target_pressure_MPa"] == 20
    # The branch to 20 MPa is the same trajectory as the single run (the loading is shared).
    np.testing.assert_allclose(high.plate_z_um, pressed.plate_z_um, rtol=0, atol=1e-9)
    np.testing.assert_allclose(high.force_n, pressed.force_n, rtol=1e-9, atol=1e-15)
    assert high.summary["final_porosity"] == pytest.approx(pressed.summary["final_porosity"],
                                                           abs=1e-12)
    assert low.summary["final_porosity"] > high.summary["final_porosity"]
    assert low.summary["max_pressure_MPa"] < high.summary["max_pressure_MPa"]


def test_a_turn_late_in_the_last_record_interval_of_a_chunk_counts_as_the_turn(electrode):
    """The plate turns at step 980 of a 1000-step chunk recorded every 100 steps: at the chunk's
    end it is still below the record at step 900, yet the loading ended inside that chunk, so a
    sweep's next target must restart from the chunk's start (an authors'-electrode sweep once
    restarted every target after the turn and gave five identical 'calenderings')."""
    protocol = CalenderProtocol(target_pressure_mpa=20.0, plate_speed_um_us=5.0,
                                record_every=100, chunk_steps=1000, gap_um=0.1)
    run = PlateRun(electrode, protocol, None)
    start_z = run.case.walls[run.plate].z
    travel_per_step = protocol.plate_speed_um_us * protocol.dt_us
    run.press(run.control(turn_z=start_z - 979.5 * travel_per_step), 100_000, None, "turn")
    state, _, _, steps = run.loading_snapshot
    assert steps == 0 and float(state.walls.velocity_z[run.plate]) < 0
    assert run.loading_steps() == 980
