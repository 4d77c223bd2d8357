"""Channels and topics: what users declare, send to and stream from."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._core.rows import Rows
from ._producer import BatchingProducer
from .codecs import CodecArg, decode_value, encode_value, get_codec
from .durations import Duration, seconds
from .errors import ConfigurationError, DecodeError, EncodeError
from .events import (
    HEADERS,
    KEY,
    OFFSET,
    PARTITION,
    RAW_KEY,
    RAW_VALUE,
    TIMESTAMP,
    TOPIC,
    VALUE,
    Headers,
    Row,
    value_of,
)
from .peek import topic_source
from .records import Record, represent
from .streams import Stream, peekable
from .subscriptions import CHANNEL_BATCH, MAX_BATCH, ErrorPolicy, Subscription
from .transport.base import RecordMetadata, TopicSpec, Transport
from .transport.validation import MAX_MESSAGE_BYTES, check_encodable, encode_message

if TYPE_CHECKING:
    from .types import AppServices

__all__ = ["Channel", "Topic", "declare"]

_new_tuple = tuple.__new__
"""``_new_tuple(RecordMetadata, fields)``: a `RecordMetadata` without the Python-level ``__new__`` of a named
tuple (called directly: through a ``functools.partial`` it costs a third more)."""

K = TypeVar("K")
V = TypeVar("V")


class Channel(Generic[K, V]):
    """An in-process queue that agents and streams read; sending waits while it is full, never drops.

    >>> numbers = app.channel(value_type=int)
    >>> await numbers.send(value=1)
    """

    def __init__(
        self,
        app: AppServices,
        *,
        name: str | None = None,
        key_type: Any = None,
        value_type: Any = None,
        maxsize: int = 1000,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigurationError(f"channel maxsize must be a positive integer, got {maxsize!r}")
        self.app = app
        self.name = name or f"channel-{id(self):x}"
        self.key_type = key_type
        self.value_type = value_type
        self.maxsize = maxsize
        self._offset = 0
        self._subscription: Subscription | None = None
        self._batch = min(CHANNEL_BATCH, maxsize)
        """The most sends queued as one batch (at most maxsize messages are queued: see `subscription`)."""

    @property
    def topic_names(self) -> tuple[str, ...]:
        """The names messages of this channel carry."""
        return (self.name,)

    def subscription(self) -> Subscription:
        """The queue this channel's readers share."""
        if self._subscription is None:
            batches = max(1, self.maxsize // CHANNEL_BATCH)
            self._subscription = self.app.subscription_for(self, maxsize=batches, batch=self._batch)
        return self._subscription

    async def send(
        self,
        *,
        key: K | None = None,
        value: V | None = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> RecordMetadata:
        """Put a message on the channel, waiting while it is full."""
        subscription = self._subscription or self.subscription()
        offset = self._offset
        stamp = time.time() if timestamp is None else timestamp
        headers = dict(headers) if headers else None
        name = self.name
        message = (name, 0, offset, stamp, key, value, headers, None, None)
        rows = subscription.joinable
        if rows is not None and len(rows) < self._batch:
            rows.append(message)  # the queued batch no reader took yet
        elif not subscription.offer(message):
            await subscription.wait_for_room()
            offset = self._offset  # others may have sent meanwhile
            stamp = time.time() if timestamp is None else timestamp
            subscription.offer((name, 0, offset, stamp, key, value, headers, None, None), wait_free=False)
        self._offset = offset + 1
        return _new_tuple(RecordMetadata, (name, 0, offset, stamp))

    def send_soon(self, *, key: K | None = None, value: V | None = None, **kwargs: Any) -> None:
        """Send without waiting (the send runs in the background; errors are logged)."""
        self.app.spawn(self.send(key=key, value=value, **kwargs), f"send to {self.name}", send=True)

    def stream(self) -> Stream[V]:
        """A stream of this channel's values (a channel has one queue: readers share its messages)."""
        return self.subscription().stream()

    def __aiter__(self) -> Any:
        return aiter(self.stream())

    def __repr__(self) -> str:
        return f"<Channel {self.name}>"


TOPIC_MAXSIZE = 4096
"""How many fetched messages a topic's readers hold by default before fetching pauses (as Faust's
``stream_buffer_maxsize``); the fetched batches they come in hold a quarter of it, at most 1024."""
_TOPIC_BATCHES = 4


class Topic(Channel[K, V]):
    """A named, partitioned topic shared by every worker of the app (memory log or Kafka)."""

    buffer_nowait: Callable[[Any], bool]
    """Queue a value for the next batched send if there is room; False means await `send_buffered`."""
    send_buffered: Callable[..., Awaitable[None]]
    """Queue a value (``key=`` optional) for the next batched send (agent sinks use this); waits only when
    the buffer is full. The app awaits every buffered send before it commits offsets, so an event is never
    committed before what it produced was stored."""

    def __init__(
        self,
        app: AppServices,
        *names: str,
        key_type: Any = None,
        value_type: Any = None,
        partitions: int | None = None,
        replicas: int | None = None,
        retention: Duration | None = None,
        compacting: bool | None = None,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
        max_redeliveries: int = 3,
        on_error: str = "dead_letter",
        dead_letter: str | Topic[Any, Any] | None = None,
        internal: bool = False,
        maxsize: int = TOPIC_MAXSIZE,
    ) -> None:
        if not names:
            raise ConfigurationError("app.topic() needs at least one topic name")
        for name in names:
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"topic names must be non-empty strings, got {name!r}")
        if partitions is not None and (
            isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1
        ):
            raise ConfigurationError(
                f"topic {names[0]!r}: partitions must be a positive integer, got {partitions!r}"
            )
        super().__init__(app, name=names[0], key_type=key_type, value_type=value_type, maxsize=maxsize)
        self.names = tuple(names)
        self.partitions = partitions
        self.replicas = replicas
        self.retention = seconds(retention)
        self.compacting = compacting
        self.key_serializer: CodecArg = key_serializer or "raw"
        self.value_serializer: CodecArg = (
            value_serializer or getattr(value_type, "_rx_serializer", None) or app.value_serializer
        )
        get_codec(self.key_serializer)
        get_codec(self.value_serializer)
        self.internal = internal
        self._plain = key_type is None and value_type is None
        self._created = False
        self.batching = BatchingProducer(self, self._transport)
        """The producer behind `send_buffered` and `buffer_nowait`: one batch in flight, the next queued."""
        self.buffer_nowait = self.batching.nowait  # bound once: sinks call it for every value
        self.send_buffered = self.batching.send
        if isinstance(dead_letter, Topic):
            dead_letter = dead_letter.name
        elif dead_letter is not None and not isinstance(dead_letter, str):
            raise ConfigurationError(
                f"topic {names[0]!r}: dead_letter must be a topic name or a Topic, got {dead_letter!r}"
            )
        self.policy = ErrorPolicy.make(on_error, dead_letter or f"{names[0]}-dead-letter", max_redeliveries)

    @property
    def topic_names(self) -> tuple[str, ...]:
        return self.names

    def specs(self, default_partitions: int) -> list[TopicSpec]:
        """How to create this topic (and its dead-letter topic) on start."""
        partitions = self.partitions or default_partitions
        specs = [
            TopicSpec(name, partitions, self.replicas or 1, self.retention, bool(self.compacting))
            for name in self.names
        ]
        if self.policy.on_error == "dead_letter" and self.policy.dead_letter:
            specs.append(TopicSpec(self.policy.dead_letter, partitions, self.replicas or 1))
        return specs

    def subscription(self) -> Subscription:
        """The app's subscription to this topic (readers of a topic share the app's consumer)."""
        if self._subscription is None:
            maxsize, batch = self.reading_limits()
            self._subscription = self.app.subscription_for(self, maxsize=maxsize, batch=batch)
        return self._subscription

    def reading_limits(self) -> tuple[int, int]:
        """How many batches a reader of this topic holds, and how many messages a batch has at most."""
        # batches of up to MAX_BATCH messages, at least _TOPIC_BATCHES of them in maxsize
        batch = min(MAX_BATCH, max(1, self.maxsize // _TOPIC_BATCHES))
        return max(_TOPIC_BATCHES, self.maxsize // batch), batch

    async def _transport(self) -> Transport:
        """The started transport, with this topic created as declared (a send before start would not)."""
        transport = await self.app.producer()
        if not self._created:
            await declare(transport, [self], self.app.topic_partitions)
        return transport

    async def maybe_declare(self) -> None:
        """Create this topic now if missing (start does it for every declared topic)."""
        await self._transport()

    def encode(self, key: Any, value: Any) -> tuple[Any, Any]:
        """Key and value as the transport wants them (bytes for Kafka, objects in memory)."""
        transport = self.app.transport
        if not transport.needs_bytes:
            limit = getattr(transport, "max_message_bytes", MAX_MESSAGE_BYTES)
            check_encodable(self.name, key, value, self.key_serializer, self.value_serializer, limit)
            return key, value
        return encode_message(self.name, key, value, self.key_serializer, self.value_serializer)

    def decode(self, message: Row) -> Row:
        """The message with its key and value decoded and validated; DecodeError names where it failed."""
        key, value = message[KEY], message[VALUE]
        try:
            if isinstance(key, (bytes, bytearray)):
                if self.key_type is not None or self.key_serializer != "raw":
                    key = decode_value(bytes(key), self.key_serializer, self.key_type)
                else:
                    key = _text_or_bytes(bytes(key))
            if isinstance(value, (bytes, bytearray)):
                if self.value_type is not None or self.value_serializer != "raw":
                    value = decode_value(bytes(value), self.value_serializer, self.value_type)
            elif value is not None and self.value_type is not None:
                if isinstance(value, Record):
                    value = _as_sent(value, self.value_type)
                elif not _is_instance(value, self.value_type):
                    value = _coerce(value, self.value_type)
        except DecodeError as exc:
            raise DecodeError(
                exc.reason,
                topic=message[TOPIC],
                partition=message[PARTITION],
                offset=message[OFFSET],
                key=message[KEY],
            ) from exc
        if key is message[KEY] and value is message[VALUE]:
            return message
        return _with(message, key, value)

    def decode_batch(
        self, messages: Sequence[Row]
    ) -> tuple[Sequence[Row], list[Any], list[tuple[Row, DecodeError]]]:
        """Decode a fetched batch: the good messages, their values, and the ones that failed with why."""
        plain_bytes = False
        if self._plain:
            values = messages.values() if type(messages) is Rows else list(map(value_of, messages))
            if bytes not in map(type, values):
                return messages, values, []
            plain_bytes = self.app.transport.needs_bytes and self.value_serializer != "raw"
        loads = get_codec(self.value_serializer).loads
        good: list[Row] = []
        bad: list[tuple[Row, DecodeError]] = []
        for message in messages:
            value = message[VALUE]
            if plain_bytes and message[KEY] is None and type(value) is bytes:
                # the common Kafka message of a plain topic, decoded as decode() would
                try:
                    decoded = loads(value)
                except Exception:
                    pass  # decode() below raises the error that names this message
                else:  # `_with`, inline: a Kafka row keeps its bytes as they came
                    raw = message[RAW_VALUE]
                    good.append(
                        (
                            message[TOPIC],
                            message[PARTITION],
                            message[OFFSET],
                            message[TIMESTAMP],
                            None,
                            decoded,
                            message[HEADERS],
                            message[RAW_KEY],
                            value if raw is None else raw,
                        )
                    )
                    continue
            try:
                good.append(self.decode(message))
            except DecodeError as exc:
                bad.append((message, exc))
        return good, list(map(value_of, good)), bad

    async def send(
        self,
        *,
        key: K | None = None,
        value: V | None = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> RecordMetadata:
        """Append a message to the topic and wait until it is stored; returns where it went."""
        transport = await self._transport()
        raw_key, raw_value = self.encode(key, value)
        return await transport.send(
            self.name, raw_key, raw_value, partition=partition, timestamp=timestamp, headers=headers
        )

    async def send_many(self, values: Any, *, key: Any = None) -> None:
        """Append many values (optionally all with ``key``) in one batch."""
        transport = await self._transport()
        if transport.needs_bytes:
            serializer = self.value_serializer
            values = [encode_value(value, serializer) for value in values]
            key = encode_value(key, self.key_serializer)
        if key is None:
            await transport.send_values(self.name, values if isinstance(values, list) else list(values))
            return
        await transport.send_many(self.name, [(key, value, None, None) for value in values])

    def stream(self) -> Stream[V]:
        """A stream of this topic's values, read by the app's consumer group (``peek`` reads it without)."""
        return self.stream_of(self.subscription())

    def stream_of(self, subscription: Subscription) -> Stream[V]:
        """A stream of this topic's values from ``subscription`` (an agent with a queue of its own)."""
        stream = peekable(subscription.stream(), functools.partial(topic_source, self))
        return stream.bind(self.app)

    def reader_subscription(self, reader: str) -> Subscription:
        """A subscription of this topic for ``reader`` alone: it gets every message, besides other readers."""
        maxsize, batch = self.reading_limits()
        return self.app.subscription_for(self, maxsize=maxsize, batch=batch, reader=reader)

    def __repr__(self) -> str:
        return f"<Topic {', '.join(self.names)}>"


def _is_instance(value: Any, value_type: Any) -> bool:
    return not isinstance(value_type, type) or isinstance(value, value_type)


def _coerce(value: Any, value_type: Any) -> Any:
    from .errors import ValidationError
    from .records import decoder_for

    try:
        return decoder_for(value_type)(value)
    except ValidationError as exc:
        raise DecodeError(str(exc)) from exc


def _as_sent(record: Record, value_type: Any) -> Any:
    """A record object as a byte transport delivers it: represented, then validated as ``value_type``."""
    try:
        data = represent(record)
    except EncodeError as exc:
        raise DecodeError(str(exc)) from exc
    return _coerce(data, value_type)


def _text_or_bytes(data: bytes) -> str | bytes:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _with(message: Row, key: Any, value: Any) -> Row:
    """``message`` with a decoded key and value, keeping the bytes it came with."""
    raw_key, raw_value = message[RAW_KEY], message[RAW_VALUE]
    return (
        message[TOPIC],
        message[PARTITION],
        message[OFFSET],
        message[TIMESTAMP],
        key,
        value,
        message[HEADERS],
        raw_key if raw_key is not None else _raw(message[KEY]),
        raw_value if raw_value is not None else _raw(message[VALUE]),
    )


def _raw(data: Any) -> bytes | None:
    return bytes(data) if isinstance(data, (bytes, bytearray)) else None


async def declare(transport: Transport, topics: Iterable[Topic[Any, Any]], partitions: int) -> None:
    """Create ``topics`` as declared (``partitions`` where they name none), in one call; each then knows it
    exists, so its first send does not ask the broker again."""
    topics = list(topics)
    specs: dict[str, TopicSpec] = {}
    for topic in topics:
        for spec in topic.specs(partitions):
            specs.setdefault(spec.name, spec)
    await transport.create_topics(list(specs.values()))
    for topic in topics:
        topic._created = True
