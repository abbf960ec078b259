"""Who the caller is: the dashboard shows the name and role, and offers only what the role allows."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from skydriver_api.api_docs import error_responses
from skydriver_api.auth import CurrentPrincipal

router = APIRouter(prefix="/api/v1", tags=["tokens"])


class Identity(BaseModel):
    name: str = Field(description="The token's owner (scans it submits belong to this name)")
    role: Literal["reader", "submitter", "admin", "scan"]
    scan_id: str | None = Field(None, description="For a scan's system token: the only scan it reaches")
    may_submit: bool = Field(description="May submit scans, alerts, catalogs and rescans")
    may_manage_any: bool = Field(description="May abort and add workers to every scan, not only its own")


@router.get("/whoami", response_model=Identity, responses=error_responses(401))
async def whoami(principal: CurrentPrincipal) -> Identity:
    """The caller's name and role; never the token."""
    return Identity(
        name=principal.name,
        role=principal.role,
        scan_id=principal.scan_id,
        may_submit=principal.at_least("submitter"),
        may_manage_any=principal.role == "admin",
    )
