"""The FastAPI application: settings, store, reconciler and routers wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from skydriver_api import api_docs, metrics
from skydriver_api.body_limit import BodyLimitMiddleware
from skydriver_api.launchers import Launcher, make_launcher
from skydriver_api.launchers.registry import launcher_class
from skydriver_api.readiness import Readiness
from skydriver_api.reconciler.loop import ReconcilerThread
from skydriver_api.routers import alerts, backlog, catalogs, dashboard, ops, scans, tokens, whoami
from skydriver_api.services.errors import ServiceError
from skydriver_api.services.policy import SubmissionPolicy, known_clusters
from skydriver_api.settings import ApiSettings, get_settings
from skyinfra.store import Database, DatabaseError, hash_token
from skyscan.physics.event import format_validation_error

log = logging.getLogger("skydriver.api")


def create_app(
    settings: ApiSettings | None = None, launcher: Launcher | None = None, reconcile: bool = True
) -> FastAPI:
    settings = settings or get_settings()
    if launcher is None:
        launcher_class(settings.launcher)  # a misspelt SKYDRIVER_LAUNCHER fails here, naming the known ones

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.mongodb_uri.get_secret_value(), settings.mongodb_database)
        app.state.db = db
        try:
            await db.ensure_indexes(settings.idempotency_key_ttl_s)
        except DatabaseError as err:  # start anyway; /readyz reports it and requests get 503
            log.warning("could not ensure indexes (database unavailable?): %s", err)
        chosen = launcher or make_launcher(settings)
        app.state.policy = SubmissionPolicy(settings, known_clusters(settings, chosen.cluster_names()))
        app.state.reconciler = ReconcilerThread(settings, chosen)
        app.state.readiness = Readiness(settings)
        app.state.metrics = metrics.MetricsSnapshot(db, settings, settings.metrics_refresh_s)
        refreshing = asyncio.create_task(app.state.metrics.run(), name="metrics")
        if reconcile:
            app.state.reconciler.start()
        try:
            yield
        finally:
            refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refreshing
            await app.state.reconciler.stop()
            app.state.readiness.close()
            await db.close()

    app = FastAPI(
        title="SkyDriver",
        version="0.1.0",
        description="Launch and follow HEALPix likelihood scans of neutrino events.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.cursor_key = (
        settings.cursor_secret.get_secret_value().encode()
        if settings.cursor_secret
        else secrets.token_bytes(32)
    )
    app.state.admin_token_hash = (
        hash_token(settings.admin_token.get_secret_value()) if settings.admin_token else None
    )

    @app.exception_handler(ServiceError)
    async def service_refused(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DatabaseError)
    async def database_unavailable(request: Request, exc: DatabaseError) -> JSONResponse:
        log.warning("database error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(
            {"detail": "the database is unavailable; nothing was changed, retry in a few seconds"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:10]) + (
            f"; ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        )
        return JSONResponse(
            {"detail": message or "invalid request", "errors": _jsonable(errors[:50])}, status_code=422
        )

    # pure ASGI middlewares (a fraction of the cost per request of Starlette's BaseHTTPMiddleware):
    # the body limit wraps every route (it holds for the bytes they read, whatever the headers say),
    # the request metrics wrap it (so they count its 413s too)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_event_bytes)
    app.add_middleware(metrics.RequestMetricsMiddleware)
    app.include_router(ops.router)
    app.include_router(scans.router)
    for extra in (alerts, catalogs, backlog, tokens, whoami):
        app.include_router(extra.router)
    dashboard.install(app)
    generate_openapi = app.openapi
    app.openapi = lambda: api_docs.as_openapi_31(generate_openapi())  # type: ignore[method-assign]
    return app


def _jsonable(errors: list[dict]) -> list[dict]:
    out = []
    for e in errors:
        item = {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg")),
            "type": str(e.get("type")),
        }
        out.append(item)
    return out


__all__ = ["create_app", "format_validation_error"]
