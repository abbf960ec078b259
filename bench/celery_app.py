"""The Celery application ``bench/compare`` runs as a baseline: a no-op task, acks_late, rpc:// results.

Broker and queue come from ``BENCH_CELERY_BROKER`` and ``BENCH_CELERY_QUEUE`` (set by the bench).
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "skydriver_bench",
    broker=os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
    backend="rpc://",
)
app.conf.update(
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=os.environ.get("BENCH_CELERY_QUEUE", "bench.celery"),
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop(task: dict) -> dict:
    return {"task_id": task["task_id"], "llh": 1.0, "status": "ok"}
