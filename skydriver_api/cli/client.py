"""REST client commands: submit and follow scans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from skydriver_api.cli.common import console, fail, follow_scan, print_best_fit

ApiOpt = Annotated[str | None, typer.Option("--api", envvar="SKYDRIVER_API_URL", help="API base URL")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="SKYDRIVER_TOKEN", help="Bearer token")]

scans_app = typer.Typer(help="List, inspect, follow and abort scans.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.add_typer(scans_app, name="scans")


def _client(api: str | None, token: str | None):  # type: ignore[no-untyped-def]
    from skydriver_api.client import SkyDriverClient

    return SkyDriverClient(api, token)


def submit(
    event_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Open-format event JSON")],
    reco: Annotated[str, typer.Option(help="Reco name")] = "pandel-mpe",
    nsides: Annotated[str, typer.Option(help="nside:extension progression")] = "8:0,64:12,512:24",
    strategy: Annotated[str, typer.Option(help="progression or contour")] = "progression",
    workers: Annotated[int, typer.Option(min=1, help="Worker count")] = 2,
    priority: Annotated[int, typer.Option(help="Higher runs first")] = 0,
    follow: Annotated[bool, typer.Option(help="Follow progress until the scan ends")] = True,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit a scan of EVENT_FILE and follow it with a progress bar; prints the best fit."""
    from skydriver_api.client import ApiError

    try:
        event = json.loads(event_file.read_text())
    except json.JSONDecodeError as err:
        fail(f"{event_file} is not JSON: {err}")
    body = {"event": event, "reco": reco, "nsides": nsides, "strategy": strategy, "workers": workers,
            "priority": priority}
    with _client(api, token) as client:
        try:
            created = client.submit(body)
            console.print(f"scan id: [bold]{created['scan_id']}[/bold]")
            if not follow:
                return
            status = follow_scan(client, created["scan_id"])
            if status["state"] != "completed":
                fail(f"scan {status['state']}: {status.get('state_reason')}")
            print_best_fit(client.result(created["scan_id"]).json())
        except ApiError as err:
            fail(str(err))


@scans_app.command("show")
def show(scan_id: str, api: ApiOpt = None, token: TokenOpt = None) -> None:
    """Print a scan's status as JSON."""
    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            console.print_json(data=client.scan(scan_id))
        except ApiError as err:
            fail(str(err))


@scans_app.command("watch")
def watch(scan_id: str, api: ApiOpt = None, token: TokenOpt = None) -> None:
    """Follow a scan with a progress bar until it ends."""
    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            status = follow_scan(client, scan_id)
            console.print(f"{scan_id}: {status['state']}" + (f" ({status['state_reason']})" if status.get("state_reason") else ""))
        except ApiError as err:
            fail(str(err))


@scans_app.command("abort")
def abort(scan_id: str, api: ApiOpt = None, token: TokenOpt = None) -> None:
    """Abort a scan: its processes stop and its queues are deleted; computed pixels stay."""
    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            status = client.abort(scan_id)
            console.print(f"{scan_id}: {status['state']}")
        except ApiError as err:
            fail(str(err))


@scans_app.command("list")
def list_scans(
    state: Annotated[str | None, typer.Option(help="Filter by state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """List scans, newest first."""
    from rich.table import Table

    from skydriver_api.client import ApiError

    params: dict[str, object] = {"limit": limit}
    if state:
        params["state"] = state
    with _client(api, token) as client:
        try:
            page = client.request("GET", "/api/v1/scans", params=params).json()
        except ApiError as err:
            fail(str(err))
    table = Table("scan id", "state", "reco", "run", "event", "progress", "created")
    for s in page["scans"]:
        p = s["progress"]
        table.add_row(s["scan_id"], s["state"], s["reco"], str(s["run_id"]), str(s["event_id"]),
                      f"{p['tasks_done']}/{p['tasks_sent']}", s["created_at"][:19])
    console.print(table)
