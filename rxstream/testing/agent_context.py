"""AgentTestContext: an agent's function run over an in-process channel, for unit tests without a broker."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from .. import _rx
from ..channels import Channel
from ..errors import AgentError
from ..events import NO_HEADERS, OFFSET, Message, is_row
from ..streams import Stream, with_batch_step

if TYPE_CHECKING:
    from ..agents import Agent

__all__ = ["AgentTestContext"]


class AgentTestContext:
    """Runs an agent's function over an in-process channel: ``put`` a value, see what it yielded."""

    def __init__(self, agent: Agent, *, timeout: float) -> None:
        self.agent = agent
        self.timeout = timeout
        self.channel: Channel[Any, Any] = Channel(agent.app, name=f"{agent.name}-test")
        self.results: dict[int, Any] = {}
        self.sent: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._progress: asyncio.Future[None] | None = None
        """Completed when the agent acknowledges, yields or fails: what a waiting ``put`` looks at again."""

    async def __aenter__(self) -> AgentTestContext:
        self._stream = _Watched(self.channel.stream(), self._wake).stream
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.channel.subscription().close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        stream = self._stream
        try:
            result = self.agent.fun(stream)
            if inspect.isasyncgen(result):
                async for value in result:
                    refs = stream.current_refs()
                    offset = refs[-1][OFFSET] if refs and is_row(refs[-1]) else len(self.results)
                    self.results[offset] = value
                    self.sent.append(value)
                    self._wake()
            else:
                await cast(Awaitable[Any], result)
        except Exception as exc:
            self._error = exc
        finally:
            await stream.aclose()

    def _wake(self) -> None:
        progress = self._progress
        if progress is not None and not progress.done():
            progress.set_result(None)

    async def put(
        self, value: Any = None, *, key: Any = None, headers: dict[str, Any] | None = None
    ) -> Message:
        """Give the agent one value and wait until it was processed; re-raises what the agent raised."""
        metadata = await self.channel.send(key=key, value=value, headers=headers)
        tracker = self.channel.subscription().tracker(self.channel.name, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not tracker.is_acked(metadata.offset) and metadata.offset not in self.results:
            if self._error is not None:
                raise self._error
            if self._task is not None and self._task.done():
                raise AgentError(
                    f"agent {self.agent.name} stopped before processing offset {metadata.offset}"
                )
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(
                    f"agent {self.agent.name} did not process offset {metadata.offset} in time"
                )
            progress = self._progress = loop.create_future()
            waits: list[asyncio.Future[Any]] = [progress] if self._task is None else [progress, self._task]
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        return Message(
            self.channel.name, 0, metadata.offset, metadata.timestamp, key, value, headers or NO_HEADERS
        )


class _Watched:
    """A test channel's stream whose acknowledgments also call ``wake`` (a waiting ``put`` checks again)."""

    def __init__(self, stream: Stream[Any], wake: Callable[[], None]) -> None:
        self.wake = wake
        self.ackers: dict[int, _WakingAcker] = {}
        self.stream: Stream[Any] = with_batch_step(stream, "watched", lambda ctx: _rx.transform(self._watch))

    def _watch(self, batch: _rx.Batch) -> _rx.Batch:
        acker = batch.acker
        if acker is None:
            return batch
        waking = self.ackers.get(id(acker))
        if waking is None:
            waking = self.ackers[id(acker)] = _WakingAcker(acker, self.wake)
        return _rx.Batch(batch.values, batch.refs, waking)


class _WakingAcker:
    """Passes acknowledgments on to the channel's acknowledger, then wakes the waiting ``put``."""

    __slots__ = ("acker", "wake")

    def __init__(self, acker: Any, wake: Callable[[], None]) -> None:
        self.acker = acker
        self.wake = wake

    def ack(self, refs: Sequence[Any]) -> None:
        self.acker.ack(refs)
        self.wake()

    def reject(self, ref: Any) -> None:
        self.acker.reject(ref)
        self.wake()
