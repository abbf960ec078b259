"""Physics tools: simulate events, import IceCube realtime events, run a whole scan locally."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import typer

from skyscan.physics.event import EventFormatError, load_event, save_event

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


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def simulate(
    zenith: float = typer.Option(
        ..., help="Direction the muon comes from: zenith in radians (IceCube convention)."
    ),
    azimuth: float = typer.Option(..., help="Azimuth in radians."),
    energy: float = typer.Option(..., help="Muon energy in GeV."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same event."),
    mjd: float = typer.Option(60676.0, help="Event time (MJD) used for the sky coordinates."),
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
    from skyscan.physics.geometry import load_geometry_csv

    try:
        simulate_track, config = _track_simulator(simulator, max_tracers)
        geo = load_geometry_csv(geometry) if geometry else None
        event = simulate_track(zenith, azimuth, energy, seed=seed, mjd=mjd, geometry=geo, config=config)
    except (ValueError, OSError) as err:
        _fail(_simulation_error(err))
    save_event(event, output)
    typer.echo(f"{output}: {len(event.pulses)} pulses")


def simulate_batch(
    n: int = typer.Option(100, "--n", help="Number of events."),
    emin: float = typer.Option(1e3, help="Lowest energy (GeV); energies are log-uniform."),
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
    from skyscan.physics.geometry import load_geometry_csv
    from skyscan.physics.simulate import simulate_batch as run_batch

    try:
        simulate_track, config = _track_simulator(simulator, max_tracers)
        geo = load_geometry_csv(geometry) if geometry else None
        events = run_batch(
            n, emin, emax, seed=seed, geometry=geo, config=config, track_simulator=simulate_track
        )
    except (ValueError, OSError) as err:
        _fail(_simulation_error(err))
    if output.suffix == ".jsonl":
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w") as handle:
            for event in events:
                handle.write(json.dumps(event.to_json_dict()) + "\n")
    else:
        output.mkdir(parents=True, exist_ok=True)
        for i, event in enumerate(events):
            save_event(event, output / f"event_{i:05d}.json")
    typer.echo(f"{output}: {len(events)} events")


def import_realtime(
    source: Path = typer.Argument(..., help="i3live realtime event (JSON, or the pickled dict .pkl)."),
    geometry: Path = typer.Option(
        ..., help="DOM table CSV (e.g. ic86_geometry.csv) for the pulse positions."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Event JSON (skydriver.event/1) to write."),
) -> None:
    """Convert an IceCube realtime event to the open format (no IceTray needed)."""
    from skyscan.physics.geometry import load_geometry_csv
    from skyscan.readers.realtime import RealtimeFormatError, read_realtime_event

    try:
        event = read_realtime_event(source, load_geometry_csv(geometry))
    except (RealtimeFormatError, OSError, ValueError) as err:
        _fail(str(err))
    save_event(event, output)
    fits = ", ".join(sorted(event.reference_fits)) or "none"
    typer.echo(
        f"{output}: run {event.run_id} event {event.event_id}, {len(event.pulses)} pulses; fits: {fits}"
    )


def scan_local(
    event_path: Path = typer.Argument(..., help="Event JSON (skydriver.event/1)."),
    reco: str = typer.Option("pandel-mpe", help="Reco name (pandel-mpe, pandel-spe, dummy, ...)."),
    nsides: str = typer.Option("8:0,64:12,512:12", help="nside:extension progression."),
    processes: int = typer.Option(2, help="Worker processes (each prepares the event once)."),
    out: Path = typer.Option(Path("scan-out"), "--out", help="Output directory (result.json and products)."),
    formats: str = typer.Option(
        "json", help="Comma-separated products; json is always written as result.json."
    ),
    reco_option: list[str] = typer.Option([], "--reco-option", help="Reco option k=v (repeatable)."),
    strategy: str = typer.Option("progression", help="Refinement strategy: progression or contour."),
    level_set: str | None = typer.Option(
        None,
        help="Error-region levels (wilks, icecube-sim, 'percent:level,...'); "
        "default: the reco's calibrated set.",
    ),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Run a whole progressive scan on this machine (no broker, no database)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from skydriver_api.local_scan import ScanProgress, parse_reco_options, run_local_scan
    from skyscan.physics.recos.base import RecoUnsuitable
    from skyscan.physics.recos.registry import UnknownReco
    from skyscan.skymap.contours import resolve_levels
    from skyscan.skymap.exports import write_product

    try:
        event = load_event(event_path)
        options = parse_reco_options(reco_option)
        if level_set is not None:
            resolve_levels(level_set)
    except (EventFormatError, OSError, ValueError) as err:
        _fail(str(err))
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
            doc = run_local_scan(
                event,
                reco,
                nsides,
                processes,
                reco_options=options,
                strategy=strategy,
                progress=on_progress,
                stats=stats,
                level_set=level_set,
            )
        except (UnknownReco, RecoUnsuitable, ValueError) as err:
            _fail(str(err))
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(doc, indent=1) + "\n")
    for fmt in (f.strip() for f in formats.split(",")):
        if fmt and fmt != "json":
            try:
                path = write_product(doc, event, fmt, out)
            except ValueError as err:
                _fail(str(err))
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


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("simulate-batch")(simulate_batch)
    app.command("import-realtime")(import_realtime)
    app.command("scan-local")(scan_local)
