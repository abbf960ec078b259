"""Skymap products.

* ``skydriver result SCAN_ID --format F -o FILE`` downloads a scan's result: a REST client of
  ``GET {api}/api/v1/scans/{id}/result?format=F`` with ``Authorization: Bearer``; the bytes are
  written as they come (``-o -`` writes to stdout). Without ``-o`` the file name the API suggests
  (Content-Disposition) is used in the current directory.
* ``skydriver export RESULT.json --format F -o FILE`` makes the same products offline from a
  stored result document (``result.json`` of ``scan-local``, or ``result --format json``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from skydriver_api.cli.common import (
    BAD_INPUT,
    REFUSED_STATUSES,
    console,
    fail,
    load_event_file,
    output_file,
    product_format,
    refuse,
    warn_unresolved,
)
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
    app.command("export")(export)


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
    """Download a scan's result in FORMAT (json, skyreader-json, npz, fits, geojson, png, pdf, gcn)."""
    from skydriver_api.client import ApiError, SkyDriverClient

    product_format(fmt)
    if output:
        output_file(Path(output))
    try:
        with SkyDriverClient(api, token, timeout=timeout) as client:
            response = client.result(scan_id, fmt)
    except ApiError as err:
        if err.status == 0:
            fail(f"{err.detail} (set --api or SKYDRIVER_API_URL; tried {api.rstrip('/')})")
        hint = HINTS.get(err.status) or ("the server failed; see its logs" if err.status >= 500 else "")
        fail(
            f"HTTP {err.status} for scan {scan_id!r} ({fmt}): {err.detail}" + (f" — {hint}" if hint else ""),
            BAD_INPUT if err.status in REFUSED_STATUSES else 1,
        )
    name = _filename_from(response.headers.get("content-disposition")) or f"{scan_id}.{fmt}"
    _deliver(response.content, output, name, response.headers.get("content-type", "?"))


def _deliver(content: bytes, output: str | None, default_name: str, media_type: str) -> None:
    """Write to ``output`` (``-``: stdout; none: ``default_name`` in the current folder)."""
    if output == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return
    path = Path(output) if output else Path(default_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    except OSError as err:
        fail(f"cannot write {path}: {err.strerror or err}")
    console.print(f"wrote {path} ({len(content):,} bytes, {media_type})", soft_wrap=True)


def export(
    result_file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            metavar="RESULT_FILE",
            help="A result document (skydriver.skymap/1 JSON)",
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}")],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File to write ('-' for stdout); default: the product's name"),
    ] = None,
    event_file: Annotated[
        Path | None,
        typer.Option(
            "--event", exists=True, dir_okay=False, help="The scan's event JSON (adds its metadata)"
        ),
    ] = None,
) -> None:
    """Make a product (fits, geojson, png, pdf, gcn, ...) from a stored result, offline (no API)."""
    import json

    from skyscan.skymap.assembly import SKYMAP_SCHEMA
    from skyscan.skymap.exports import render

    product_format(fmt)
    try:
        doc = json.loads(result_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        refuse(f"{result_file} is not JSON: {err}")
    if (
        not isinstance(doc, dict)
        or doc.get("schema") != SKYMAP_SCHEMA
        or not isinstance(doc.get("pixels"), list)
    ):
        refuse(f"{result_file} is not a result document (schema {SKYMAP_SCHEMA} with pixels)")
    event = load_event_file(event_file) if event_file else None
    if output:
        output_file(Path(output))
    try:
        rendered = render(doc, event, fmt)
    except (KeyError, TypeError, ValueError) as err:  # a malformed document, or no finite fit
        refuse(f"{result_file}: cannot make {fmt}: {err}")
    _deliver(rendered.content, output, rendered.filename, rendered.media_type)
    if output != "-":
        warn_unresolved(doc)
