"""What routes get injected: the database, the settings, and the services built on them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from skydriver_api.services.scans import ScanService
from skydriver_api.settings import ApiSettings
from skyinfra.store import Database


def get_database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_api_settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_cursor_key(request: Request) -> bytes:
    return request.app.state.cursor_key  # type: ignore[no-any-return]


def get_scan_service(request: Request) -> ScanService:
    state = request.app.state
    return ScanService(state.db, state.settings, state.policy, state.reconciler.wake)


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]
ScanServiceDep = Annotated[ScanService, Depends(get_scan_service)]
CursorKeyDep = Annotated[bytes, Depends(get_cursor_key)]
