"""A TCP proxy in front of a live API that drops the first event stream after its first ``state``
event: a real network cut, to check that clients resume with ``Last-Event-ID``."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlparse

# FastAPI sends each event as one chunk of the chunked body: the cut falls at a chunk's end
STATE_EVENT = b"event: state"
CHUNK_END = b"\n\n\r\n"


class CuttingProxy:
    def __init__(self, upstream_url: str) -> None:
        target = urlparse(upstream_url)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[bytes] = []  # the head of every request, in order
        self.cuts = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as upstream:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            upstream.sendall(head)
            with self._lock:
                self.requests.append(head.split(b"\r\n\r\n")[0])
                cut_this = b"/events" in head.split(b"\r\n")[0] and self.cuts == 0
                if cut_this:
                    self.cuts += 1
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            buffered = b""
            while True:
                data = upstream.recv(65536)
                if not data:
                    return
                if not cut_this:
                    client.sendall(data)
                    continue
                buffered += data
                start = buffered.find(STATE_EVENT)
                end = buffered.find(CHUNK_END, start) if start >= 0 else -1
                if end >= 0:
                    client.sendall(buffered[: end + len(CHUNK_END)])
                    client.shutdown(socket.SHUT_RDWR)  # the cut: no chunked terminator, no 'end'
                    return

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
