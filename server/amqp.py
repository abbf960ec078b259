"""A small asyncio face over pika's AsyncioConnection for the scan server.

Why not BlockingConnection: with publisher confirms, a blocking channel waits for each
confirm before the next publish. Here publishes are confirmed in windows: up to ``window``
messages are in flight and confirms (often ``multiple``) release the window as they arrive.

Every message goes into the scan's own exchange (routed by queue kind) and is signed with the
scan's key; deliveries keep their headers so the server can verify them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.spec import Basic

from skyscan.wire import signed_headers

log = logging.getLogger("skydriver.server.amqp")


class BrokerLost(ConnectionError):
    """The connection or channel went away; reconnect and carry on."""


@dataclass(frozen=True)
class Delivery:
    queue: str
    tag: int
    body: bytes
    redelivered: bool
    generation: int  # connection generation: tags from an older connection must not be acked
    headers: dict[str, Any] | None = None


class AsyncBroker:
    def __init__(self, url: str, heartbeat_s: int, window: int, exchange: str, key: bytes) -> None:
        self.url = url
        self.exchange = exchange
        self._key = key
        self.heartbeat_s = heartbeat_s
        self.window = window
        self.generation = 0
        self._conn: AsyncioConnection | None = None
        self._ch: Any = None
        self._closed: asyncio.Future[None] | None = None
        self._next_tag = 1
        self._unconfirmed: dict[int, asyncio.Future[bool]] = {}
        self._slots: asyncio.Semaphore | None = None
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()

    # -- connection ----------------------------------------------------------------------------
    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._closed = loop.create_future()
        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat_s
        params.connection_attempts = 1
        params.socket_timeout = 10

        def on_open(_conn: Any) -> None:
            if not opened.done():
                opened.set_result(None)

        def on_open_error(_conn: Any, err: BaseException | str) -> None:
            if not opened.done():
                opened.set_exception(BrokerLost(f"cannot connect to RabbitMQ: {err}"))

        def on_close(_conn: Any, reason: BaseException) -> None:
            self._lost(reason)

        self._conn = AsyncioConnection(
            params,
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=loop,
        )
        await opened
        ch_ready: asyncio.Future[Any] = loop.create_future()
        self._conn.channel(on_open_callback=ch_ready.set_result)
        self._ch = await asyncio.wait_for(ch_ready, 10)
        self._ch.add_on_close_callback(lambda _ch, reason: self._lost(reason))
        confirm_ok: asyncio.Future[None] = loop.create_future()
        self._ch.confirm_delivery(self._on_confirm, callback=lambda _f: confirm_ok.set_result(None))
        await asyncio.wait_for(confirm_ok, 10)
        self._next_tag = 1
        self._slots = asyncio.Semaphore(self.window)
        self.generation += 1

    def _lost(self, reason: BaseException | str) -> None:
        err = BrokerLost(f"RabbitMQ connection lost: {reason}")
        for fut in self._unconfirmed.values():
            if not fut.done():
                fut.set_exception(err)
        self._unconfirmed.clear()
        if self._closed is not None and not self._closed.done():
            self._closed.set_exception(err)
            self._closed.exception()  # mark retrieved
        self._ch = None

    @property
    def connected(self) -> bool:
        return self._ch is not None and self._ch.is_open

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed and not self._conn.is_closing:
            self._conn.close()
            with contextlib.suppress(BrokerLost, TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._closed), 5) if self._closed else None

    def _require(self) -> Any:
        if self._ch is None or not self._ch.is_open:
            raise BrokerLost("no open channel")
        return self._ch

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run a pika channel method that reports completion through a ``callback``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        getattr(self._require(), method)(
            *args, callback=lambda frame: fut.done() or fut.set_result(frame), **kwargs
        )
        waiter = asyncio.ensure_future(self._closed) if self._closed else None
        done, _ = await asyncio.wait(
            [fut, *([waiter] if waiter else [])], timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        if fut in done:
            return fut.result()
        raise BrokerLost(f"{method} did not complete")

    # -- topology ------------------------------------------------------------------------------
    async def declare_quorum(self, name: str, arguments: dict[str, Any]) -> None:
        await self._call(
            "queue_declare", name, durable=True, arguments={"x-queue-type": "quorum", **arguments}
        )

    async def declare_exchange(self) -> None:
        await self._call("exchange_declare", self.exchange, exchange_type="direct", durable=True)

    async def bind(self, queue: str, routing_key: str) -> None:
        await self._call("queue_bind", queue, self.exchange, routing_key=routing_key)

    async def delete_queue(self, name: str) -> None:
        await self._call("queue_delete", name)

    async def delete_exchange(self) -> None:
        await self._call("exchange_delete", self.exchange)

    # -- publishing ----------------------------------------------------------------------------
    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        tags = (
            [t for t in self._unconfirmed if t <= method.delivery_tag]
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            fut = self._unconfirmed.pop(tag, None)
            if fut is not None and not fut.done():
                fut.set_result(acked)
            if self._slots is not None:
                self._slots.release()

    async def publish_many(self, routing_key: str, messages: list[tuple[str, bytes]]) -> None:
        """Publish persistent signed messages with confirms into the scan's exchange, at most
        ``window`` unconfirmed at a time.

        Raises BrokerLost if the connection drops; a nack raises too. Either way the caller may
        republish everything: consumers drop duplicates by task id.
        """
        futures: list[asyncio.Future[bool]] = []
        loop = asyncio.get_running_loop()
        for message_id, body in messages:
            assert self._slots is not None
            await self._slots.acquire()
            ch = self._require()
            fut: asyncio.Future[bool] = loop.create_future()
            self._unconfirmed[self._next_tag] = fut
            self._next_tag += 1
            ch.basic_publish(
                self.exchange,
                routing_key,
                body,
                pika.BasicProperties(
                    delivery_mode=2,
                    content_type="application/json",
                    message_id=message_id,
                    headers=signed_headers(self._key, body),
                ),
            )
            futures.append(fut)
        results = await asyncio.gather(*futures)
        if not all(results):
            raise BrokerLost(f"broker refused {results.count(False)} of {len(results)} messages")

    # -- consuming -----------------------------------------------------------------------------
    async def set_prefetch(self, prefetch: int) -> None:
        await self._call("basic_qos", prefetch_count=prefetch)

    async def consume(self, queue: str) -> None:
        generation = self.generation

        def on_message(_ch: Any, method: Any, props: Any, body: bytes) -> None:
            self.deliveries.put_nowait(
                Delivery(queue, method.delivery_tag, body, method.redelivered, generation, props.headers)
            )

        self._require().basic_consume(queue, on_message)

    def ack(self, delivery: Delivery, multiple: bool = False) -> None:
        if delivery.generation == self.generation and self.connected:
            self._ch.basic_ack(delivery.tag, multiple=multiple)

    def reject(self, delivery: Delivery) -> None:
        """Reject without requeue: the queue's dead-letter policy takes the message."""
        if delivery.generation == self.generation and self.connected:
            self._ch.basic_reject(delivery.tag, requeue=False)

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await asyncio.shield(self._closed)
