"""Operations commands: tokens (written straight to MongoDB), realtime alerts, catalogs."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from skydriver_api.cli.client import ApiOpt, TokenOpt, _client
from skydriver_api.cli.common import (
    console,
    err_console,
    fail,
    fail_api,
    output_file,
    product_formats,
    refuse,
)
from skyscan.refinement.progression import DEFAULT_PROGRESSION

tokens_app = typer.Typer(
    help="Create and revoke bearer tokens (on the server host: writes MongoDB directly).",
    no_args_is_help=True,
)
alerts_app = typer.Typer(help="Send realtime alerts.", no_args_is_help=True)
catalog_app = typer.Typer(help="Reprocess a catalog of events.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(catalog_app, name="catalog")


# -- tokens ------------------------------------------------------------------------------------------
async def _with_store(action: Any) -> Any:
    """Run ``action(db)`` against the service's database (server host only: it writes MongoDB)."""
    from skyinfra.settings import DatabaseSettings
    from skyinfra.store import Database

    settings = DatabaseSettings()
    db = Database(settings.mongodb_uri.get_secret_value(), settings.mongodb_database)
    try:
        await db.ensure_indexes()
        return await action(db)
    finally:
        await db.close()


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="reader, submitter or admin")],
    owner: Annotated[str, typer.Option(help="Who the token belongs to (scans it submits are theirs)")],
    expires_days: Annotated[float | None, typer.Option(min=0.001, help="Expire after N days")] = None,
    note: Annotated[str, typer.Option(help="Free text kept with the token")] = "",
) -> None:
    """Create a token in the database named by SKYDRIVER_MONGODB_URI/_DATABASE; prints it once."""
    import re

    from pymongo.errors import PyMongoError

    from skydriver_api.auth import OWNER_PATTERN, ROLES, create_token

    if role not in ROLES:
        refuse(f"--role must be one of {', '.join(ROLES)}")
    if not re.match(OWNER_PATTERN, owner):
        refuse("--owner: letters, digits and . _ @ - only (at most 100)")
    try:
        token, doc = asyncio.run(
            _with_store(
                lambda store: create_token(
                    store.tokens, role, owner, expires_days=expires_days, created_by="cli", note=note
                )
            )
        )  # type: ignore[arg-type]
    except PyMongoError as err:
        fail(f"cannot reach MongoDB: {err}")
    err_console.print(
        f"token id {doc['_id']} ({role} for {owner}"
        + (f", expires {doc['expires_at']:%Y-%m-%d %H:%M} UTC" if doc["expires_at"] else "")
        + "); shown once, only its hash is stored:"
    )
    print(token)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="Token id (from 'tokens list')")]) -> None:
    """Revoke a token: requests carrying it get 401 from now on."""
    from pymongo.errors import PyMongoError

    from skydriver_api.auth import revoke_token

    try:
        doc = asyncio.run(_with_store(lambda store: revoke_token(store.tokens, token_id)))
    except PyMongoError as err:
        fail(f"cannot reach MongoDB: {err}")
    if doc is None:
        refuse(f"no token with id {token_id!r}")
    console.print(f"revoked token {token_id} ({doc['role']} for {doc['owner']})")


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (ids, roles, owners, expiry; never the tokens)."""
    from rich.table import Table

    async def fetch(store: Any) -> list[dict[str, Any]]:
        return await store.tokens.newest(limit=0)

    table = Table("token id", "role", "owner", "created", "expires", "revoked", "note")
    for d in asyncio.run(_with_store(fetch)):
        table.add_row(
            d["_id"],
            d["role"],
            d["owner"],
            f"{d['created_at']:%Y-%m-%d %H:%M}",
            f"{d['expires_at']:%Y-%m-%d}" if d.get("expires_at") else "",
            f"{d['revoked_at']:%Y-%m-%d %H:%M}" if d.get("revoked_at") else "",
            d.get("note", ""),
        )
    console.print(table)


# -- alerts ------------------------------------------------------------------------------------------
@alerts_app.command("send")
def alerts_send(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="i3live realtime JSON, or an open-format event"),
    ],
    revision: Annotated[int, typer.Option(min=0, help="Alert revision")] = 0,
    stream: Annotated[str, typer.Option(help="Alert stream (gold, bronze, ...)")] = "",
    follow: Annotated[bool, typer.Option(help="Follow the scan until it ends")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Send one alert; prints the scan id (the existing one for a duplicate)."""
    from skydriver_api.cli.common import follow_scan
    from skydriver_api.client import ApiError

    try:
        doc = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        refuse(f"{file} is not JSON: {err}")
    if isinstance(doc, dict) and "event" in doc and "alert" in doc:
        body = doc
    elif isinstance(doc, dict) and doc.get("schema", "").startswith("skydriver.event/"):
        body = {
            "event": doc,
            "alert": {
                "run_id": doc.get("run_id"),
                "event_id": doc.get("event_id"),
                "revision": revision,
                "stream": stream,
            },
        }
    else:
        alert = {"revision": revision, **({"stream": stream} if stream else {})}
        body = {"i3live": doc, "alert": alert}
    with _client(api, token) as client:
        try:
            resp = client.request("POST", "/api/v1/alerts", json=body).json()
            note = " (duplicate: the existing scan)" if resp["duplicate"] else ""
            console.print(f"scan id: [bold]{resp['scan_id']}[/bold]{note}")
            if follow:
                status = follow_scan(client, resp["scan_id"])
                console.print(f"{resp['scan_id']}: {status['state']}")
        except ApiError as err:
            fail_api(err)


# -- catalogs ----------------------------------------------------------------------------------------
@catalog_app.command("submit")
def catalog_submit(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="JSON Lines (one event per line) or a JSON list of events"
        ),
    ],
    name: Annotated[str, typer.Option(help="Catalog name")] = "",
    reco: Annotated[str, typer.Option(help="Reco name")] = "pandel-mpe",
    nsides: Annotated[str, typer.Option(help="nside:extension progression")] = DEFAULT_PROGRESSION,
    workers: Annotated[int, typer.Option(min=1, help="Workers per event")] = 2,
    priority: Annotated[int, typer.Option(min=-100, max=100, help="Priority of the child scans")] = -10,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit a catalog: one low-priority child scan per event."""
    from skydriver_api.client import ApiError
    from skyscan.refinement.progression import parse_progression

    try:
        parse_progression(nsides)
    except ValueError as err:
        refuse(f"--nsides: {err}")
    try:
        text = file.read_text()
        events = json.loads(text) if text.lstrip().startswith("[") else None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        refuse(f"{file} is not a JSON list or JSON Lines: {err}")
    params = {"name": name, "reco": reco, "nsides": nsides, "workers": workers, "priority": priority}
    with _client(api, token) as client:
        try:
            if events is not None:
                resp = client.request("POST", "/api/v1/catalogs", json={"events": events, **params}).json()
            else:
                resp = client.request(
                    "POST",
                    "/api/v1/catalogs",
                    params=params,
                    content=text.encode(),
                    headers={"Content-Type": "application/x-ndjson"},
                ).json()
        except ApiError as err:
            fail_api(err)
    console.print(f"catalog id: [bold]{resp['catalog_id']}[/bold] ({resp['n_events']} scans)")


@catalog_app.command("status")
def catalog_status(
    catalog_id: str,
    follow: Annotated[bool, typer.Option(help="Show a progress bar until every scan ended")] = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show a catalog's progress: scans per state, fits done, one row per event."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from skydriver_api.client import ApiError

    with _client(api, token) as client:
        try:
            status = client.request("GET", f"/api/v1/catalogs/{catalog_id}").json()
            if follow:
                with Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total} scans"),
                    TimeElapsedColumn(),
                    console=console,
                ) as bar:
                    task = bar.add_task(catalog_id, total=status["n_events"])
                    while True:
                        ended = sum(status["states"].get(s, 0) for s in ("completed", "failed", "aborted"))
                        bar.update(task, completed=ended)
                        if status["complete"]:
                            break
                        time.sleep(1.0)
                        status = client.request("GET", f"/api/v1/catalogs/{catalog_id}").json()
        except ApiError as err:
            fail_api(err)
    states = ", ".join(f"{k} {v}" for k, v in status["states"].items() if v)
    console.print(
        f"catalog {catalog_id} {status['name']!r}: {status['n_events']} events; {states}; "
        f"{status['tasks_done']}/{status['tasks_sent']} fits"
    )
    table = Table("#", "scan id", "run", "event", "state", "fits", "RA", "Dec")
    for row in status["scans"]:
        best = row.get("best_fit") or {}
        table.add_row(
            str(row["index"]),
            row["scan_id"],
            str(row["run_id"]),
            str(row["event_id"]),
            row["state"],
            str(row["tasks_done"]),
            f"{best['ra_deg']:.2f}" if best else "",
            f"{best['dec_deg']:+.2f}" if best else "",
        )
    console.print(table)


@catalog_app.command("download")
def catalog_download(
    catalog_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Zip file to write")] = Path("catalog.zip"),
    formats: Annotated[str, typer.Option(help="Comma-separated product formats")] = "json",
    api: ApiOpt = None,
    token: TokenOpt = None,
) -> None:
    """Download the catalog's products and summary.csv as a zip."""
    from skydriver_api.client import ApiError

    product_formats(formats)
    output_file(output)

    with _client(api, token) as client:
        try:
            resp = client.request(
                "GET", f"/api/v1/catalogs/{catalog_id}/download", params={"formats": formats}
            )
        except ApiError as err:
            fail_api(err)
    try:
        output.write_bytes(resp.content)
    except OSError as err:
        fail(f"cannot write {output}: {err.strerror or err}")
    console.print(f"wrote {output} ({len(resp.content)} bytes)")
