"""Roles and scan access rules, without services."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from skydriver_api.auth import ROLES, Principal, check_scan_access, new_token, token_summary
from skyinfra.store import hash_token

SCAN = {"_id": "s1", "owner": "alice"}


@pytest.mark.parametrize(
    "role, at_least",
    [
        ("reader", {"reader"}),
        ("submitter", {"reader", "submitter"}),
        ("admin", set(ROLES)),
        ("scan", set()),
    ],
)
def test_role_ranks(role: str, at_least: set[str]) -> None:
    p = Principal("x", role, scan_id="s1" if role == "scan" else None)  # type: ignore[arg-type]
    assert {r for r in ROLES if p.at_least(r)} == at_least


@pytest.mark.parametrize(
    "principal, read, manage",
    [
        (Principal("rita", "reader"), True, False),
        (Principal("alice", "submitter"), True, True),
        (Principal("bob", "submitter"), True, False),
        (Principal("root", "admin"), True, True),
        (Principal("scan:s1", "scan", scan_id="s1"), True, False),
        (Principal("scan:s2", "scan", scan_id="s2"), False, False),
    ],
)
def test_scan_access(principal: Principal, read: bool, manage: bool) -> None:
    for wants_manage, allowed in ((False, read), (True, manage)):
        if allowed:
            check_scan_access(principal, SCAN, manage=wants_manage)
        else:
            with pytest.raises(HTTPException) as err:
                check_scan_access(principal, SCAN, manage=wants_manage)
            assert err.value.status_code == 403


def test_tokens_are_random_and_only_their_hash_is_listed() -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("sd_") and len(a) > 40
    assert hash_token(a) != a and len(hash_token(a)) == 64
    summary = token_summary({"_id": "t1", "token_hash": hash_token(a), "role": "reader", "owner": "rita"})
    assert summary == {"token_id": "t1", "role": "reader", "owner": "rita"}
