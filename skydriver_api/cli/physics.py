"""Physics tools: simulate events, import IceCube realtime events, run a whole scan locally.

Every option is checked before the work starts (bad input: one line, exit code 2).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import typer

from skydriver_api.cli.common import (
    fail,
    load_event_file,
    output_dir,
    output_file,
    product_formats,
    refuse,
    warn_unresolved,
)
from skyscan.physics.event import save_event
from skyscan.refinement.progression import DEFAULT_PROGRESSION

SIMULATORS = ("photonsim", "pandel")
_SIMULATOR_HELP = (
    "photonsim: photon propagation in layered ice (needs ../shared/data, seconds per event); "
    "pandel: the fast toy whose delays follow the Pandel PDF."
)


def _track_simulator(name: str, max_tracers: int | None):  # type: ignore[no-untyped-def]
    """The simulate function and its config for a simulator name (ValueError names the choices)."""
    if name == "pandel":
        from skyscan.physics.simulate import simulate_track

        return simulate_track, None
    if name == "photonsim":
        from skyscan.physics.photonsim.simulate import PhotonSimConfig, simulate_track_photons

        config = PhotonSimConfig() if max_tracers is None else PhotonSimConfig(max_tracers=max_tracers)
        return simulate_track_photons, config
    raise ValueError(f"unknown simulator {name!r}; use one of {', '.join(SIMULATORS)}")


def _simulation_error(err: Exception) -> str:
    from skyscan.physics.photonsim.ice import IceDataMissing

    return f"{err} (--simulator pandel needs no data)" if isinstance(err, IceDataMissing) else str(err)


def _geometry(path: Path | None):  # type: ignore[no-untyped-def]
    """The DOM table from ``--geometry`` (None: the simulator's built-in array)."""
    from skyscan.physics.geometry import load_geometry_csv

    if path is None:
        return None
    try:
        return load_geometry_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        refuse(f"--geometry {path}: {getattr(err, 'strerror', None) or err}")


def _write(path: Path, write: object) -> None:
    try:
        write()  # type: ignore[operator]
    except OSError as err:
        fail(f"cannot write {path}: {err.strerror or err}")


def simulate(
    zenith: float = typer.Option(
        ..., min=0.0, max=math.pi, help="Direction the muon comes from: zenith (radians, IceCube convention)."
    ),
    azimuth: float = typer.Option(..., min=0.0, max=2 * math.pi, help="Azimuth in radians."),
    energy: float = typer.Option(..., help="Muon energy in GeV."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same event."),
    mjd: float = typer.Option(60676.0, min=0.0, max=100000.0, help="Event time (MJD), for sky coordinates."),
    geometry: Path | None = typer.Option(
        None,
        help="DOM table CSV; default: photonsim IC86 from the shared data, pandel an IceCube-like array.",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Event JSON (skydriver.event/1) to write."),
    simulator: str = typer.Option("photonsim", help=_SIMULATOR_HELP),
    max_tracers: int | None = typer.Option(
        None, min=1000, help="photonsim: at most this many tracer photons."
    ),
) -> None:
    """Simulate one through-going muon track as an open-format event with its truth."""

    if not energy > 0:
        refuse(f"--energy must be positive (GeV), got {energy:g}")
    geo = _geometry(geometry)
    output_file(output)
    try:
        simulate_track, config = _track_simulator(simulator, max_tracers)
    except ValueError as err:
        refuse(f"--simulator: {err}")
    try:
        event = simulate_track(zenith, azimuth, energy, seed=seed, mjd=mjd, geometry=geo, config=config)
    except (ValueError, OSError) as err:
        refuse(_simulation_error(err))
    _write(output, lambda: save_event(event, output))
    typer.echo(f"{output}: {len(event.pulses)} pulses")


def simulate_batch(
    n: int = typer.Option(100, "--n", min=1, help="Number of events."),
    emin: float = typer.Option(1e3, help="Lowest energy (GeV); log-uniform."),
    emax: float = typer.Option(1e5, help="Highest energy (GeV)."),
    seed: int = typer.Option(0, help="Random seed for the whole batch."),
    geometry: Path | None = typer.Option(
        None, help="DOM table CSV; default an IceCube-like array built in code."
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Directory (one JSON per event) or a .jsonl file."
    ),
    simulator: str = typer.Option("photonsim", help=_SIMULATOR_HELP),
    max_tracers: int | None = typer.Option(
        None, min=1000, help="photonsim: at most this many tracer photons."
    ),
) -> None:
    """Simulate isotropic tracks: one event file per track in a directory, or JSON Lines."""
    from skyscan.physics.simulate import simulate_batch as run_batch

    if not 0 < emin <= emax:
        refuse(f"need 0 < --emin <= --emax (GeV), got {emin:g} and {emax:g}")
    try:
        simulate_track, config = _track_simulator(simulator, max_tracers)
    except ValueError as err:
        refuse(f"--simulator: {err}")
    geo = _geometry(geometry)
    jsonl = output.suffix == ".jsonl"
    if jsonl:
        output_file(output)
    else:
        output_dir(output, "--output")
    try:
        events = run_batch(
            n, emin, emax, seed=seed, geometry=geo, config=config, track_simulator=simulate_track
        )
    except (ValueError, OSError) as err:
        refuse(_simulation_error(err))

    def write() -> None:
        if jsonl:
            with output.open("w") as handle:
                for event in events:
                    handle.write(json.dumps(event.to_json_dict()) + "\n")
        else:
            for i, event in enumerate(events):
                save_event(event, output / f"event_{i:05d}.json")

    _write(output, write)
    typer.echo(f"{output}: {len(events)} events")


def import_realtime(
    source: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        metavar="SOURCE",
        help="i3live realtime event (JSON, or the pickled dict .pkl).",
    ),
    geometry: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="DOM table CSV (e.g. ic86_geometry.csv): pulse positions."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Event JSON (skydriver.event/1) to write."),
) -> None:
    """Convert an IceCube realtime event to the open format (no IceTray needed)."""
    from skyscan.readers.realtime import RealtimeFormatError, read_realtime_event

    geo = _geometry(geometry)
    output_file(output)
    try:
        event = read_realtime_event(source, geo)
    except (RealtimeFormatError, OSError, ValueError) as err:
        refuse(f"{source}: {err}")
    _write(output, lambda: save_event(event, output))
    fits = ", ".join(sorted(event.reference_fits)) or "none"
    meta = event.metadata
    whole = (
        f" (whole SuperDST map: {meta['superdst_pulses']} pulses, {meta['superdst_doms']} DOMs)"
        if "superdst_pulses" in meta
        else ""
    )
    typer.echo(
        f"{output}: run {event.run_id} event {event.event_id}, {len(event.pulses)} pulses on "
        f"{meta.get('n_doms')} DOMs from {meta.get('pulse_chain')}{whole}; fits: {fits}"
    )


# the scan-local options behind each part of a scan specification
SPEC_OPTIONS = {
    "reco": "--reco/--reco-option",
    "nsides/strategy": "--nsides/--strategy",
    "level_set": "--level-set",
}


def scan_local(
    event_path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Event JSON (skydriver.event/1)"
    ),
    reco: str = typer.Option("pandel-mpe", help="Reco name (pandel-mpe, pandel-spe, dummy, ...)."),
    nsides: str = typer.Option(DEFAULT_PROGRESSION, help="nside:extension progression (as submit)."),
    processes: int = typer.Option(2, min=1, help="Worker processes (each prepares the event once)."),
    out: Path = typer.Option(Path("scan-out"), "--out", help="Output directory (result.json and products)."),
    formats: str = typer.Option(
        "json", help="Comma-separated products; json is always written as result.json."
    ),
    reco_option: list[str] = typer.Option([], "--reco-option", help="Reco option k=v (repeatable)."),
    strategy: str = typer.Option("progression", help="Refinement strategy: progression or contour."),
    strategy_option: list[str] = typer.Option(
        [], "--strategy-option", help="Strategy option k=v (repeatable), e.g. level=4.61 for contour."
    ),
    level_set: str | None = typer.Option(
        None,
        "--level-set",
        help="Error-region levels (wilks, icecube-sim, 'percent:level,...'); "
        "default: the reco's calibrated set.",
    ),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Run a whole progressive scan on this machine (no broker, no database)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from skydriver_api.local_scan import ScanProgress, run_local_scan
    from skyscan.records.spec import ScanSpec, ScanSpecError, parse_options
    from skyscan.skymap.exports import write_product

    # everything is checked before the scan starts
    products = [f for f in product_formats(formats) if f != "json"]
    event = load_event_file(event_path)
    try:
        reco_options = parse_options(reco_option)
    except ValueError as err:
        refuse(f"--reco-option: {err}")
    try:
        strategy_options = parse_options(strategy_option, what="strategy option")
    except ValueError as err:
        refuse(f"--strategy-option: {err}")
    try:
        spec = ScanSpec(
            reco=reco,
            reco_options=reco_options,
            strategy=strategy,
            strategy_options=strategy_options,
            nsides=nsides,
            level_set=level_set,
        ).checked(event)
    except ScanSpecError as err:
        refuse(f"{SPEC_OPTIONS[err.field]}: {err}")
    output_dir(out)

    stats: dict[str, object] = {}
    with Progress(
        TextColumn("nside {task.fields[nside]:>5}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best llh {task.fields[best]}"),
        TimeElapsedColumn(),
        disable=quiet,
        transient=False,
        # No refresh thread: the scan forks its worker processes while the bar is live, and
        # forking next to a thread that may hold the console lock is how children deadlock.
        auto_refresh=False,
    ) as bar:
        task = bar.add_task("scan", total=None, nside="-", best="-")

        last_refresh = [0.0]

        def on_progress(p: ScanProgress) -> None:
            best = f"{p.best_llh:.2f}" if math.isfinite(p.best_llh) else "-"
            now = time.monotonic()
            final = p.tasks_done == p.tasks_sent
            bar.update(task, completed=p.tasks_done, total=p.tasks_sent, nside=str(p.nside), best=best)
            if final or now - last_refresh[0] > 0.1:
                last_refresh[0] = now
                bar.refresh()

        try:
            doc = run_local_scan(event, spec, processes, progress=on_progress, stats=stats)
        except (RuntimeError, ValueError) as err:
            fail(f"the scan failed: {err}")
    _write(out / "result.json", lambda: (out / "result.json").write_text(json.dumps(doc, indent=1) + "\n"))
    for fmt in products:
        try:
            path = write_product(doc, event, fmt, out)
        except ValueError as err:  # e.g. no finite fit to plot
            fail(f"cannot write the {fmt} product: {err}")
        except OSError as err:
            fail(f"cannot write the {fmt} product into {out}: {err.strerror or err}")
        typer.echo(f"wrote {path}")
    best = doc.get("best_fit") or {}
    typer.echo(
        f"{out / 'result.json'}: {doc['n_pixels']} pixels in {stats.get('wall_s', 0.0):.1f} s "
        f"({stats.get('fit_ms_mean', 0.0):.1f} CPU ms per fit); "
        f"best RA {best.get('ra_deg', math.nan):.3f} deg "
        f"Dec {best.get('dec_deg', math.nan):.3f} deg (zenith {best.get('zenith_deg', math.nan):.3f}, "
        f"azimuth {best.get('azimuth_deg', math.nan):.3f})"
    )
    truth = doc.get("truth")
    if truth:
        delta = truth.get("delta_2llh")
        shown = "n/a" if delta is None else f"{delta:.3f}"
        typer.echo(f"truth offset {truth['offset_deg']:.3f} deg, 2dLLH(truth) {shown}")
    warn_unresolved(doc)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("simulate-batch")(simulate_batch)
    app.command("import-realtime")(import_realtime)
    app.command("scan-local")(scan_local)
