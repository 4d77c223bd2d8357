"""A topic's batching producer: values queued without waiting are sent in batches, one batch in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .codecs import get_codec
from .errors import TransportError
from .events import Headers
from .transport.base import Transport
from .transport.validation import MAX_MESSAGE_BYTES, check_size, encode_message

if TYPE_CHECKING:
    from .channels import Topic

__all__ = ["BatchingProducer"]

SEND_BATCH = 4096
"""How many queued values make `BatchingProducer.send` wait until the sender takes them as its next batch
(once the batch in flight is stored): the buffer's bound."""


_RAW_KEYS = frozenset({str, bytes, bytearray, memoryview})
"""Key types the raw codec sends as they are."""


class BatchingProducer:
    """Queues one topic's values and sends them in batches from one task: what is queued meanwhile goes next.

    The app flushes it before every offset commit (`flush`), so an event is never committed before what
    it produced was stored. With exactly-once, what an event produces is held in the app's outbox for its
    source partition's transaction instead (`rxstream.exactly_once`).
    """

    def __init__(self, topic: Topic[Any, Any], transport: Callable[[], Awaitable[Transport]]) -> None:
        self.topic = topic
        self.app = topic.app
        self.name = topic.name
        self._transport = transport
        """The started transport, with the topic created."""
        self._buffer: list[Any] = []
        self._buffer_keyed = False
        """Whether the buffer holds (key, value, partition, headers) records; else bare keyless values."""
        self._flush_scheduled = False
        self._objects: bool | None = None
        """Whether the transport takes values as objects; None until it started."""
        self._sender: asyncio.Task[None] | None = None  # the one task sending the buffer, batch after batch
        self._rounds = 0  # batches the sender took from the buffer
        self._rounds_done = 0  # ... and finished sending (stored, failed or cancelled)
        self._progress: asyncio.Future[None] | None = None
        """Resolved when the sender takes the buffer as a batch, and when a batch ends."""
        self._send_failure: BaseException | None = None
        self._quarter = MAX_MESSAGE_BYTES // 4
        """Values up to this many bytes or characters always fit a message (the transport's limit / 4)."""
        self._as_is = False
        """Whether `nowait` queues values as they are: the transport takes objects, no outbox holds them."""
        self.prepare: Callable[[list[Any]], Any] | None = None
        """Called with each batch of records as it is taken for sending; the sequence of records it returns is
        sent (a changelog completes its headers there, and hands over its records grouped by partition)."""

    def nowait(self, value: Any) -> bool:
        """Queue a value for the next batched send if the buffer has room; False means await `send`.

        On a byte transport the value is encoded here; one that fails to encode, or text or bytes that may
        be over the message size limit, is left to `send`, which raises the error that names it.
        """
        buffer = self._buffer
        if len(buffer) >= SEND_BATCH - 1 or self._buffer_keyed:
            return False
        if self._as_is:
            if (type(value) is str or type(value) is bytes) and len(value) > self._quarter:
                return False
        else:
            objects = self._objects
            if objects is None:
                if self.app.existing_transport is None:
                    return False
                objects = self._objects = self._raw_objects
                self._quarter = self._max_message_bytes // 4
                self._as_is = objects and self.app.outbox is None
            if not objects and value is not None:
                try:
                    value = get_codec(self.topic.value_serializer).dumps(value)
                except Exception:
                    return False
                if type(value) is not bytes or len(value) > self._quarter:
                    return False
            elif (type(value) is str or type(value) is bytes) and len(value) > self._quarter:
                return False
            outbox = self.app.outbox
            if outbox is not None and outbox.hold(self.name, (None, value, None, None)):
                return True
        buffer.append(value)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)
        return True

    async def send(self, value: Any, *, key: Any = None) -> None:
        """Queue a value for the next batched send; waits only when the buffer is full.

        A value that can never be stored (not encodable, over the message size limit) raises EncodeError
        naming the topic here, before it is queued: it never fails a batch of other values.
        """
        if not self._raw_objects:
            key, value = self.topic.encode(key, value)
        elif key is not None and type(key) not in _RAW_KEYS and self.topic.key_serializer == "raw":
            encode_message(self.name, key, None, "raw", "raw")  # refused as a byte transport refuses it
        check_size(self.name, key, value, self._max_message_bytes)
        outbox = self.app.outbox
        if outbox is not None and outbox.hold(self.name, (key, value, None, None)):
            return
        buffer = self._buffer
        if key is None and not self._buffer_keyed:
            buffer.append(value)
        else:
            self._buffer_record((key, value, None, None))
        if len(buffer) >= SEND_BATCH:
            await self._room()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def put(self, key: Any, value: Any, partition: int | None, headers: Headers | None = None) -> None:
        """Queue a record (encoded on a byte transport) for the next batched send; never waits."""
        objects = self._objects
        if objects is None:
            objects = self._raw_objects
            if self.app.existing_transport is not None:
                self._objects = objects
        if not objects:
            key, value = self.topic.encode(key, value)
        outbox = self.app.outbox
        if outbox is not None and outbox.hold(self.name, (key, value, partition, headers)):
            return
        if self._buffer_keyed:
            self._buffer.append((key, value, partition, headers))
        else:
            self._buffer_record((key, value, partition, headers))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _buffer_record(self, record: tuple[Any, Any, int | None, Headers | None]) -> None:
        """Queue a (key, value, partition, headers) record; bare values queued before it become records."""
        buffer = self._buffer
        if not self._buffer_keyed:
            buffer[:] = [(None, queued, None, None) for queued in buffer]
            self._buffer_keyed = True
        buffer.append(record)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        if self._buffer and (self._sender is None or self._sender.done()):
            self._sender = self.app.spawn(self._send_rounds(), f"send to {self.name}")

    @property
    def _max_message_bytes(self) -> int:
        """The largest message the transport stores."""
        return getattr(self.app.existing_transport, "max_message_bytes", MAX_MESSAGE_BYTES)

    @property
    def _raw_objects(self) -> bool:
        transport = self.app.existing_transport
        return transport is not None and not transport.needs_bytes

    async def _send_rounds(self) -> None:
        """Send the buffer until it is empty, one batch in flight: values queued meanwhile form the next."""
        try:
            transport = await self._transport()
            while self._buffer:
                batch, keyed = self._buffer, self._buffer_keyed
                self._buffer, self._buffer_keyed = [], False
                self._rounds += 1
                self._progressed()
                try:
                    if keyed:
                        if self.prepare is not None:
                            batch = self.prepare(batch)
                        await transport.send_many(self.name, batch)
                    else:
                        await transport.send_values(self.name, batch)
                    self.app.monitor.sent_values(self.name, len(batch))
                finally:
                    self._rounds_done += 1
                    self._progressed()
        except Exception as exc:
            self._send_failure = exc
            self.app.send_failed(exc, self.name)
            raise

    def _progressed(self) -> None:
        """Wake whoever waits for the sender's next step."""
        progress, self._progress = self._progress, None
        if progress is not None and not progress.done():
            progress.set_result(None)

    async def flush(self) -> None:
        """Wait until everything queued now is stored (the app does this before every commit)."""
        target = self._rounds + (1 if self._buffer else 0)
        await self._until(lambda: self._rounds_done >= target)

    async def _room(self) -> None:
        """Wait until the sender takes the full buffer as its next batch: once the batch in flight is stored,
        not until the buffer's own values are, so values are produced while a batch is on its way."""
        await self._until(lambda: len(self._buffer) < SEND_BATCH)

    async def _until(self, settled: Callable[[], bool]) -> None:
        """Wait, keeping a sender going, until ``settled()``; a failed batch raises its failure."""
        while not settled() and self._send_failure is None:
            sender = self._sender
            if sender is None or sender.done():
                if not self._buffer:
                    break  # the batch waited for ended: stored, or failed (raised below)
                sender = self._sender = self.app.spawn(self._send_rounds(), f"send to {self.name}")
            progress = self._progress
            if progress is None:
                progress = self._progress = asyncio.get_running_loop().create_future()
            await asyncio.wait((progress, sender), return_when=asyncio.FIRST_COMPLETED)
        self._raise_failure()

    def _raise_failure(self) -> None:
        """Raise the failure of an earlier batch, naming the topic."""
        failure = self._send_failure
        if failure is not None:
            raise TransportError(f"sending to topic {self.name!r} failed: {failure}") from failure
