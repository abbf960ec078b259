"""REST client commands: submit and follow scans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skydriver_api.cli.common import (
    check_strategy,
    console,
    fail,
    fail_api,
    follow_scan,
    load_event_file,
    print_best_fit,
    refuse,
    scan_id_column,
)
from skyscan.refinement.progression import DEFAULT_PROGRESSION

ApiOpt = Annotated[str | None, typer.Option("--api", envvar="SKYDRIVER_API_URL", help="API base URL")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="SKYDRIVER_TOKEN", help="Bearer token")]

SORTS = ("-created_at", "created_at", "-priority", "priority")

scans_app = typer.Typer(help="List, inspect, follow and abort scans.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.add_typer(scans_app, name="scans")


def _client(api: str | None, token: str | None):  # type: ignore[no-untyped-def]
    from skydriver_api.client import SkyDriverClient

    return SkyDriverClient(api, token)


def submit(
    event_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, metavar="EVENT_FILE", help="Open-format event JSON")
    ],
    reco: Annotated[str, typer.Option(help="Reco name")] = "pandel-mpe",
    nsides: Annotated[
        str, typer.Option(help="nside:extension progression (as scan-local)")
    ] = DEFAULT_PROGRESSION,
    strategy: Annotated[str, typer.Option(help="progression or contour")] = "progression",
    workers: Annotated[int, typer.Option(min=1, max=10000, help="Worker count")] = 2,
    profile: Annotated[str, typer.Option(help="Worker profile configured on the service")] = "default",
    priority: Annotated[
        int, typer.Option(min=-100, max=100, help="Higher runs first (100: alerts and admins only)")
    ] = 0,
    follow: Annotated[bool, typer.Option(help="Follow progress until the scan ends")] = True,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit a scan of EVENT_FILE and follow it with a progress bar; prints the best fit."""
    from skydriver_api.client import ApiError
    from skyscan.physics.recos.registry import RECOS

    event = load_event_file(event_file)
    if reco not in RECOS:
        refuse(f"--reco: unknown reco {reco!r}; known: {', '.join(sorted(RECOS))}")
    check_strategy(strategy, nsides)
    body = {
        "event": event.to_json_dict(),
        "reco": reco,
        "nsides": nsides,
        "strategy": strategy,
        "workers": workers,
        "profile": profile,
        "priority": priority,
    }
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
            fail_api(err)


@scans_app.command("show")
def show(scan_id: str, api: ApiOpt = None, token: TokenOpt = None) -> None:
    """Print a scan's status as JSON."""
    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            console.print_json(data=client.scan(scan_id))
        except ApiError as err:
            fail_api(err)


@scans_app.command("watch")
def watch(scan_id: str, api: ApiOpt = None, token: TokenOpt = None) -> None:
    """Follow a scan with a progress bar until it ends."""
    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            status = follow_scan(client, scan_id)
            reason = f" ({status['state_reason']})" if status.get("state_reason") else ""
            console.print(f"{scan_id}: {status['state']}{reason}")
        except ApiError as err:
            fail_api(err)


@scans_app.command("abort")
def abort(scan_id: str, api: ApiOpt = None, token: TokenOpt = None) -> None:
    """Abort a scan: its processes stop and its queues are deleted; computed pixels stay."""
    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            status = client.abort(scan_id)
            console.print(f"{scan_id}: {status['state']}")
        except ApiError as err:
            fail_api(err)


@scans_app.command("list")
def list_scans(
    state: Annotated[str | None, typer.Option(help="Filter by state (comma-separated)")] = None,
    owner: Annotated[str | None, typer.Option(help="Filter by owner")] = None,
    run_id: Annotated[int | None, typer.Option(help="Filter by run id")] = None,
    event_id: Annotated[int | None, typer.Option(help="Filter by event id")] = None,
    reco: Annotated[str | None, typer.Option(help="Filter by reco")] = None,
    classifier: Annotated[list[str] | None, typer.Option(help="key:value, repeatable")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO 8601)")] = None,
    sort: Annotated[str, typer.Option(help="-created_at, created_at, -priority or priority")] = "-created_at",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow the cursor through every page")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """List scans, newest first, as a table."""
    import datetime as dt

    from rich.table import Table

    from skydriver_api.client import ApiError

    if sort not in SORTS:
        refuse(f"--sort: must be one of {', '.join(SORTS)}, got {sort!r}")
    if since:
        try:
            dt.datetime.fromisoformat(since)
        except ValueError:
            refuse(f"--since: {since!r} is not an ISO 8601 time (e.g. 2026-01-31 or 2026-01-31T12:00)")

    params: dict[str, object] = {"limit": limit, "sort": sort}
    for key, value in (
        ("state", state),
        ("owner", owner),
        ("run_id", run_id),
        ("event_id", event_id),
        ("reco", reco),
        ("created_after", since),
        ("classifier", classifier),
    ):
        if value:
            params[key] = value
    scans: list[dict] = []
    with _client(api, token) as client:
        try:
            while True:
                page = client.request("GET", "/api/v1/scans", params=params).json()
                scans.extend(page["scans"])
                if not all_pages or not page["next_cursor"]:
                    break
                params["cursor"] = page["next_cursor"]
        except ApiError as err:
            fail_api(err)
    table = Table(scan_id_column(), "state", "owner", "prio", "reco", "run", "event", "progress", "created")
    for s in scans:
        p = s["progress"]
        table.add_row(
            s["scan_id"],
            s["state"],
            s["owner"],
            str(s["priority"]),
            s["reco"],
            str(s["run_id"]),
            str(s["event_id"]),
            f"{p['tasks_done']}/{p['tasks_sent']}",
            s["created_at"][:19],
        )
    console.print(table)


@scans_app.command("rescan")
def rescan(
    scan_id: str,
    reco: Annotated[str | None, typer.Option(help="Override the reco")] = None,
    nsides: Annotated[str | None, typer.Option(help="Override the nside progression")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Override the worker count")] = None,
    priority: Annotated[int | None, typer.Option(help="Override the priority")] = None,
    abort_original: Annotated[bool, typer.Option(help="Abort the original scan first")] = False,
    follow: Annotated[bool, typer.Option(help="Follow the new scan")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Scan the same event again with overrides; the new scan records rescan_of."""
    from skydriver_api.client import ApiError

    body = {
        k: v
        for k, v in (("reco", reco), ("nsides", nsides), ("workers", workers), ("priority", priority))
        if v is not None
    }
    body["abort_original"] = abort_original
    with _client(api, token) as client:
        try:
            created = client.request("POST", f"/api/v1/scans/{scan_id}/rescan", json=body).json()
            console.print(f"rescan of {scan_id}: [bold]{created['scan_id']}[/bold]")
            if follow:
                status = follow_scan(client, created["scan_id"])
                console.print(f"{created['scan_id']}: {status['state']}")
        except ApiError as err:
            fail_api(err)


@scans_app.command("add-workers")
def add_workers(
    scan_id: str,
    workers: Annotated[int, typer.Option(min=1, help="How many workers to add")],
    cluster: Annotated[str, typer.Option(help="Worker cluster name")] = "default",
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Ask for more workers for a scan (started by the reconciler)."""
    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            resp = client.request(
                "POST", f"/api/v1/scans/{scan_id}/workers", json={"workers": workers, "cluster": cluster}
            ).json()
        except ApiError as err:
            fail_api(err)
    console.print(f"requested {resp['workers']} more workers for {scan_id} (request {resp['request_id']})")


@scans_app.command("backlog")
def backlog(api: ApiOpt = None, token: TokenOpt = None) -> None:
    """Show the admission queue: queued scans in the order they will start, and why they wait."""
    from rich.table import Table

    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            data = client.request("GET", "/api/v1/backlog").json()
        except ApiError as err:
            fail_api(err)
    console.print(
        f"{data['active_scans']}/{data['max_concurrent_scans']} scans active, "
        f"{data['workers_in_use']}/{data['max_total_workers']} workers in use"
    )
    table = Table("#", scan_id_column(), "prio", "owner", "workers", "attempts", "waiting for")
    for e in data["entries"]:
        table.add_row(
            str(e["position"]),
            e["scan_id"],
            str(e["priority"]),
            e["owner"],
            str(e["workers"]),
            str(e["attempts"]),
            e["waiting_for"],
        )
    console.print(table)
