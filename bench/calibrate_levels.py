#!/usr/bin/env python3
"""Calibrate each reco's 50%/90% error-region levels on simulated scans, and test them on others.

Reads per-event rows written by ``bench/physics.py --json-out`` (2dLLH at the truth, hit DOMs
after cleaning, total charge), fits :func:`skyscan.skymap.contours.calibrate_levels` per reco on
the ``--calibrate`` rows and stores it with the reco (``skyscan/physics/recos/calibrations/``,
unless ``--dry-run``); then prints, for the ``--test`` rows (events the calibration did not see),
the fraction of true directions inside the calibrated 50% and 90% regions, per reco and energy band.

    python bench/calibrate_levels.py --calibrate rowsA.json --test rowsB1.json rowsB2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyscan.physics.recos.calibration import save_calibration  # noqa: E402
from skyscan.skymap.contours import LevelCalibration, calibrate_levels  # noqa: E402


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    return [row for p in paths for row in json.loads(p.read_text())]


def coverage(cal: LevelCalibration, rows: list[dict[str, Any]]) -> tuple[int, float, float]:
    ok = [r for r in rows if np.isfinite(r["delta_2llh"])]
    inside = {c: 0 for c in (0.5, 0.9)}
    for r in ok:
        levels = cal.level_set(int(r["n_doms"]), float(r["total_charge"])).levels
        for c in inside:
            inside[c] += r["delta_2llh"] < levels[c]
    n = max(1, len(ok))
    return len(ok), inside[0.5] / n, inside[0.9] / n


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calibrate", type=Path, nargs="+", required=True)
    parser.add_argument("--test", type=Path, nargs="*", default=[])
    parser.add_argument("--dry-run", action="store_true", help="do not write the calibration files")
    args = parser.parse_args()
    cal_rows = read_rows(args.calibrate)
    test_rows = read_rows(args.test)
    recos = sorted({r["reco"] for r in cal_rows})
    print(
        "| reco | calibration events | slope n_doms | slope charge | level 50% / 90% at 100 DOMs, 1000 PE |"
    )
    print("|---|---|---|---|---|")
    calibrations: dict[str, LevelCalibration] = {}
    for reco in recos:
        mine = [r for r in cal_rows if r["reco"] == reco]
        cal = calibrate_levels(
            f"{reco}-sim",
            np.array([r["delta_2llh"] for r in mine]),
            np.array([r["n_doms"] for r in mine]),
            np.array([r["total_charge"] for r in mine]),
            source=f"bench/physics.py photonsim rows {', '.join(p.name for p in args.calibrate)}",
        )
        calibrations[reco] = cal
        lv = cal.level_set(100, 1000.0).levels
        print(
            f"| {reco} | {cal.n_events} | {cal.slope_doms:.2f} | {cal.slope_charge:.2f} | "
            f"{lv[0.5]:.1f} / {lv[0.9]:.1f} |"
        )
        if not args.dry_run:
            save_calibration(reco, cal)
    if not test_rows:
        return 0
    print(
        "\n| reco | test sample | events | inside calibrated 50% | inside calibrated 90% | inside Wilks 90% |"
    )
    print("|---|---|---|---|---|---|")
    for reco in recos:
        mine = [r for r in test_rows if r["reco"] == reco]
        bands = [("all", mine)] + [
            (f"{lo / 1e3:g}-{hi / 1e3:g} TeV", [r for r in mine if lo <= r["energy_gev"] < hi])
            for lo, hi in ((1e3, 1e4), (1e4, 1e5))
        ]
        for name, sample in bands:
            if not sample:
                continue
            n, c50, c90 = coverage(calibrations[reco], sample)
            wilks = np.mean([r["delta_2llh"] < 4.61 for r in sample if np.isfinite(r["delta_2llh"])])
            print(f"| {reco} | {name} | {n} | {c50:.2f} | {c90:.2f} | {wilks:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
