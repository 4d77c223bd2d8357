"""The seams of rxstream as runtime-checkable Protocols: streams, events, channels, agents, the app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from .transport.base import TopicPartition

if TYPE_CHECKING:
    from .exactly_once import Outbox
    from .monitor import Monitor
    from .subscriptions import Subscription
    from .transport.base import Transport

__all__ = ["TP", "AgentT", "AppServices", "AppT", "ChannelT", "EventT", "StreamT"]

K_contra = TypeVar("K_contra", contravariant=True)
V_contra = TypeVar("V_contra", contravariant=True)
T = TypeVar("T")


@runtime_checkable
class EventT(Protocol):
    """A value with its key, headers, message metadata and acknowledgment controls."""

    key: Any
    value: Any
    headers: Mapping[str, bytes | str]
    timestamp: float | None

    def ack(self) -> None: ...

    def reject(self) -> None: ...


@runtime_checkable
class StreamT(Protocol[T]):
    """An asynchronously iterable chain of operators with a single consumer."""

    def __aiter__(self) -> AsyncIterator[T]: ...

    async def to_list(self, limit: int | None = None) -> list[T]: ...


@runtime_checkable
class ChannelT(Protocol[K_contra, V_contra]):
    """Something values can be sent to and streamed from."""

    async def send(
        self,
        *,
        key: K_contra | None = None,
        value: V_contra | None = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes | str] | None = None,
    ) -> Any: ...


@runtime_checkable
class AgentT(Protocol):
    """An async function that processes a stream, addressable by send/ask/cast."""

    @property
    def name(self) -> str: ...

    async def send(self, value: Any = None, *, key: Any = None, partition: int | None = None) -> Any: ...

    async def ask(self, value: Any = None, *, key: Any = None, partition: int | None = None) -> Any: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AppServices(Protocol):
    """What an App offers the channels, topics, agents and tables it runs (their only way into it).

    Not runtime-checkable: an isinstance check would read ``transport`` and so create it.
    """

    id: str
    topic_partitions: int
    value_serializer: Any
    monitor: Monitor
    outbox: Outbox | None
    """With exactly-once processing, where sends and table changes wait for their transaction."""

    @property
    def topics(self) -> Mapping[str, Any]:
        """The declared topics by name."""

    @property
    def transport(self) -> Transport:
        """The transport the broker URL names (created on first use)."""

    @property
    def existing_transport(self) -> Transport | None:
        """The transport if it was created, without creating it."""

    @property
    def started(self) -> bool:
        """Whether the app runs."""

    async def producer(self) -> Transport:
        """The transport, started: sending works before the app starts."""

    def subscription_for(
        self, channel: Any, *, maxsize: int, batch: int = ..., reader: str | None = None
    ) -> Subscription:
        """A channel's or topic's subscription (``reader``: one of its own), registered with the consumer."""

    def spawn(self, coro: Awaitable[Any], what: str, *, send: bool = False) -> asyncio.Task[None]:
        """Run ``coro`` in a task the app owns; sends (``send=True``) are awaited before every commit."""

    def send_failed(self, exc: BaseException, topic: str) -> None:
        """A produced message could not be stored: commits stop and the app crashes."""

    async def flush(self) -> None:
        """Wait for buffered and background sends (before a commit, or before handing partitions over)."""

    def crash(self, exc: BaseException) -> None:
        """Stop the app because of ``exc``."""


AppT = AppServices
"""Faust's name for the app's type, kept for annotations carried over from Faust (``app: AppT``)."""

TP = TopicPartition
"""Faust's name for a topic partition."""
