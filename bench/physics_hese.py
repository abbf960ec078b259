#!/usr/bin/env python3
"""Scan the four real HESE events and compare the best fit with IceCube's HESE_SPEFit2.

Reads the realtime JSON and the IC86 geometry from the shared data folder (never from the
repository), runs ``run_local_scan`` per event and reco, and prints a markdown table of the angle
between our best pixel and HESE_SPEFit2 (and HESE_MuonImprovedLineFit for scale).

    python bench/physics_hese.py --recos pandel-mpe,pandel-spe --processes 2
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skydriver_api.local_scan import run_local_scan  # noqa: E402
from skyscan.physics.geometry import load_geometry_csv, shared_data_dir  # noqa: E402
from skyscan.physics.recos.evaluate import fit_direction  # noqa: E402
from skyscan.physics.recos.registry import get_reco  # noqa: E402
from skyscan.readers.realtime import read_realtime_event  # noqa: E402
from skyscan.records.spec import ScanSpec  # noqa: E402
from skyscan.sky.coordinates import angular_distance, detector_to_equatorial  # noqa: E402
from skyscan.wire import Direction, Vertex  # noqa: E402


def angle_deg(zen1: float, az1: float, zen2: float, az2: float) -> float:
    """Angle between two detector directions (zenith/azimuth as latitude-like coordinates)."""
    return math.degrees(float(angular_distance(az1, math.pi / 2 - zen1, az2, math.pi / 2 - zen2)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="shared data folder")
    parser.add_argument("--recos", default="pandel-mpe,pandel-spe")
    parser.add_argument("--nsides", default="8:0,64:12,512:12")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if args.data is None or not (args.data / "realtime_events").is_dir():
        print("shared data folder not found (pass --data)", file=sys.stderr)
        return 2
    geometry = load_geometry_csv(args.data / "icecube" / "ic86_geometry.csv")
    print(f"progression `{args.nsides}`, {args.processes} processes\n")
    print(
        "| event | pulses | reco | best zenith, azimuth (deg) | HESE_SPEFit2 zenith, azimuth (deg) | "
        "angle to SPEFit2 (deg) | our 2dLLH at SPEFit2 | angle to LineFit (deg) | scan (s) | CPU ms per fit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i in range(4):
        event = read_realtime_event(args.data / "realtime_events" / f"hese_event_{i:02d}.json", geometry)
        spe = event.reference_fits["HESE_SPEFit2"]
        line = event.reference_fits["HESE_MuonImprovedLineFit"]
        for reco in args.recos.split(","):
            stats: dict[str, float] = {}
            started = time.perf_counter()
            doc = run_local_scan(event, ScanSpec(reco=reco, nsides=args.nsides), args.processes, stats=stats)
            wall = time.perf_counter() - started
            best = doc["best_fit"]
            # Our likelihood at IceCube's direction (best over variations, seeded with our best
            # vertex): is SPEFit2 inside our Wilks 90% region (2dLLH < 4.61)?
            reco_obj = get_reco(reco)
            seed = Vertex(x=best["X"], y=best["Y"], z=best["Z"], t=best["T"])
            ra, dec = detector_to_equatorial(spe.zenith, spe.azimuth, event.mjd)
            at_ref = fit_direction(
                reco_obj,
                reco_obj.prepare(event),
                Direction(ra=float(ra), dec=float(dec), zenith=spe.zenith, azimuth=spe.azimuth),
                seed,
            )
            delta_at_spefit2 = 2.0 * (at_ref.llh - best["llh"])
            zen, az = math.radians(best["zenith_deg"]), math.radians(best["azimuth_deg"])
            print(
                f"| hese_event_{i:02d} (run {event.run_id}, event {event.event_id}) | "
                f"{len(event.pulses)} | {reco} | "
                f"{best['zenith_deg']:.2f}, {best['azimuth_deg']:.2f} | "
                f"{np.degrees(spe.zenith):.2f}, {np.degrees(spe.azimuth):.2f} | "
                f"{angle_deg(zen, az, spe.zenith, spe.azimuth):.2f} | {delta_at_spefit2:.1f} | "
                f"{angle_deg(zen, az, line.zenith, line.azimuth):.2f} | "
                f"{wall:.0f} | {stats['fit_ms_mean']:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
