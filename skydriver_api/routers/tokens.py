"""Bearer-token administration (admin only): create (shown once), list, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from skydriver_api.api_docs import AUTH, error_responses
from skydriver_api.auth import Principal, create_token, require, revoke_token, token_summary
from skydriver_api.dependencies import DatabaseDep
from skydriver_api.models import TokenCreate, TokenCreated

router = APIRouter(prefix="/api/v1", tags=["tokens"], responses=error_responses(*AUTH))


@router.post("/tokens", status_code=201, response_model=TokenCreated, responses=error_responses(413, 422))
async def create(body: TokenCreate, db: DatabaseDep, principal: Principal = require("admin")) -> TokenCreated:
    """Create a token for ``owner`` with ``role``; the token is in this response only (its hash is kept)."""
    token, doc = await create_token(
        db.tokens,
        body.role,
        body.owner,
        expires_days=body.expires_days,
        created_by=principal.name,
        note=body.note,
    )
    return TokenCreated(
        token=token, token_id=doc["_id"], role=doc["role"], owner=doc["owner"], expires_at=doc["expires_at"]
    )


@router.get("/tokens")
async def list_tokens(db: DatabaseDep, principal: Principal = require("admin")) -> dict[str, Any]:
    """Every stored token (never the token or its hash), newest first."""
    return {"tokens": [token_summary(d) for d in await db.tokens.newest()]}


@router.delete("/tokens/{token_id}", responses=error_responses(404, 422))
async def revoke(token_id: str, db: DatabaseDep, principal: Principal = require("admin")) -> dict[str, Any]:
    """Revoke a token: requests with it get 401 from now on."""
    doc = await revoke_token(db.tokens, token_id, by=principal.name)
    if doc is None:
        raise HTTPException(404, detail=f"no token with id {token_id!r}")
    return token_summary(doc)
