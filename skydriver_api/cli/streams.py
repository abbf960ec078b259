"""Alert-stream commands: the Kafka alert listener, and the alert-stream simulator and its check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skydriver_api.cli.common import fail
from skydriver_api.cli.ops import alerts_app

alertsim_app = typer.Typer(
    help="Simulate alert streams (bursts, duplicates, corrupt messages, disruptions) and check the "
    "service lost and doubled nothing.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    alerts_app.command("listen")(listen)
    app.add_typer(alertsim_app, name="alertsim")


def listen() -> None:
    """Consume the alert topics (SKYDRIVER_KAFKA_*): one scan per alert revision, offsets committed
    only once the alert is stored, malformed messages recorded and dead-lettered. Runs until SIGTERM."""
    import asyncio
    import signal

    from skydriver_api.settings import ApiSettings
    from skydriver_api.streams.listener import listen as run_listener
    from skyinfra.kafka import KafkaConfigError
    from skyinfra.logs import setup_logging

    settings = ApiSettings()
    setup_logging("listener")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_listener(settings, stop)

    try:
        asyncio.run(main())
    except KafkaConfigError as err:
        fail(str(err), code=2)


@alertsim_app.command("run")
def alertsim_run(
    stream: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Stream description (YAML)")],
    provenance: Annotated[Path, typer.Option("-o", "--provenance", help="Provenance file to write")] = Path(
        "alertsim-provenance.json"
    ),
) -> None:
    """Send the stream described in STREAM (to Kafka or the REST API) and write its provenance."""
    from skydriver_api.alertsim import AlertSimError, load_stream, run_stream

    try:
        spec = load_stream(stream)
        summary = run_stream(spec, provenance, say=typer.echo)
    except AlertSimError as err:
        fail(str(err), code=2)
    typer.echo(summary)


@alertsim_app.command("check")
def alertsim_check(
    provenance: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Provenance file")],
    wait_s: Annotated[float, typer.Option(help="Wait this long for scans and notices to finish")] = 0.0,
) -> None:
    """Compare PROVENANCE with what the service stored and published: every valid alert revision one
    scan and one notice, every corrupt message one recorded rejection with its reason, nothing else."""
    from skydriver_api.alertsim import AlertSimError, check_provenance

    try:
        report = check_provenance(provenance, wait_s=wait_s)
    except AlertSimError as err:
        fail(str(err), code=2)
    typer.echo(report.text())
    if not report.ok:
        raise typer.Exit(1)
