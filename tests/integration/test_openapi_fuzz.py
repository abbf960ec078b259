"""Schemathesis against the OpenAPI document: generated requests to every route, with a valid token
of every role (admin, submitter, reader, a scan's system token) and with none, never get a 5xx,
and every refusal is a JSON body that says why.

Path parameters are often replaced by ids that exist (a queued, a running and a completed scan, a
catalog, a token), so the generated bodies reach the services instead of stopping at a 404.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from skydriver_api.app import create_app
from skydriver_api.settings import ApiSettings as Settings
from tests.conftest import make_event
from tests.integration.conftest import OpsApi

# The schema comes from the app object (no network); the calls go to a live API over HTTP.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
ROLES = ("admin", "owner", "reader", "scan", None)  # owner: a submitter; None: no token at all


@pytest.fixture(scope="module")
def targets(quiet_api: OpsApi) -> Iterator[dict[str, Any]]:
    """Records the fuzzed requests can hit, and a system token of the running scan."""
    scan_token = "sd_" + secrets.token_urlsafe(24)
    running = quiet_api.insert_scan("alice", "running", scan_token=scan_token)
    ids = {
        "queued": quiet_api.insert_scan("alice", "queued"),
        "running": running,
        "completed": quiet_api.insert_scan("alice", "completed"),
    }
    quiet_api.tokens["scan"] = scan_token
    with quiet_api.http("owner") as http:
        catalog = http.post(
            "/api/v1/catalogs", json={"events": [make_event()], "reco": "dummy", "nsides": "8:0"}
        ).json()["catalog_id"]
    with quiet_api.http("admin") as http:
        throwaway = http.post("/api/v1/tokens", json={"role": "reader", "owner": "fuzz"}).json()["token_id"]
    yield {"api": quiet_api, "scans": ids, "catalog": catalog, "token": throwaway}


def _known(case: Any, known: dict[str, Any]) -> None:
    """Swap generated path ids for existing ones half of the time (deterministically per case)."""
    params = case.path_parameters or {}
    rng = random.Random(repr(sorted(params.items())) + case.method)
    if "scan_id" in params:
        params["scan_id"] = params["scan_id"][:64]
        if rng.random() < 0.5:
            # an event stream of a live scan never ends: streams get the completed scan
            pool = ["completed"] if case.path.endswith("/events") else list(known["scans"])
            params["scan_id"] = known["scans"][rng.choice(pool)]
    if "catalog_id" in params and rng.random() < 0.5:
        params["catalog_id"] = known["catalog"]
    if "token_id" in params and rng.random() < 0.5:
        params["token_id"] = known["token"]  # never one of the tokens the fuzzing itself uses


def check(case: Any, role: str | None, targets: dict[str, Any]) -> None:
    api: OpsApi = targets["api"]
    _known(case, targets)
    headers = {"Authorization": f"Bearer {api.tokens[role]}"} if role else {}
    try:
        response = case.call(base_url=api.url, headers=headers, timeout=30)
    except httpx.ReadTimeout:
        pytest.fail(f"{case.method} {case.formatted_path} as {role}: no answer within 30 s")

    def where() -> str:
        answer = response.content[:500].decode(errors="replace")
        return f"{case.method} {case.formatted_path} as {role} -> {response.status_code}: {answer}"

    assert response.status_code < 500, where()
    if response.status_code >= 400:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/json"), where()
        assert response.json()["detail"], where()


# The admin reaches every branch: the most examples. The other roles are mostly refused early.
# The role is a parameter so that every operation's test has an id of its own ("[POST ...][admin]"):
# pytest-xdist runs one test per id and would otherwise run one of the 22 operations.
@pytest.mark.parametrize("role", ["admin"])
@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_as_admin(case, role: str, targets: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    check(case, role, targets)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_as_every_other_role(case, role: str | None, targets: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    check(case, role, targets)
