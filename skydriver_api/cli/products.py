"""Skymap products: ``skydriver result SCAN_ID --format F -o FILE`` downloads a scan's result.

A REST client of ``GET {api}/api/v1/scans/{id}/result?format=F`` with ``Authorization: Bearer``;
the bytes are written as they come (``-o -`` writes to stdout). Without ``-o`` the file name the
API suggests (Content-Disposition) is used in the current directory.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from skydriver_api.cli.common import console, fail
from skyscan.skymap.exports import FORMATS

DEFAULT_API = "http://127.0.0.1:8000"

HINTS = {
    401: "the API wants a valid bearer token: pass --token or set SKYDRIVER_TOKEN",
    403: "this token may not read that scan",
    404: "no such scan (or it has no stored event); check the scan id",
    409: "the scan has no result to export yet",
    422: f"the request was refused; formats are {', '.join(FORMATS)}",
}


def register(app: typer.Typer) -> None:
    app.command("result")(result)


def _filename_from(disposition: str | None) -> str | None:
    if not disposition:
        return None
    match = re.search(r'filename="?([^";]+)"?', disposition)
    if not match:
        return None
    name = Path(match.group(1)).name  # never a path from the server
    return name or None


def result(
    scan_id: Annotated[str, typer.Argument(help="Scan id")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}")] = "json",
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File to write ('-' for stdout); default: the API's name"),
    ] = None,
    api: Annotated[str, typer.Option("--api", envvar="SKYDRIVER_API_URL", help="API base URL")] = DEFAULT_API,
    token: Annotated[
        str | None, typer.Option("--token", envvar="SKYDRIVER_TOKEN", help="Bearer token")
    ] = None,
    timeout: Annotated[float, typer.Option(min=1.0, help="Request timeout in seconds")] = 120.0,
) -> None:
    """Download a scan's result in FORMAT (json, skyreader-json, npz, fits, geojson, png, gcn)."""
    from skydriver_api.client import ApiError, SkyDriverClient

    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", code=2)
    try:
        with SkyDriverClient(api, token, timeout=timeout) as client:
            response = client.result(scan_id, fmt)
    except ApiError as err:
        if err.status == 0:
            fail(f"{err.detail} (set --api or SKYDRIVER_API_URL; tried {api.rstrip('/')})")
        hint = HINTS.get(err.status) or ("the server failed; see its logs" if err.status >= 500 else "")
        fail(f"HTTP {err.status} for scan {scan_id!r} ({fmt}): {err.detail}" + (f" — {hint}" if hint else ""))
    content = response.content
    if output == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return
    path = (
        Path(output)
        if output
        else Path(_filename_from(response.headers.get("content-disposition")) or f"{scan_id}.{fmt}")
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    except OSError as err:
        fail(f"cannot write {path}: {err.strerror or err}")
    console.print(f"wrote {path} ({len(content):,} bytes, {response.headers.get('content-type', '?')})")
