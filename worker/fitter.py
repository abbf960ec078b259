"""Run fits in a child process so that a per-pixel timeout really stops them.

The child gets the event first (it may have been started before there was one: a warm worker),
prepares it once per (reco, options) and fits task messages: the parent hands it
a whole message (its raw bytes, decoded once there) with the index to start at, and the child
answers pixel by pixel. The parent waits on the pipe; while it waits it calls ``tick()`` (which
keeps the AMQP heartbeats flowing) and kills the child when a pixel's time is up: each pixel's
clock starts when the previous one's answer arrives. After a kill the rest of the message goes to
a fresh child (spawned lazily).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from skyinfra.processes import die_with_parent
from skyscan.physics.recos.base import FitResult
from skyscan.wire import decode_tasks


def warm_up(recos: Iterable[str] = ()) -> None:
    """Load what the first fit of ``recos`` would otherwise wait for (a warm worker names its
    service's recos): their modules, and what a reco's own ``warm_up`` loads (the dummy's astrometry
    tables). A cold worker's fit process names none: it imports its scan's reco with the first
    batch and the reco's ``prepare`` loads the rest, both before the per-pixel timeout starts (a
    reco's imports, healpy for crash-dummy or scipy for the table recos, are seconds on a busy
    machine)."""
    from skyscan.physics.recos.registry import RECOS

    for name in recos:
        reco_warm_up = getattr(RECOS[name], "warm_up", None)
        if reco_warm_up is not None:
            reco_warm_up()


def _child(conn: Connection, warmed: Any, warm_recos: tuple[str, ...]) -> None:
    # the physics is imported here, in the fit process only: the worker process relays messages and
    # starts faster without astropy and the recos (1.2 -> 0.4 s of CPU, bench/startup.py)
    from skyscan.physics.event import parse_event
    from skyscan.physics.recos.registry import get_reco

    die_with_parent()  # a fit never outlives its worker, however the worker ends
    signal.signal(
        signal.SIGTERM, signal.SIG_IGN
    )  # a SIGTERM to the group is for the parent: it hands the task back
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_up(warm_recos)
    warmed.set()
    event = None
    cache: dict[str, tuple[Any, Any]] = {}
    while True:
        try:
            kind, start_at = conn.recv()
            raw = conn.recv_bytes()
        except EOFError:
            return
        if kind == "event":  # a (new) scan: nothing prepared for an earlier event is kept
            event = parse_event(json.loads(raw))
            cache.clear()
            continue
        batch = decode_tasks(raw)
        try:
            key = json.dumps([batch.reco, batch.options], sort_keys=True)
            if key not in cache:
                reco = get_reco(batch.reco, batch.options)
                cache[key] = (reco, reco.prepare(event))
            reco, prepared = cache[key]
            setup_error = None
        except Exception as err:  # an unusable reco: every pixel fails, the worker lives on
            setup_error = f"{type(err).__name__}: {err}"[:2000]
        conn.send("fitting")  # the per-pixel timeout starts now, not during start-up or preparation
        for task in batch.tasks[start_at:]:
            start = time.perf_counter()
            try:
                if setup_error is not None:
                    raise RuntimeError(setup_error)
                result = reco.fit(prepared, task.direction, task.variation, task.seed)
            except Exception as err:  # the reco raised: a failed fit, reported, never a dead worker
                result = FitResult(math.nan, status="failed", error=f"{type(err).__name__}: {err}"[:2000])
            conn.send((result.llh, result.params, result.status, result.error, time.perf_counter() - start))


PREPARE_TIMEOUT_S = 900.0


class FitTimeout(Exception):
    pass


class FitInterrupted(Exception):
    pass


class Fitter:
    def __init__(self, event_doc: dict[str, Any] | None = None, warm_recos: Iterable[str] = ()) -> None:
        self.event_doc = event_doc  # set before the first fit (a warm worker learns it late)
        self.warm_recos = tuple(sorted(warm_recos))  # imported by the fit process before it says warm
        # spawn, not fork: a forked child of a process holding BLAS thread pools, an AMQP socket and
        # import locks can deadlock; a fresh interpreter costs ~1 s once per worker (and per kill).
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._warmed: Any = None  # set by the child once it has warmed up
        self._event_sent = False

    def start(self) -> None:
        """Start the fit process now (it warms up while the worker waits for its scan)."""
        if self._proc is None or not self._proc.is_alive():
            parent, child = self._ctx.Pipe()
            self._warmed = self._ctx.Event()
            args = (child, self._warmed, self.warm_recos)
            self._proc = self._ctx.Process(target=_child, args=args, daemon=True)
            self._proc.start()
            child.close()
            self._conn = parent
            self._event_sent = False

    def wait_warm(self, timeout_s: float) -> bool:
        """Wait until the fit process has warmed up (a warm worker says it is ready only then, so
        a scan it takes never waits for the fit process's imports or its recos' warm-up)."""
        self.start()
        return bool(self._warmed.wait(timeout_s))

    def use_event(self, event_doc: dict[str, Any]) -> None:
        """Fit for this event from now on (a warm worker's next scan)."""
        self.event_doc = event_doc
        self._event_sent = False

    def _ensure(self) -> Connection:
        self.start()
        assert self._conn is not None and self.event_doc is not None
        if not self._event_sent:
            self._conn.send(("event", None))
            self._conn.send_bytes(json.dumps(self.event_doc).encode())
            self._event_sent = True
        return self._conn

    def fit_batch(
        self,
        body: bytes,
        n_tasks: int,
        timeout_s: float,
        tick: Callable[[], None],
        interrupted: Callable[[], bool],
    ) -> Iterator[tuple[int, FitResult | None, float, str | None]]:
        """Fit every task of a message; yields (index, fit, runtime, error) in task order.

        ``fit`` is None when the pixel's fit was killed at its timeout or its process died (the
        error says which). Raises FitInterrupted (SIGTERM; child killed) with the index reached
        as its argument. A caller that stops early (quarantine) leaves the child killed.
        """
        index = 0
        try:
            while index < n_tasks:
                conn = self._ensure()
                conn.send(("fit", index))
                conn.send_bytes(body)
                deadline = time.monotonic() + PREPARE_TIMEOUT_S
                fitting = False
                while index < n_tasks:
                    try:
                        message = self._next_message(conn, deadline, tick, interrupted, index)
                    except FitTimeout:
                        error = (
                            f"fit exceeded the per-pixel timeout of {timeout_s:g} s and was killed"
                            if fitting
                            else f"preparing the event took over {PREPARE_TIMEOUT_S:g} s; killed"
                        )
                        yield index, None, timeout_s, error
                        index += 1
                        break  # the child was killed: the rest goes to a fresh one
                    except EOFError:  # the child died in the fit (segfault, OOM kill)
                        self.kill()
                        yield index, None, 0.0, "the fit process died (crash or out of memory)"
                        index += 1
                        break
                    if not fitting:
                        fitting = True
                    else:
                        llh, params, status, error, runtime = message
                        yield index, FitResult(llh, params, status, error), runtime, error
                        index += 1
                    deadline = time.monotonic() + timeout_s
        except GeneratorExit:  # thrown at a yield, where ``index`` is the pixel just handed out
            if index + 1 < n_tasks:
                self.kill()  # stopped early: the child would go on fitting the rest
            raise

    def _next_message(
        self,
        conn: Connection,
        deadline: float,
        tick: Callable[[], None],
        interrupted: Callable[[], bool],
        index: int,
    ) -> Any:
        wait = 0.0
        while not conn.poll(wait):
            wait = 0.2
            tick()
            if interrupted():
                self.kill()
                raise FitInterrupted(index)
            if time.monotonic() >= deadline:
                self.kill()
                raise FitTimeout()
        return conn.recv()

    def kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._proc = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.join(2)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = None
        self._conn = None
