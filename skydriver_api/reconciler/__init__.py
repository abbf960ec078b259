"""The reconciler: a background loop that makes running processes match stored scan state.

Request handlers only write intent to MongoDB (a queued scan, an abort); the reconciler acts on it
in small steps, one module each, run in this order on every pass:

| step | module | what |
|---|---|---|
| reaping | :mod:`.reaping` | stop the processes and delete the queues of scans ended from outside |
| supervision | :mod:`.supervision` | watch processes; restart a dead server (bounded), relaunch workers |
| admission | :mod:`.admission` | launch queued scans by priority within the budget; back off on failure |
| worker requests | :mod:`.worker_requests` | serve ``POST /scans/{id}/workers`` |
| webhooks | :mod:`.webhooks` | post the GCN summary of ended alert scans (retried) |
| notices | :mod:`.notices` | publish the notice of ended alert scans on the Kafka notice topic (retried) |

One scan's failing step backs off on its own and never blocks the others.
"""

from skydriver_api.reconciler.loop import Reconciler

__all__ = ["Reconciler"]
