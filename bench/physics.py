#!/usr/bin/env python3
"""Physics benchmark: angular resolution, 90% coverage and fit speed of the Pandel recos.

Simulates N through-going tracks (isotropic, log-uniform 1-100 TeV, ``skyscan.physics.simulate``), runs a
cheap progressive scan per event (``skydriver_api.local_scan.run_local_scan``, events spread over a
process pool, each scan single-process), and prints a markdown table: median and 90th-percentile
angular error of the best pixel, the fraction of true directions inside the Wilks 90% region
(``delta_2llh < 4.61``), the level that would contain 90% in this simulation, and CPU ms per pixel fit.

    python bench/physics.py --n 100 --processes 2 --reco pandel-mpe
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skydriver_api.local_scan import run_local_scan  # noqa: E402
from skyscan.physics.simulate import simulate_batch  # noqa: E402
from skyscan.records.spec import ScanSpec  # noqa: E402

WILKS_90 = 4.61
DEFAULT_PROGRESSION = "4:0,16:8,64:8,256:8,1024:4"


def scan_one(args: tuple[dict[str, Any], str, str, dict[str, Any]]) -> dict[str, Any]:
    from skyscan.physics.event import parse_event

    event_doc, reco, nsides, options = args
    event = parse_event(event_doc)
    stats: dict[str, Any] = {}
    doc = run_local_scan(
        event, ScanSpec(reco=reco, nsides=nsides, reco_options=options), processes=1, stats=stats
    )
    truth = doc.get("truth") or {}
    assert event.truth is not None
    return {
        "energy_gev": event.truth.energy,
        "cos_zenith": math.cos(event.truth.zenith),
        "n_pulses": len(event.pulses),
        "offset_deg": truth.get("offset_deg", math.nan),
        "delta_2llh": math.nan if truth.get("delta_2llh") is None else truth["delta_2llh"],
        "fit_ms": stats["fit_ms_mean"],
        "n_fits": stats["n_fits"],
        "scan_s": stats["wall_s"],
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    offsets = np.array([r["offset_deg"] for r in rows])
    delta = np.array([r["delta_2llh"] for r in rows])
    finite = delta[np.isfinite(delta)]
    return {
        "n": len(rows),
        "median_deg": float(np.nanmedian(offsets)),
        "p90_deg": float(np.nanpercentile(offsets, 90)),
        "coverage90": float(np.mean(finite < WILKS_90)) if finite.size else math.nan,
        "level90": float(np.percentile(finite, 90)) if finite.size else math.nan,
        "fit_ms": float(np.mean([r["fit_ms"] for r in rows])),
    }


def fit_timing(reco_name: str, options: dict[str, Any], n_fits: int = 100) -> dict[str, float]:
    """CPU ms per pixel fit (one variation, one core) on a ~500-pulse simulated track."""
    from skyscan.physics.recos.registry import get_reco
    from skyscan.physics.simulate import simulate_track
    from skyscan.wire import Direction

    event = simulate_track(1.3, 2.2, 4e4, seed=500)
    reco = get_reco(reco_name, options)
    prepared = reco.prepare(event)
    rng = np.random.default_rng(1)
    out: dict[str, float] = {"pulses": len(event.pulses), "doms": len(prepared.times)}
    for label, spread in (("near", 0.03), ("anywhere", None)):
        if spread is None:
            zen = np.arccos(rng.uniform(-1, 1, n_fits))
            az = rng.uniform(0, 2 * np.pi, n_fits)
        else:
            zen = np.clip(1.3 + rng.normal(0, spread, n_fits), 0, np.pi)
            az = np.mod(2.2 + rng.normal(0, spread, n_fits), 2 * np.pi)
        start = time.thread_time()
        for z, a in zip(zen, az, strict=True):
            reco.fit(prepared, Direction(ra=0.0, dec=0.0, zenith=float(z), azimuth=float(a)), 0, None)
        out[label] = 1000.0 * (time.thread_time() - start) / n_fits
    return out


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="number of simulated tracks")
    parser.add_argument("--emin", type=float, default=1e3, help="GeV")
    parser.add_argument("--emax", type=float, default=1e5, help="GeV")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--reco", default="pandel-mpe")
    parser.add_argument("--nsides", default=DEFAULT_PROGRESSION)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--reco-option", action="append", default=[], help="k=v, repeatable")
    parser.add_argument("--json-out", type=Path, default=None, help="write per-event rows here")
    parser.add_argument(
        "--geometry",
        type=Path,
        default=None,
        help="DOM table CSV (e.g. ic86_geometry.csv); default built in code",
    )
    args = parser.parse_args()

    from skyscan.records.spec import parse_options as parse_reco_options

    options = parse_reco_options(args.reco_option)
    started = time.perf_counter()
    from skyscan.physics.geometry import load_geometry_csv

    geometry = load_geometry_csv(args.geometry) if args.geometry else None
    events = simulate_batch(args.n, args.emin, args.emax, seed=args.seed, geometry=geometry)
    jobs = [(ev.to_json_dict(), args.reco, args.nsides, options) for ev in events]
    if args.processes > 1:
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            rows = pool.map(scan_one, jobs, chunksize=1)
    else:
        rows = [scan_one(job) for job in jobs]
    wall = time.perf_counter() - started

    bands: list[tuple[str, list[dict[str, Any]]]] = [("all", rows)]
    edges = [1e3, 1e4, 3e4, 1e5 + 1]
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        bands.append(
            (f"E {lo / 1e3:g}-{min(hi, 1e5) / 1e3:g} TeV", [r for r in rows if lo <= r["energy_gev"] < hi])
        )
    for name, lo, hi in (
        ("up-going (cos z < -0.2)", -1.1, -0.2),
        ("horizontal", -0.2, 0.2),
        ("down-going (> 0.2)", 0.2, 1.1),
    ):
        bands.append((name, [r for r in rows if lo <= r["cos_zenith"] < hi]))
    bands.append((">= 10 TeV", [r for r in rows if r["energy_gev"] >= 1e4]))

    print(
        f"reco `{args.reco}`, options {json.dumps(options)}, progression `{args.nsides}`, seed {args.seed}, "
        f"geometry {geometry.name if geometry else 'icecube-like-80 (built in code)'}"
    )
    print(f"{len(rows)} events, {args.processes} processes, wall {wall:.0f} s, CPU: {cpu_model()}\n")
    print(
        "| sample | events | median error (deg) | 90% error (deg) | inside Wilks 90% (2dLLH<4.61) | "
        "2dLLH containing 90% | CPU ms per fit |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, sample in bands:
        if not sample:
            continue
        s = summarise(sample)
        print(
            f"| {name} | {s['n']} | {s['median_deg']:.2f} | {s['p90_deg']:.2f} | {s['coverage90']:.2f} | "
            f"{s['level90']:.2f} | {s['fit_ms']:.1f} |"
        )
    pulses = [r["n_pulses"] for r in rows]
    print(
        f"\npulses per event: median {np.median(pulses):.0f} (min {min(pulses)}, max {max(pulses)}); "
        f"fits per event: median {np.median([r['n_fits'] for r in rows]):.0f}"
    )
    timing = fit_timing(args.reco, options)
    print(
        f"CPU ms per pixel fit on a {timing['pulses']:.0f}-pulse track "
        f"({timing['doms']:.0f} DOMs after cleaning), one core: {timing['near']:.1f} within ~2 deg "
        f"of the truth, {timing['anywhere']:.1f} anywhere on the sky"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
