"""``skydriver scan-local`` takes every option a scan request has (one scan specification)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from skydriver_api.cli import physics
from skyscan.physics.event import parse_event, save_event
from tests.conftest import make_event


def _app() -> typer.Typer:
    app = typer.Typer()
    physics.register(app)
    return app


def _event(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    save_event(parse_event(make_event(zenith=1.0, azimuth=2.0)), path)
    return path


def test_level_set_and_strategy_options_reach_the_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["scan-local", str(_event(tmp_path)), "--reco", "dummy", "--processes", "1", "--quiet"]
    args += ["--nsides", "4,16", "--strategy", "contour", "--strategy-option", "max_pixels_per_step=40"]
    args += ["--level-set", "icecube-sim", "--out", str(out)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "result.json").read_text())
    assert doc["regions"]["level_set"] == "icecube-sim"
    assert "max_pixels_per_step=40" in doc["strategy"]
    fine = [p for p in doc["pixels"] if p["nside"] == 16]
    assert 0 < len(fine) <= 40


def test_a_bad_strategy_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["scan-local", str(_event(tmp_path)), "--reco", "dummy", "--strategy-option", "nonsense"]
    result = CliRunner().invoke(_app(), [*args, "--out", str(out)])
    assert result.exit_code == 2
    assert "strategy option 'nonsense' is not key=value" in result.output
    assert not out.exists()
    bad_level = ["scan-local", str(_event(tmp_path)), "--reco", "dummy", "--level-set", "mystery"]
    result = CliRunner().invoke(_app(), [*bad_level, "--out", str(out)])
    assert result.exit_code == 2 and "level_set:" in result.output and not out.exists()
