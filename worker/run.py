"""The worker: fetch the scan's event once, then fit pixel tasks until the scan is over.

Delivery contract: manual acks; the result is published (and confirmed by the broker) before the
task is acked, so a crash at any point loses nothing: at worst the task is fitted twice and the
server ignores the duplicate by task id.

Prefetch 2 by default: one task fitting, one waiting, which hides the broker round trip for fast
fits, while a dead worker strands at most two tasks and the tail of an nside step is not hoarded
by a few workers.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import time
from typing import Any

import httpx
import pika
import pika.exceptions

from skyinfra.backoff import Backoff
from skyscan.wire import MessageError, PixelResult, decode_task, encode, queue_names
from worker.fitter import FitInterrupted, Fitter, FitTimeout
from worker.settings import WorkerSettings

log = logging.getLogger("skydriver.worker")
RECONNECT_BACKOFF = Backoff(initial_s=0.5, max_s=10.0)

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


def fetch_event(settings: WorkerSettings, scan_id: str, deadline_s: float = 120.0) -> dict[str, Any]:
    """GET the scan's event from the API with the scan's system token (retrying while the API is away)."""
    token = settings.read_scan_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{settings.api_url}/api/v1/scans/{scan_id}/event"
    waits, start = RECONNECT_BACKOFF.waits(), time.monotonic()
    while True:
        try:
            resp = httpx.get(url, headers=headers, timeout=30)
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
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stop_requested = False
        self.consecutive_failures = 0
        self.fitted = 0
        self.conn: pika.BlockingConnection | None = None
        self.channel: Any = None

    def request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    # -- connection --------------------------------------------------------------------------------
    def connect(self) -> None:
        params = pika.URLParameters(self.settings.rabbitmq_url.get_secret_value())
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
                self.conn.sleep(0.5)  # type: ignore[union-attr]
        return False

    def close(self) -> None:
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass

    # -- main loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        try:
            event_doc = fetch_event(self.settings, self.scan_id)
        except EventUnavailable as err:
            log.error("%s", err)
            return EXIT_ERROR
        fitter = Fitter(event_doc["event"])
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
            fitter.close()
            self.close()
            log.info("worker done: %d fits", self.fitted)

    def consume(self, fitter: Fitter) -> int | None:
        """Consume until the scan ends (queue deleted), idle timeout, stop or quarantine."""
        last_task = time.monotonic()
        for method, _props, body in self.channel.consume(self.queues["pixels"], inactivity_timeout=0.5):
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
            outcome = self.handle(fitter, method.delivery_tag, body)
            if outcome is not None:
                return outcome
        log.info("the scan's task queue is gone (scan over); exiting")
        return EXIT_OK

    def handle(self, fitter: Fitter, tag: int, body: bytes) -> int | None:
        try:
            task = decode_task(body)
            if task.scan_id != self.scan_id:
                raise MessageError(f"task of scan {task.scan_id!r}")
            if not self.settings.reco_enabled(task.reco):  # dead-lettered: the server records it failed
                raise MessageError(f"reco {task.reco!r} is not enabled on this worker")
        except MessageError as err:
            log.warning("rejecting a bad task message: %s", err)
            self.channel.basic_reject(tag, requeue=False)
            return None
        try:
            fit, runtime = fitter.fit(
                task, self.settings.worker_pixel_timeout_s, self._tick, lambda: self.stop_requested
            )
        except FitInterrupted:
            log.info("stop requested during a fit; handing task %s back", task.task_id)
            self.channel.basic_nack(tag, requeue=True)
            self.channel.cancel()
            return EXIT_OK
        except FitTimeout as err:
            fit, runtime = None, self.settings.worker_pixel_timeout_s
            error = str(err)
        except EOFError:
            fit, runtime, error = None, 0.0, "the fit process died (crash or out of memory)"
        else:
            error = fit.error
        failed = fit is None or fit.failed
        if failed:
            log.warning("fit of %s failed: %s", task.task_id, error or "non-finite llh")
        result = PixelResult(
            task_id=task.task_id,
            scan_id=self.scan_id,
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
            worker=self.name,
        )
        self.channel.basic_publish(
            "",
            self.queues["results"],
            encode(result),
            pika.BasicProperties(delivery_mode=2, content_type="application/json", message_id=task.task_id),
            mandatory=True,
        )
        self.channel.basic_ack(tag)
        self.fitted += 1
        self.consecutive_failures = self.consecutive_failures + 1 if failed else 0
        if self.consecutive_failures >= self.settings.worker_max_consecutive_failures:
            log.error(
                "quarantined: %d consecutive failed fits; taking no more work", self.consecutive_failures
            )
            self.channel.cancel()
            return EXIT_QUARANTINED
        return None

    def _tick(self) -> None:
        """Keep heartbeats and the socket serviced while a fit runs in the child."""
        if self.conn is not None and self.conn.is_open:
            self.conn.process_data_events(time_limit=0)
