"""Scan credentials for launcher tests, and every string that must never appear outside a secret."""

from __future__ import annotations

from skydriver_api.launchers.base import ScanCredentials

CREDENTIALS = ScanCredentials(
    server_broker_url="amqp://s:sp@rabbit:5672/%2F",
    worker_broker_url="amqp://w:wp@rabbit:5672/%2F",
    scan_key="00ff" * 16,
)


def secrets_with(token: str) -> tuple[str, ...]:
    """The token, both broker URLs, the key, and the passwords alone."""
    c = CREDENTIALS
    return (token, c.server_broker_url, c.worker_broker_url, c.scan_key, "sp@", "wp@")
