"""The alert listener: consume alert topics, store each alert, then commit its offset.

One message at a time, in partition order:

1. **received**: decoded (at most ``SKYDRIVER_MAX_EVENT_BYTES``, UTF-8 JSON, an object) and handed
   to the same ``services.alerts.submit`` as ``POST /api/v1/alerts``, so REST and Kafka accept the
   same documents (our alert JSON, i3live documents) and share one scan per (run, event, revision).
2. **stored**: the scan exists (created now, or found as the duplicate of an earlier copy), or the
   message is malformed and its rejection is recorded in ``alert_rejections`` (reason, topic,
   partition, offset) and republished on ``SKYDRIVER_KAFKA_DEAD_LETTER_TOPIC``.
3. **committed**: only now is the offset committed.

So a listener killed anywhere and restarted (or a partition moved to another listener of the group)
sees the message again: stored alerts come back as duplicates and recorded rejections as recorded,
and nothing is lost or doubled. Database errors are retried with backoff without committing; the
message is not skipped. ``observe(step, message)`` is told each step as it completes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skydriver_api.auth import Principal
from skydriver_api.services import alerts
from skydriver_api.services.errors import Conflict, ServiceError
from skydriver_api.services.policy import SubmissionPolicy, known_clusters
from skydriver_api.services.scans import ScanService
from skydriver_api.settings import ApiSettings
from skyinfra.backoff import Backoff, retry_async
from skyinfra.kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Publisher,
    client_config,
    consumer_config,
    make_consumer,
    redacted,
    resolve_target,
)
from skyinfra.store import Database, DatabaseError

log = logging.getLogger("skydriver.listener")

# alerts off a topic are submitted as this principal (realtime priority is what alerts get)
PRINCIPAL = Principal("kafka-listener", "submitter")
STORE_BACKOFF = Backoff(initial_s=0.5, max_s=10.0)
UNEXPECTED_ERROR_ATTEMPTS = 3
# Kafka's default largest message is 1 MB: a dead letter never exceeds half of it
DEAD_LETTER_MAX_BYTES = 512 * 1024
Observer = Callable[[str, Message], None]


class Malformed(Exception):
    """The message cannot be an alert; the text says why."""


def decode(value: bytes | None, limit: int) -> dict[str, Any]:
    """The alert document in a message value, or Malformed naming what is wrong with it."""
    if not value:
        raise Malformed("empty message")
    if len(value) > limit:
        raise Malformed(
            f"message of {len(value)} bytes exceeds the limit of {limit} (SKYDRIVER_MAX_EVENT_BYTES)",
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Malformed(f"not UTF-8 text: {err}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise Malformed(f"not JSON: {err}") from None
    if not isinstance(body, dict):
        raise Malformed(f"not a JSON object but a {type(body).__name__}")
    return body


@dataclass
class DeadLetters:
    """Where malformed messages are republished: the original bytes and key, with headers naming the
    reason and the original topic, partition and offset."""

    publisher: Publisher
    topic: str

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> DeadLetters | None:
        if not settings.kafka_dead_letter_topic:
            return None
        target = resolve_target(
            settings.kafka_dead_letter_topic, settings.kafka_bootstrap, "SKYDRIVER_KAFKA_DEAD_LETTER_TOPIC"
        )
        publisher = Publisher(client_config(settings, target), timeout_s=settings.kafka_notice_timeout_s)
        return cls(publisher, target.topic)

    def letter(self, msg: Message, reason: str) -> tuple[bytes, dict[str, str | bytes]]:
        """The value to republish (cut to what any broker takes) and the headers saying why."""
        value = msg.value() or b""
        headers: dict[str, str | bytes] = {
            "skydriver-reason": reason[:1000],
            "skydriver-topic": msg.topic() or "",
            "skydriver-partition": str(msg.partition()),
            "skydriver-offset": str(msg.offset()),
        }
        if len(value) > DEAD_LETTER_MAX_BYTES:
            headers["skydriver-truncated-from"] = str(len(value))
            value = value[:DEAD_LETTER_MAX_BYTES]
        return value, headers


def origin_of(msg: Message) -> dict[str, Any]:
    kind, timestamp_ms = msg.timestamp()
    return {
        "via": "kafka",
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp_ms": timestamp_ms if kind else None,
    }


class Listener:
    def __init__(
        self,
        service: ScanService,
        consumer: Consumer,
        dead_letters: DeadLetters | None = None,
        observe: Observer | None = None,
    ) -> None:
        self.service = service
        self.db: Database = service.db
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.observe = observe or (lambda step, msg: None)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            msg = await asyncio.to_thread(self.consumer.poll, 0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                self.broker_error(msg.error())
                continue
            await self.handle(msg)

    def broker_error(self, err: KafkaError) -> None:
        if err.fatal():
            raise KafkaException(err)
        log.warning("alert topics: %s", err.str())  # e.g. a topic not created yet; librdkafka retries

    async def handle(self, msg: Message) -> None:
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        self.observe("received", msg)
        await self.store(msg, where)
        self.observe("stored", msg)
        await self.commit(msg, where)
        self.observe("committed", msg)

    async def store(self, msg: Message, where: str) -> None:
        try:
            body = decode(msg.value(), self.service.settings.max_event_bytes)
        except Malformed as err:
            await self.reject(msg, str(err), where)
            return
        for attempt, delay in enumerate(STORE_BACKOFF.waits(), 1):
            try:
                outcome = await alerts.submit(self.service, body, PRINCIPAL, origin=origin_of(msg))
            except Conflict as err:  # a concurrent copy of the alert is being stored: look again
                log.info("alert at %s: %s", where, err.detail)
            except ServiceError as err:
                await self.reject(msg, err.detail, where)
                return
            except DatabaseError as err:
                log.warning("alert at %s: database unavailable, retrying in %.1f s: %s", where, delay, err)
            except Exception as err:  # not the message's fault as far as we know: a few more tries
                if attempt >= UNEXPECTED_ERROR_ATTEMPTS:
                    log.exception("alert at %s failed %d times; rejecting it", where, attempt)
                    await self.reject(msg, f"could not be stored: {type(err).__name__}: {err}", where)
                    return
                log.warning("alert at %s: %s: %s; retrying", where, type(err).__name__, err)
            else:
                log.info(
                    "alert %s at %s: %s scan %s",
                    alerts.alert_key(outcome.alert),
                    where,
                    "duplicate of" if outcome.duplicate else "new",
                    outcome.scan_id,
                    extra={"scan_id": outcome.scan_id},
                )
                return
            await asyncio.sleep(delay)

    async def reject(self, msg: Message, reason: str, where: str) -> None:
        """Record the rejection (once per message), then republish it as a dead letter (once)."""
        log.warning("rejected the message at %s: %s", where, reason)
        value = msg.value() or b""
        details = {"key": (msg.key() or b"").decode("utf-8", "replace")[:200], "size": len(value)}
        record = await retry_database(
            lambda: self.db.alert_rejections.record(
                msg.topic(), msg.partition(), msg.offset(), reason, details
            ),
        )
        if self.dead_letters is None or record.get("dead_letter") is not None:
            return
        dead = self.dead_letters
        letter, headers = dead.letter(msg, record["reason"])
        for delay in STORE_BACKOFF.waits():
            report = await asyncio.to_thread(
                dead.publisher.publish_and_wait, dead.topic, letter, msg.key(), headers
            )
            if report.ok:
                break
            log.warning("dead letter of %s not delivered, retrying in %.1f s: %s", where, delay, report.error)
            await asyncio.sleep(delay)
        placed = {"topic": report.topic, "partition": report.partition, "offset": report.offset}
        await retry_database(lambda: self.db.alert_rejections.dead_lettered(record["_id"], placed))

    async def commit(self, msg: Message, where: str) -> None:
        try:
            await asyncio.to_thread(self.consumer.commit, message=msg, asynchronous=False)
        except KafkaException as err:
            # The partition moved (rebalance) or the broker is away: the message comes again to
            # whoever holds the partition, which finds it stored. Nothing is lost by going on.
            log.warning("offset of %s not committed (%s); it will be seen again", where, err)


async def retry_database(op: Callable[[], Any]) -> Any:
    """Await ``op()`` until the database answers (the message waits; it is not skipped)."""
    return await retry_async("database write", op, (DatabaseError,), STORE_BACKOFF, log)


async def listen(settings: ApiSettings, stop: asyncio.Event, observe: Observer | None = None) -> None:
    """Run a listener until ``stop`` is set: join the consumer group, consume, store, commit."""
    target = resolve_target(
        settings.kafka_alert_topics, settings.kafka_bootstrap, "SKYDRIVER_KAFKA_ALERT_TOPICS"
    )
    config = consumer_config(settings, target)
    dead_letters = DeadLetters.from_settings(settings)
    db = Database(settings.mongodb_uri.get_secret_value(), settings.mongodb_database)
    consumer = make_consumer(config)
    try:
        await retry_database(lambda: db.ensure_indexes(settings.idempotency_key_ttl_s))
        log.info(
            "listening to %s (group %s) with %s",
            ", ".join(target.topics),
            settings.kafka_group_id,
            redacted(config),
        )
        consumer.subscribe(
            list(target.topics),
            on_assign=lambda _, parts: log.info("assigned %s", _partitions(parts)),
            on_revoke=lambda _, parts: log.info("revoked %s", _partitions(parts)),
        )
        # the reconciler polls for queued scans on its own: nothing to wake in this process
        policy = SubmissionPolicy(settings, known_clusters(settings, None))
        listener = Listener(ScanService(db, settings, policy, lambda: None), consumer, dead_letters, observe)
        await listener.run(stop)
    finally:
        await asyncio.to_thread(consumer.close)  # leaves the group: its partitions move at once
        if dead_letters is not None:
            dead_letters.publisher.flush(5)
        await db.close()


def _partitions(parts: list[Any]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in parts) or "nothing"
