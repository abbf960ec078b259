"""Broker-side housekeeping the API does itself: deleting a scan's queues and reading depths."""

from __future__ import annotations

import contextlib

import pika
import pika.exceptions

from skyinfra.settings import BrokerSettings
from skyscan.wire import exchange_name, queue_names


def _connect(settings: BrokerSettings) -> pika.BlockingConnection:
    params = pika.URLParameters(settings.rabbitmq_url.get_secret_value())
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


def delete_scan_queues(settings: BrokerSettings, scan_id: str) -> None:
    """Delete every queue and the exchange of a scan (idempotent; missing ones are fine)."""
    conn = _connect(settings)
    try:
        for name in queue_names(scan_id).values():
            channel = conn.channel()
            try:
                channel.queue_delete(name)
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass  # never declared
        with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):  # never declared
            conn.channel().exchange_delete(exchange_name(scan_id))
    finally:
        conn.close()


def broker_reachable(settings: BrokerSettings) -> bool:
    try:
        _connect(settings).close()
        return True
    except Exception:
        return False


def queue_depths(settings: BrokerSettings, scan_ids: list[str]) -> dict[str, int]:
    """Ready messages per queue kind summed over scans ('pixels', 'results', 'dead')."""
    totals = {"pixels": 0, "results": 0, "dead": 0}
    conn = _connect(settings)
    try:
        for scan_id in scan_ids:
            for kind, name in queue_names(scan_id).items():
                channel = conn.channel()
                try:
                    ok = channel.queue_declare(name, passive=True)
                    totals[kind] += ok.method.message_count
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:
                    pass
    finally:
        conn.close()
    return totals
