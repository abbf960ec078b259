"""The track simulator: determinism, truth, pulse counts and the physics it encodes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from skydriver_api.cli import app
from skyscan.physics.cleaning import first_hits
from skyscan.physics.event import load_event
from skyscan.physics.pandel_model import C_VACUUM_M_PER_NS, GEO_FACTOR, track_geometry, travel_direction
from skyscan.physics.simulate import SimulationConfig, simulate_batch, simulate_track


def test_same_seed_same_event_and_other_seed_differs() -> None:
    a = simulate_track(1.0, 2.0, 2e4, seed=7)
    b = simulate_track(1.0, 2.0, 2e4, seed=7)
    c = simulate_track(1.0, 2.0, 2e4, seed=8)
    assert a.to_json_dict() == b.to_json_dict()
    assert a.to_json_dict()["pulses"] != c.to_json_dict()["pulses"]


def test_truth_and_format() -> None:
    ev = simulate_track(2.5, 0.3, 5e4, seed=1, mjd=59000.25)
    assert ev.truth is not None
    assert (ev.truth.zenith, ev.truth.azimuth, ev.truth.energy) == (2.5, 0.3, 5e4)
    assert ev.mjd == 59000.25 and not ev.is_real_event
    cols = ev.pulse_arrays
    assert (cols["charge"] > 0).all()
    t0 = float(ev.metadata["vertex_t"])  # type: ignore[arg-type]
    assert cols["time"].min() >= t0 - 4000.0 and cols["time"].max() <= t0 + 6000.0
    assert any(p.hlc for p in ev.pulses) and not all(p.hlc for p in ev.pulses)


def test_pulse_counts_rise_with_energy_and_are_a_few_hundred() -> None:
    counts = {
        e: np.mean([len(simulate_track(1.2, 1.0, e, seed=s).pulses) for s in range(4)])
        for e in (1e3, 1e4, 1e5)
    }
    assert counts[1e3] < counts[1e4] < counts[1e5]
    assert 150 <= counts[1e4] <= 1500 and 150 <= counts[1e5] <= 1500


def test_first_hits_follow_the_track() -> None:
    """Early light: most hit DOMs near the track see their first pulse close to the direct time."""
    ev = simulate_track(0.8, 4.0, 3e4, seed=5)
    meta = ev.metadata
    vertex = np.array([meta["vertex_x"], meta["vertex_y"], meta["vertex_z"]], float)
    cols = ev.pulse_arrays
    pos = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
    geo = track_geometry(pos, vertex, float(meta["vertex_t"]), travel_direction(0.8, 4.0))  # type: ignore[arg-type]
    dom = cols["string"] * 100 + cols["om"]
    first, first_time, _ = first_hits(dom, cols["time"], cols["charge"])
    near = geo.rho[first] < 40.0
    residual = first_time[near] - geo.t_geo[first][near]
    assert near.sum() > 20
    # Pandel delays are positive; jitter is 3 ns; noise is rare (a few percent at most).
    assert np.mean(residual > -15.0) > 0.95
    assert np.median(residual) < 60.0
    assert (
        pytest.approx(0.9173, abs=2e-4) == GEO_FACTOR and pytest.approx(0.2998, abs=1e-4) == C_VACUUM_M_PER_NS
    )


def test_noise_only_when_no_light() -> None:
    config = SimulationConfig(photons_at_1tev=1e-9)
    ev = simulate_track(1.0, 1.0, 1e3, seed=2, config=config)
    # 4800 DOMs x ~650 Hz x 10 us ~ 31 noise hits, isolated so rarely HLC.
    assert 10 <= len(ev.pulses) <= 70
    assert np.mean([bool(p.hlc) for p in ev.pulses]) < 0.2


def test_batch_is_isotropic_deterministic_and_in_range() -> None:
    events = simulate_batch(12, 1e3, 1e5, seed=4)
    again = simulate_batch(12, 1e3, 1e5, seed=4)
    assert [e.to_json_dict() for e in events] == [e.to_json_dict() for e in again]
    energies = [e.truth.energy for e in events if e.truth and e.truth.energy]
    assert min(energies) >= 1e3 and max(energies) <= 1e5
    cos_z = [math.cos(e.truth.zenith) for e in events if e.truth]
    assert min(cos_z) < 0 < max(cos_z)
    assert len({e.event_id for e in events}) == 12


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        simulate_track(4.0, 0.0, 1e4)
    with pytest.raises(ValueError):
        simulate_track(1.0, 0.0, -1.0)
    with pytest.raises(ValueError):
        simulate_batch(0)


def test_cli_simulate_and_batch(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ev.json"
    res = runner.invoke(
        app,
        [
            "simulate",
            "--zenith",
            "1.0",
            "--azimuth",
            "2.0",
            "--energy",
            "20000",
            "--seed",
            "3",
            "--simulator",
            "pandel",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    ev = load_event(out)
    assert ev.truth is not None and ev.truth.zenith == 1.0
    assert ev.to_json_dict() == simulate_track(1.0, 2.0, 2e4, seed=3).to_json_dict()
    jsonl = tmp_path / "batch.jsonl"
    res = runner.invoke(
        app, ["simulate-batch", "--n", "3", "--seed", "1", "--simulator", "pandel", "-o", str(jsonl)]
    )
    assert res.exit_code == 0, res.output
    assert len([json.loads(line) for line in jsonl.read_text().splitlines()]) == 3
    res = runner.invoke(
        app, ["simulate-batch", "--n", "2", "--simulator", "pandel", "-o", str(tmp_path / "dir")]
    )
    assert res.exit_code == 0 and len(list((tmp_path / "dir").glob("*.json"))) == 2
    res = runner.invoke(app, ["simulate", "--zenith", "9", "--azimuth", "0", "--energy", "1", "-o", str(out)])
    assert res.exit_code == 2
    res = runner.invoke(
        app,
        [
            "simulate",
            "--zenith",
            "1",
            "--azimuth",
            "0",
            "--energy",
            "1e4",
            "--simulator",
            "x",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 2 and "unknown simulator" in res.output


def test_cli_simulate_defaults_to_photon_propagation(tmp_path: Path) -> None:
    from skyscan.physics.geometry import shared_data_dir
    from skyscan.physics.photonsim.ice import SPICE_MIE_RELATIVE_PATH

    base = shared_data_dir()
    if base is None or not (base / SPICE_MIE_RELATIVE_PATH).is_file():
        pytest.skip(f"shared data file missing: ../shared/data/{SPICE_MIE_RELATIVE_PATH}")
    out = tmp_path / "ev.json"
    args = [
        "simulate",
        "--zenith",
        "1.0",
        "--azimuth",
        "2.0",
        "--energy",
        "2e4",
        "--max-tracers",
        "20000",
        "-o",
        str(out),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert load_event(out).metadata["simulator"] == "skyscan.physics.photonsim/1"
