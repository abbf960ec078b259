"""Each reco's simulation-calibrated error-region levels, stored with the reco, and the scan's choice.

A calibration is ``calibrations/<reco name>.json`` next to this module (written by
``bench/calibrate_levels.py`` from a benchmark run on the photon simulator): a
:class:`skyscan.skymap.contours.LevelCalibration` that gives the 50% and 90% levels of 2*dLLH as a
function of the event's hit DOMs after cleaning and its total charge. It applies to the reco with
its default options only; a reco with other options, or without a calibration, gets Wilks.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from skyscan.physics.event import Event
from skyscan.skymap.contours import DEFAULT_LEVEL_SET, LevelCalibration, LevelSet

CALIBRATION_DIR = Path(__file__).with_name("calibrations")


@lru_cache(maxsize=16)
def load_calibration(reco_name: str) -> LevelCalibration | None:
    path = CALIBRATION_DIR / f"{reco_name}.json"
    if not path.is_file():
        return None
    return LevelCalibration.from_json_dict(json.loads(path.read_text()))


def save_calibration(reco_name: str, calibration: LevelCalibration) -> Path:
    CALIBRATION_DIR.mkdir(parents=True, exist_ok=True)
    path = CALIBRATION_DIR / f"{reco_name}.json"
    path.write_text(json.dumps(calibration.to_json_dict(), indent=1) + "\n")
    load_calibration.cache_clear()
    return path


def default_level_set(reco_name: str, reco_options: dict[str, Any] | None, event: Event) -> str | LevelSet:
    """The reco's calibrated levels for this event, or Wilks (no calibration, or non-default options)."""
    from skyscan.physics.recos.registry import get_reco

    calibration = load_calibration(reco_name)
    if calibration is None or reco_options:
        return DEFAULT_LEVEL_SET
    reco = get_reco(reco_name)
    features = getattr(reco, "level_features", None)
    if features is None:
        return DEFAULT_LEVEL_SET
    n_doms, charge = features(event)
    return calibration.level_set(n_doms, charge)


def scan_level_set(
    requested: str | None, reco_name: str, reco_options: dict[str, Any] | None, event: Event
) -> str | LevelSet:
    """What a scan's regions use: the requested level set, else its reco's default."""
    if requested:
        return requested
    return default_level_set(reco_name, reco_options, event)
