#!/usr/bin/env python3
"""Physics benchmark: angular resolution, coverage of the error regions and fit speed, per reco.

Simulates N through-going tracks (isotropic, log-uniform in energy; ``--simulator photonsim``, the
layered-ice photon propagation of ``skyscan.physics.photonsim``, by default, or the fast
``pandel`` toy, whose photon delays come from the Pandel family the Pandel recos assume), runs a
progressive scan per event and reco (``run_local_scan``, events spread over a process pool, each
scan single-process) and prints a markdown table per reco: median and 90th-percentile angular
error of the best pixel, the fraction of true directions inside the Wilks 90% region and inside
the reco's calibrated 50%/90% regions (its default level set), the 90th percentile of 2dLLH at the
truth, CPU ms per pixel fit, and the tails (> 5 deg: how many, and how many of those the scan
missed, i.e. the truth has a lower -lnL than the best pixel: a minimiser, not a likelihood, failure).

Events are written to (and re-read from) ``--events``, so several recos and runs share them.

    nice -n 10 python bench/physics.py --n 30 --emin 1e3 --emax 1e4 --recos table-mpe,pandel-mpe \\
        --events /tmp/ev-1-10.jsonl --json-out /tmp/rows-1-10.json
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
from skyscan.physics.event import Event, parse_event  # noqa: E402
from skyscan.physics.simulate import simulate_batch  # noqa: E402
from skyscan.records.spec import ScanSpec  # noqa: E402

WILKS_90 = 4.61
DEFAULT_PROGRESSION = "4:0,16:6,64:6,256:4,1024:4"


FLOW_AZIMUTH_DEG = 130.0  # roughly the direction of the ice flow at the South Pole, detector coordinates


def simulate_one(
    args: tuple[str, float, float, float, int, int, str | None, float, float],
) -> dict[str, Any]:
    from skyscan.physics.geometry import load_geometry_csv
    from skyscan.physics.photonsim.ice import spice_mie
    from skyscan.physics.photonsim.simulate import PhotonSimConfig, simulate_track_photons
    from skyscan.physics.simulate import simulate_track

    simulator, zenith, azimuth, energy, seed, event_id, geometry_path, systematics, anisotropy = args
    geometry = load_geometry_csv(geometry_path) if geometry_path else None
    if simulator != "photonsim":
        event = simulate_track(
            zenith, azimuth, energy, seed=seed, geometry=geometry, run_id=seed, event_id=event_id
        )
        return event.to_json_dict()
    extra: dict[str, Any] = {}
    if systematics > 0 or anisotropy > 0:
        # SnowStorm-like: each event draws its own absorption, scattering and DOM efficiency
        absorption, scattering, efficiency = np.random.default_rng([seed, 0x5E5]).uniform(
            1.0 - systematics, 1.0 + systematics, 3
        )
        extra = {
            "ice": spice_mie().scaled(
                absorption=absorption,
                scattering=scattering,
                anisotropy=anisotropy,
                flow_azimuth=math.radians(FLOW_AZIMUTH_DEG),
            ),
            "config": PhotonSimConfig(dom_efficiency_scale=float(efficiency)),
        }
    event = simulate_track_photons(
        zenith, azimuth, energy, seed=seed, geometry=geometry, run_id=seed, event_id=event_id, **extra
    )
    return event.to_json_dict()


def make_events(args: argparse.Namespace) -> list[Event]:
    if args.events and args.events.is_file():
        return [parse_event(json.loads(line)) for line in args.events.read_text().splitlines() if line]
    rng = np.random.default_rng([args.seed, 0xBE4C])
    cos_zen = rng.uniform(-1.0, 1.0, args.n)
    azimuth = rng.uniform(0.0, 2 * math.pi, args.n)
    energy = 10 ** rng.uniform(math.log10(args.emin), math.log10(args.emax), args.n)
    seeds = rng.integers(0, 2**31 - 1, args.n)
    geometry = str(args.geometry) if args.geometry else None
    if args.simulator == "pandel" and geometry is None:
        return simulate_batch(args.n, args.emin, args.emax, seed=args.seed)
    jobs = [
        (
            args.simulator,
            float(np.arccos(cos_zen[i])),
            float(azimuth[i]),
            float(energy[i]),
            int(seeds[i]),
            i,
            geometry,
            args.ice_systematics,
            args.ice_anisotropy,
        )
        for i in range(args.n)
    ]
    docs = run_pool(simulate_one, jobs, args.processes)
    if args.events:
        args.events.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return [parse_event(d) for d in docs]


def scan_one(args: tuple[dict[str, Any], str, str, dict[str, Any]]) -> dict[str, Any]:
    from skyscan.physics.recos.registry import get_reco

    event_doc, reco, nsides, options = args
    event = parse_event(event_doc)
    stats: dict[str, Any] = {}
    doc = run_local_scan(
        event, ScanSpec(reco=reco, nsides=nsides, reco_options=options), processes=1, stats=stats
    )
    truth = doc.get("truth") or {}
    assert event.truth is not None
    n_doms, charge = get_reco(reco, options).level_features(event)  # type: ignore[attr-defined]
    levels = doc["regions"]["levels"]
    return {
        "reco": reco,
        "event_id": event.event_id,
        "energy_gev": event.truth.energy,
        "cos_zenith": math.cos(event.truth.zenith),
        "n_pulses": len(event.pulses),
        "n_doms": n_doms,
        "total_charge": charge,
        "offset_deg": truth.get("offset_deg", math.nan),
        "delta_2llh": math.nan if truth.get("delta_2llh") is None else truth["delta_2llh"],
        "level_set": doc["regions"]["level_set"],
        "level50": levels.get("50", {}).get("level", math.nan),
        "level90": levels.get("90", {}).get("level", math.nan),
        "fit_ms": stats["fit_ms_mean"],
        "n_fits": stats["n_fits"],
        "scan_s": stats["wall_s"],
    }


def run_pool(func: Any, jobs: list[Any], processes: int, partial: Path | None = None) -> list[Any]:
    """Results in job order; with ``partial``, every result is also appended there (JSON Lines) as
    it arrives, so a long run that is stopped still leaves what it measured."""
    done: dict[int, Any] = {}

    def keep(i: int, result: Any) -> None:
        done[i] = result
        if partial is not None:
            with partial.open("a") as handle:
                handle.write(json.dumps(result) + "\n")

    if processes > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            for i, result in pool.imap_unordered(_indexed, [(func, i, job) for i, job in enumerate(jobs)]):
                keep(i, result)
    else:
        for i, job in enumerate(jobs):
            keep(i, func(job))
    return [done[i] for i in range(len(jobs))]


def _indexed(item: tuple[Any, int, Any]) -> tuple[int, Any]:
    func, i, job = item
    return i, func(job)


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    offsets = np.array([r["offset_deg"] for r in rows])
    delta = np.array([r["delta_2llh"] for r in rows])
    lv50 = np.array([r["level50"] for r in rows])
    lv90 = np.array([r["level90"] for r in rows])
    ok = np.isfinite(delta)
    tails = offsets > 5.0
    return {
        "n": len(rows),
        "median_deg": float(np.nanmedian(offsets)),
        "p90_deg": float(np.nanpercentile(offsets, 90)),
        "wilks90": float(np.mean(delta[ok] < WILKS_90)) if ok.any() else math.nan,
        "cal50": float(np.mean(delta[ok] < lv50[ok])) if ok.any() else math.nan,
        "cal90": float(np.mean(delta[ok] < lv90[ok])) if ok.any() else math.nan,
        "level90": float(np.percentile(delta[ok], 90)) if ok.any() else math.nan,
        "fit_ms": float(np.mean([r["fit_ms"] for r in rows])),
        "tails": int(tails.sum()),
        "tails_missed": int((tails & ok & (delta < 0)).sum()),
    }


def fit_timing(reco_name: str, options: dict[str, Any], event: Event, n_fits: int = 60) -> dict[str, float]:
    """CPU ms per pixel fit (one variation, one thread) near the truth and anywhere on the sky."""
    from skyscan.physics.recos.registry import get_reco
    from skyscan.wire import Direction

    assert event.truth is not None
    reco = get_reco(reco_name, options)
    prepared = reco.prepare(event)
    rng = np.random.default_rng(1)
    zen0, az0 = event.truth.zenith, event.truth.azimuth
    out: dict[str, float] = {"pulses": len(event.pulses), "doms": len(prepared.times)}
    for label, spread in (("near", 0.03), ("anywhere", None)):
        if spread is None:
            zen = np.arccos(rng.uniform(-1, 1, n_fits))
            az = rng.uniform(0, 2 * np.pi, n_fits)
        else:
            zen = np.clip(zen0 + rng.normal(0, spread, n_fits), 0, np.pi)
            az = np.mod(az0 + rng.normal(0, spread, n_fits), 2 * np.pi)
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


def print_tables(rows: list[dict[str, Any]], recos: list[str]) -> None:
    print(
        "| reco | sample | events | median error (deg) | 90% error (deg) | in Wilks 90% | "
        "in calibrated 50% | "
        "in calibrated 90% | 2dLLH containing 90% | CPU ms per fit | > 5 deg (scan missed) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for reco in recos:
        mine = [r for r in rows if r["reco"] == reco]
        bands: list[tuple[str, list[dict[str, Any]]]] = [("all", mine)]
        for lo, hi in ((1e3, 1e4), (1e4, 1e5 + 1)):
            band = [r for r in mine if lo <= r["energy_gev"] < hi]
            if band and len(band) < len(mine):
                bands.append((f"{lo / 1e3:g}-{min(hi, 1e5) / 1e3:g} TeV", band))
        for name, sample in bands:
            s = summarise(sample)
            print(
                f"| {reco} | {name} | {s['n']} | {s['median_deg']:.2f} | {s['p90_deg']:.2f} | "
                f"{s['wilks90']:.2f} | "
                f"{s['cal50']:.2f} | {s['cal90']:.2f} | {s['level90']:.1f} | {s['fit_ms']:.1f} | "
                f"{s['tails']} ({s['tails_missed']}) |"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30, help="number of simulated tracks")
    parser.add_argument("--emin", type=float, default=1e3, help="GeV")
    parser.add_argument("--emax", type=float, default=1e4, help="GeV")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--simulator", choices=("photonsim", "pandel"), default="photonsim")
    parser.add_argument("--recos", default="table-mpe,pandel-mpe,pandel-spe,pandel-layered")
    parser.add_argument(
        "--ice-systematics",
        type=float,
        default=0.0,
        help="photonsim: each event scales absorption, scattering and DOM efficiency by U(1-s, 1+s)",
    )
    parser.add_argument(
        "--ice-anisotropy",
        type=float,
        default=0.0,
        help=f"photonsim: scattering 1-a along the flow axis (azimuth {FLOW_AZIMUTH_DEG:g} deg), 1+a across",
    )
    parser.add_argument("--nsides", default=DEFAULT_PROGRESSION)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--reco-option", action="append", default=[], help="k=v, repeatable (all recos)")
    parser.add_argument(
        "--events", type=Path, default=None, help="JSON Lines of events: read if present, else written"
    )
    parser.add_argument("--json-out", type=Path, default=None, help="write per-event rows here")
    parser.add_argument(
        "--geometry", type=Path, default=None, help="DOM table CSV; photonsim default: IC86 when present"
    )
    args = parser.parse_args()
    if not (0.0 <= args.ice_systematics < 0.5 and 0.0 <= args.ice_anisotropy < 0.5):
        parser.error("--ice-systematics and --ice-anisotropy must be within [0, 0.5)")
    if (args.ice_systematics or args.ice_anisotropy) and args.simulator != "photonsim":
        parser.error("--ice-systematics and --ice-anisotropy need --simulator photonsim")

    from skyscan.physics.recos.registry import get_reco
    from skyscan.records.spec import parse_options as parse_reco_options

    options = parse_reco_options(args.reco_option)
    recos = [r for r in args.recos.split(",") if r]
    for name in recos:  # before any simulation: a typo or a bad option would fail in the pool, late
        try:
            get_reco(name, options)
        except ValueError as err:
            parser.error(str(err))
    reused = args.events is not None and args.events.is_file()
    if not reused and args.simulator == "photonsim":
        from skyscan.physics.photonsim.ice import IceDataMissing, spice_mie

        try:
            spice_mie()
        except IceDataMissing as err:
            parser.error(f"{err} (or --simulator pandel, which needs no data)")
    started = time.perf_counter()
    events = make_events(args)
    simulated = time.perf_counter() - started
    jobs = [(ev.to_json_dict(), reco, args.nsides, options) for reco in recos for ev in events]
    partial = args.json_out.with_suffix(".partial.jsonl") if args.json_out else None
    rows = run_pool(scan_one, jobs, args.processes, partial)
    wall = time.perf_counter() - started
    energies = [ev.truth.energy for ev in events if ev.truth is not None]
    origin = (
        f"events read from {args.events}" if reused else f"simulator `{args.simulator}`, seed {args.seed}"
    )
    if not reused and args.ice_systematics:
        origin += f", ice systematics +-{args.ice_systematics:.0%}"
    if not reused and args.ice_anisotropy:
        origin += f", anisotropy {args.ice_anisotropy:.0%} along {FLOW_AZIMUTH_DEG:g} deg"
    print(
        f"{origin}, {len(events)} events ({min(energies) / 1e3:.1f}-{max(energies) / 1e3:.1f} TeV), "
        f"options {json.dumps(options)}, progression `{args.nsides}`"
    )
    print(
        f"{args.processes} processes, wall {wall:.0f} s (simulation {simulated:.0f} s), CPU: {cpu_model()}; "
        f"level sets: {sorted({r['level_set'] for r in rows})}\n"
    )
    print_tables(rows, recos)
    pulses = [len(ev.pulses) for ev in events]
    print(f"\npulses per event: median {np.median(pulses):.0f} (min {min(pulses)}, max {max(pulses)})")
    timing_event = min(events, key=lambda ev: abs(len(ev.pulses) - 500))
    for reco in recos:
        t = fit_timing(reco, options, timing_event)
        print(
            f"{reco}: CPU ms per pixel fit on a {t['pulses']:.0f}-pulse event ({t['doms']:.0f} DOMs after "
            f"cleaning), one core: {t['near']:.1f} near the truth, {t['anywhere']:.1f} anywhere"
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
