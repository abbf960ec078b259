"""The local scan: the refinement state machine driven over a process pool, no broker or database."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from skydriver_api.cli import app
from skydriver_api.local_scan import ScanProgress, run_local_scan
from skyscan.physics.event import save_event
from skyscan.physics.recos.base import FitResult
from skyscan.physics.recos.dummy import DummyReco
from skyscan.physics.recos.registry import _ENTRIES, RecoEntry
from skyscan.physics.simulate import simulate_track
from skyscan.records.spec import ScanSpec
from skyscan.records.spec import parse_options as parse_reco_options


@pytest.fixture(scope="module")
def track():  # type: ignore[no-untyped-def]
    return simulate_track(2.0, 1.0, 4e4, seed=21, mjd=60100.5)


def test_pandel_scan_finds_the_truth(track) -> None:  # type: ignore[no-untyped-def]
    seen: list[ScanProgress] = []
    stats: dict[str, Any] = {}
    doc = run_local_scan(
        track, ScanSpec(reco="pandel-mpe", nsides="8:0,32:4"), processes=2, progress=seen.append, stats=stats
    )
    assert doc["schema"] == "skydriver.skymap/1" and doc["complete"] is True
    assert doc["nsides"] == [8, 32] and doc["n_failed_pixels"] == 0
    n_fine = len([p for p in doc["pixels"] if p["nside"] == 32])
    assert doc["n_pixels"] == 768 + n_fine and n_fine > 0 and n_fine % 16 == 0  # whole coarse pixels refined
    assert doc["best_fit"]["nside"] == 32
    truth = doc["truth"]
    assert truth["offset_deg"] < 3.0  # nside-32 pixels are ~1.8 deg wide
    assert truth["delta_2llh"] is not None and truth["delta_2llh"] > -1.0
    assert stats["n_fits"] == doc["n_pixels"] and stats["fit_ms_mean"] > 0
    assert seen and seen[-1].nside == 32 and math.isfinite(seen[-1].best_llh)


def test_single_process_scan_is_deterministic(track) -> None:  # type: ignore[no-untyped-def]
    a = run_local_scan(track, ScanSpec(reco="pandel-spe", nsides="2:0,8:4"), processes=1)
    b = run_local_scan(track, ScanSpec(reco="pandel-spe", nsides="2:0,8:4"), processes=1)
    assert a == b
    assert a["n_pixels"] == 48 + len([p for p in a["pixels"] if p["nside"] == 8])


def test_dummy_scan_and_options(track) -> None:  # type: ignore[no-untyped-def]
    doc = run_local_scan(
        track, ScanSpec(reco="dummy", nsides="4:0,16:4,64:4", reco_options={"delay_s": 0.0}), processes=1
    )
    assert doc["truth"]["offset_deg"] < 1.0
    assert doc["truth"]["delta_2llh"] == pytest.approx(2 * (10.0 - doc["best_fit"]["llh"]), abs=1e-6)
    with pytest.raises(ValueError):
        run_local_scan(track, ScanSpec(reco="dummy", nsides="4:0", reco_options={"nope": 1}), processes=1)
    with pytest.raises(ValueError):
        run_local_scan(track, ScanSpec(reco="pandel-mpe", nsides="3:0"), processes=1)


def _register(monkeypatch: pytest.MonkeyPatch, cls: type) -> None:
    """Register a reco defined here for one test (the scan's pool processes are forked: they see it)."""
    monkeypatch.setitem(_ENTRIES, cls.name, RecoEntry(f"{__name__}:{cls.__name__}", test_only=True))  # type: ignore[attr-defined]


class _Flaky(DummyReco):
    """Fails or raises on some pixels: the scan must carry on and never pick a failed pixel."""

    name: ClassVar[str] = "test-flaky"

    def fit(self, prepared: Any, direction: Any, variation: int, seed: Any) -> FitResult:
        bucket = int(abs(direction.ra) * 1000) % 3
        if bucket == 0:
            raise RuntimeError("boom")
        if bucket == 1:
            return FitResult(math.nan, status="failed", error="no convergence")
        return super().fit(prepared, direction, variation, seed)


def test_failures_do_not_stop_the_scan(track, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _register(monkeypatch, _Flaky)
    doc = run_local_scan(track, ScanSpec(reco=_Flaky.name, nsides="2:0,4:4"), processes=1)
    assert doc["complete"] and 0 < doc["n_failed_pixels"] < doc["n_pixels"]
    assert doc["best_fit"] is not None and doc["best_fit"]["llh"] is not None
    assert any("boom" in (p.get("error") or "") for p in doc["pixels"])


def test_parse_reco_options() -> None:
    assert parse_reco_options(["variations=3", "sigma-ns=12.5", "pulse_cleaning=srt", "x=true"]) == {
        "variations": 3,
        "sigma_ns": 12.5,
        "pulse_cleaning": "srt",
        "x": True,
    }
    with pytest.raises(ValueError):
        parse_reco_options(["novalue"])


def test_cli_scan_local(track, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    event_path = tmp_path / "ev.json"
    save_event(track, event_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "scan-local",
            str(event_path),
            "--reco",
            "pandel-spe",
            "--nsides",
            "2:0,8:4",
            "--processes",
            "1",
            "--out",
            str(out),
            "--quiet",
            "--reco-option",
            "variations=2",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "result.json").read_text())
    assert doc["reco"] == "pandel-spe" and doc["complete"] and "truth offset" in res.output
    res = CliRunner().invoke(
        app, ["scan-local", str(event_path), "--reco", "nope", "--out", str(out), "--quiet"]
    )
    assert res.exit_code == 2 and "unknown reco" in res.output
    res = CliRunner().invoke(
        app,
        ["scan-local", str(event_path), "--reco", "pandel-spe", "--nsides", "2:0", "--processes", "1"]
        + ["--out", str(out), "--quiet", "--level-set", "icecube-sim"],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "result.json").read_text())["regions"]["level_set"] == "icecube-sim"
    res = CliRunner().invoke(
        app, ["scan-local", str(event_path), "--out", str(out), "--quiet", "--level-set", "50:x"]
    )
    assert res.exit_code == 2 and "level" in res.output


class _Dying(DummyReco):
    """Kills its worker process: the scan must fail loudly, not wait forever for the lost tasks."""

    name: ClassVar[str] = "test-dying"

    def fit(self, prepared: Any, direction: Any, variation: int, seed: Any) -> FitResult:
        import os

        os._exit(3)


def test_a_dead_worker_fails_the_scan(track, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _register(monkeypatch, _Dying)
    with pytest.raises(RuntimeError, match="worker process died"):
        run_local_scan(track, ScanSpec(reco=_Dying.name, nsides="1:0"), processes=2)
