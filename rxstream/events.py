"""Events: the facade over one message of a stream, with its metadata and acknowledgment controls."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Generator, Mapping, Sequence
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, TypeAlias, TypeGuard, runtime_checkable

from .errors import ReadOnlyError

if TYPE_CHECKING:
    from .types import ChannelT

__all__ = ["Acknowledger", "Event", "Message", "current_event"]

Headers = Mapping[str, bytes | str]
NO_HEADERS: Headers = MappingProxyType({})
"""The headers of a message that has none (shared and read-only)."""


class Message(NamedTuple):
    """One record as a transport delivered it: where it lives, when it was written, its key and value.

    Transports hand records over as `Row` tuples in these fields' order (the memory log builds them from
    its columns when they are read); `Message.of` names one.
    """

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: Any = None
    value: Any = None
    headers: Headers = NO_HEADERS
    raw_key: bytes | None = None
    raw_value: bytes | None = None

    @classmethod
    def of(cls, row: Row) -> Message:
        """``row`` as a Message (headers None become the empty mapping)."""
        if isinstance(row, Message):
            return row
        if row[HEADERS] is None:
            return cls(row[0], row[1], row[2], row[3], row[4], row[5], NO_HEADERS, row[7], row[8])
        return cls._make(row)

    def __repr__(self) -> str:
        return f"<Message {self.topic}[{self.partition}]@{self.offset} key={self.key!r} value={self.value!r}>"


Row: TypeAlias = tuple[str, int, int, float, Any, Any, Headers | None, bytes | None, bytes | None]
"""A delivered record: a `Message`, or a plain tuple in its field order whose headers may be None."""

# Positions of a Row's fields: the hot paths read rows by index.
TOPIC: Final = 0
PARTITION: Final = 1
OFFSET: Final = 2
TIMESTAMP: Final = 3
KEY: Final = 4
VALUE: Final = 5
HEADERS: Final = 6
RAW_KEY: Final = 7
RAW_VALUE: Final = 8

offset_of = itemgetter(OFFSET)
value_of = itemgetter(VALUE)
headers_of = itemgetter(HEADERS)


def is_row(ref: object) -> TypeGuard[Row]:
    """Whether a stream reference is a delivered record (not an event, a group or None)."""
    return isinstance(ref, tuple)


def place_of(row: Row) -> str:
    """How errors and logs name a record's place: ``topic[partition]@offset``."""
    return f"{row[TOPIC]}[{row[PARTITION]}]@{row[OFFSET]}"


@runtime_checkable
class Acknowledger(Protocol):
    """Whoever delivered a batch of messages and wants to hear which ones are done."""

    def ack(self, refs: Sequence[Any]) -> None:
        """Mark these delivered references processed."""

    def reject(self, ref: Any) -> None:
        """Ask for this reference to be delivered again (negative acknowledgment)."""


class Event:
    """A value in a stream with its message metadata; ``ack``/``reject``/``forward`` act on its message."""

    __slots__ = (
        "_acked",
        "_acker",
        "_headers",
        "_key",
        "_ref",
        "_rejected",
        "_value",
        "message",
        "timestamp",
    )

    def __init__(
        self,
        key: Any = None,
        value: Any = None,
        headers: Headers | None = None,
        message: Message | None = None,
        timestamp: float | None = None,
        *,
        acker: Acknowledger | None = None,
        ref: Any = None,
    ) -> None:
        self._key = key
        self._value = value
        self._headers: Headers = headers if headers is not None else {}
        self.message = message
        self.timestamp = timestamp
        self._acker = acker
        self._ref = ref if ref is not None else message
        self._acked = False
        self._rejected = False

    @property
    def key(self) -> Any:
        """The message key (read-only: send a new message to change it)."""
        return self._key

    @key.setter
    def key(self, _: Any) -> None:
        raise ReadOnlyError("Event.key is read-only: send a new message with key=... instead")

    @property
    def value(self) -> Any:
        """The decoded value (read-only: map the stream, or send a new message, to change it)."""
        return self._value

    @value.setter
    def value(self, _: Any) -> None:
        raise ReadOnlyError("Event.value is read-only: map the stream, or send a new message with value=...")

    @property
    def headers(self) -> Headers:
        """The message headers (read-only: pass ``headers=`` to `send` or `forward` to add some)."""
        return self._headers

    @headers.setter
    def headers(self, _: Any) -> None:
        raise ReadOnlyError("Event.headers is read-only: pass headers=... to send() or forward() instead")

    @property
    def acked(self) -> bool:
        """Whether this event was acknowledged through this facade (a rejected one is not)."""
        return self._acked and not self._rejected

    @property
    def rejected(self) -> bool:
        """Whether this event was rejected through this facade (redelivered, or its error policy applied)."""
        return self._rejected

    def ack(self) -> Done:
        """Mark this event done; idempotent. Its offset becomes committable once all before it are.

        Done at once: ``event.ack()`` and Faust's ``await event.ack()`` both work.
        """
        if not self._acked:
            self._acked = True
            if self._acker is not None and self._ref is not None:
                self._acker.ack((self._ref,))
        return DONE

    async def __aenter__(self) -> Event:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        """``async with event:`` acknowledges it when the block ends without raising (a raise leaves it to
        the agent's error handling: redelivered, never lost)."""
        if kind is None:
            self.ack()

    def __enter__(self) -> Event:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        """``with event:`` acknowledges as ``async with event:`` does."""
        if kind is None:
            self.ack()

    def reject(self) -> None:
        """Ask for redelivery of this event; after the channel's max_redeliveries its error policy applies."""
        if self._acked:
            return
        self._acked = self._rejected = True
        if self._acker is not None and self._ref is not None:
            self._acker.reject(self._ref)

    async def send(
        self,
        channel: ChannelT[Any, Any],
        key: Any = ...,
        value: Any = ...,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> Any:
        """Send a new message to ``channel``; key and value default to this event's."""
        return await channel.send(
            key=self.key if key is ... else key,
            value=self.value if value is ... else value,
            partition=partition,
            timestamp=timestamp,
            headers=headers,
        )

    async def forward(
        self,
        channel: ChannelT[Any, Any],
        *,
        key: Any = ...,
        value: Any = ...,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> Any:
        """Send this event on to ``channel`` with its headers merged with ``headers``."""
        merged = {**self.headers, **(headers or {})}
        return await self.send(
            channel,
            key=key,
            value=value,
            partition=partition,
            timestamp=self.timestamp if timestamp is None else timestamp,
            headers=merged,
        )

    def __repr__(self) -> str:
        where = ""
        if self.message is not None:
            m = self.message
            where = f" {m.topic}[{m.partition}]@{m.offset}"
        return f"<Event{where} key={self.key!r} value={self.value!r}>"

    def _repr_html_(self) -> str:
        from .display import event_html

        return event_html(self)


class Done:
    """What `Event.ack` returns: already done, and awaitable for code that awaits it."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield

    def __bool__(self) -> bool:
        return True


DONE: Final = Done()


class _EventSource(Protocol):
    def current_event(self) -> Event | None: ...

    def current_row(self) -> Row | None: ...


_current: contextvars.ContextVar[_EventSource | None] = contextvars.ContextVar(
    "rxstream_current_event", default=None
)


def current_event() -> Event:
    """The event the calling agent is processing now; a RuntimeError outside an agent."""
    source = _current.get()
    event = source.current_event() if source is not None else None
    if event is None:
        raise RuntimeError(
            "current_event() was called outside an agent: it is only set while an agent (or any "
            "async for loop) iterates a stream"
        )
    return event


event_source: Callable[[], Any] = _current.get
"""What tells this context's current event (a consumer's cursor), or None outside a stream iteration."""


def current_source() -> Row | None:
    """The record the value being processed in this context came from (None outside a stream, or for a
    value without one), without materialising its event: what it produces is routed by it."""
    source = _current.get()
    return source.current_row() if source is not None else None


def set_event_source(source: _EventSource | None) -> contextvars.Token[_EventSource | None]:
    """Make ``source`` answer current_event() in this context (a stream iterator calls this)."""
    return _current.set(source)


def reset_event_source(token: contextvars.Token[_EventSource | None]) -> None:
    """Restore what answered current_event() before ``set_event_source``."""
    _current.reset(token)
