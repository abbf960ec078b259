"""The worker: fetch the scan's event once, then fit task messages until the scan is over.

Delivery contract: manual acks; the results of every pixel of a task message are published (and
confirmed by the broker) before the message is acked, so a crash at any point loses nothing: at
worst a pixel is fitted twice and the server ignores the duplicate by task id. Results go out in
one message per task message, and earlier while a long fit runs, so a slow pixel does not hold
back the ones fitted before it.

A task message that comes back (``redelivered``: its worker died or was stopped) may hold a
pixel that kills workers; a batch that comes back is therefore not fitted but split into
single-pixel messages, so the delivery limit dead-letters only the poison pixel, alone.

Prefetch 2 by default: one message fitting, one waiting, which hides the broker round trip, while
a dead worker strands at most two messages and the tail of an nside step is not hoarded by a few
workers (the server makes the messages of a step's tail small).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import socket
import ssl
import time
from typing import Any

import httpx
import pika
import pika.exceptions

from skyinfra.backoff import Backoff
from skyscan.physics.recos.base import FitResult
from skyscan.wire import (
    MessageError,
    PixelResult,
    PixelTask,
    ResultBatch,
    TaskBatch,
    decode_tasks,
    encode,
    exchange_name,
    queue_names,
    signed_headers,
    verify,
)
from worker.fitter import FitInterrupted, Fitter
from worker.settings import WorkerSettings

log = logging.getLogger("skydriver.worker")
RECONNECT_BACKOFF = Backoff(initial_s=0.5, max_s=10.0)
# Results waiting this long while the next fit of their message runs are published before it ends.
RESULT_FLUSH_S = 1.0
PERSISTENT_JSON = {"delivery_mode": 2, "content_type": "application/json"}

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_QUARANTINED = 3
CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
)


class EventUnavailable(RuntimeError):
    pass


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The default verifying TLS context, made once per process (a warm worker makes it before its
    first scan): httpx would otherwise load the CA store on every request, 0.2-0.3 s of CPU."""
    return ssl.create_default_context()


def fetch_event(settings: WorkerSettings, scan_id: str, deadline_s: float = 120.0) -> dict[str, Any]:
    """GET the scan's event from the API with the scan's system token (retrying while the API is away)."""
    token = settings.read_scan_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{settings.api_url}/api/v1/scans/{scan_id}/event"
    waits, start = RECONNECT_BACKOFF.waits(), time.monotonic()
    while True:
        try:
            resp = httpx.get(url, headers=headers, timeout=30, verify=tls_context())
            if resp.status_code == 200:
                return resp.json()
            if resp.status_code in (401, 403, 404):
                raise EventUnavailable(f"API refused the event ({resp.status_code}): {resp.text[:300]}")
            reason = f"HTTP {resp.status_code}"
        except httpx.HTTPError as err:
            reason = str(err)
        if time.monotonic() - start > deadline_s:
            raise EventUnavailable(f"could not fetch the event from {url}: {reason}")
        delay = next(waits)
        log.warning("event not available yet (%s); retrying in %.1fs", reason, delay)
        time.sleep(delay)


class Worker:
    def __init__(self, settings: WorkerSettings, scan_id: str) -> None:
        self.settings = settings
        self.scan_id = scan_id
        self.queues = queue_names(scan_id)
        self.exchange = exchange_name(scan_id)
        self.key = settings.read_scan_key()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stop_requested = False
        self.consecutive_failures = 0
        self.fitted = 0
        self.conn: pika.BlockingConnection | None = None
        self.channel: Any = None
        self.unsent: list[PixelResult] = []  # results of the message being fitted, not yet published
        self.unsent_since = 0.0

    def request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    # -- connection --------------------------------------------------------------------------------
    def connect(self) -> None:
        params = pika.URLParameters(self.settings.broker_url())
        params.heartbeat = self.settings.rabbitmq_heartbeat_s
        params.blocked_connection_timeout = 60
        params.connection_attempts = 1
        self.conn = pika.BlockingConnection(params)
        self.channel = self.conn.channel()
        self.channel.basic_qos(prefetch_count=self.settings.worker_prefetch)
        self.channel.confirm_delivery()

    def wait_for_queue(self, deadline: float) -> bool:
        """The server declares the queues; wait (passively) until it has."""
        while time.monotonic() < deadline and not self.stop_requested:
            try:
                self.channel.queue_declare(self.queues["pixels"], passive=True)
                return True
            except pika.exceptions.ChannelClosedByBroker:
                self.channel = self.conn.channel()  # type: ignore[union-attr]
                self.channel.basic_qos(prefetch_count=self.settings.worker_prefetch)
                self.channel.confirm_delivery()
                self.conn.sleep(0.1)  # type: ignore[union-attr]
        return False

    def close(self) -> None:
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass

    # -- main loop -----------------------------------------------------------------------------------
    def run(self, fitter: Fitter | None = None) -> int:
        """Serve the scan; ``fitter`` may have been started already (a warm worker)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        own_fitter = fitter is None
        fitter = fitter or Fitter()
        fitter.start()  # its start-up overlaps with fetching the event and connecting
        try:
            event_doc = fetch_event(self.settings, self.scan_id)
        except EventUnavailable as err:
            log.error("%s", err)
            if own_fitter:
                fitter.close()
            return EXIT_ERROR
        fitter.use_event(event_doc["event"])
        idle_since = time.monotonic()
        waits = RECONNECT_BACKOFF.waits()
        try:
            while not self.stop_requested:
                try:
                    self.connect()
                    waits = RECONNECT_BACKOFF.waits()
                    if not self.wait_for_queue(idle_since + self.settings.worker_idle_timeout_s):
                        log.info("no task queue for this scan; exiting")
                        return EXIT_OK
                    outcome = self.consume(fitter)
                    if outcome is not None:
                        return outcome
                    idle_since = time.monotonic()
                except CONNECTION_ERRORS as err:
                    if time.monotonic() - idle_since > self.settings.worker_idle_timeout_s:
                        log.error("broker unreachable for too long (%s); exiting", err)
                        return EXIT_ERROR
                    delay = next(waits)
                    log.warning(
                        "broker connection lost (%s); reconnecting in %.1fs", type(err).__name__, delay
                    )
                    self.close()
                    time.sleep(delay)
            return EXIT_OK
        finally:
            if own_fitter:
                fitter.close()
            self.close()
            log.info("worker done: %d fits", self.fitted)

    def consume(self, fitter: Fitter) -> int | None:
        """Consume until the scan ends (queue deleted), idle timeout, stop or quarantine."""
        last_task = time.monotonic()
        for method, props, body in self.channel.consume(self.queues["pixels"], inactivity_timeout=0.5):
            if self.stop_requested:
                self.channel.cancel()
                return EXIT_OK
            if method is None:
                if time.monotonic() - last_task > self.settings.worker_idle_timeout_s:
                    log.info("idle for %.0f s; exiting", self.settings.worker_idle_timeout_s)
                    self.channel.cancel()
                    return EXIT_OK
                continue
            last_task = time.monotonic()
            outcome = self.handle(fitter, method.delivery_tag, method.redelivered, body, props.headers)
            if outcome is not None:
                return outcome
        log.info("the scan's task queue is gone (scan over); exiting")
        return EXIT_OK

    def handle(
        self, fitter: Fitter, tag: int, redelivered: bool, body: bytes, headers: dict[str, Any] | None = None
    ) -> int | None:
        try:
            verify(self.key, body, headers)  # not from the scan's server or workers: never fitted
            batch = decode_tasks(body)
            if batch.scan_id != self.scan_id:
                raise MessageError(f"task of scan {batch.scan_id!r}")
            if not self.settings.reco_enabled(batch.reco):  # dead-lettered: the server records it failed
                raise MessageError(f"reco {batch.reco!r} is not enabled on this worker")
        except MessageError as err:
            log.warning("rejecting a bad task message: %s", err)
            self.channel.basic_reject(tag, requeue=False)
            return None
        if redelivered and len(batch.tasks) > 1:
            for task in batch.tasks:
                self.publish_tasks(batch.with_tasks([task]))
            self.channel.basic_ack(tag)
            log.info("a batch of %d tasks came back; split it into single-pixel messages", len(batch.tasks))
            return None
        outcome, rest = self.fit_message(fitter, batch, body)
        self.publish_results()
        if rest:
            self.publish_tasks(batch.with_tasks(rest))
        self.channel.basic_ack(tag)
        if outcome is not None:
            self.channel.cancel()
        return outcome

    def fit_message(
        self, fitter: Fitter, batch: TaskBatch, body: bytes
    ) -> tuple[int | None, list[PixelTask]]:
        """Fit the message's pixels; returns (exit code or None, the tasks to hand back unfitted)."""
        fits = fitter.fit_batch(
            body,
            len(batch.tasks),
            self.settings.worker_pixel_timeout_s,
            self._tick,
            lambda: self.stop_requested,
        )
        try:
            for index, fit, runtime, error in fits:
                failed = self.collect(batch.tasks[index], fit, runtime, error)
                self.consecutive_failures = self.consecutive_failures + 1 if failed else 0
                if self.consecutive_failures >= self.settings.worker_max_consecutive_failures:
                    log.error(
                        "quarantined: %d consecutive failed fits; taking no more work",
                        self.consecutive_failures,
                    )
                    return EXIT_QUARANTINED, batch.tasks[index + 1 :]
        except FitInterrupted as stop:
            rest = batch.tasks[int(stop.args[0]) :]
            log.info(
                "stop requested during a fit; handing task %s back (%d tasks)", rest[0].task_id, len(rest)
            )
            return EXIT_OK, rest
        finally:
            fits.close()
        return None, []

    def collect(self, task: PixelTask, fit: FitResult | None, runtime: float, error: str | None) -> bool:
        """Keep one pixel's result for publication; returns whether the fit failed."""
        failed = fit is None or fit.failed
        if failed:
            log.warning("fit of %s failed: %s", task.task_id, error or "non-finite llh")
        if not self.unsent:
            self.unsent_since = time.monotonic()
        self.unsent.append(
            PixelResult(
                task_id=task.task_id,
                nside=task.nside,
                pixel=task.pixel,
                variation=task.variation,
                llh=None if failed or fit is None else fit.llh,
                status="failed" if failed else "ok",
                fit={
                    k: (v if v is not None and math.isfinite(v) else None)
                    for k, v in (fit.params if fit else {}).items()
                },
                error=(error or "fit failed")[:4000] if failed else None,
                runtime_s=runtime,
            )
        )
        self.fitted += 1
        return failed

    def publish_results(self) -> None:
        """Publish the unsent results in one message and wait for the broker's confirm."""
        if not self.unsent:
            return
        body = encode(ResultBatch(scan_id=self.scan_id, worker=self.name, results=self.unsent))
        self.channel.basic_publish(
            self.exchange,
            "results",
            body,
            pika.BasicProperties(
                message_id=self.unsent[0].task_id, headers=signed_headers(self.key, body), **PERSISTENT_JSON
            ),
            mandatory=True,
        )
        self.unsent = []

    def publish_tasks(self, batch: TaskBatch) -> None:
        """Hand tasks back to the scan's queue as a new message (confirmed before the old one is acked)."""
        body = encode(batch)
        self.channel.basic_publish(
            self.exchange,
            "pixels",
            body,
            pika.BasicProperties(
                message_id=batch.message_id, headers=signed_headers(self.key, body), **PERSISTENT_JSON
            ),
            mandatory=True,
        )

    def _tick(self) -> None:
        """Keep heartbeats and the socket serviced while a fit runs in the child; results that have
        waited long enough go out before the fit ends."""
        if self.conn is not None and self.conn.is_open:
            self.conn.process_data_events(time_limit=0)
            if self.unsent and time.monotonic() - self.unsent_since >= RESULT_FLUSH_S:
                self.publish_results()
