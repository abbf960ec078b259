"""Every route against every kind of caller: allowed and denied, with clear 401/403 bodies.

Callers: no token, an unknown token, a reader, the scan's owner (submitter), another submitter, an
admin, the scan's own system token and another scan's system token. Runs against a live API that
launches nothing (its only slot is held), so each case is a handful of requests.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from skyscan.records.scan import TERMINAL_STATES
from tests.conftest import ROOT, make_event
from tests.integration.conftest import OpsApi

# callers

ANON, BOGUS, R, OWN, X, A, SO, ST = (
    "anonymous",
    "bogus",
    "reader",
    "owner",
    "other",
    "admin",
    "scan_own",
    "scan_other",
)
CALLERS = (ANON, BOGUS, R, OWN, X, A, SO, ST)


@dataclass
class Case:
    method: str
    path: Callable[[dict[str, str]], str]
    allowed: dict[str, int]  # caller -> success status; everyone else is denied
    body: Callable[[dict[str, str]], Any] | None = None
    target_state: str = "queued"


def _scan_body(ctx: dict[str, str]) -> dict[str, Any]:
    return {"event": make_event(), "reco": "dummy", "nsides": "8:0", "workers": 1}


def _alert_body(ctx: dict[str, str]) -> dict[str, Any]:
    run, evt = int(ctx["n"]), 7
    return {
        "event": make_event(run_id=run, event_id=evt),
        "alert": {"run_id": run, "event_id": evt, "revision": 0, "stream": "gold"},
    }


READERS = {R: 200, OWN: 200, X: 200, A: 200}
CASES: dict[str, Case] = {
    "list_scans": Case("GET", lambda c: "/api/v1/scans", READERS),
    "submit_scan": Case("POST", lambda c: "/api/v1/scans", {OWN: 201, X: 201, A: 201}, _scan_body),
    "get_scan": Case("GET", lambda c: f"/api/v1/scans/{c['scan']}", {**READERS, SO: 200}),
    "get_event": Case("GET", lambda c: f"/api/v1/scans/{c['scan']}/event", {**READERS, SO: 200}),
    "get_result": Case("GET", lambda c: f"/api/v1/scans/{c['scan']}/result", {**READERS, SO: 200}),
    # on an ended scan: its own system token has ended with it (401), see test_route_by_caller
    "scan_events": Case(
        "GET", lambda c: f"/api/v1/scans/{c['scan']}/events", READERS, target_state="aborted"
    ),
    "abort_scan": Case("DELETE", lambda c: f"/api/v1/scans/{c['scan']}", {OWN: 202, A: 202}),
    "rescan": Case(
        "POST",
        lambda c: f"/api/v1/scans/{c['scan']}/rescan",
        {OWN: 201, X: 201, A: 201},
        lambda c: {"nsides": "8:0"},
    ),
    "add_workers": Case(
        "POST", lambda c: f"/api/v1/scans/{c['scan']}/workers", {OWN: 202, A: 202}, lambda c: {"workers": 2}
    ),
    "backlog": Case("GET", lambda c: "/api/v1/backlog", READERS),
    "submit_alert": Case("POST", lambda c: "/api/v1/alerts", {OWN: 201, X: 201, A: 201}, _alert_body),
    "submit_catalog": Case(
        "POST",
        lambda c: "/api/v1/catalogs",
        {OWN: 201, X: 201, A: 201},
        lambda c: {"events": [make_event()], "reco": "dummy", "nsides": "8:0"},
    ),
    "get_catalog": Case("GET", lambda c: f"/api/v1/catalogs/{c['catalog']}", READERS),
    "download_catalog": Case("GET", lambda c: f"/api/v1/catalogs/{c['catalog']}/download", READERS),
    "create_token": Case(
        "POST", lambda c: "/api/v1/tokens", {A: 201}, lambda c: {"role": "reader", "owner": "zed"}
    ),
    "list_tokens": Case("GET", lambda c: "/api/v1/tokens", {A: 200}),
    "revoke_token": Case("DELETE", lambda c: f"/api/v1/tokens/{c['token_id']}", {A: 200}),
    "whoami": Case("GET", lambda c: "/api/v1/whoami", {**READERS, SO: 200, ST: 200}),
}

_counter = iter(range(1000, 100000))


@pytest.fixture(scope="module")
def catalog_id(quiet_api: OpsApi) -> str:
    with quiet_api.http(OWN) as http:
        resp = http.post(
            "/api/v1/catalogs", json={"events": [make_event()], "reco": "dummy", "nsides": "8:0"}
        )
    assert resp.status_code == 201, resp.text
    return resp.json()["catalog_id"]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", sorted(CASES))
def test_route_by_caller(quiet_api: OpsApi, catalog_id: str, route: str, caller: str) -> None:
    case = CASES[route]
    own_token, other_token = "sd_" + secrets.token_urlsafe(24), "sd_" + secrets.token_urlsafe(24)
    ctx = {
        "scan": quiet_api.insert_scan("alice", case.target_state, scan_token=own_token),
        "catalog": catalog_id,
        "n": str(next(_counter)),
    }
    quiet_api.insert_scan("bob", scan_token=other_token)
    if route == "revoke_token":
        with quiet_api.http(A) as admin:
            ctx["token_id"] = admin.post("/api/v1/tokens", json={"role": "reader", "owner": "tmp"}).json()[
                "token_id"
            ]
    token = {SO: own_token, ST: other_token}.get(caller) or quiet_api.tokens.get(caller)
    headers = {"Authorization": f"Bearer {token}"} if caller != ANON else {}
    body = case.body(ctx) if case.body else None
    with quiet_api.http(None) as http:
        resp = http.request(case.method, case.path(ctx), json=body, headers=headers)
    detail = (
        resp.json().get("detail", "")
        if resp.headers.get("content-type", "").startswith("application/json")
        else ""
    )
    if caller in (ANON, BOGUS):
        assert resp.status_code == 401, resp.text
        assert resp.headers["www-authenticate"] == "Bearer"
        assert ("missing bearer token" in detail) if caller == ANON else (detail == "unknown token")
    elif caller == SO and case.target_state in TERMINAL_STATES:
        assert resp.status_code == 401 and "expired when the scan ended" in detail, resp.text
    elif caller in case.allowed:
        assert resp.status_code == case.allowed[caller], resp.text
    else:
        assert resp.status_code == 403, resp.text
        assert any(s in detail for s in ("role", "owner or an admin", "system token")), detail
    # a denied request changed nothing
    if resp.status_code in (401, 403) and route in ("abort_scan", "add_workers"):
        doc = quiet_api.db().scans.find_one({"_id": ctx["scan"]})
        assert doc["state"] == "queued" and not doc.get("worker_requests")


def test_denied_bodies_name_the_role(quiet_api: OpsApi) -> None:
    with quiet_api.http(R) as http:
        resp = http.post("/api/v1/scans", json=_scan_body({}))
    assert resp.status_code == 403
    assert resp.json() == {"detail": "this needs the 'submitter' role; your token has 'reader'"}
    scan = quiet_api.insert_scan("alice")
    with quiet_api.http(X) as http:
        resp = http.delete(f"/api/v1/scans/{scan}")
    assert resp.json() == {"detail": "only the scan's owner or an admin may do this"}


def test_whoami_names_the_caller_and_what_it_may_do(quiet_api: OpsApi) -> None:
    expected = {
        R: {"name": "rita", "role": "reader", "scan_id": None, "may_submit": False, "may_manage_any": False},
        OWN: {
            "name": "alice",
            "role": "submitter",
            "scan_id": None,
            "may_submit": True,
            "may_manage_any": False,
        },
        A: {"name": "root", "role": "admin", "scan_id": None, "may_submit": True, "may_manage_any": True},
    }
    for who, identity in expected.items():
        with quiet_api.http(who) as http:
            assert http.get("/api/v1/whoami").json() == identity
    scan_token = "sd_" + secrets.token_urlsafe(24)
    scan_id = quiet_api.insert_scan("alice", scan_token=scan_token)
    with quiet_api.http(None) as http:
        me = http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {scan_token}"}).json()
    assert me == {
        "name": f"scan:{scan_id}",
        "role": "scan",
        "scan_id": scan_id,
        "may_submit": False,
        "may_manage_any": False,
    }


def test_submitted_scans_belong_to_the_submitter(quiet_api: OpsApi) -> None:
    with quiet_api.http(OWN) as http:
        scan_id = http.post("/api/v1/scans", json=_scan_body({})).json()["scan_id"]
        assert http.get(f"/api/v1/scans/{scan_id}").json()["owner"] == "alice"
    with quiet_api.http(X) as http:
        assert http.delete(f"/api/v1/scans/{scan_id}").status_code == 403
    with quiet_api.http(OWN) as http:
        assert http.delete(f"/api/v1/scans/{scan_id}").json()["state"] == "aborted"


def test_tokens_are_stored_hashed_and_listed_without_secrets(quiet_api: OpsApi) -> None:
    db = quiet_api.db()
    stored = list(db.tokens.find({}))
    assert stored and all("token" not in d for d in stored)
    secrets_in_db = {d["token_hash"] for d in stored}
    for who in (R, OWN, X, A):
        assert quiet_api.tokens[who] not in secrets_in_db
        assert quiet_api.tokens[who] not in str(stored)
    with quiet_api.http(A) as http:
        listing = http.get("/api/v1/tokens").json()["tokens"]
    assert {t["owner"] for t in listing} >= {"root", "rita", "alice", "bob"}
    assert all("token_hash" not in t and "token" not in t for t in listing)


def test_revoked_and_expired_tokens_get_401(quiet_api: OpsApi) -> None:
    with quiet_api.http(A) as admin:
        created = admin.post("/api/v1/tokens", json={"role": "reader", "owner": "temp"}).json()
        with quiet_api.http(None) as http:
            auth = {"Authorization": f"Bearer {created['token']}"}
            assert http.get("/api/v1/scans", headers=auth).status_code == 200
            assert admin.delete(f"/api/v1/tokens/{created['token_id']}").json()["revoked_at"]
            resp = http.get("/api/v1/scans", headers=auth)
            assert resp.status_code == 401 and resp.json()["detail"] == "this token was revoked"
        short = admin.post(
            "/api/v1/tokens", json={"role": "reader", "owner": "temp", "expires_days": 1}
        ).json()
    quiet_api.db().tokens.update_one(
        {"_id": short["token_id"]},
        {"$set": {"expires_at": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)}},
    )
    with quiet_api.http(None) as http:
        resp = http.get("/api/v1/scans", headers={"Authorization": f"Bearer {short['token']}"})
    assert resp.status_code == 401 and resp.json()["detail"] == "this token has expired"


def test_token_create_validates_role_and_owner(quiet_api: OpsApi) -> None:
    with quiet_api.http(A) as admin:
        assert admin.post("/api/v1/tokens", json={"role": "root", "owner": "x"}).status_code == 422
        assert admin.post("/api/v1/tokens", json={"role": "reader", "owner": "a b"}).status_code == 422
        assert admin.delete("/api/v1/tokens/nope").status_code == 404


def _cli(quiet_api: OpsApi, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SKYDRIVER_MONGODB_DATABASE=quiet_api.api.database, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "skydriver_api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_creates_a_token_in_mongodb_and_revokes_it(quiet_api: OpsApi) -> None:
    created = _cli(
        quiet_api, "tokens", "create", "--role", "admin", "--owner", "ops-bootstrap", "--expires-days", "2"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("sd_")
    token_id = created.stderr.split("token id ")[1].split()[0]
    with quiet_api.http(None) as http:
        auth = {"Authorization": f"Bearer {token}"}
        resp = http.post("/api/v1/tokens", json={"role": "reader", "owner": "someone"}, headers=auth)
        assert resp.status_code == 201  # the CLI-made admin token works at once
        doc = quiet_api.db().tokens.find_one({"_id": token_id})
        assert doc["owner"] == "ops-bootstrap" and doc["role"] == "admin" and doc["expires_at"] is not None
        revoked = _cli(quiet_api, "tokens", "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        assert http.get("/api/v1/scans", headers=auth).status_code == 401
    bad = _cli(quiet_api, "tokens", "create", "--role", "boss", "--owner", "x")
    assert bad.returncode == 2 and "--role must be one of" in bad.stderr  # bad input: exit 2, one line
