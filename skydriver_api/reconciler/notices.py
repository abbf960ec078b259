"""Notices: publish the notice of each ended alert scan on ``SKYDRIVER_KAFKA_NOTICE_TOPIC``, keyed
by the alert identity; at least once, and never two different notices for one alert.

1. The first time an ended alert scan comes up, its notice is rendered (the webhook's body, GCN-style
   summary included, with a ``schema``) and stored on the scan (``notice.key``, ``notice.payload``)
   before anything is sent. A stored notice is never rendered again.
2. The stored bytes are produced without waiting on the broker; the delivery report is served on a
   later pass.
3. Delivered: the topic, partition and offset are recorded (``notice.published``) and the notice is
   done. Not delivered within ``SKYDRIVER_KAFKA_NOTICE_TIMEOUT_S`` (broker away): the attempt and its
   error are recorded and the same bytes go again after a backoff (2, 4, ... 60 s), until delivered.

A restart between 2 and 3 sends the stored bytes again: a consumer may see one notice twice (same
key, same content), never a second, different one.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from skydriver_api.reconciler.context import Context, log
from skydriver_api.reconciler.webhooks import payload_of
from skydriver_api.services.alerts import alert_key
from skydriver_api.settings import ApiSettings
from skyinfra.kafka import Delivery, Publisher, client_config, resolve_target
from skyscan.records.scan import utcnow

NOTICE_SCHEMA = "skydriver.notice/1"


@dataclass
class NoticeChannel:
    """The notice topic and the producer that publishes on it."""

    publisher: Publisher
    topic: str

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> NoticeChannel | None:
        if not settings.kafka_notice_topic:
            return None
        target = resolve_target(
            settings.kafka_notice_topic, settings.kafka_bootstrap, "SKYDRIVER_KAFKA_NOTICE_TOPIC"
        )
        publisher = Publisher(client_config(settings, target), timeout_s=settings.kafka_notice_timeout_s)
        return cls(publisher, target.topic)

    def close(self, timeout_s: float = 5.0) -> None:
        self.publisher.flush(timeout_s)


async def run(ctx: Context) -> None:
    channel = ctx.notices
    if channel is None:
        return
    for report in channel.publisher.deliveries():
        await settle(ctx, report)
    for scan in await ctx.db.scans.notices_due(utcnow()):
        if scan["_id"] not in channel.publisher.in_flight:
            await publish(ctx, channel, scan)


def render(body: dict[str, Any]) -> str:
    return json.dumps({"schema": NOTICE_SCHEMA, **body}, default=str, sort_keys=True)


async def publish(ctx: Context, channel: NoticeChannel, scan: dict[str, Any]) -> None:
    scan_id = scan["_id"]
    notice = scan.get("notice") or {}
    if "payload" not in notice:
        body = await payload_of(ctx, scan)
        if isinstance(body, str):
            await ctx.db.scans.notice_skipped(scan_id, body)
            return
        notice = await ctx.db.scans.notice_prepared(scan_id, alert_key(scan["alert"]), render(body))
    channel.publisher.produce(
        scan_id,
        channel.topic,
        notice["payload"].encode(),
        key=notice["key"].encode(),
        headers={"skydriver-scan-id": scan_id, "skydriver-schema": NOTICE_SCHEMA},
    )


async def settle(ctx: Context, report: Delivery) -> None:
    scan_id = report.token
    scan = await ctx.db.scans.get(scan_id, {"notice": 1})
    attempts = ((scan or {}).get("notice") or {}).get("attempts", 0) + 1
    if report.ok:
        where = {"topic": report.topic, "partition": report.partition, "offset": report.offset}
        await ctx.db.scans.notice_published(scan_id, where, attempts)
        log.info("published the notice of %s at %s", scan_id, where, extra={"scan_id": scan_id})
        return
    delay = ctx.retry_backoff.delay(attempts)
    log.warning(
        "notice of %s not delivered (attempt %d), retrying in %.0f s: %s",
        scan_id,
        attempts,
        delay,
        report.error,
        extra={"scan_id": scan_id},
    )
    next_at = utcnow() + dt.timedelta(seconds=delay)
    await ctx.db.scans.notice_retry(scan_id, attempts, report.error or "not delivered", next_at)
