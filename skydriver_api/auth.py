"""Bearer-token authentication and role checks.

Tokens are random strings shown once; only their SHA-256 is stored. Roles: ``reader`` (read any
scan), ``submitter`` (also create scans and manage its own), ``admin`` (everything). Each scan
also has system tokens (created at launch) that let its server and workers reach that scan only.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from skyinfra.store import Database, hash_token
from skyinfra.store.tokens import TokenRepository
from skyscan.records.scan import TERMINAL_STATES, utcnow

Role = Literal["reader", "submitter", "admin"]
ROLES: tuple[Role, ...] = ("reader", "submitter", "admin")
ROLE_RANK = {"reader": 0, "submitter": 1, "admin": 2}
OWNER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role | Literal["scan"]
    scan_id: str | None = None  # set for per-scan system tokens
    token_id: str | None = None  # set for stored user tokens

    def at_least(self, role: Role) -> bool:
        return self.role != "scan" and ROLE_RANK[self.role] >= ROLE_RANK[role]

    def may_manage(self, scan: dict) -> bool:
        return self.role == "admin" or (self.role == "submitter" and scan.get("owner") == self.name)


def new_token() -> str:
    return "sd_" + secrets.token_urlsafe(32)


def _unauthorized(msg: str) -> HTTPException:
    return HTTPException(401, detail=msg, headers={"WWW-Authenticate": "Bearer"})


# Declares the scheme in the OpenAPI document; our own 401 (with WWW-Authenticate) replaces its error.
bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token from 'skydriver tokens create' or POST /api/v1/tokens (role reader, submitter "
    "or admin), the bootstrap admin token, or a scan's system token (that scan only)",
)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    settings = request.app.state.settings
    if settings.auth_disabled:
        return Principal("anonymous", "admin")
    if credentials is None:
        raise _unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>' "
            "(create one with 'skydriver tokens create')"
        )
    token = credentials.credentials
    digest = hash_token(token)
    admin = request.app.state.admin_token_hash
    if admin is not None and hmac.compare_digest(digest, admin):
        return Principal("admin", "admin")
    db: Database = request.app.state.db
    doc = await db.tokens.by_hash(digest)
    if doc is not None:
        if doc.get("revoked_at") is not None:
            raise _unauthorized("this token was revoked")
        expires = doc.get("expires_at")
        if expires is not None and expires < utcnow():
            raise _unauthorized("this token has expired")
        return Principal(doc["owner"], doc["role"], token_id=doc["_id"])
    scan = await db.scans.by_token_hash(digest)
    if scan is not None:
        if scan["state"] in TERMINAL_STATES:  # a scan's token ends with its scan
            raise _unauthorized(f"this scan's token expired when the scan ended ({scan['state']})")
        return Principal(f"scan:{scan['_id']}", "scan", scan_id=scan["_id"])
    raise _unauthorized("unknown token")


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require(role: Role):
    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.at_least(role):
            if principal.role == "scan":
                raise HTTPException(
                    403, detail="a scan's system token only reaches that scan's event and status"
                )
            raise HTTPException(
                403, detail=f"this needs the '{role}' role; your token has '{principal.role}'"
            )
        return principal

    return Depends(check)


def check_scan_access(principal: Principal, scan: dict, *, manage: bool = False) -> None:
    """Readers see every scan; managing needs ownership or admin; scan tokens see only their scan."""
    if principal.role == "scan":
        if principal.scan_id != scan["_id"] or manage:
            raise HTTPException(403, detail="a scan's system token only reaches that scan's event and status")
        return
    if manage and not principal.may_manage(scan):
        raise HTTPException(403, detail="only the scan's owner or an admin may do this")


# -- stored user tokens ---------------------------------------------------------------------------
async def create_token(
    tokens: TokenRepository,
    role: Role,
    owner: str,
    *,
    expires_days: float | None = None,
    created_by: str = "cli",
    note: str = "",
) -> tuple[str, dict[str, Any]]:
    """Store a new token (its hash only) and return ``(token, document)``; the token is shown once."""
    if role not in ROLE_RANK:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = new_token()
    now = utcnow()
    doc: dict[str, Any] = {
        "_id": uuid.uuid4().hex[:16],
        "token_hash": hash_token(token),
        "role": role,
        "owner": owner,
        "created_at": now,
        "created_by": created_by,
        "expires_at": None if expires_days is None else now + dt.timedelta(days=expires_days),
        "revoked_at": None,
        "note": note,
    }
    await tokens.insert(doc)
    return token, doc


async def revoke_token(tokens: TokenRepository, token_id: str, by: str = "cli") -> dict[str, Any] | None:
    """Mark a token revoked (kept for the audit trail); None when no such token exists."""
    return await tokens.revoke(token_id, by, utcnow())


def token_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """A token document without its hash, for listings."""
    return {k: v for k, v in doc.items() if k not in ("token_hash", "_id")} | {"token_id": doc["_id"]}
