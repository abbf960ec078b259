"""Deleting what a stopped test or bench API leaves on the shared broker.

The reconciler deletes a scan's queues and exchange when it reaps the scan; a test or bench that
stops its API and drops its database first leaves them behind, and the broker keeps them (and
their messages) for good: a developer's broker collected 127 such queues, one of 760,000 messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import pika
import pika.exceptions

from skyscan.wire import exchange_name, queue_names


def delete_scan_queues(amqp_url: str, scan_ids: Iterable[str]) -> None:
    """Delete each scan's queues and exchange (absent ones are fine; a broker that is down is left)."""
    scan_ids = list(scan_ids)
    if not scan_ids:
        return
    try:
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    except pika.exceptions.AMQPError:
        return  # the broker is down (a fault test): nothing to delete now
    try:
        channel = conn.channel()
        for scan_id in scan_ids:
            targets = [("queue_delete", name) for name in queue_names(scan_id).values()]
            for method, name in [*targets, ("exchange_delete", exchange_name(scan_id))]:
                with contextlib.suppress(pika.exceptions.ChannelClosed):
                    getattr(channel, method)(name)
                if channel.is_closed:  # a refused delete closes the channel: go on with a new one
                    channel = conn.channel()
    except pika.exceptions.AMQPError:
        pass
    finally:
        with contextlib.suppress(pika.exceptions.AMQPError):
            conn.close()
