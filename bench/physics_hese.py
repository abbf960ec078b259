#!/usr/bin/env python3
"""Scan real IceCube events and compare our best fit with IceCube's own (HESE_SPEFit2, SplineMPE).

By default reads the five HESE realtime files (``--hese``) and the IC86 geometry from the shared data folder
(never from the repository); ``--event-json`` scans open-format events instead (for instance the
alert tracks written by ``skydriver import-realtime``). For each event and reco: our best pixel,
the angle to the reference fit (the first of ``--references`` the event carries), 2dLLH at the
reference in our map (the best fit at that direction over several vertex seeds), and whether the
reference lies inside our 90% region of the reco's default level set (calibrated where the reco
has a calibration, else Wilks). ``--descend`` adds, per row, a local simplex over the direction on
our profiled likelihood started at the reference: where it ends, and how far its -lnL is below the
reference's. Ending at our best pixel says our likelihood prefers it (not our minimiser); ending
near the reference says the scan jumped to another minimum.

    nice -n 10 python bench/physics_hese.py --recos table-mpe,pandel-mpe --processes 2
    # IceCube's own SPE fit settings (ICECUBE_SPE_OPTIONS), the like-for-like check of HESE_SPEFit2:
    nice -n 10 python bench/physics_hese.py --recos pandel-spe \
        --reco-options '{"pulse_cleaning": "hlc", "noise_floor": 1e-8}'
    nice -n 10 python bench/physics_hese.py --event-json GOLD.json BRONZE.json 138632.json
    # the HESE filter's pulses for the table recos, and a descent from HESE_SPEFit2:
    nice -n 10 python bench/physics_hese.py --recos table-spe --hese 0,2,3 \
        --reco-options '{"pulse_cleaning": "hlc"}' --descend
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skydriver_api.local_scan import run_local_scan  # noqa: E402
from skyscan.physics.event import Event, load_event  # noqa: E402
from skyscan.physics.geometry import load_geometry_csv, shared_data_dir  # noqa: E402
from skyscan.physics.recos.base import Reco  # noqa: E402
from skyscan.physics.recos.evaluate import detector_direction, fit_direction  # noqa: E402
from skyscan.physics.recos.registry import get_reco  # noqa: E402
from skyscan.readers.realtime import read_realtime_event  # noqa: E402
from skyscan.records.spec import ScanSpec  # noqa: E402
from skyscan.sky.coordinates import detector_separation  # noqa: E402
from skyscan.wire import Vertex  # noqa: E402

DEFAULT_REFERENCES = "HESE_SPEFit2,OnlineL2_SplineMPE,l2_online_SplineMPE,SplineMPE"


HESE_FILES = {
    "0": "hese_event_00.json",
    "1": "hese_event_01.json",
    "2": "hese_event_02.json",
    "3": "hese_event_03.json",
    "2017": "event_HESE_2017-11-28.json",
}


def descend_from(
    reco: Reco, prepared: Any, event: Event, start: tuple[float, float], seeds: tuple[Vertex | None, ...]
) -> tuple[float, float, float]:
    """Local Nelder-Mead over (zenith, azimuth) from ``start`` on the likelihood profiled over the
    vertex (best of ``seeds``): (zenith, azimuth, -lnL) where it stops. Initial steps 0.5 deg."""

    def profiled(x: np.ndarray) -> float:
        zenith = min(max(float(x[0]), 0.0), math.pi)
        direction = detector_direction(zenith, float(x[1]), event.mjd)
        return min(fit_direction(reco, prepared, direction, seed).llh for seed in seeds)

    step = math.radians(0.5)
    simplex = np.array([start, (start[0] + step, start[1]), (start[0], start[1] + step)])
    found = minimize(
        profiled,
        np.array(start),
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1e-4, "fatol": 1e-3},
    )
    return float(found.x[0]), float(found.x[1]) % (2 * math.pi), float(found.fun)


def hese_events(data: Path, numbers: list[str]) -> list[tuple[str, Event]]:
    geometry = load_geometry_csv(data / "icecube" / "ic86_geometry.csv")
    return [
        (
            Path(HESE_FILES[n]).stem,
            read_realtime_event(data / "realtime_events" / HESE_FILES[n], geometry),
        )
        for n in numbers
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="shared data folder")
    parser.add_argument("--event-json", type=Path, nargs="*", default=None, help="open-format events to scan")
    parser.add_argument(
        "--hese", default="0,1,2,3,2017", help=f"which HESE files to scan, of {', '.join(HESE_FILES)}"
    )
    parser.add_argument("--recos", default="table-mpe,pandel-mpe,pandel-spe,pandel-layered")
    parser.add_argument(
        "--references", default=DEFAULT_REFERENCES, help="reference fit names, first found wins"
    )
    parser.add_argument("--nsides", default="8:0,64:12,512:12")
    parser.add_argument(
        "--reco-options",
        type=json.loads,
        default={},
        help='JSON options for every reco, e.g. \'{"pulse_cleaning": "hlc"}\'',
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--descend", action="store_true", help="also descend our likelihood from the reference (see above)"
    )
    args = parser.parse_args()
    if args.event_json:
        events = [(p.stem, load_event(p)) for p in args.event_json]
    elif args.data is None or not (args.data / "realtime_events").is_dir():
        print("shared data folder not found (pass --data or --event-json)", file=sys.stderr)
        return 2
    else:
        unknown = set(args.hese.split(",")) - set(HESE_FILES)
        if unknown:
            parser.error(f"--hese: unknown {', '.join(sorted(unknown))}; known: {', '.join(HESE_FILES)}")
        events = hese_events(args.data, args.hese.split(","))
    references = args.references.split(",")
    print(f"progression `{args.nsides}`, reco options {args.reco_options}, {args.processes} processes\n")
    print(
        "| event | pulses | reco | best zenith, azimuth (deg) | reference | "
        "reference zenith, azimuth (deg) | angle (deg) | 2dLLH at reference | our 90% level (set) | "
        "inside our 90%? | scan (s) | CPU ms per fit |"
        + (
            " descent from reference ends at (deg) | its angle to reference / to best (deg) | "
            "its -lnL below reference's |"
            if args.descend
            else ""
        )
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if args.descend else ""))
    for label, event in events:
        ref_name = next((r for r in references if r in event.reference_fits), None)
        if ref_name is None:
            print(f"| {label} | no reference fit among {references} |")
            continue
        ref = event.reference_fits[ref_name]
        for reco in args.recos.split(","):
            stats: dict[str, float] = {}
            started = time.perf_counter()
            doc = run_local_scan(
                event,
                ScanSpec(reco=reco, reco_options=args.reco_options, nsides=args.nsides),
                args.processes,
                stats=stats,
            )
            wall = time.perf_counter() - started
            best = doc["best_fit"]
            reco_obj = get_reco(reco, dict(args.reco_options))
            prepared = reco_obj.prepare(event)
            at_ref = detector_direction(ref.zenith, ref.azimuth, event.mjd)
            ours = Vertex(x=best["X"], y=best["Y"], z=best["Z"], t=best["T"])
            llh_ref = min(fit_direction(reco_obj, prepared, at_ref, seed).llh for seed in (ours, None))
            delta = 2.0 * (llh_ref - best["llh"])
            level = doc["regions"]["levels"]["90"]["level"]
            zen, az = math.radians(best["zenith_deg"]), math.radians(best["azimuth_deg"])
            descent = ""
            if args.descend:
                d_zen, d_az, d_llh = descend_from(
                    reco_obj, prepared, event, (ref.zenith, ref.azimuth), (ours, None)
                )
                descent = (
                    f" {np.degrees(d_zen):.2f}, {np.degrees(d_az):.2f} | "
                    f"{np.degrees(detector_separation(d_zen, d_az, ref.zenith, ref.azimuth)):.2f} / "
                    f"{np.degrees(detector_separation(d_zen, d_az, zen, az)):.2f} | {llh_ref - d_llh:.2f} |"
                )
            print(
                f"| {label} (run {event.run_id}, event {event.event_id}) | {len(event.pulses)} | {reco} | "
                f"{best['zenith_deg']:.2f}, {best['azimuth_deg']:.2f} | {ref_name} | "
                f"{np.degrees(ref.zenith):.2f}, {np.degrees(ref.azimuth % (2 * math.pi)):.2f} | "
                f"{np.degrees(detector_separation(zen, az, ref.zenith, ref.azimuth)):.2f} | {delta:.1f} | "
                f"{level:.1f} ({doc['regions']['level_set']}) | {'yes' if delta <= level else '**no**'} | "
                f"{wall:.0f} | {stats['fit_ms_mean']:.1f} |" + descent,
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
