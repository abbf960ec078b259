"""Fixtures for the operations tests: an API whose reconciler never launches anything (its one
concurrent-scan slot is held by a placeholder), tokens for every role, and scan documents written
straight into MongoDB in the state a test needs."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from skyinfra.store import hash_token
from tests.conftest import LiveApi, make_event, start_api, stop_api

FAR_FUTURE = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class OpsApi:
    """A live API plus a bearer token per principal."""

    api: LiveApi
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.api.url

    def http(self, who: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.api.url, headers=headers, timeout=30)

    def db(self):  # type: ignore[no-untyped-def]
        return self.api.db()

    def insert_scan(
        self,
        owner: str = "alice",
        state: str = "queued",
        *,
        admit: bool = False,
        scan_token: str | None = None,
        **fields: Any,
    ) -> str:
        """A scan document as the API would store it; never admitted unless ``admit``."""
        scan_id = uuid.uuid4().hex
        t = now()
        history = [{"state": "queued", "at": t, "reason": None}]
        if state != "queued":
            history.append({"state": state, "at": t, "reason": None})
        event = make_event(run_id=fields.pop("run_id", 1), event_id=fields.pop("event_id", 2))
        doc = {
            "_id": scan_id,
            "state": state,
            "state_reason": None,
            "owner": owner,
            "priority": 0,
            "created_at": t,
            "updated_at": t,
            "history": history,
            "run_id": event["run_id"],
            "event_id": event["event_id"],
            "reco": "dummy",
            "reco_options": {},
            "n_variations": 1,
            "nsides": "8:0",
            "strategy": "progression",
            "strategy_options": {},
            "clusters": [{"name": "default", "workers": 1}],
            "workers": 1,
            "resources": {},
            "classifiers": {},
            "progress": {"nsides": {}, "tasks_sent": 0, "tasks_done": 0},
            "token_hashes": [hash_token(scan_token)] if scan_token else [],
            "launch": {
                "attempts": 0,
                "handles": {},
                "last_error": None,
                "next_attempt_at": t if admit else FAR_FUTURE,
            },
            "server_restarts": 0,
            "counters": {},
        }
        doc.update(fields)
        db = self.db()
        db.events.insert_one({"_id": scan_id, "event": event})
        db.scans.insert_one(doc)
        return scan_id


def make_tokens(ops: OpsApi) -> None:
    """Stored tokens for every role, created through the admin route; scan tokens on placeholders."""
    with httpx.Client(
        base_url=ops.url, headers={"Authorization": f"Bearer {ops.api.admin_token}"}, timeout=30
    ) as admin:
        for who, role, owner in (
            ("admin", "admin", "root"),
            ("reader", "reader", "rita"),
            ("owner", "submitter", "alice"),
            ("other", "submitter", "bob"),
        ):
            resp = admin.post("/api/v1/tokens", json={"role": role, "owner": owner})
            assert resp.status_code == 201, resp.text
            ops.tokens[who] = resp.json()["token"]
            ops.token_ids[who] = resp.json()["token_id"]
    for who in ("scan_own", "scan_other"):
        ops.tokens[who] = "sd_" + secrets.token_urlsafe(24)
    ops.tokens["bogus"] = "sd_" + secrets.token_urlsafe(24)


def hold_the_only_slot(api: LiveApi) -> None:
    """A placeholder 'running' scan (no processes, no handles) fills max_concurrent_scans=1."""
    t = now()
    api.db().scans.insert_one(
        {
            "_id": "placeholder-" + uuid.uuid4().hex[:8],
            "state": "running",
            "owner": "system",
            "priority": -100,
            "created_at": t - dt.timedelta(days=1),
            "updated_at": t,
            "history": [],
            "workers": 0,
            "run_id": 0,
            "event_id": 0,
            "reco": "dummy",
            "nsides": "8:0",
            "strategy": "progression",
            "classifiers": {},
            "progress": {},
            "token_hashes": [],
            "launch": {"attempts": 1, "handles": {}, "next_attempt_at": t},
        }
    )


@contextlib.contextmanager
def ops_api(tmp: Path, **settings: str) -> Iterator[OpsApi]:
    """A live API (``start_api``'s settings) with a token per role; stopped and cleaned up on exit."""
    api = start_api(tmp, **settings)
    try:
        ops = OpsApi(api)
        make_tokens(ops)
        yield ops
    finally:
        stop_api(api)


@pytest.fixture(scope="module")
def quiet_api(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsApi]:
    """An API that stores and answers but launches nothing (its single slot is taken)."""
    with ops_api(
        tmp_path_factory.mktemp("quiet"),
        max_concurrent_scans="1",
        alert_reco="pandel-mpe",
        alert_nsides="8:0,64:12",
        alert_workers="3",
        worker_clusters='["default", "osg", "k8s"]',
        metrics_refresh_s="0.3",
    ) as ops:
        hold_the_only_slot(ops.api)
        yield ops


@pytest.fixture(scope="module")
def running_api(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsApi]:
    """An API that really launches scans (local processes), with role tokens."""
    with ops_api(
        tmp_path_factory.mktemp("running"), alert_reco="dummy", alert_nsides="8:0", alert_workers="1"
    ) as ops:
        yield ops
