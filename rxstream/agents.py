"""Agents: async functions that iterate a stream, supervised, addressable by send, cast and ask."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import operator
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, Literal, cast

from ._core.rows import Rows
from ._replies import CORRELATION_ID, REPLY_TO, asks_in
from ._rx import failure_of, sources_of
from ._rx.sink import Cursor, refuse_output
from .channels import Channel, Topic
from .durations import Duration, seconds
from .errors import AgentError, ConfigurationError, EncodeError
from .events import KEY, Event, is_row, place_of
from .keyvalue import KeyValue
from .streams import Stream
from .transport.base import RecordMetadata

if TYPE_CHECKING:
    from .app import App
    from .subscriptions import Subscription
    from .testing import AgentTestContext

__all__ = ["Agent", "AgentTestContext"]

logger = logging.getLogger(__name__)

AgentFun = Callable[[Stream[Any]], AsyncIterator[Any] | Awaitable[Any]]
Strategy = Literal["one_for_one", "one_for_all", "crash"]
STRATEGIES: tuple[str, ...] = ("one_for_one", "one_for_all", "crash")


class Agent:
    """An ``async def fun(stream)`` run as supervised instances over a channel or topic.

    >>> @app.agent(orders)
    ... async def process(stream):
    ...     async for order in stream:
    ...         yield order.amount
    """

    def __init__(
        self,
        fun: AgentFun,
        *,
        app: App,
        channel: Channel[Any, Any] | None = None,
        name: str | None = None,
        concurrency: int = 1,
        sink: Sequence[Any] | None = None,
        on_error: Callable[[Agent, BaseException], Any] | None = None,
        supervisor_strategy: str | None = None,
        help: str | None = None,
        max_restarts: int = 10,
        restart_window: Duration = 60.0,
        shutdown_timeout: Duration = 10.0,
        key_type: Any = None,
        value_type: Any = None,
    ) -> None:
        if not (inspect.iscoroutinefunction(fun) or inspect.isasyncgenfunction(fun)):
            raise ConfigurationError(
                f"@app.agent decorates an `async def` function taking a stream, got {fun!r}"
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(
                f"agent {name or fun.__name__}: concurrency must be >= 1, got {concurrency!r}"
            )
        strategy = supervisor_strategy or "one_for_one"
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"agent {name or fun.__name__}: supervisor_strategy must be one of {STRATEGIES}, "
                f"got {strategy!r}"
            )
        self.fun = fun
        self.app = app
        self.name = name or f"{fun.__module__}.{fun.__qualname__}"
        if channel is None:
            channel = app.topic(own_topic_name(app.id, self.name), key_type=key_type, value_type=value_type)
        self._channel = channel
        self._subscription: Subscription | None = None
        self._concurrency = concurrency
        self._sinks = [_sink_for(target, self.name, self._refused) for target in (sink or [])]
        self._keyed_sinks = [_keyed_sink_for(target, self._refused) for target in (sink or [])]
        self._sink_targets = list(sink or [])
        self.on_error = on_error
        self.supervisor_strategy = cast(Strategy, strategy)
        self._help = help or (inspect.getdoc(fun) or "").split("\n")[0]
        self.max_restarts = max_restarts
        self.restart_window = seconds(restart_window)
        self.shutdown_timeout = seconds(shutdown_timeout)
        self._tasks: list[asyncio.Task[None]] = []
        self._restarts: deque[float] = deque()
        self._group_tasks: dict[int, list[asyncio.Task[None]]] = {}
        self._restart_requests: dict[int, Exception | None] = {}
        """Instances cancelled to be restarted: with the group instance's error, or None (one_for_all)."""
        self._running = False
        self.processed_failures = 0
        self.restarts = 0
        self.last_error: BaseException | None = None
        """The agent's latest failure (shown by the app's display)."""

    # ------------------------------------------------------------ properties

    @property
    def channel(self) -> Channel[Any, Any]:
        """The channel or topic this agent reads."""
        return self._channel

    def subscription(self) -> Subscription:
        """The queue this agent's instances share: its topic's, or one of its own when an agent declared
        before it reads the same topic (every agent of a topic gets every message, as in Faust)."""
        if self._subscription is None:
            channel = self._channel
            first = next((a for a in self.app.agents.values() if a.channel is channel), self)
            if isinstance(channel, Topic) and first is not self:
                self._subscription = channel.reader_subscription(f"agent {self.name}")
            else:
                self._subscription = channel.subscription()
        return self._subscription

    def _stream(self) -> Stream[Any]:
        """A stream over this agent's queue, for one instance."""
        subscription = self.subscription()
        channel = self._channel
        if isinstance(channel, Topic):
            return channel.stream_of(subscription)
        return channel.stream()

    @property
    def concurrency(self) -> int:
        """How many instances process the channel at once."""
        return self._concurrency

    @property
    def help(self) -> str:
        """One line describing the agent (its docstring's first line by default)."""
        return self._help

    @property
    def running(self) -> bool:
        """Whether the agent's instances run."""
        return self._running

    # ------------------------------------------------------------ sending

    async def send(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        headers: dict[str, bytes | str] | None = None,
        reply_to: Agent | Channel[Any, Any] | str | None = None,
        correlation_id: str | None = None,
    ) -> RecordMetadata:
        """Send a value to this agent's channel; with ``reply_to`` (a topic name, topic or agent) what the
        agent yields for it is sent there, keyed by ``correlation_id`` (a new one when None)."""
        if reply_to is not None:
            asked = {REPLY_TO: _topic_name(reply_to), CORRELATION_ID: correlation_id or uuid.uuid4().hex}
            headers = {**(headers or {}), **asked}
        return await self._channel.send(key=key, value=value, partition=partition, headers=headers)

    def cast(self, value: Any = None, *, key: Any = None, partition: int | None = None) -> asyncio.Task[None]:
        """Send without waiting (fire and forget; failures are logged). Awaiting what it returns waits for
        the send, as Faust's ``await agent.cast(...)`` does; not awaiting it loses nothing."""
        return self.app.spawn(
            self.send(value, key=key, partition=partition), f"cast to agent {self.name}", send=True
        )

    async def map(
        self, values: Iterable[Any] | AsyncIterable[Any], *, key: Any = None, timeout: Duration = 30.0
    ) -> AsyncIterator[Any]:
        """Ask for each of ``values`` at once and yield the replies as they arrive (in any order)."""
        async for reply in self.kvmap(_keyed(values, key), timeout=timeout):
            yield reply

    async def kvmap(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]], *, timeout: Duration = 30.0
    ) -> AsyncIterator[Any]:
        """Ask for each ``(key, value)`` of ``items`` at once and yield the replies as they arrive."""
        waiters = await self._ask_all(items)
        try:
            for reply in asyncio.as_completed(list(waiters.values()), timeout=seconds(timeout)):
                yield await reply
        finally:
            for correlation in waiters:
                self.app.replies.forget(correlation)

    async def join(
        self, values: Iterable[Any] | AsyncIterable[Any], *, key: Any = None, timeout: Duration = 30.0
    ) -> list[Any]:
        """Ask for each of ``values`` at once; the replies in the order of ``values``."""
        return await self.kvjoin(_keyed(values, key), timeout=timeout)

    async def kvjoin(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]], *, timeout: Duration = 30.0
    ) -> list[Any]:
        """Ask for each ``(key, value)`` of ``items`` at once; the replies in the order of ``items``."""
        waiters = await self._ask_all(items)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*waiters.values()), seconds(timeout)))
        except TimeoutError:
            raise TimeoutError(
                f"agent {self.name} did not reply to all of {len(waiters)} asks within {seconds(timeout)} s"
            ) from None
        finally:
            for correlation in waiters:
                self.app.replies.forget(correlation)

    async def _ask_all(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]]
    ) -> dict[str, asyncio.Future[Any]]:
        """Send one ask per ``(key, value)``; the replies' futures by correlation id, in sending order."""
        replies = self.app.replies
        reply_topic = await replies.topic()
        waiters: dict[str, asyncio.Future[Any]] = {}
        pairs = items if isinstance(items, AsyncIterable) else _aiter(items)
        async for key, value in pairs:
            correlation = uuid.uuid4().hex
            waiters[correlation] = replies.expect(correlation)
            headers = {REPLY_TO: reply_topic, CORRELATION_ID: correlation}
            await self._channel.send(key=key, value=value, headers=headers)
        return waiters

    async def ask(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        timeout: Duration = 30.0,
    ) -> Any:
        """Send a value and wait for what the agent yields while processing it (RPC)."""
        timeout = seconds(timeout)
        correlation = correlation_id or uuid.uuid4().hex
        replies = self.app.replies
        reply_topic = reply_to or await replies.topic()
        waiter = replies.expect(correlation)
        try:
            await self._channel.send(
                key=key,
                value=value,
                partition=partition,
                headers={REPLY_TO: reply_topic, CORRELATION_ID: correlation},
            )
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"agent {self.name} did not reply within {timeout} s to correlation id {correlation}"
            ) from None
        finally:
            replies.forget(correlation)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the instances (the app does this on start)."""
        if self._running:
            return
        self._running = True
        subscription = self.subscription()
        subscription.reopen()
        subscription.share = self._concurrency
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._supervise(index), name=f"agent {self.name}#{index}")
            for index in range(self._concurrency)
        ]

    async def stop(self) -> None:
        """Stop taking new events, let instances finish what they hold (bounded), then cancel them."""
        if not self._running:
            return
        self._running = False
        self.subscription().close(drain=False)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.shutdown_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def cancel(self) -> None:
        """Cancel the instances now; events they held and did not finish are redelivered."""
        self._running = False
        for task in self._tasks:
            task.cancel()

    # ------------------------------------------------------------ running

    async def _supervise(self, index: int) -> None:
        backoff = 0.05
        while self._running:
            stream = self._stream()
            stream.on_unclaimed_group(functools.partial(self._spawn_for_group, index, stream))
            stream.on_batch(self.app.monitor.agent(self.name).processed)
            counted = False
            try:
                try:
                    await self._run_once(stream)
                    return
                except asyncio.CancelledError:
                    if index not in self._restart_requests:
                        raise
                    failure = self._restart_requests.pop(index)
                    if failure is None:  # a sibling failed under one_for_all: restart without blame
                        continue
                    counted = True  # a group instance failed and was counted already
                    raise failure from None
            except Exception as exc:
                if not counted:
                    self._failed(stream, exc)
                await self._stop_group_instances(index)
                await stream.aclose()
                if not self._supervise_failure(exc, index):
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await self._stop_group_instances(index)
                await stream.aclose()

    def _spawn_for_group(self, index: int, stream: Stream[Any]) -> bool:
        """Start another instance of this agent on the same consumption, for a group no loop waits for."""
        if not self._running:
            return False
        shared = stream.shared()
        task = asyncio.get_running_loop().create_task(
            self._run_group_instance(index, shared), name=f"agent {self.name}#{index} group instance"
        )
        self._group_tasks.setdefault(index, []).append(task)
        return True

    async def _run_group_instance(self, index: int, shared: Stream[Any]) -> None:
        """A group instance's failure restarts the instance it belongs to (whose events it was handling)."""
        try:
            await self._run_once(shared)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(shared, exc)
            main = self._tasks[index] if index < len(self._tasks) else None
            if main is not None and not main.done():
                self._restart_requests[index] = exc
                main.cancel()

    async def _stop_group_instances(self, index: int) -> None:
        tasks = self._group_tasks.pop(index, [])
        current = asyncio.current_task()
        tasks = [task for task in tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_once(self, stream: Stream[Any]) -> None:
        result = self.fun(stream)
        if not inspect.isasyncgen(result):
            await cast(Awaitable[Any], result)
            return
        sinks = self._sinks
        nowait = [getattr(target, "buffer_nowait", None) for target in self._sink_targets]
        fast = [(quick, sink) for quick, sink in zip(nowait, sinks, strict=True)]
        # one sink that buffers (the common case) is served without the loop over sinks
        quick, only = fast[0] if len(fast) == 1 else (None, _no_sink)
        replies = self.app.replies
        keyed_sinks = self._keyed_sinks
        cursor: Cursor | None = None  # where the consumer of the chain is, once it iterates
        seen: Any = None  # the last batch checked for messages that carry keys or headers (an ask's reply-to)
        with_headers = keyed = False
        stats = self.app.monitor.agent(self.name)
        yielded = 0  # values yielded since the stream last reported a batch

        def batch_done(events: int, seconds: float) -> None:
            """The stream went through a batch: its values yielded so far go to the monitor with it."""
            nonlocal yielded
            stats.processed(events, seconds)
            stats.yielded += yielded
            yielded = 0

        stream.on_batch(batch_done)
        plain = False  # values of the batch ``seen`` take no key and no reply, and go to one buffering sink
        try:
            async for value in result:
                yielded += 1
                if plain and cursor.batch is seen and type(value) is not KeyValue:  # type: ignore[union-attr]
                    if not quick(value):  # type: ignore[misc]
                        await only(value)
                    continue
                if type(value) is KeyValue:
                    key, value = value
                    inherit = False
                else:
                    key = None
                    inherit = True
                if cursor is None:
                    cursor = stream.consumer_position()
                if cursor is not None:
                    batch = cursor.batch
                    if batch is not seen:
                        seen = batch
                        refs = batch.refs if batch is not None else None
                        with_headers = asks_in(refs)
                        keyed = _keys_in(refs)
                        plain = batch is not None and quick is not None and not (keyed or with_headers)
                    if keyed and inherit and batch is not None:
                        key = _key_at(batch, cursor.index)
                    if with_headers and batch is not None:
                        await replies.answer(batch, cursor.index, value)
                if key is not None:
                    for keyed_sink in keyed_sinks:
                        await keyed_sink(key, value)
                    continue
                if quick is not None:
                    if not quick(value):
                        await only(value)
                    continue
                for nowait_send, sink in fast:
                    if nowait_send is None or not nowait_send(value):
                        await sink(value)
        finally:
            stats.yielded += yielded
            await result.aclose()

    def _failed(self, stream: Stream[Any], exc: Exception) -> None:
        """Count the failure against the message(s) being processed so the error policy can take over."""
        self.processed_failures += 1
        subscription = self.subscription()
        failure = failure_of(exc)
        failing = failure.ref if failure is not None else None
        refs = sources_of(failing) if failing is not None else stream.current_refs()
        messages = [ref for ref in refs if is_row(ref)]
        for message in messages:
            subscription.failed(message, exc)
        self.app.monitor.agent_failed(self.name, messages)
        where = ", ".join(map(place_of, messages))
        again = self.last_error is not None and repr(self.last_error) == repr(exc)
        self.last_error = exc  # the same error again (a retry) is logged at debug level, without traceback
        logger.log(
            logging.DEBUG if again else logging.ERROR,
            "agent %s raised %r%s",
            self.name,
            exc,
            f" on {where}" if where else "",
            exc_info=None if again else exc,
        )
        if self.on_error is not None:
            try:
                outcome = self.on_error(self, exc)
                if inspect.isawaitable(outcome):
                    self.app.spawn(outcome, f"on_error of agent {self.name}")
            except Exception:
                logger.exception("agent %s: on_error callback failed", self.name)

    def _refused(self, exc: EncodeError, sink: Topic[Any, Any]) -> None:
        """A sink topic can never store a value yielded: its input goes to its error policy at once."""
        self.processed_failures += 1
        refuse_output(exc, f"made an output that topic {sink.name!r} can never store")

    def _supervise_failure(self, exc: Exception, index: int) -> bool:
        """Decide what a failure means: restart (True) or stop (False, the app crashes)."""
        if self.supervisor_strategy == "crash":
            self.app.crash(AgentError(f"agent {self.name} raised {exc!r} (supervisor_strategy='crash')"))
            return False
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - self.restart_window:
            self._restarts.popleft()
        if len(self._restarts) > self.max_restarts:
            self.app.crash(
                AgentError(
                    f"agent {self.name} failed {len(self._restarts)} times in {self.restart_window:.0f} s "
                    f"(max_restarts={self.max_restarts}); last error: {exc!r}"
                )
            )
            return False
        self.restarts += 1
        if self.supervisor_strategy == "one_for_all":
            for other, task in enumerate(self._tasks):
                if other != index and not task.done() and other not in self._restart_requests:
                    self._restart_requests[other] = None
                    task.cancel()
        return True

    def test_context(self, *, timeout: Duration = 10.0) -> AgentTestContext:
        """Run this agent's function on an in-process channel for unit tests: ``put`` values, see results."""
        from .testing import AgentTestContext

        return AgentTestContext(self, timeout=seconds(timeout))

    def __repr__(self) -> str:
        return f"<Agent {self.name} on {self._channel!r} concurrency={self._concurrency}>"


_NOT_IN_TOPIC_NAMES = re.compile(r"[^a-zA-Z0-9._-]+")
MAX_TOPIC_NAME = 249


def own_topic_name(app_id: str, agent: str) -> str:
    """The topic an agent reads when given none: ``{app id}-{agent name}``, made a name Kafka accepts.

    A nested function's ``<locals>`` becomes ``locals`` and other refused characters ``_``; a name too long
    keeps its start and ends with a digest of the whole, so it stays readable and the same run after run.
    """
    name = f"{app_id}-{agent}"
    valid = _NOT_IN_TOPIC_NAMES.sub("_", name.replace("<locals>", "locals"))
    if len(valid) > MAX_TOPIC_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        valid = f"{valid[: MAX_TOPIC_NAME - len(digest) - 1]}-{digest}"
    return valid.replace(".", "_") if valid in (".", "..") else valid


def _topic_name(target: Agent | Channel[Any, Any] | str) -> str:
    """The topic a reply goes to: a name, a topic's, or an agent's channel's."""
    if isinstance(target, Agent):
        target = target.channel
    name = target if isinstance(target, str) else getattr(target, "name", None)
    if not isinstance(name, str):
        raise ConfigurationError(f"reply_to must be a topic name, a topic or an agent, got {target!r}")
    return name


async def _keyed(values: Iterable[Any] | AsyncIterable[Any], key: Any) -> AsyncIterator[tuple[Any, Any]]:
    """Each value with ``key``."""
    source = values if isinstance(values, AsyncIterable) else _aiter(values)
    async for value in source:
        yield key, value


async def _aiter(values: Iterable[Any]) -> AsyncIterator[Any]:
    for value in values:
        yield value


def _keys_in(refs: Sequence[Any] | None) -> bool:
    """Whether any message of a batch has a key (values of a batch without keys take the keyless path)."""
    if not refs:
        return False
    if type(refs) is Rows:
        return refs.keyed()
    try:
        # C-level when every reference is a message; any other kind of reference raises TypeError
        return any(map(operator.is_not, map(_key_of, refs), repeat(None)))
    except TypeError:  # grouped values, events or None among them
        return any(_key_of_source(source) is not None for ref in refs for source in sources_of(ref))


_key_of = operator.itemgetter(KEY)


def _key_of_source(source: Any) -> Any:
    """The key of a message or an event."""
    return source[KEY] if is_row(source) else source.key if isinstance(source, Event) else None


def _key_at(batch: Any, index: int) -> Any:
    """The key of the event behind value ``index`` of ``batch`` (the last one, for a value of several)."""
    refs = batch.refs
    if type(refs) is Rows:
        return batch.key_at(index)
    ref = refs[index] if index < len(refs) else None
    if ref is None:
        ref = batch.ref_at(index)
    if is_row(ref):
        return ref[KEY]
    sources = sources_of(ref)
    return _key_of_source(sources[-1]) if sources else None


async def _no_sink(value: Any) -> None:
    """Stands in for the single sink when an agent has several or none."""


Refused = Callable[[EncodeError, Topic[Any, Any]], None]


def _sink_for(target: Any, agent: str, refused: Refused) -> Callable[[Any], Awaitable[Any]]:
    """An awaitable sender to a sink: channel, topic, agent, or callable."""
    if isinstance(target, Topic):

        async def to_topic(value: Any) -> None:
            try:
                await target.send_buffered(value)
            except EncodeError as exc:
                refused(exc, target)

        return to_topic
    if isinstance(target, (Channel, Agent)) or hasattr(target, "send"):
        send = target.send

        async def to_channel(value: Any) -> Any:
            if isinstance(target, Agent):
                return await target.send(value)
            return await send(value=value)

        return to_channel
    if callable(target):

        async def to_callable(value: Any) -> Any:
            result = target(value)
            if inspect.isawaitable(result):
                return await result
            return result

        return to_callable
    raise ConfigurationError(
        f"agent {agent}: sink {target!r} is neither a channel, a topic, an agent nor a callable"
    )


def _keyed_sink_for(target: Any, refused: Refused) -> Callable[[Any, Any], Awaitable[Any]]:
    """An awaitable sender of a value with its key to a sink (a callable sink gets the value alone)."""
    if isinstance(target, Topic):

        async def to_topic(key: Any, value: Any) -> None:
            try:
                await target.send_buffered(value, key=key)
            except EncodeError as exc:
                refused(exc, target)

        return to_topic
    if isinstance(target, Agent):

        async def to_agent(key: Any, value: Any) -> Any:
            return await target.send(value, key=key)

        return to_agent
    if isinstance(target, Channel) or hasattr(target, "send"):

        async def to_channel(key: Any, value: Any) -> Any:
            return await target.send(key=key, value=value)

        return to_channel
    sink = _sink_for(target, "", refused)

    async def to_callable(key: Any, value: Any) -> Any:
        return await sink(value)

    return to_callable


def __getattr__(name: str) -> Any:
    """``AgentTestContext`` lives with the testing utilities in `rxstream.testing` (imported on demand)."""
    if name == "AgentTestContext":
        from .testing import AgentTestContext

        return AgentTestContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
