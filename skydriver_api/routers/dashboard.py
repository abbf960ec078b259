"""The web dashboard: one HTML page at ``/`` and its static scripts under ``/static``.

The page is plain HTML, CSS and JavaScript modules shipped inside the package (nothing to build at
install). It talks only to this API, with the bearer token it keeps in session storage, and draws
the skymap itself; the Content-Security-Policy holds it to that.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from skyscan.records.scan import SCAN_STATES
from skyscan.skymap import exports

STATIC = Path(__file__).resolve().parent.parent / "static"
# Only this origin: no scripts, styles, images or connections anywhere else.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


@cache
def index_html() -> str:
    """The page, with the product formats the exporters offer (one download button each) and the
    scan states (the list's filter)."""
    html = (STATIC / "index.html").read_text()
    return html.replace("{{FORMATS}}", ",".join(exports.FORMATS)).replace("{{STATES}}", ",".join(SCAN_STATES))


@router.get("/", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    return HTMLResponse(index_html(), headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})


class _StaticFiles(StaticFiles):
    async def get_response(self, path, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", _StaticFiles(directory=STATIC), name="static")
