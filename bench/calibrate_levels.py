#!/usr/bin/env python3
"""Calibrate each reco's 50%/90% error-region levels on simulated scans, and test them on others.

Reads per-event rows written by ``bench/physics.py --json-out`` (2dLLH at the truth, hit DOMs
after cleaning, total charge), fits :func:`skyscan.skymap.contours.calibrate_levels` per reco on
the ``--calibrate`` rows and stores it with the reco (``skyscan/physics/recos/calibrations/``,
unless ``--dry-run``); then prints, for the ``--test`` rows (events the calibration did not see),
the fraction of true directions inside the calibrated 50% and 90% regions, per reco and energy band.
With ``--folds K`` (no test rows needed) the coverage is measured out of fold instead: the events
are split in K folds by event id, each fold is tested against a calibration fitted on the others.

    python bench/calibrate_levels.py --calibrate rowsA.json --test rowsB1.json rowsB2.json
    python bench/calibrate_levels.py --calibrate rowsA.json --folds 2
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


def fit(reco: str, rows: list[dict[str, Any]], source: str = "") -> LevelCalibration:
    return calibrate_levels(
        f"{reco}-sim",
        np.array([r["delta_2llh"] for r in rows]),
        np.array([r["n_doms"] for r in rows]),
        np.array([r["total_charge"] for r in rows]),
        source=source,
    )


def inside(cal: LevelCalibration, row: dict[str, Any]) -> tuple[bool, bool]:
    levels = cal.level_set(int(row["n_doms"]), float(row["total_charge"])).levels
    return bool(row["delta_2llh"] < levels[0.5]), bool(row["delta_2llh"] < levels[0.9])


def print_coverage(tested: list[tuple[dict[str, Any], bool, bool]], recos: list[str], label: str) -> None:
    print(f"\n| reco | {label} | events | inside calibrated 50% | inside calibrated 90% | inside Wilks 90% |")
    print("|---|---|---|---|---|---|")
    for reco in recos:
        mine = [t for t in tested if t[0]["reco"] == reco]
        bands = [("all", mine)] + [
            (f"{lo / 1e3:g}-{hi / 1e3:g} TeV", [t for t in mine if lo <= t[0]["energy_gev"] < hi])
            for lo, hi in ((1e3, 1e4), (1e4, 1e5))
        ]
        for name, sample in bands:
            if sample:
                c50 = np.mean([t[1] for t in sample])
                c90 = np.mean([t[2] for t in sample])
                wilks = np.mean([t[0]["delta_2llh"] < 4.61 for t in sample])
                print(f"| {reco} | {name} | {len(sample)} | {c50:.2f} | {c90:.2f} | {wilks:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calibrate", type=Path, nargs="+", required=True)
    parser.add_argument("--test", type=Path, nargs="*", default=[])
    parser.add_argument("--folds", type=int, default=0, help="out-of-fold coverage with K folds")
    parser.add_argument("--dry-run", action="store_true", help="do not write the calibration files")
    args = parser.parse_args()
    cal_rows = [r for r in read_rows(args.calibrate) if np.isfinite(r["delta_2llh"])]
    test_rows = read_rows(args.test)
    recos = sorted({r["reco"] for r in cal_rows})
    print(
        "| reco | calibration events | slope n_doms | slope charge | level 50% / 90% at 100 DOMs, 1000 PE |"
    )
    print("|---|---|---|---|---|")
    calibrations: dict[str, LevelCalibration] = {}
    for reco in recos:
        mine = [r for r in cal_rows if r["reco"] == reco]
        cal = fit(
            reco, mine, source=f"bench/physics.py photonsim rows {', '.join(p.name for p in args.calibrate)}"
        )
        calibrations[reco] = cal
        lv = cal.level_set(100, 1000.0).levels
        print(
            f"| {reco} | {cal.n_events} | {cal.slope_doms:.2f} | {cal.slope_charge:.2f} | "
            f"{lv[0.5]:.1f} / {lv[0.9]:.1f} |"
        )
        if not args.dry_run:
            save_calibration(reco, cal)
    if args.folds > 1:
        tested = []
        for k in range(args.folds):
            for reco in recos:
                train = [r for r in cal_rows if r["reco"] == reco and r["event_id"] % args.folds != k]
                held = [r for r in cal_rows if r["reco"] == reco and r["event_id"] % args.folds == k]
                cal = fit(reco, train)
                tested += [(r, *inside(cal, r)) for r in held]
        print_coverage(tested, recos, f"out of fold ({args.folds} folds)")
    test_rows = [r for r in test_rows if np.isfinite(r["delta_2llh"])]
    if test_rows:
        tested = [(r, *inside(calibrations[r["reco"]], r)) for r in test_rows if r["reco"] in calibrations]
        print_coverage(tested, recos, "test sample")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
