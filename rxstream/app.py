"""App: declares topics, channels, agents, timers and tasks, and runs them on one transport."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from datetime import tzinfo
from typing import Any, TypeVar, cast

from . import _rx, commands, leader, schedule, views
from ._deadletter import dead_letter_record
from ._replies import Replies
from ._rx import SchedulerBase
from ._timers import watch_broker
from .agents import Agent, AgentFun
from .channels import TOPIC_MAXSIZE, Channel, Topic, declare
from .codecs import CodecArg
from .consumer import Conductor
from .discovery import discover
from .durations import Duration, seconds
from .errors import ConfigurationError, RxStreamError, TransportError
from .events import Message
from .exactly_once import Outbox
from .leader import Leader
from .migration import FaustShapes, faust_settings
from .monitor import Monitor
from .schedule import Schedule
from .settings import Settings
from .signals import AppSignals, configured
from .streams import Stream, batch_stream, compiled, values_stream
from .subscriptions import MAX_BATCH, ErrorPolicy, Subscription
from .tables import GlobalTable as _GlobalTable
from .tables import SetTable as _SetTable
from .tables import Table as _Table
from .tables import TableManager
from .transport import get_transport
from .transport.base import TopicPartition, Transport
from .transport.memory import MAX_PARTITION_BACKLOG, MAX_PARTITION_UNREAD
from .transport.validation import check_topic_name
from .urls import broker_url, redact
from .views import Views

__all__ = ["App"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class App(AppSignals, FaustShapes):
    """A stream-processing application: what it declares, and the worker that runs it.

    >>> app = App("shop")                         # memory:// broker, no server needed
    >>> orders = app.topic("orders", value_type=Order)
    >>> @app.agent(orders)
    ... async def process(stream):
    ...     async for order in stream:
    ...         yield order.amount

    Settings are keyword arguments, listed with their defaults in `rxstream.settings.Settings`; the
    app's own are ``app.conf``; its signals (`AppSignals`) are Faust's: ``@app.on_startup.connect``.
    """

    def __init__(
        self,
        id: str,
        *,
        broker: str = "memory://",
        store: str = "memory://",
        value_serializer: CodecArg = "json",
        topic_partitions: int = 8,
        topic_replicas: int = 1,
        commit_interval: Duration = 2.8,
        broker_credentials: Any = None,
        max_redeliveries: int = 3,
        on_error: str = "dead_letter",
        shutdown_timeout: Duration = 10.0,
        revocation_timeout: Duration = 10.0,
        reply_topic: str | None = None,
        scheduler: SchedulerBase | None = None,
        broker_availability_timeout: Duration = 60.0,
        max_partition_backlog: int = MAX_PARTITION_BACKLOG,
        max_partition_unread: int = MAX_PARTITION_UNREAD,
        session_timeout: Duration = 10.0,
        heartbeat_interval: Duration = 1.0,
        max_poll_interval: Duration = 300.0,
        group_instance_id: str | None = None,
        table_standby_replicas: int = 0,
        processing_guarantee: str = "at_least_once",
        version: int = 1,
        origin: str | None = None,
        autodiscover: bool | Sequence[str] = False,
        key_serializer: CodecArg = "raw",
        stream_buffer_maxsize: int = TOPIC_MAXSIZE,
        timezone: tzinfo | str | None = None,
        **faust_options: Any,
    ) -> None:
        given = {name: value for name, value in locals().items() if name not in ("self", "faust_options")}
        renamed, unneeded = faust_settings(f"App {id!r}", faust_options)
        given["broker"] = broker = broker_url(broker)
        conf = self.conf = Settings(**{**given, **renamed}, ignored=unneeded)
        """The settings this app was given, checked (durations in seconds)."""
        if unneeded:
            logger.info("app %s: Faust settings rxstream does not need: %s", id, ", ".join(unneeded))
        self.id = conf.app_id
        """The name of the app's group and internal topics: ``{id}-v{version}`` from version 2 on."""
        self.broker = broker
        self.store = store
        self.value_serializer = value_serializer
        self.topic_partitions = topic_partitions
        self.topic_replicas = conf.topic_replicas
        self.commit_interval = seconds(conf.commit_interval)
        self.broker_credentials = broker_credentials
        self.max_redeliveries = max_redeliveries
        self.on_error = on_error
        self.shutdown_timeout = seconds(conf.shutdown_timeout)
        self.revocation_timeout = seconds(conf.revocation_timeout)
        self.broker_availability_timeout = seconds(conf.broker_availability_timeout)
        self.max_partition_backlog = max_partition_backlog
        self.group_instance_id = conf.group_instance_id
        self.table_standby_replicas = table_standby_replicas
        self.reply_topic_name = conf.reply_topic_name
        self.scheduler = scheduler
        """The clock timers wait on: a reactivex scheduler (virtual time in tests), or None for the loop's."""
        self.agents: dict[str, Agent] = {}
        self.topics: dict[str, Topic[Any, Any]] = {}
        self.channels: list[Channel[Any, Any]] = []
        self.tables: dict[str, _Table] = {}
        self._tables = TableManager(self)
        self.commands: dict[str, Callable[..., Any]] = {}
        self._subscriptions: dict[object, Subscription] = {}
        self.schedule = Schedule(self)
        """The timers, cron jobs and tasks this app declared (`timer`, `crontab`, `task`)."""
        self._timers = self.schedule.timers
        self.leader = Leader(self)
        """Whether this worker leads its group (`is_leader`), for ``on_leader=True`` timers."""
        self.views = Views(self)
        """The web pages this app declared (`page`, `table_route`), served with ``--web-port``."""
        self.on_startup_finished: Callable[[], Awaitable[Any]] | None = None
        """Awaited once the app started (Faust's hook of the same name)."""
        self._transport: Transport | None = None
        self._transport_started = False
        self._conductor: Conductor | None = None
        self._late: list[Conductor] = []
        self.replies = Replies(self)
        """This worker's asks waiting for replies, and the replies its agents send."""
        self._background_tasks: set[asyncio.Task[Any]] = set()
        self._sends: set[asyncio.Task[Any]] = set()
        self._send_error: str | None = None
        self._running_tasks: list[asyncio.Task[Any]] = []
        self._started = False
        self._stopping = False
        self._configured = False
        self._consuming = False
        self._stopper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event() if _loop_running() else None
        self.crashed: BaseException | None = None
        self.monitor = Monitor(self)
        self.outbox = Outbox() if conf.exactly_once else None  # sends held for their partition's transaction

    # ------------------------------------------------------------ declarations

    def topic(
        self,
        *names: str,
        key_type: Any = None,
        value_type: Any = None,
        partitions: int | None = None,
        replicas: int | None = None,
        retention: Duration | None = None,
        compacting: bool | None = None,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
        max_redeliveries: int | None = None,
        on_error: str | None = None,
        dead_letter: str | Topic[Any, Any] | None = None,
        maxsize: int | None = None,
    ) -> Topic[Any, Any]:
        """Declare a topic (created on start if missing); declaring the same name twice returns the first."""
        if names and names[0] in self.topics:
            return self.topics[names[0]]
        for name in names:
            check_topic_name(name)
        topic: Topic[Any, Any] = Topic(
            self,
            *names,
            key_type=key_type,
            value_type=value_type,
            partitions=partitions,
            replicas=replicas,
            retention=retention,
            compacting=compacting,
            key_serializer=key_serializer or self.conf.key_serializer,
            value_serializer=value_serializer,
            max_redeliveries=self.max_redeliveries if max_redeliveries is None else max_redeliveries,
            on_error=on_error or self.on_error,
            dead_letter=dead_letter,
            maxsize=self.conf.stream_buffer_maxsize if maxsize is None else maxsize,
        )
        for name in topic.names:
            self.topics[name] = topic
        return topic

    def channel(
        self, *, key_type: Any = None, value_type: Any = None, maxsize: int = 1000
    ) -> Channel[Any, Any]:
        """Declare an in-process channel (a bounded queue agents and streams can read)."""
        channel: Channel[Any, Any] = Channel(self, key_type=key_type, value_type=value_type, maxsize=maxsize)
        self.channels.append(channel)
        return channel

    def agent(
        self,
        channel: Channel[Any, Any] | str | None = None,
        *,
        name: str | None = None,
        concurrency: int = 1,
        sink: Sequence[Any] | None = None,
        on_error: Callable[[Agent, BaseException], Any] | None = None,
        supervisor_strategy: str | None = None,
        help: str | None = None,
        key_type: Any = None,
        value_type: Any = None,
    ) -> Callable[[AgentFun], Agent]:
        """Decorate ``async def fun(stream)`` as an agent reading ``channel`` (its own topic when None, of
        ``key_type`` and ``value_type``); ``@app.agent`` without parentheses works too."""
        if inspect.iscoroutinefunction(channel) or inspect.isasyncgenfunction(channel):
            agent = self.agent()(channel)
            return cast(Callable[[AgentFun], Agent], agent)  # the bare decorator returns the agent itself
        if isinstance(channel, str):
            channel = self.topic(channel)

        def decorate(fun: AgentFun) -> Agent:
            agent = Agent(
                fun,
                app=self,
                channel=channel,
                name=name,
                concurrency=concurrency,
                sink=sink,
                on_error=on_error,
                supervisor_strategy=supervisor_strategy,
                help=help,
                shutdown_timeout=self.shutdown_timeout,
                key_type=key_type,
                value_type=value_type,
            )
            old = self.agents.get(agent.name)
            if old is not None:
                if (old.fun.__module__, old.fun.__qualname__) != (fun.__module__, fun.__qualname__):
                    raise ConfigurationError(f"app {self.id!r} already has an agent named {agent.name!r}")
                old.cancel()  # the same function defined again (a re-run notebook cell) replaces it
            self.agents[agent.name] = agent
            if self._started:
                self.spawn(self._start_agent(agent), f"agent {agent.name}")
            return agent

        return decorate

    async def _start_agent(self, agent: Agent) -> None:
        """Start an agent declared while the app runs (a topic nobody read yet gets a consumer of its own)."""
        if self.agents.get(agent.name) is not agent:
            return  # replaced again before it started
        await agent.start()

    def Table(
        self,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        partitions: int | None = None,
        key_type: Any = None,
        value_type: Any = None,
        store: str | None = None,
        use_partitioner: bool = False,
        help: str | None = None,
        on_window_close: Callable[[Any, Any], Any] | None = None,
        changelog_topic: Topic[Any, Any] | str | None = None,
    ) -> _Table:
        """Declare a table: dict-like state sharded like its source topic, logged to a compacted changelog.

        >>> counts = app.Table("word-counts", default=int)      # counts[word] += 1 inside an agent

        ``changelog_topic``: a Topic (or name) to log to instead of ``{app_id}-{name}-changelog``.
        """
        return self._tables.add(
            _Table(
                self,
                name,
                default=default,
                partitions=partitions,
                key_type=key_type,
                value_type=value_type,
                store=store,
                use_partitioner=use_partitioner,
                help=help,
                on_window_close=on_window_close,
                changelog_topic=changelog_topic,
            )
        )

    def GlobalTable(self, name: str, **options: Any) -> _GlobalTable:
        """Declare a table every worker holds whole (options as for `Table`)."""
        return self._tables.add(_GlobalTable(self, name, **options))

    def SetTable(self, name: str, **options: Any) -> _SetTable:
        """Declare a table of sets: ``table[key].add(x)`` (options as for `Table`)."""
        return self._tables.add(_SetTable(self, name, **options))

    def stream(
        self,
        channel: Channel[Any, Any] | str | Iterable[Any] | AsyncIterable[Any],
        *,
        processors: Sequence[Callable[[Any], Any]] = (),
    ) -> Stream[Any]:
        """A stream reading a channel or topic: beside an agent or another stream of it, a reader of its own.

        Every reader of a topic gets every message, and an offset is committed once every reader acknowledged
        it. A reader joins when its consumption starts and leaves when it ends (`tap` only looks).
        An iterable or async iterable gives a stream of its values, as `Stream.from_iterable` does.
        ``processors``: functions (plain or async) applied to each value in order, as ``.map`` would.
        """
        stream = self._stream_of(channel)
        for processor in processors:
            stream = stream.map(processor)
        return stream

    def _stream_of(
        self, channel: Channel[Any, Any] | str | Iterable[Any] | AsyncIterable[Any]
    ) -> Stream[Any]:
        if isinstance(channel, str):
            channel = self.topic(channel)
        elif not isinstance(channel, Channel):
            return values_stream(channel)
        if isinstance(channel, Topic) and self._topic_has_reader(channel):
            return self._reader_stream(channel)
        return channel.stream()

    def tap(self, topic: Topic[Any, Any] | str, *, from_start: bool = False) -> Stream[Any]:
        """A stream that watches a topic without consuming it: a throwaway group that acknowledges nothing.

        It reads what arrives from when its consumption starts (``from_start=True``: from the oldest retained
        message); the app's readers and its commits are untouched. Bound it: ``take``, ``to_list(timeout=)``.
        """
        from .peek import tap_stream

        if isinstance(topic, str):
            topic = self.topics.get(topic) or self.topic(topic)
        return tap_stream(topic, from_start=from_start)

    def _topic_has_reader(self, topic: Topic[Any, Any]) -> bool:
        """Whether an agent or a stream already reads ``topic`` (another stream must not compete with it)."""
        return id(topic) in self._subscriptions or any(a.channel is topic for a in self.agents.values())

    def _reader_stream(self, topic: Topic[Any, Any]) -> Stream[Any]:
        """A stream of ``topic`` with a subscription of its own, attached for the span of its consumption."""
        from .peek import topic_source

        def build(ctx: Any) -> Any:
            maxsize, batch = topic.reading_limits()
            subscription = Subscription(
                topic.name,
                self._policy_for,
                dead_letter=self._dead_letter,
                crash=self.crash,
                maxsize=maxsize,
                batch=batch,
                label=f"{self.id}:{topic.name}",
            )
            self._attach_reader(topic, subscription)
            observable = compiled(subscription.stream(), ctx)
            return _rx.on_end(observable, lambda: self._detach_reader(subscription))

        stream = batch_stream(build, f"{self.id}:{topic.name}", peek=functools.partial(topic_source, topic))
        return stream.bind(self)

    def _attach_reader(self, topic: Topic[Any, Any], subscription: Subscription) -> None:
        """Route ``topic``'s messages to one more subscription, on the consumer that already reads it."""
        self._subscriptions[id(subscription)] = subscription
        names = topic.topic_names
        conductor = next((c for c in self.conductors() if any(n in c.readers for n in names)), None)
        if conductor is not None:
            conductor.add(topic, subscription)
        elif self._consuming or (self._conductor is not None and self._conductor.running):
            self._late_subscribe(topic, subscription)
        else:
            self._main_conductor().add(topic, subscription)

    def _detach_reader(self, subscription: Subscription) -> None:
        """A reader's consumption ended: it no longer gets messages nor holds commits back."""
        self._subscriptions.pop(id(subscription), None)
        for conductor in self.conductors():
            conductor.remove(subscription)

    timer = schedule.timer
    crontab = schedule.crontab
    task = schedule.task

    is_leader = leader.is_leader

    command = commands.command
    page = views.page
    table_route = views.table_route
    topic_route = views.topic_route

    # ------------------------------------------------------------ transport

    @property
    def transport(self) -> Transport:
        """The transport the broker URL names (created on first use)."""
        if self._transport is None:
            options = self.conf.transport_options(self.id, self.broker)
            self._transport = get_transport(self.broker, **options)
        return self._transport

    # ------------------------------------------------ for channels, agents and tables (types.AppServices)

    @property
    def started(self) -> bool:
        """Whether the app runs (from `start` until `stop`)."""
        return self._started

    @property
    def consuming(self) -> bool:
        """Whether the app's consumer joined its group and its tables recovered (set at the end of start)."""
        return self._consuming

    def subscriptions(self) -> list[Subscription]:
        """The subscriptions of the app's channels and topics."""
        return list(self._subscriptions.values())

    @property
    def existing_transport(self) -> Transport | None:
        """The transport if it was created, without creating it (None before first use)."""
        return self._transport

    def spawn(self, coro: Awaitable[Any], what: str, *, send: bool = False) -> asyncio.Task[None]:
        """Run ``coro`` in a task the app owns (returned, cancelled on stop); failures are logged as ``what``.

        Sends (``send=True``) are awaited before every commit.
        """

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except RxStreamError as exc:
                logger.error("app %s: %s failed: %s", self.id, what, exc)
            except Exception:
                logger.exception("app %s: %s failed", self.id, what)

        task = asyncio.get_running_loop().create_task(guarded())
        owner = self._sends if send else self._background_tasks
        owner.add(task)
        task.add_done_callback(owner.discard)
        return task

    async def producer(self) -> Transport:
        """The transport, started (sending works before the app starts)."""
        transport = self.transport
        if not self._transport_started:
            self._transport_started = True
            try:
                await transport.start()
            except BaseException:
                self._transport_started = False
                raise
        return transport

    def subscription_for(
        self, channel: Channel[Any, Any], *, maxsize: int, batch: int = MAX_BATCH, reader: str | None = None
    ) -> Subscription:
        """The subscription of a channel or topic (one of its own for ``reader``, e.g. a second agent of a
        topic, which gets every message too), registered with the consumer for topics."""
        key: object = id(channel) if reader is None else (id(channel), reader)
        subscription = self._subscriptions.get(key)
        if subscription is not None:
            return subscription
        topic = channel if isinstance(channel, Topic) else None
        subscription = Subscription(
            channel.name,
            self._policy_for,
            dead_letter=self._dead_letter,
            crash=self.crash,
            maxsize=maxsize,
            batch=batch,
            label=f"{self.id}:{channel.name}",
        )
        self._subscriptions[key] = subscription
        if topic is not None and not topic.internal:
            if self._consuming or (self._conductor is not None and self._conductor.running):
                self._late_subscribe(topic, subscription)
            else:
                self._main_conductor().add(topic, subscription)
        return subscription

    def _main_conductor(self) -> Conductor:
        if self._conductor is None:
            hooks: dict[str, Any] = {"on_assigned": self._assigned, "on_revoked": self._tables_revoked}
            hooks["on_fenced"] = self._tables.on_fenced
            self._conductor = self.conductor(self.id, transactional=True, **hooks)
        return self._conductor

    async def _assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self._tables.on_assigned(assigned)
        await self.on_partitions_assigned.send(self, assigned=set(assigned))
        await self.on_rebalance_complete.send(self)

    def conductor(
        self, group_id: str, *, monitored: bool = True, transactional: bool = False, **hooks: Any
    ) -> Conductor:
        """A consumer group member of this app: its commit interval, sends flushed before every commit, the
        app crashing on a failure it cannot recover from; ``hooks`` are the rebalance callbacks.
        ``transactional``: its sources' outputs commit in transactions with exactly-once processing."""
        return Conductor(
            self.transport,
            group_id,
            commit_interval=self.commit_interval,
            flush=self.flush,
            on_crash=self.crash,
            monitor=self.monitor if monitored else None,
            revocation_timeout=self.revocation_timeout,
            outbox=self.outbox if transactional else None,
            **hooks,
        )

    async def _tables_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.on_partitions_revoked.send(self, revoked=set(revoked))
        consumer = self._conductor.consumer if self._conductor is not None else None
        await self._tables.on_revoked(revoked, consumer.assignment() if consumer is not None else frozenset())

    def _late_subscribe(self, topic: Topic[Any, Any], subscription: Subscription) -> None:
        """A topic first read after start gets a consumer of its own (its own group, same app)."""
        conductor = self.conductor(f"{self.id}-{topic.name}", transactional=True)
        conductor.add(topic, subscription)
        self._late.append(conductor)
        self.spawn(self._start_late(conductor, topic), f"consumer for {topic.name}")

    async def _start_late(self, conductor: Conductor, topic: Topic[Any, Any]) -> None:
        await self.transport.create_topics(topic.specs(self.topic_partitions))
        await conductor.start()

    def _policy_for(self, topic: str) -> ErrorPolicy:
        declared = self.topics.get(topic)
        if declared is not None:
            return declared.policy
        return ErrorPolicy.make(self.on_error, f"{topic}-dead-letter", self.max_redeliveries)

    async def _dead_letter(self, message: Message, exc: BaseException, what: str) -> None:
        """Send a message that could not be processed to its dead-letter topic, with why in its headers."""
        policy = self._policy_for(message.topic)
        target = policy.dead_letter or f"{message.topic}-dead-letter"
        transport = await self.producer()
        topic = self.topics.get(message.topic)
        key, value, headers = dead_letter_record(message, exc, what, topic, needs_bytes=transport.needs_bytes)
        await transport.send(target, key, value, headers=headers)
        self.monitor.dead_lettered(message.topic, message.partition)

    async def flush(self) -> None:
        """Wait for buffered and background sends so that commits never run ahead of what was produced."""
        for topic in list(self.topics.values()):
            await topic.batching.flush()
        await self._tables.checkpoint()
        pending = [t for t in self._sends if not t.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._send_error is not None:
            raise TransportError(
                f"app {self.id}: a send failed ({self._send_error}); offsets are no longer committed"
            )

    def send_failed(self, exc: BaseException, topic: str) -> None:
        """A produced message could not be stored: stop committing and crash the app."""
        if self._send_error is None:
            self._send_error = f"topic {topic!r}: {exc!r}"
        self.crash(exc)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect, create topics, start agents, consumers, timers and tasks."""
        if self._started:
            return
        self._started = True
        self._stopped = asyncio.Event()
        self.crashed = None
        try:
            await self._start()
        except BaseException:
            await self.stop()  # undo what did start: a failed start leaves the app stopped, not half-running
            raise

    async def _start(self) -> None:
        """The steps of `start` that a failure undoes."""
        if not self._configured:
            self._configured = True
            discover(self.id, self.conf.origin, self.conf.autodiscover)
            await configured(self)
        transport = await self.producer()
        for subscription in self._subscriptions.values():
            subscription.reopen()  # a restarted app reads again what its stop closed
        for agent in self.agents.values():
            agent.subscription()
        self.leader.subscribe()
        await declare(transport, self.topics.values(), self.topic_partitions)
        await self._tables.start(consuming=self._conductor is not None)
        for agent in self.agents.values():
            await agent.start()
        if self._conductor is not None:
            await self._conductor.start()
        self._consuming = True  # topics first read from now on get a consumer of their own
        loop = asyncio.get_running_loop()
        self._running_tasks.extend(self.schedule.start())
        reachable = getattr(transport, "reachable", None)
        if reachable is not None:
            limit = seconds(self.conf.broker_availability_timeout)
            watch = watch_broker(reachable, limit, f"app {self.id}", redact(self.broker), self.crash)
            self._running_tasks.append(loop.create_task(watch, name="broker watch"))
        logger.info(
            "app %s started on %s: %d agents, %d topics",
            self.id,
            redact(self.broker),
            len(self.agents),
            len(self.topics),
        )
        await self.on_startup.send(self)
        if self.on_startup_finished is not None:
            await self.on_startup_finished()

    async def stop(self) -> None:
        """Stop cleanly: no new events, in-flight ones finish (bounded), offsets commit, disconnect.

        Every step runs even when an earlier one fails (a broker outage makes aiokafka raise anything,
        CancelledError included): the app always ends stopped, and a failed step marks it crashed.
        """
        if not self._started:
            if self._stopping and self._stopped is not None:  # a stop under way (after a crash) ends first
                await self._stopped.wait()
            return
        self._started = False
        self._stopping = True
        self._consuming = False
        failed: list[BaseException] = []
        await self._stop_step("on_shutdown", self.on_shutdown.send(self), failed)
        for task in self._running_tasks:
            task.cancel()
        await self._stop_step(
            "stopping timers and the broker watch",
            asyncio.gather(*self._running_tasks, return_exceptions=True),
            failed,
        )
        self._running_tasks = []
        conductors = [c for c in (self._conductor, *self._late, self.replies.conductor) if c is not None]
        for conductor in conductors:
            await self._stop_step(f"pausing consumer {conductor.group_id}", conductor.pause(), failed)
        for subscription in self._subscriptions.values():
            subscription.close(drain=False)  # streams end after what their readers already hold
        await self._stop_step(
            "stopping agents", asyncio.gather(*(agent.stop() for agent in self.agents.values())), failed
        )
        try:
            await self.flush()
        except Exception as exc:  # a lost send: every commit below fails the same way, nothing passes it
            if self.crashed is None:
                self.crashed = exc
            logger.error("app %s: sends failed while stopping, offsets are not committed: %s", self.id, exc)
        except BaseException as exc:
            failed.append(exc)
            logger.error("app %s: waiting for sends while stopping failed: %r", self.id, exc)
        for conductor in conductors:
            await self._stop_step(f"stopping consumer {conductor.group_id}", conductor.stop(), failed)
        self._late = []
        await self._stop_step("stopping tables", self._tables.stop(), failed)
        self.replies.release(self._transport)
        current = asyncio.current_task()
        owned = [t for t in (*self._background_tasks, *self._sends) if t is not current]
        for task in owned:
            task.cancel()
        await self._stop_step(
            "cancelling background tasks", asyncio.gather(*owned, return_exceptions=True), failed
        )
        if self._transport is not None and self._transport_started:
            self._transport_started = False
            await self._stop_step(f"disconnecting from {redact(self.broker)}", self._transport.stop(), failed)
        self.replies.cancel()
        self._stopping = False
        if self._stopped is not None:
            self._stopped.set()
        if failed and self.crashed is None:
            self.crashed = TransportError(f"app {self.id}: stopping failed: {failed[0]!r}")
        logger.info("app %s stopped", self.id)
        for failure in failed:  # interrupts, and a cancellation of this very task, go on once it is stopped
            if isinstance(failure, (KeyboardInterrupt, SystemExit)):
                raise failure
        if current is not None and current.cancelling() and failed:
            raise asyncio.CancelledError()

    async def _stop_step(self, what: str, step: Awaitable[Any], failed: list[BaseException]) -> None:
        """Await one step of `stop`; whatever it raises is logged on one line and kept, not propagated."""
        try:
            await step
        except BaseException as exc:
            failed.append(exc)
            unexpected = isinstance(exc, Exception) and not isinstance(exc, RxStreamError)
            logger.error("app %s: %s failed: %r", self.id, what, exc, exc_info=unexpected)

    def crash(self, exc: BaseException) -> None:
        """Stop the app because of ``exc``; the worker exits non-zero."""
        if self.crashed is None:
            self.crashed = exc
            logger.error("app %s crashed: %r", self.id, exc)
        self._stop_soon()

    def _stop_soon(self) -> None:
        """Stop in a task of its own (from a signal handler or a crash inside the app's own tasks)."""
        if self._stopper is None or self._stopper.done():
            self._stopper = asyncio.get_running_loop().create_task(self.stop(), name=f"stop app {self.id}")

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        """Run until SIGINT/SIGTERM or a crash; returns the exit code (0 clean, 1 crashed)."""
        from .worker import run

        stopped = lambda: cast(asyncio.Event, self._stopped).wait()  # noqa: E731 (set by start, awaited after it)
        return await run(self, stopped, install_signal_handlers=install_signal_handlers)

    def main(self, argv: Sequence[str] | None = None) -> None:
        """The command line for this app: ``python -m yourapp worker``."""
        from .cli import main

        main(argv, app=self)

    # ------------------------------------------------------------ inspection

    def committed_offsets(self) -> dict[TopicPartition, int]:
        """What the app's consumers would commit now, per partition (topics first read after start too)."""
        offsets: dict[TopicPartition, int] = {}
        for conductor in self.conductors():
            offsets.update(conductor.committable())
        return offsets

    async def commit(self) -> dict[TopicPartition, int]:
        """Commit acknowledged offsets now (the app also does this every commit_interval)."""
        offsets: dict[TopicPartition, int] = {}
        for conductor in self.conductors():
            offsets.update(await conductor.commit())
        return offsets

    def conductors(self) -> list[Conductor]:
        """The app's consumer, then those of topics first read after start."""
        return ([self._conductor] if self._conductor is not None else []) + list(self._late)

    async def peek(
        self,
        topic: Topic[Any, Any] | str,
        n: int = 5,
        *,
        events: bool = False,
        timeout: Duration | None = None,
        latest: bool = False,
    ) -> list[Any]:
        """The first ``n`` values (or events; ``latest=True``: the last ``n``) of a topic, read without
        consuming or committing offsets."""
        from .peek import peek_only_stream

        if isinstance(topic, str):
            topic = self.topics.get(topic) or Topic(self, topic)
        return await peek_only_stream(topic).peek(n, events=events, timeout=timeout, latest=latest)

    def __repr__(self) -> str:
        broker = redact(self.broker)
        return f"<App {self.id} broker={broker} agents={len(self.agents)} topics={len(self.topics)}>"

    def _repr_html_(self) -> str:
        from .display import app_html

        return app_html(self)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
