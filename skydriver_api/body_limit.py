"""The request-body limit, enforced on the bytes actually received (pure ASGI middleware).

A ``Content-Length`` over the limit is refused before anything is read. A body without one
(``Transfer-Encoding: chunked``) or one that lies about its length is counted as it arrives: once
it passes the limit the application gets no more of it, whatever it has started is dropped, and
the client gets ``413``. Nothing the application would have written happens: every route reads
its whole body before acting on it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised into the application when the body passes the limit (it never answers itself)."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _answer(send, 400, "invalid Content-Length header")
                return
            if declared > self.limit:
                await _answer(send, 413, self._too_large(f"of {declared} bytes"))
                return
        received = 0
        refused = False
        started = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    raise BodyTooLarge()
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # whatever the application makes of the cut-off body is not sent
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            pass
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await _answer(send, 413, self._too_large(f"of more than {self.limit} bytes"))

    def _too_large(self, size: str) -> str:
        return f"request body {size} exceeds the limit of {self.limit} bytes"


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
