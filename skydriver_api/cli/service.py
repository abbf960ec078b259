"""Service commands: run the API, a scan server, a worker; and the end-to-end demo."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from skydriver_api.cli.common import console, fail, follow_scan, print_best_fit


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.command("server", context_settings={"allow_extra_args": True})(server)
    app.command("worker", context_settings={"allow_extra_args": True})(worker)
    app.command("demo")(demo)


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default SKYDRIVER_API_HOST)")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default SKYDRIVER_API_PORT)")
    ] = None,
) -> None:
    """Run the REST API and its reconciler."""
    import uvicorn

    from skydriver_api.app import create_app
    from skydriver_api.settings import ApiSettings
    from skyinfra.logs import setup_logging
    from skyscan.physics.recos.registry import RecoUnavailable, load_recos

    overrides = {k: v for k, v in (("api_host", host), ("api_port", port)) if v is not None}
    settings = ApiSettings(**overrides)
    try:
        load_recos(settings.recos())
    except RecoUnavailable as err:
        fail(f"{err} (SKYDRIVER_ENABLED_RECOS lists the recos this service runs)")
    setup_logging("api")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )


def _exec_module(module: str, scan_id: str) -> None:
    # server and worker are separate packages: hand over to their own entry points.
    os.execv(sys.executable, [sys.executable, "-m", module, "--scan-id", scan_id])


def server(scan_id: Annotated[str, typer.Option("--scan-id", help="Scan to serve")]) -> None:
    """Run the scan server of one scan (normally started by a launcher)."""
    _exec_module("server", scan_id)


def worker(scan_id: Annotated[str, typer.Option("--scan-id", help="Scan to work for")]) -> None:
    """Run one worker for a scan (normally started by a launcher)."""
    _exec_module("worker", scan_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_event(out: Path, seed: int = 7):  # type: ignore[no-untyped-def]
    """A simulated 50 TeV muon track (the simulator) with its truth, written to ``out``."""
    from skyscan.physics.event import save_event
    from skyscan.physics.simulate import simulate_track

    event = simulate_track(zenith=2.0, azimuth=1.2, energy_gev=5e4, seed=seed, run_id=1, event_id=seed)
    save_event(event, out)
    return event


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the result JSON and the plot")] = Path("demo-output"),
    reco: Annotated[str, typer.Option(help="Reco to run")] = "pandel-mpe",
    nsides: Annotated[str, typer.Option(help="nside:extension progression")] = "8:0,64:12,512:12",
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 2,
) -> None:
    """End to end: start the API, submit a simulated event, follow it, save the skymap and a plot."""
    from skydriver_api.client import ApiError, SkyDriverClient

    out.mkdir(parents=True, exist_ok=True)
    event = demo_event(out / "event.json")
    console.print(
        f"demo event: run {event.run_id} event {event.event_id}, {len(event.pulses)} pulses"
        f" -> {out / 'event.json'}"
    )
    token = "sd_" + secrets.token_urlsafe(24)
    port = _free_port()
    env = dict(
        os.environ,
        SKYDRIVER_ADMIN_TOKEN=token,
        SKYDRIVER_API_PORT=str(port),
        SKYDRIVER_API_HOST="127.0.0.1",
        SKYDRIVER_LOG_FORMAT="text",
    )
    log_path = out / "api.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "skydriver_api.cli", "api"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = SkyDriverClient(f"http://127.0.0.1:{port}", token)
        _wait_ready(client, proc, log_path)
        body = {"event": event.to_json_dict(), "reco": reco, "nsides": nsides, "workers": workers}
        created = client.submit(body)
        scan_id = created["scan_id"]
        console.print(f"scan id: [bold]{scan_id}[/bold]")
        status = follow_scan(client, scan_id)
        if status["state"] != "completed":
            fail(f"scan ended {status['state']}: {status.get('state_reason')}")
        result = client.result(scan_id, "json")
        (out / "result.json").write_bytes(result.content)
        png = client.result(scan_id, "png")
        (out / "skymap.png").write_bytes(png.content)
        print_best_fit(result.json())
        console.print(f"wrote {out / 'result.json'} and {out / 'skymap.png'}")
    except ApiError as err:
        fail(f"demo failed: {err} (API log: {log_path})")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(client, proc: subprocess.Popen, log_path: Path, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    from skydriver_api.client import ApiError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"the API exited with code {proc.returncode}; see {log_path}")
        try:
            client.request("GET", "/readyz")
            return
        except ApiError:
            time.sleep(0.2)
    fail(f"the API did not become ready within {timeout_s:.0f} s; see {log_path}")
