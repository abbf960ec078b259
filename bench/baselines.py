"""The two baselines ``bench/compare`` measures the service against, on the same broker and cores.

* :func:`pika_floor`: a bare pika round trip per pixel: one persistent message per task on a
  quorum queue, a no-op worker that publishes a persistent result and acks (no confirms), a
  publisher that sends every task and then collects every result. What one message per pixel
  costs at the least.
* :func:`celery_rates`: Celery with the RabbitMQ broker, the ``rpc://`` result backend and
  ``acks_late``: what a user with a generic task queue gets.

Workers are separate processes started (and ready) before the clock starts.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika

HERE = Path(__file__).resolve().parent
# About the size of one pixel task of the service (task id, direction, seed).
TASK_PAYLOAD = {
    "task_id": "0123456789abcdef0123456789abcdef:16:1234:0",
    "nside": 16,
    "pixel": 1234,
    "variation": 0,
    "direction": {"ra": 1.2345678901, "dec": -0.123456789, "zenith": 2.0123456789, "azimuth": 1.2012345678},
    "seed": {"x": 12.3456789, "y": -45.678901, "z": -300.123456, "t": 10234.56789},
}


def _pika_worker(url: str, tasks: str, results: str, prefetch: int, ready: mp.Event) -> None:  # type: ignore[valid-type]
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")

    def on_task(channel, method, _props, body: bytes) -> None:  # type: ignore[no-untyped-def]
        task = json.loads(body)
        result = {"task_id": task["task_id"], "llh": 1.0, "status": "ok"}
        channel.basic_publish("", results, json.dumps(result).encode(), props)
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume(tasks, on_task)
    ready.set()  # type: ignore[attr-defined]
    with contextlib.suppress(pika.exceptions.AMQPError, KeyboardInterrupt):
        ch.start_consuming()


def pika_floor(url: str, n_tasks: int, n_workers: int, prefetch: int = 2) -> float:
    """Pixels per second of the bare pika round trip (first publish to last result)."""
    name = f"bench.floor.{uuid.uuid4().hex[:8]}"
    tasks, results = f"{name}.tasks", f"{name}.results"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for q in (tasks, results):
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    ctx = mp.get_context("spawn")
    readies = [ctx.Event() for _ in range(n_workers)]
    procs = [
        ctx.Process(target=_pika_worker, args=(url, tasks, results, prefetch, ready), daemon=True)
        for ready in readies
    ]
    try:
        for p in procs:
            p.start()
        for r in readies:
            if not r.wait(60):
                raise RuntimeError("a pika worker did not start")
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        bodies = [json.dumps({**TASK_PAYLOAD, "task_id": f"floor:16:{i}:0"}).encode() for i in range(n_tasks)]
        start = time.perf_counter()
        for body in bodies:
            ch.basic_publish("", tasks, body, props)
        ch.basic_qos(prefetch_count=500)
        for received, (method, _props, _body) in enumerate(ch.consume(results, inactivity_timeout=60), 1):
            if method is None:
                raise RuntimeError(f"pika floor: only {received - 1} of {n_tasks} results")
            ch.basic_ack(method.delivery_tag)
            if received == n_tasks:
                break
        elapsed = time.perf_counter() - start
        ch.cancel()
        return n_tasks / elapsed
    finally:
        for p in procs:
            p.terminate()
            p.join(10)
        for q in (tasks, results):
            ch.queue_delete(q)
        conn.close()


def celery_rates(url: str, n_tasks: int, n_workers: int, log_dir: Path, runs: int = 3) -> list[float]:
    """Pixels per second of Celery (RabbitMQ broker, rpc:// results, acks_late), submit to last result,
    for each of ``runs`` rounds on the same workers.

    One round varies a lot on this machine (62 to 576 pixels/s with nothing else running: some
    rounds wait for the ``rpc://`` results for tens of seconds after the last submit), so a
    comparison takes Celery's best round.
    """
    try:
        import celery  # noqa: F401
    except ImportError as err:
        raise RuntimeError("Celery is not installed: pip install -c constraints.txt '.[bench]'") from err
    queue = f"bench.celery.{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, BENCH_CELERY_BROKER=url, BENCH_CELERY_QUEUE=queue, PYTHONPATH=str(HERE))
    sys.path.insert(0, str(HERE))
    os.environ.update(BENCH_CELERY_BROKER=url, BENCH_CELERY_QUEUE=queue)
    import celery_app

    workers = []
    log_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_workers):
        log = open(log_dir / f"celery-worker-{i}.log", "wb")  # noqa: SIM115 - lives with the worker
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "celery_app",
                    "worker",
                    "--pool",
                    "solo",
                    "--concurrency",
                    "1",
                    "-Q",
                    queue,
                    "-n",
                    f"bench{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=HERE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 120
        while len(celery_app.app.control.ping(timeout=1.0) or []) < n_workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Celery workers did not start; see {log_dir}")
        for r in [celery_app.noop.apply_async((TASK_PAYLOAD,), queue=queue) for _ in range(2 * n_workers)]:
            r.get(timeout=60)  # warm: both workers connected and answering
        from celery.result import ResultSet

        rates = []
        for run in range(runs):
            payloads = [{**TASK_PAYLOAD, "task_id": f"celery:16:{i}:{run}"} for i in range(n_tasks)]
            start = time.perf_counter()
            pending = ResultSet([celery_app.noop.apply_async((p,), queue=queue) for p in payloads])
            # the rpc:// backend streams every result to this client: collect them as they come
            pending.join_native(timeout=300) if pending.supports_native_join else pending.join(timeout=300)
            rates.append(n_tasks / (time.perf_counter() - start))
        return rates
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        conn = pika.BlockingConnection(pika.URLParameters(url))
        conn.channel().queue_delete(queue)
        conn.close()
