"""Run fits in a child process so that a per-pixel timeout really stops them.

The child prepares the event once per (reco, options) and then fits one task at a time. The
parent waits on a pipe; while it waits it calls ``tick()`` (which keeps the AMQP heartbeats
flowing) and kills the child when the task's time is up. A killed child is replaced lazily.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from skyinfra.processes import die_with_parent
from skyscan.physics.event import parse_event
from skyscan.physics.recos.base import FitResult
from skyscan.physics.recos.registry import get_reco
from skyscan.wire import PixelTask


def _child(conn: Connection, event_doc: dict[str, Any]) -> None:
    die_with_parent()  # a fit never outlives its worker, however the worker ends
    signal.signal(
        signal.SIGTERM, signal.SIG_IGN
    )  # a SIGTERM to the group is for the parent: it hands the task back
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    event = parse_event(event_doc)
    cache: dict[str, tuple[Any, Any]] = {}
    while True:
        try:
            raw = conn.recv_bytes()
        except EOFError:
            return
        task = PixelTask.model_validate_json(raw)
        start = time.perf_counter()
        try:
            key = json.dumps([task.reco, task.options], sort_keys=True)
            if key not in cache:
                reco = get_reco(task.reco, task.options)
                cache[key] = (reco, reco.prepare(event))
            reco, prepared = cache[key]
            conn.send("fitting")  # the per-pixel timeout starts now, not during start-up or preparation
            result = reco.fit(prepared, task.direction, task.variation, task.seed)
        except Exception as err:  # the reco raised: a failed fit, reported, never a dead worker
            result = FitResult(math.nan, status="failed", error=f"{type(err).__name__}: {err}"[:2000])
        conn.send((result.llh, dict(result.params), result.status, result.error, time.perf_counter() - start))


PREPARE_TIMEOUT_S = 900.0


class FitTimeout(Exception):
    pass


class FitInterrupted(Exception):
    pass


class Fitter:
    def __init__(self, event_doc: dict[str, Any]) -> None:
        self.event_doc = event_doc
        # spawn, not fork: a forked child of a process holding BLAS thread pools, an AMQP socket and
        # import locks can deadlock; a fresh interpreter costs ~1 s once per worker (and per kill).
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None

    def _ensure(self) -> Connection:
        if self._proc is None or not self._proc.is_alive():
            parent, child = self._ctx.Pipe()
            self._proc = self._ctx.Process(target=_child, args=(child, self.event_doc), daemon=True)
            self._proc.start()
            child.close()
            self._conn = parent
        assert self._conn is not None
        return self._conn

    def fit(
        self,
        task: PixelTask,
        timeout_s: float,
        tick: Callable[[], None],
        interrupted: Callable[[], bool],
    ) -> tuple[FitResult, float]:
        """Fit one task. Raises FitTimeout (child killed) or FitInterrupted (SIGTERM; child killed)."""
        conn = self._ensure()
        conn.send_bytes(task.model_dump_json(by_alias=True).encode())
        deadline = time.monotonic() + PREPARE_TIMEOUT_S
        fitting = False
        while True:
            wait = 0.0
            while not conn.poll(wait):
                wait = 0.2
                tick()
                if interrupted():
                    self.kill()
                    raise FitInterrupted()
                if time.monotonic() >= deadline:
                    self.kill()
                    if not fitting:
                        raise FitTimeout(f"preparing the event took over {PREPARE_TIMEOUT_S:g} s; killed")
                    raise FitTimeout(f"fit exceeded the per-pixel timeout of {timeout_s:g} s and was killed")
            try:
                message = conn.recv()
            except EOFError:  # the child died in the fit (segfault, OOM kill)
                self.kill()
                raise
            if message == "fitting":
                fitting = True
                deadline = time.monotonic() + timeout_s
                continue
            llh, params, status, error, runtime = message
            return FitResult(llh, params, status, error), runtime

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
