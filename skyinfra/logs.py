"""Structured (JSON lines) logging shared by the API, servers and workers; every line can carry a scan id."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, str] | None = None) -> None:
        super().__init__()
        self.static = static or {}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self.static,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(component: str, scan_id: str | None = None, level: str | None = None) -> None:
    """Log JSON lines to stderr (``SKYDRIVER_LOG_FORMAT=text`` for plain text)."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("SKYDRIVER_LOG_FORMAT", "json") == "text":
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {component} %(levelname)s %(name)s: %(message)s")
        )
    else:
        static = {"component": component}
        if scan_id:
            static["scan_id"] = scan_id
        handler.setFormatter(JsonFormatter(static))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("SKYDRIVER_LOG_LEVEL", "INFO"))
    logging.getLogger("pika").setLevel(logging.ERROR)  # expected 404s on passive declares are noise
    logging.getLogger("httpx").setLevel(logging.WARNING)
