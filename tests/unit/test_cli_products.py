"""``skydriver result``: a REST client against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from skydriver_api.cli import products

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        Handler.seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
        if self.headers.get("Authorization") != "Bearer s3cret":
            return self._json(401, {"detail": "missing or invalid bearer token"})
        if self.path.startswith("/api/v1/scans/missing/"):
            return self._json(404, {"detail": "scan 'missing' not found"})
        if self.path.startswith("/api/v1/scans/broken/"):
            body = b"Internal Server Error"
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header(
            "Content-Disposition", 'attachment; filename="../run00000001.evt000000000002.s1.png"'
        )
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)
        return None

    def _json(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a group, so "result" is a sub-command as in the real CLI
    products.register(app)
    return app


def run(app: typer.Typer, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env or {}, catch_exceptions=False)


def test_downloads_the_bytes_with_the_token(app: typer.Typer, api: str, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "map.png"
    res = run(app, "result", "s1", "--format", "png", "-o", str(out), "--api", api, "--token", "s3cret")
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == PNG
    assert Handler.seen[-1] == {"path": "/api/v1/scans/s1/result?format=png", "auth": "Bearer s3cret"}
    assert "wrote" in res.output


def test_token_and_url_from_the_environment_and_server_file_name(
    app: typer.Typer, api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = run(app, "result", "s1", "-f", "png", env={"SKYDRIVER_API_URL": api, "SKYDRIVER_TOKEN": "s3cret"})
    assert res.exit_code == 0, res.output
    # the server's name is used without its directory part
    assert (tmp_path / "run00000001.evt000000000002.s1.png").read_bytes() == PNG


@pytest.mark.parametrize(
    ("scan", "token", "needle"),
    [
        ("s1", "wrong", "HTTP 401"),
        ("missing", "s3cret", "HTTP 404"),
        ("broken", "s3cret", "HTTP 500"),
    ],
)
def test_http_errors_are_reported(
    app: typer.Typer, api: str, scan: str, token: str, needle: str, tmp_path: Path
) -> None:
    res = run(app, "result", scan, "-f", "fits", "-o", str(tmp_path / "x"), "--api", api, "--token", token)
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert needle in text
    hints = {"HTTP 401": "SKYDRIVER_TOKEN", "HTTP 404": "not found", "HTTP 500": "server failed"}
    assert hints[needle] in text
    assert not (tmp_path / "x").exists()


def test_connection_refused(app: typer.Typer, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run(app, "result", "s1", "-o", str(tmp_path / "x"), "--api", f"http://127.0.0.1:{port}")
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert "cannot reach" in text and f"127.0.0.1:{port}" in text


def test_unknown_format_is_refused_before_any_request(app: typer.Typer) -> None:
    n = len(Handler.seen)
    res = run(app, "result", "s1", "-f", "bmp", "--api", "http://127.0.0.1:9")
    assert res.exit_code == 2 and "unknown format" in " ".join(res.output.split())
    assert len(Handler.seen) == n
