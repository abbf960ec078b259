"""Webhooks: POST the GCN-style summary of ended alert scans to the configured URL, retried with
backoff up to ``SKYDRIVER_ALERT_WEBHOOK_ATTEMPTS``; the outcome is recorded on the scan."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx

from skydriver_api.reconciler.context import Context
from skydriver_api.services.results import with_notice_context
from skyscan.physics.event import parse_event
from skyscan.records.scan import utcnow
from skyscan.skymap import exports


async def run(ctx: Context) -> None:
    for scan in await ctx.db.scans.webhooks_due(utcnow()):
        await send(ctx, scan)


async def payload_of(ctx: Context, scan: dict[str, Any]) -> dict[str, Any] | str:
    """The webhook body, or why there is none to send."""
    scan_id = scan["_id"]
    if scan["state"] != "completed":
        return {
            "scan_id": scan_id,
            "state": scan["state"],
            "reason": scan.get("state_reason"),
            "alert": scan.get("alert"),
            "gcn": None,
        }
    result = await ctx.db.skymaps.get(scan_id)
    event_doc = await ctx.db.events.get(scan_id)
    if result is None or event_doc is None:
        return "skipped: no stored result"
    try:
        notice = with_notice_context(result, scan, ctx.settings.gcn_healpix_base_url)
        gcn = await asyncio.to_thread(_render_gcn, notice, event_doc)
    except Exception as err:
        return f"skipped: cannot render the GCN summary: {err}"
    return {"scan_id": scan_id, "state": "completed", "alert": scan.get("alert"), "gcn": gcn}


async def send(ctx: Context, scan: dict[str, Any]) -> None:
    scan_id = scan["_id"]
    url = ctx.settings.alert_webhook_url
    if not url:
        await ctx.db.scans.webhook_done(scan_id, "skipped: no SKYDRIVER_ALERT_WEBHOOK_URL configured", 0)
        return
    payload = await payload_of(ctx, scan)
    if isinstance(payload, str):
        await ctx.db.scans.webhook_done(scan_id, payload, 0)
        return
    attempts = (scan.get("webhook") or {}).get("attempts", 0) + 1
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.post(
                url, content=json.dumps(payload, default=str), headers={"Content-Type": "application/json"}
            )
        resp.raise_for_status()
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        if attempts >= ctx.settings.alert_webhook_attempts:
            await ctx.db.scans.webhook_done(scan_id, f"failed after {attempts} attempts: {reason}", attempts)
            return
        next_at = utcnow() + dt.timedelta(seconds=ctx.retry_backoff.delay(attempts))
        await ctx.db.scans.webhook_retry(scan_id, attempts, reason, next_at)
        return
    await ctx.db.scans.webhook_done(scan_id, f"delivered (HTTP {resp.status_code})", attempts)


def _render_gcn(result: dict[str, Any], event_doc: dict[str, Any]) -> Any:
    return json.loads(exports.render(result, parse_event(event_doc), "gcn").content)
