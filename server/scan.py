"""The per-scan server: drives the refinement state machine over RabbitMQ and MongoDB.

Resumable: on start it reloads every stored pixel result of the scan id and publishes only what is
missing. Idempotent: it never writes a result for a task it knows is answered (a redelivered result
changes nothing), and each flush is one bundle of results whose retried write is a no-op
(``skyinfra.store.pixel_results``).
Robust: broker and database outages are retried with backoff; malformed or foreign messages are
rejected to the dead-letter queue and counted; task messages that exceed the delivery limit come
back through the dead-letter queue: a batch is split into single-pixel messages (so a poison pixel
is isolated), a single pixel is recorded as failed.

Batched and lazy: a task message carries several pixels (``server.batching``: the size follows the
measured fit time) and only a window of pixels is outstanding at once; the rest of a step waits in
the server as a plan and is published as results come back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from server.amqp import AsyncBroker, BrokerLost, Delivery
from server.batching import BatchPolicy, BatchSizer
from server.settings import ServerSettings
from skyinfra.backoff import Backoff, retry_async
from skyinfra.store import Database, DatabaseError
from skyscan.physics.event import parse_event
from skyscan.records.pixel_result import PixelResultRecord
from skyscan.records.scan import TERMINAL_STATES, utcnow
from skyscan.records.spec import ScanSpec
from skyscan.refinement.drive import llh_at_truth
from skyscan.refinement.state import Refinement, TaskPlan, TaskSpec
from skyscan.skymap.assembly import best_fit_summary, build_result
from skyscan.wire import (
    Direction,
    MessageError,
    PixelResult,
    PixelTask,
    TaskBatch,
    Vertex,
    decode_results,
    decode_tasks,
    encode,
    exchange_name,
    queue_names,
    task_id,
    verify,
)

log = logging.getLogger("skydriver.server")

DB_BACKOFF = Backoff(initial_s=0.2, max_s=5.0)
RECONNECT_BACKOFF = Backoff(initial_s=0.5, max_s=10.0)
QUEUE_DELETE_BACKOFF = Backoff(initial_s=1.0, max_s=10.0)

T = TypeVar("T")
RESULT_PREFETCH = 128  # result messages (each of up to a batch of results) delivered unacked


class ScanEnded(Exception):
    """The scan was aborted or failed from outside; stop without touching its state."""


class ScanServer:
    def __init__(self, settings: ServerSettings, scan_id: str) -> None:
        self.settings = settings
        self.scan_id = scan_id
        self.queues = queue_names(scan_id)
        self.db = Database(
            settings.mongodb_uri.get_secret_value(),
            settings.mongodb_database,
            server_selection_timeout_ms=5000,
        )
        self.key = settings.read_scan_key()
        self.broker = AsyncBroker(
            settings.broker_url(),
            settings.rabbitmq_heartbeat_s,
            settings.publish_window,
            exchange_name(scan_id),
            self.key,
        )
        # published and unanswered: task id -> (the task, when it was last published)
        self.outstanding: dict[str, tuple[PixelTask, float]] = {}
        self.plans: deque[TaskPlan] = deque()  # planned, not yet published (published lazily)
        self.resend: list[PixelTask] = []  # outstanding for too long: publish again, same ids
        self.singles: list[PixelTask] = []  # from dead-lettered batches: one message each
        self.unconfirmed: list[tuple[str, bytes, list[PixelTask]]] = []  # built, not yet confirmed
        self.workers_seen: set[str] = set()
        self.counters: dict[str, int] = {
            "unsigned": 0,  # no valid signature under the scan's key: not from its server or workers
            "malformed": 0,
            "foreign": 0,
            "unexpected": 0,
            "duplicates": 0,
            "dead_lettered": 0,
            "split": 0,
            "republished": 0,
            "answered_unpublished": 0,
        }
        self.messages_published = 0
        self.published = 0
        self._rate: float | None = None
        self._rate_mark = (time.monotonic(), 0)

    # -- retries ---------------------------------------------------------------------------------
    async def db_retry(self, what: str, op: Callable[[], Awaitable[T]], max_wait_s: float = 600.0) -> T:
        """Retry a database operation with backoff; MongoDB restarts must not lose anything."""
        return await retry_async(what, op, (DatabaseError,), DB_BACKOFF, log, max_wait_s)

    # -- main ------------------------------------------------------------------------------------
    async def run(self) -> int:
        scan = await self.db_retry("load scan", lambda: self.db.scans.get(self.scan_id))
        if scan is None:
            log.error("no scan with id %s", self.scan_id)
            return 2
        if scan["state"] in TERMINAL_STATES:
            log.info("scan already %s; nothing to do", scan["state"])
            return 0
        await self.db_retry("ensure indexes", self.ensure_indexes)
        event_doc = await self.db_retry("load event", lambda: self.db.events.get(self.scan_id))
        self.scan = scan
        self.spec = ScanSpec.from_doc(scan)
        self.event = parse_event(event_doc)
        self.strategy = self.spec.build_strategy(event=self.event)
        self.ref = Refinement(self.strategy, scan["n_variations"], self.event.mjd)
        stored = await self.db_retry("load results", self._stored_results)
        self.ref.restore(stored)
        self.sizer = BatchSizer(self.batch_policy(), int(scan.get("workers") or 1))
        self.add_plan()
        if stored:
            log.info("resuming: %d stored results, %d tasks to publish", len(stored), self.unpublished)
        await self.set_running(len(stored))
        try:
            await self.drive()
        except ScanEnded as ended:
            log.info("stopping: %s", ended)
            return 0
        finally:
            await self.broker.close()
        await self.finish()
        return 0

    def batch_policy(self) -> BatchPolicy:
        s = self.settings
        return BatchPolicy(
            target_message_s=s.batch_target_s,
            max_batch=s.batch_max_pixels,
            messages_per_worker=s.batch_messages_per_worker,
            max_outstanding=s.max_outstanding_tasks,
        )

    async def ensure_indexes(self) -> None:
        """Unique indexes that make writes idempotent (the API creates them too; no-ops if present)."""
        await self.db.pixel_results.ensure_indexes()
        await self.db.skymaps.ensure_indexes()

    async def _stored_results(self) -> list[Any]:
        return [r.to_variation_result() for r in await self.db.pixel_results.for_scan(self.scan_id)]

    async def set_running(self, n_stored: int) -> None:
        now = utcnow()
        server = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": now,
            "resumed_results": n_stored,
        }
        self.run_started = now
        started = await self.db_retry(
            "mark running",
            lambda: self.db.scans.transition(
                self.scan_id, "running", from_states=("queued", "launching"), set_fields={"server": server}
            ),
        )
        # a replacement server: the scan is running already
        if started is None and not await self.db_retry(
            "mark running", lambda: self.db.scans.set_server(self.scan_id, server)
        ):
            raise ScanEnded("the scan is no longer active")

    # -- broker loop -----------------------------------------------------------------------------
    async def drive(self) -> None:
        waits = RECONNECT_BACKOFF.waits()
        while not self.ref.finished:
            try:
                await self.connect()
                waits = RECONNECT_BACKOFF.waits()
                await self.publish_pending()
                await self.consume_until_done()
            except BrokerLost as err:
                delay = next(waits)
                log.warning("broker connection lost (%s); reconnecting in %.1fs", err, delay)
                await self.broker.close()
                await asyncio.sleep(delay)

    async def connect(self) -> None:
        await self.broker.connect()
        limit = {
            "x-delivery-limit": self.settings.delivery_limit,
            "x-overflow": "reject-publish",
            "x-dead-letter-strategy": "at-least-once",
            "x-dead-letter-exchange": self.broker.exchange,
        }
        await self.broker.declare_exchange()
        await self.broker.declare_quorum(self.queues["dead"], {})
        await self.broker.declare_quorum(self.queues["rejected"], {})
        await self.broker.declare_quorum(
            self.queues["pixels"], {**limit, "x-dead-letter-routing-key": "dead"}
        )
        await self.broker.declare_quorum(
            self.queues["results"], {**limit, "x-dead-letter-routing-key": "rejected"}
        )
        for kind, name in self.queues.items():  # the routing key of each queue is its kind
            await self.broker.bind(name, kind)
        while not self.broker.deliveries.empty():  # tags of a dead connection mean nothing now
            self.broker.deliveries.get_nowait()
        await self.broker.set_prefetch(RESULT_PREFETCH)
        await self.broker.consume(self.queues["results"])
        await self.broker.consume(self.queues["dead"])

    def _wire_task(self, spec: TaskSpec) -> PixelTask:
        # Built from the server's own plan (healpy directions, finite seeds): constructed without
        # validation, which was a third of the server's CPU per pixel; workers validate what they get.
        return PixelTask.model_construct(
            task_id=task_id(self.scan_id, spec.nside, spec.pixel, spec.variation),
            nside=spec.nside,
            pixel=spec.pixel,
            variation=spec.variation,
            direction=Direction.model_construct(
                ra=spec.ra, dec=spec.dec, zenith=spec.zenith, azimuth=spec.azimuth
            ),
            seed=Vertex.model_construct(**spec.seed) if spec.seed else None,
        )

    def _message(self, tasks: list[PixelTask]) -> tuple[str, bytes, list[PixelTask]]:
        batch = TaskBatch(
            scan_id=self.scan_id, reco=self.spec.reco, options=self.spec.reco_options, tasks=tasks
        )
        return batch.message_id, encode(batch), tasks

    def add_plan(self) -> None:
        plan = self.ref.next_plan()
        if plan:
            self.plans.append(plan)

    @property
    def unpublished(self) -> int:
        return sum(len(plan) for plan in self.plans)

    def _take(self, n: int) -> list[TaskSpec]:
        while self.plans and not self.plans[0]:
            self.plans.popleft()
        return self.plans[0].take(n) if self.plans else []

    def _build_messages(self) -> None:
        """Fill the outstanding window: dead batches' pixels and stale tasks one by one, then the plan."""
        built = self.unconfirmed
        # A stale task (no result in redeliver_after_s) goes out alone: it may be the one that hangs
        # or kills its worker, and in a batch it would hold back every batch-mate by a timeout
        # and a fit-process restart each time it came round.
        built.extend(self._message([t]) for t in (*self.singles, *self.resend))
        self.singles, self.resend = [], []
        in_flight = len(self.outstanding) + sum(len(m[2]) for m in built)
        while unpublished := self.unpublished:
            size = self.sizer.batch_size(unpublished)
            if in_flight + size > self.sizer.window(size):
                break
            chunk: list[PixelTask] = []
            for spec in self._take(size):
                if self.ref.is_open(spec.nside, spec.pixel, spec.variation):
                    chunk.append(self._wire_task(spec))
                else:  # answered already, by a task a previous server published (resume)
                    self.counters["answered_unpublished"] += 1
            if chunk:
                built.append(self._message(chunk))
                in_flight += len(chunk)

    async def publish_pending(self) -> None:
        self._build_messages()
        if not self.unconfirmed:
            return
        batch = self.unconfirmed
        await self.broker.publish_many("pixels", [(mid, body) for mid, body, _ in batch])
        now = time.monotonic()
        for _mid, _body, tasks in batch:
            for task in tasks:
                self.outstanding[task.task_id] = (task, now)
            self.published += len(tasks)
        if not self.messages_published:
            await self.db_retry(
                "mark first dispatch", lambda: self.db.scans.mark_first_dispatch(self.scan_id)
            )
        self.messages_published += len(batch)
        self.unconfirmed = []

    async def consume_until_done(self) -> None:
        batch: list[tuple[Delivery, list[PixelResult], str]] = []
        n_results = 0
        batch_started = 0.0
        next_housekeeping = time.monotonic() + 2.0
        closed = asyncio.ensure_future(self.broker.wait_closed())
        try:
            while not self.ref.finished:
                wait = self.settings.result_batch_wait_s if batch else 1.0
                getter = asyncio.ensure_future(self.broker.deliveries.get())
                done, _ = await asyncio.wait(
                    [getter, closed], timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if closed in done:
                    getter.cancel()
                    closed.result()  # raises BrokerLost
                if getter in done:
                    delivery = getter.result()
                    taken = self.take(delivery)
                    if taken is not None:
                        if not batch:
                            batch_started = time.monotonic()
                        batch.append((delivery, *taken))
                        n_results += len(taken[0])
                else:
                    getter.cancel()
                if batch and (
                    n_results >= self.settings.result_batch
                    or not done
                    or time.monotonic() - batch_started >= self.settings.result_batch_wait_s
                    or self.broker.deliveries.empty()
                ):
                    await self.flush(batch)
                    batch, n_results = [], 0
                if time.monotonic() >= next_housekeeping:
                    await self.housekeeping()
                    next_housekeeping = time.monotonic() + 2.0
        finally:
            closed.cancel()
        if batch:
            await self.flush(batch)

    def take(self, delivery: Delivery) -> tuple[list[PixelResult], str] | None:
        """Decode one delivery into (results, worker); reject (dead-letter) and count what does not belong.

        A result message is taken or rejected whole: one foreign or unexpected pixel makes the
        whole message suspect.
        """
        if not self.signed(delivery):
            return None
        if delivery.queue == self.queues["dead"]:
            return self.take_dead_letter(delivery)
        try:
            message = decode_results(delivery.body)
            if message.scan_id != self.scan_id:
                raise MessageError(f"result for scan {message.scan_id!r}")
            for result in message.results:
                key = (result.nside, result.pixel)
                if (key not in self.ref.pending and key not in self.ref.complete) or not (
                    0 <= result.variation < self.ref.n_variations
                ):
                    raise MessageError(f"unexpected result for pixel {key} that this scan never sent")
        except MessageError as err:
            kind = (
                "foreign"
                if "result for scan" in str(err)
                else ("unexpected" if "never sent" in str(err) else "malformed")
            )
            self.counters[kind] += 1
            log.warning("rejected a %s message on the results queue: %s", kind, err)
            self.broker.reject(delivery)
            return None
        if message.worker not in self.workers_seen:
            self.workers_seen.add(message.worker)
            self.sizer.saw_workers(len(self.workers_seen))
        fitted = [r for r in message.results if r.status == "ok"]
        self.sizer.observe(sum(r.runtime_s for r in fitted), len(fitted))
        return message.results, message.worker

    def signed(self, delivery: Delivery) -> bool:
        """Whether a holder of the scan's key sent this; anything else is rejected and counted (a
        forged result must never move the best fit, nor make the genuine one a duplicate)."""
        try:
            verify(self.key, delivery.body, delivery.headers)
        except MessageError as err:
            self.counters["unsigned"] += 1
            log.warning("rejected a message on %s: %s", delivery.queue, err)
            if delivery.queue == self.queues["dead"]:
                self.broker.ack(delivery)  # a dead letter has nowhere further to go
            else:
                self.broker.reject(delivery)
            return False
        return True

    def take_dead_letter(self, delivery: Delivery) -> tuple[list[PixelResult], str] | None:
        """A task message that exceeded the delivery limit.

        A batch is split: each of its pixels goes out again in a message of its own (acked once
        those are published), so only the pixel that kills workers is dead-lettered in the end. A
        single pixel is recorded as failed.
        """
        try:
            batch = decode_tasks(delivery.body)
            if batch.scan_id != self.scan_id:
                raise MessageError("foreign task")
        except MessageError as err:
            log.warning("dropping an unreadable dead-lettered message: %s", err)
            self.broker.ack(delivery)
            return None
        if len(batch.tasks) > 1:
            self.counters["split"] += 1
            log.warning("a batch of %d tasks was dead-lettered; retrying each alone", len(batch.tasks))
            self.singles.extend(batch.tasks)
            return [], "server:dead-letter"
        task = batch.tasks[0]
        self.counters["dead_lettered"] += 1
        log.warning("task %s exceeded the delivery limit; marking it failed", task.task_id)
        failed = PixelResult(
            task_id=task.task_id,
            nside=task.nside,
            pixel=task.pixel,
            variation=task.variation,
            llh=None,
            status="failed",
            error=f"poison task: dead-lettered after {self.settings.delivery_limit} deliveries "
            "(worker crashes?)",
        )
        return [failed], "server:dead-letter"

    async def flush(self, batch: list[tuple[Delivery, list[PixelResult], str]]) -> None:
        """Store, record, publish what the results unlock, then ack: nothing is acked unstored."""
        now = utcnow()
        records: list[PixelResultRecord] = []
        fresh: set[str] = set()
        for _, results, worker in batch:
            for r in results:
                if r.task_id in fresh or not self.ref.is_open(r.nside, r.pixel, r.variation):
                    self.counters["duplicates"] += 1  # answered already: not even written
                    continue
                fresh.add(r.task_id)
                records.append(PixelResultRecord.from_wire(r, self.scan_id, worker, now))
        bundle = self.db.pixel_results.bundle(records)  # made once: a retried write is the same bundle
        if bundle is not None:
            await self.db_retry("store results", lambda: self.db.pixel_results.store(bundle))
        self.ref.record_many([record.to_variation_result() for record in records])
        for record in records:
            self.outstanding.pop(record.task_id, None)
        self.add_plan()
        await self.publish_pending()
        for delivery in _last_per_queue(batch):
            self.broker.ack(delivery, multiple=True)

    async def housekeeping(self) -> None:
        state = await self.db_retry("check state", lambda: self.db.scans.state_of(self.scan_id))
        if state is None or state in TERMINAL_STATES:
            raise ScanEnded(f"scan is {state or 'gone'}")
        self.republish_stale()
        await self.publish_pending()
        await self.save_progress()

    def republish_stale(self) -> None:
        """Tasks sent long ago with no result are published again under the same id."""
        now = time.monotonic()
        for tid, (task, sent) in list(self.outstanding.items()):
            if now - sent > self.settings.redeliver_after_s:
                self.resend.append(task)
                self.outstanding[tid] = (task, now)
                self.counters["republished"] += 1

    def progress_doc(self) -> dict[str, Any]:
        per_nside = self.ref.progress_dict()
        sent = sum(p["tasks_sent"] for p in per_nside.values())
        done = sum(p["tasks_done"] for p in per_nside.values())
        now = time.monotonic()
        t0, n0 = self._rate_mark
        if now - t0 >= 1.0:
            inst = (done - n0) / (now - t0)
            self._rate = inst if self._rate is None else 0.5 * self._rate + 0.5 * inst
            self._rate_mark = (now, done)
        remaining = 0 if self.ref.finished else max(self.estimated_total_tasks() - done, sent - done)
        eta = remaining / self._rate if self._rate else None
        return {
            "nsides": per_nside,
            "tasks_sent": sent,
            "tasks_done": done,
            "rate_per_s": self._rate,
            "eta_s": eta,
            "updated_at": utcnow(),
        }

    def estimated_total_tasks(self) -> int:
        steps = getattr(self.strategy, "steps", None)
        if not steps:
            return 0
        total = 12 * steps[0].nside ** 2
        for coarse, fine in zip(steps, steps[1:], strict=False):
            total += fine.extension * (fine.nside // coarse.nside) ** 2
        return total * self.ref.n_variations

    async def save_progress(self) -> None:
        update: dict[str, Any] = {"progress": self.progress_doc(), "counters": self.counters}
        best = self.ref.best()
        if best is not None:
            update["best_fit"] = best_fit_summary(best, self.event.mjd)
        update["server.published"] = self.published
        update["server.messages_published"] = self.messages_published
        update["server.batch_size"] = self.sizer.batch_size(self.unpublished)
        update["server.fit_ms"] = None if self.sizer.fit_s is None else 1000 * self.sizer.fit_s
        await self.db_retry("save progress", lambda: self.db.scans.save_progress(self.scan_id, update))

    # -- the end -----------------------------------------------------------------------------------
    async def finish(self) -> None:
        best = self.ref.best()
        llh_truth = None
        if best is not None and self.event.truth is not None:
            llh_truth = await asyncio.to_thread(self.fit_truth)
        doc = build_result(
            scan_id=self.scan_id,
            event=self.event,
            reco=self.spec.reco,
            strategy=self.strategy.describe(),
            nsides=self.strategy.nsides,
            complete=self.ref.complete,
            finished=True,
            llh_at_truth=llh_truth,
            level_set=self.spec.level_set_for(self.event),
        )
        await self.db_retry("store skymap", lambda: self.store_final(doc))
        n_failed = doc["n_failed_pixels"]
        if best is None:
            state, reason = "failed", "every pixel fit failed"
        elif n_failed and self.settings.failed_pixel_policy == "fail":
            state, reason = "failed", f"{n_failed} pixels failed (policy: fail)"
        else:
            state, reason = "completed", (f"completed with {n_failed} failed pixels" if n_failed else None)
        await self.save_progress()
        done = {"failed_pixels": n_failed, "best_fit": doc["best_fit"], "completed_at": utcnow()}
        await self.db_retry(
            "mark done",
            lambda: self.db.scans.transition(
                self.scan_id, state, from_states=("running",), reason=reason, set_fields=done
            ),
        )
        await self.delete_queues()
        log.info("scan %s: %d pixels, best %s", state, doc["n_pixels"], doc["best_fit"])

    async def store_final(self, doc: dict[str, Any]) -> None:
        """Write the final skymap once; a late writer (a second server) can never replace it."""
        if not await self.db.skymaps.store_final(self.scan_id, doc):
            log.warning("a final skymap exists already; keeping it")

    def fit_truth(self) -> float | None:
        """-lnL at the simulated truth (for the result's ``truth.delta_2llh``), as the local scan does it."""
        reco = self.spec.build_reco()
        return llh_at_truth(reco, reco.prepare(self.event), self.event, self.ref)

    async def delete_queues(self) -> None:
        for attempt in range(5):
            try:
                if not self.broker.connected:
                    await self.broker.connect()
                for name in self.queues.values():
                    await self.broker.delete_queue(name)
                await self.broker.delete_exchange()
                return
            except BrokerLost as err:
                log.warning("could not delete queues yet (%s)", err)
                await asyncio.sleep(QUEUE_DELETE_BACKOFF.delay(attempt))
        log.error("queues of %s were not deleted; the reconciler's clean-up will retry", self.scan_id)

    async def close(self) -> None:
        await self.db.close()


def _last_per_queue(batch: list[tuple[Delivery, list[PixelResult], str]]) -> list[Delivery]:
    last: dict[tuple[str, int], Delivery] = {}
    for delivery, _, _ in batch:
        last[(delivery.queue, delivery.generation)] = delivery
    return list(last.values())
