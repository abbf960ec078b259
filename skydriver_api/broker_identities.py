"""Per-scan broker identities and signing keys, issued by the API's reconciler.

Each scan gets two RabbitMQ users, created through the management API before its processes start
and deleted when the scan is reaped:

| user | configure | write | read |
|---|---|---|---|
| ``skydriver.<scan>.server`` | the scan's exchange and queues | the same | the same |
| ``skydriver.<scan>.worker`` | nothing | the scan's exchange | the scan's ``pixels`` queue |

Nothing else matches their permission patterns: not another scan's queues, not the default
exchange (through which a publisher reaches every queue), not ``amq.*``. The shared administrator
account (``SKYDRIVER_RABBITMQ_URL``) stays with the API; it declares nothing for scans and only
deletes what a scan left behind.

Passwords and the scan's message key are derived from the service secret (HMAC-SHA256 over a
purpose and the scan id), so nothing secret is stored: the API derives them again after a restart
and hands the same ones to a relaunched server or worker. A key or password of one scan says
nothing about another's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from skydriver_api.launchers.base import LaunchError, ScanCredentials
from skydriver_api.settings import ApiSettings
from skyscan.wire import exchange_name, queue_names

log = logging.getLogger("skydriver.broker_identities")

ROLES = ("server", "worker")
SECRET_FILE = "scan-secret"
_TIMEOUT_S = 10.0


def derive(master: bytes, purpose: str, scan_id: str) -> bytes:
    return hmac.new(master, f"skydriver {purpose}\0{scan_id}".encode(), hashlib.sha256).digest()


def scan_key(master: bytes, scan_id: str) -> bytes:
    """The key that signs and verifies every message of the scan."""
    return derive(master, "message key", scan_id)


def broker_user(scan_id: str, role: str) -> str:
    return f"skydriver.{scan_id}.{role}"


def broker_password(master: bytes, scan_id: str, role: str) -> str:
    return base64.urlsafe_b64encode(derive(master, f"broker password {role}", scan_id)).decode().rstrip("=")


def permissions(scan_id: str, role: str) -> dict[str, str]:
    """RabbitMQ permission patterns (regular expressions over resource names) of a scan's identity."""
    exchange = re.escape(exchange_name(scan_id))
    names = "|".join(re.escape(n) for n in queue_names(scan_id).values())
    if role == "server":
        own = f"^({exchange}|{names})$"
        return {"configure": own, "write": own, "read": own}
    if role == "worker":
        return {
            "configure": "^$",
            "write": f"^{exchange}$",
            "read": f"^{re.escape(queue_names(scan_id)['pixels'])}$",
        }
    raise ValueError(f"unknown role {role!r}")


def load_service_secret(settings: ApiSettings) -> bytes:
    """``SKYDRIVER_SCAN_SECRET``, else the one kept in the runtime directory (made once, 0600)."""
    if settings.scan_secret is not None:
        return settings.scan_secret.get_secret_value().encode()
    path: Path = settings.runtime_dir / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value.encode()


class BrokerIdentities:
    """Creates, hands out and deletes the broker users of scans (management API over HTTP)."""

    def __init__(self, settings: ApiSettings) -> None:
        self._master = load_service_secret(settings)
        admin = urlsplit(settings.rabbitmq_url.get_secret_value())
        self._admin_url = admin
        self._vhost = unquote(admin.path[1:]) if len(admin.path) > 1 else "/"
        self._auth = (unquote(admin.username or "guest"), unquote(admin.password or "guest"))
        self._management = (settings.rabbitmq_management_url or f"http://{admin.hostname}:15672").rstrip("/")
        self._scan_host = settings.rabbitmq_scan_host or admin.netloc.rpartition("@")[2]
        self._client: httpx.Client | None = None  # one connection pool, made on first use

    def _amqp_url(self, user: str, password: str) -> str:
        a = self._admin_url
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{self._scan_host}"
        return urlunsplit((a.scheme, netloc, a.path, a.query, ""))

    def url(self, scan_id: str, role: str) -> str:
        return self._amqp_url(broker_user(scan_id, role), broker_password(self._master, scan_id, role))

    def credentials(self, scan_id: str) -> ScanCredentials:
        """What the launcher hands the scan's processes (derived: the same after an API restart)."""
        return ScanCredentials(
            server_broker_url=self.url(scan_id, "server"),
            worker_broker_url=self.url(scan_id, "worker"),
            scan_key=scan_key(self._master, scan_id).hex(),
        )

    def _api(self, method: str, path: str, json: dict[str, str] | None = None) -> httpx.Response:
        if self._client is None:
            self._client = httpx.Client(auth=self._auth, timeout=_TIMEOUT_S)
        try:
            return self._client.request(method, f"{self._management}/api/{path}", json=json)
        except httpx.HTTPError as err:
            raise LaunchError(f"RabbitMQ management API at {self._management} unreachable: {err}") from err

    def _path(self, *parts: str) -> str:
        return "/".join(quote(p, safe="") for p in parts)

    def ensure(self, scan_id: str) -> None:
        """Create (or reset) the scan's users with their permissions; idempotent."""
        for role in ROLES:
            user = broker_user(scan_id, role)
            password = broker_password(self._master, scan_id, role)
            for path, body in (
                (self._path("users", user), {"password": password, "tags": ""}),
                (self._path("permissions", self._vhost, user), permissions(scan_id, role)),
            ):
                resp = self._api("PUT", path, body)
                if resp.status_code not in (200, 201, 204):
                    raise LaunchError(
                        f"RabbitMQ management API refused {path.split('/')[0]} of {user}: "
                        f"{resp.status_code} {resp.text[:200]}"
                    )

    def delete(self, scan_id: str) -> None:
        """Delete the scan's users (their connections close with them); missing users are fine."""
        for role in ROLES:
            resp = self._api("DELETE", self._path("users", broker_user(scan_id, role)))
            if resp.status_code not in (200, 204, 404):
                raise LaunchError(f"could not delete broker user of {scan_id}: {resp.status_code}")
