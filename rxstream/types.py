"""The seams of rxstream as runtime-checkable Protocols: streams, events, channels, agents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["AgentT", "ChannelT", "EventT", "StreamT"]

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
