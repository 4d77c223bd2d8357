"""The Kafka transport: ``kafka://host:port[;host2:port2]`` through aiokafka (producer, admin, groups).

Keys, values and header values travel as bytes (``needs_bytes``: the channel layer encodes before `send`
and decodes what `KafkaConsumer.getmany` returns). Timestamps are float seconds in rxstream and
milliseconds in Kafka. A message with ``partition=None`` and a key goes where Kafka's default partitioner
puts it (murmur2 of the key bytes, `rxstream.transport.partitioner`, as in every transport), so a key lands
on the same partition from any transport or Kafka client; one without a key goes round-robin.

Topics are never left to the broker's auto-creation (with the broker's default partition count): the first
`send`, `partitions_for` or consumer subscription of an unknown topic creates it with ``default_partitions``.

Every failure of the broker surfaces as `rxstream.errors.TransportError` naming the URL and, where it
applies, the topic and partition.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final, TypeVar

from aiokafka import (  # type: ignore[import-untyped,unused-ignore]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
)
from aiokafka import TopicPartition as _KafkaTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import (  # type: ignore[import-untyped,unused-ignore]
    ClusterAuthorizationFailedError,
    GroupCoordinatorNotAvailableError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from ..auth import Credentials
from ..errors import ConfigurationError, TransportError
from ..events import Headers, Row
from ..logs import summarise_repeats
from ..urls import redact
from .base import OutputRecord, RebalanceListener, RecordMetadata, TopicPartition, TopicSpec
from .kafka_assignor import CopartitionedAssignor
from .kafka_records import check_bytes, from_kafka_tps, kafka_headers, row_of, to_kafka_tp, topic_config
from .kafka_settings import (
    CONSUMER_DEFAULTS,
    CONSUMER_OWN,
    OFFSET_RESETS,
    PRODUCER_DEFAULTS,
    PRODUCER_OWN,
    check_config,
    parse_url,
)
from .kafka_transactions import PartitionProducers
from .partitioner import RoundRobin, partition_for
from .validation import MAX_MESSAGE_BYTES, check_max_message_bytes, check_records, check_values

__all__ = ["KafkaConsumer", "KafkaTransport"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_DENIED: Final = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)
_VISIBLE_POLL: Final = 0.05  # seconds between metadata looks while a new topic propagates
AVAILABILITY_TIMEOUT: Final = 60.0
"""Seconds a send waits for an unreachable broker before it fails (App's broker_availability_timeout)."""


class KafkaTransport:
    """A Kafka cluster as an rxstream transport: one shared producer, an admin client, group consumers.

    Example::

        transport = KafkaTransport("kafka://127.0.0.1:9092", credentials=SASLCredentials("app", "secret"))
        await transport.start()
        meta = await transport.send("orders", b"order-1", b'{"amount": 3}')

    ``max_message_bytes`` (Kafka's default, 1 MiB) sets the producer's ``max_request_size``; larger messages
    are refused before they are sent. ``availability_timeout`` (60 s) is how long a send waits for an
    unreachable broker (the producer's ``request_timeout_ms`` unless ``producer_config`` sets it).
    ``group_instance_ids`` (group id -> instance id) makes this transport's consumers of those groups static
    members: one restarted within the session timeout takes its partitions back without a rebalance (a
    static member does not leave its group when it stops).
    """

    needs_bytes = True

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        client_id: str = "rxstream",
        default_partitions: int = 8,
        connect_timeout: float = 15.0,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        availability_timeout: float = AVAILABILITY_TIMEOUT,
        group_instance_ids: Mapping[str, str] | None = None,
    ) -> None:
        if default_partitions < 1:
            raise ConfigurationError(f"default_partitions must be at least 1, got {default_partitions}")
        if connect_timeout <= 0:
            raise ConfigurationError(f"connect_timeout must be positive, got {connect_timeout}")
        if availability_timeout <= 0:
            raise ConfigurationError(f"availability_timeout must be positive, got {availability_timeout}")
        self.bootstrap_servers = parse_url(url)
        self.url = redact(url)
        self.availability_timeout = availability_timeout
        summarise_repeats("aiokafka")  # an outage makes aiokafka log each retry: ~90,000 lines a minute
        self.credentials = credentials
        self.client_id = client_id
        self.default_partitions = default_partitions
        self.connect_timeout = connect_timeout
        check_config("producer_config", producer_config, PRODUCER_OWN)
        check_config("consumer_config", consumer_config, CONSUMER_OWN)
        self.producer_config: dict[str, Any] = {
            **PRODUCER_DEFAULTS,
            "max_request_size": check_max_message_bytes(max_message_bytes),
            "request_timeout_ms": round(availability_timeout * 1000),
            **(producer_config or {}),
        }
        self.max_message_bytes: int = self.producer_config["max_request_size"]
        self.consumer_config: dict[str, Any] = {**CONSUMER_DEFAULTS, **(consumer_config or {})}
        self.group_instance_ids: dict[str, str] = dict(group_instance_ids or {})
        self._producer: Any = None
        self._clients: dict[str, tuple[Any, Callable[[], Awaitable[None]]]] = {}  # name: (client, close)
        self._clients_lock = asyncio.Lock()
        self._partitions: dict[str, int] = {}  # topics known to exist, with their partition count
        self._round_robin = RoundRobin()  # the partitions of keyless messages

    def __repr__(self) -> str:
        return f"<KafkaTransport {self.url}>"

    def client_kwargs(self) -> dict[str, Any]:
        """The connection arguments all aiokafka clients of this transport get (servers, id, credentials)."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers, "client_id": self.client_id}
        if self.credentials is not None:
            kwargs.update(self.credentials.client_kwargs())
        return kwargs

    def _error(self, action: str, exc: BaseException | None = None, hint: str = "") -> TransportError:
        """A TransportError naming the URL, what was being done, the cause and what to check."""
        message = f"Kafka {self.url}: {action} failed"
        if isinstance(exc, KafkaError):  # aiokafka's str() already starts with the class name
            message += f": {exc}"
        elif exc is not None:
            message += f": {type(exc).__name__}: {exc}"
        return TransportError(f"{message}; {hint}" if hint else message)

    async def _bounded(
        self, aw: Awaitable[T], action: str, *, timeout: float | None = None, hint: str = ""
    ) -> T:
        """Await ``aw`` at most ``timeout`` (default connect_timeout) s; errors become TransportError."""
        limit = self.connect_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(aw, limit)
        except TimeoutError as exc:
            raise self._error(f"{action} (no answer within {limit:g}s)", hint=hint) from exc
        except KafkaError as exc:
            raise self._error(action, exc, hint) from exc

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the producer; TransportError naming the URL within connect_timeout if the broker is down."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(**self.client_kwargs(), **self.producer_config)
        try:
            await self._bounded(
                producer.start(),
                "connecting",
                hint=f"check that a broker listens at {', '.join(self.bootstrap_servers)}",
            )
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        """Flush pending sends, then close the producer, the admin client and the offsets reader."""
        producer, self._producer = self._producer, None
        clients, self._clients = self._clients, {}
        try:
            if producer is not None:
                await producer.stop()
        finally:
            for _, close in clients.values():
                await close()

    async def reachable(self, timeout: float | None = None) -> bool:
        """Whether a broker answers a metadata request within ``timeout`` (default connect_timeout) s."""
        producer = self._producer
        if producer is None:
            return False
        limit = self.connect_timeout if timeout is None else timeout
        try:
            return bool(await asyncio.wait_for(producer.client.force_metadata_update(), limit))
        except (TimeoutError, KafkaError):
            return False

    def _started_producer(self) -> Any:
        """The producer, or a clear error when `start` was not awaited."""
        if self._producer is None:
            raise TransportError(f"Kafka {self.url}: transport not started; await transport.start() first")
        return self._producer

    async def _client(self, name: str, make: Callable[..., Any], close: str) -> Any:
        """A helper client built by ``make(**kwargs)``, started on first use and closed by `stop`."""
        async with self._clients_lock:
            if name not in self._clients:
                client = make(**self.client_kwargs(), request_timeout_ms=round(self.connect_timeout * 1000))
                try:
                    await self._bounded(client.start(), f"connecting the {name}")
                except BaseException:
                    await getattr(client, close)()
                    raise
                self._clients[name] = (client, getattr(client, close))
            return self._clients[name][0]

    async def _admin_client(self) -> Any:
        """The admin client (topic creation and metadata)."""
        return await self._client("admin client", AIOKafkaAdminClient, "close")

    async def _offsets_reader(self) -> Any:
        """A consumer outside any group, for end offsets."""
        return await self._client(
            "offsets reader", functools.partial(AIOKafkaConsumer, enable_auto_commit=False), "stop"
        )

    # ---- topics ------------------------------------------------------------------------------------

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics (partitions, replicas, retention, compaction); existing ones stay as is."""
        if not specs:
            return
        admin = await self._admin_client()
        new_topics = [
            NewTopic(spec.name, spec.partitions, spec.replicas, topic_configs=topic_config(spec))
            for spec in specs
        ]
        names = ", ".join(repr(spec.name) for spec in specs)
        response = await self._bounded(admin.create_topics(new_topics), f"creating topics {names}")
        denied: dict[str, str] = {}  # not allowed to create: fine if an operator already did
        for name, code, *rest in response.topic_errors:
            error = for_code(code)
            if code == 0 or error is TopicAlreadyExistsError:
                continue
            detail = rest[0] if rest and rest[0] else error.__name__
            if error in _DENIED:
                denied[name] = detail
                continue
            raise TransportError(f"Kafka {self.url}: cannot create topic {name!r}: {detail}")
        await self._describe([spec.name for spec in specs], denied)

    async def _describe(self, names: Sequence[str], denied: Mapping[str, str]) -> None:
        """Wait (bounded) until ``names`` have a leader per partition in metadata; remember their sizes."""
        admin = await self._admin_client()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        waiting = list(names)
        while True:
            topics = await self._bounded(admin.describe_topics(waiting), f"describing topics {waiting}")
            for topic in topics:
                name, partitions = topic["topic"], topic["partitions"]
                if topic["error_code"] == 0 and partitions and all(p["leader"] >= 0 for p in partitions):
                    self._partitions[name] = len(partitions)
                    waiting.remove(name)
                elif topic["error_code"] != 0 and name in denied:
                    raise TransportError(
                        f"Kafka {self.url}: topic {name!r} does not exist and may not be created here "
                        f"({denied[name]}): create it, or grant this client CREATE on it"
                    )
            if not waiting:
                return
            if loop.time() >= deadline:
                codes = {t["topic"]: for_code(t["error_code"]).__name__ for t in topics}
                raise TransportError(
                    f"Kafka {self.url}: topics {waiting} not ready after {self.connect_timeout:g}s ({codes})"
                )
            await asyncio.sleep(_VISIBLE_POLL)

    async def _ensure_topics(self, topics: Iterable[str]) -> None:
        """Create, with default_partitions, any of ``topics`` not yet known to exist."""
        missing = [t for t in dict.fromkeys(topics) if t not in self._partitions]
        if missing:
            await self.create_topics([TopicSpec(t, self.default_partitions) for t in missing])

    async def partitions_for(self, topic: str) -> int:
        """How many partitions ``topic`` has, creating it with default_partitions if missing.

        Once started, the producer's metadata answers (refreshed by aiokafka, so it sees added partitions).
        """
        await self._ensure_topics([topic])
        if self._producer is None:
            return self._partitions[topic]
        return await self._partition_ids(self._producer, topic)

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """Per partition of ``topic``, the offset the next message will get; TransportError if missing."""
        if topic not in self._partitions:
            # list, not describe: a metadata request naming a missing topic makes the broker auto-create it
            admin = await self._admin_client()
            if topic not in await self._bounded(admin.list_topics(), "listing topics"):
                raise TransportError(f"Kafka {self.url}: topic {topic!r} does not exist")
        count = await self.partitions_for(topic)
        reader = await self._offsets_reader()
        ends = await self._bounded(
            reader.end_offsets([_KafkaTP(topic, p) for p in range(count)]),
            f"reading the end offsets of topic {topic!r}",
        )
        return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def first_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """Per partition of ``topic``, the first offset still retained."""
        ends = await self.end_offsets(topic)
        reader = await self._offsets_reader()
        firsts = await self._bounded(
            reader.beginning_offsets([to_kafka_tp(tp) for tp in ends]),
            f"reading the first offsets of topic {topic!r}",
        )
        return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in firsts.items()}

    async def group_members(self, group_id: str) -> int:
        """How many members consumer group ``group_id`` has now (its coordinator may take a moment)."""
        admin = await self._admin_client()
        for attempt in range(10):
            try:
                describing = admin.describe_consumer_groups([group_id])
                responses = await self._bounded(describing, f"describing consumer group {group_id!r}")
                break
            except TransportError as exc:
                if attempt == 9 or not isinstance(exc.__cause__, GroupCoordinatorNotAvailableError):
                    raise
                await asyncio.sleep(0.5)
        # DescribeGroupsResponse groups: (error_code, group_id, state, protocol_type, protocol, members, ...)
        return sum(len(described[5]) for response in responses for described in response.groups)

    # ---- producing ---------------------------------------------------------------------------------

    async def _partition_ids(self, producer: Any, topic: str) -> int:
        """How many partitions the producer's (live) metadata gives ``topic``."""
        try:
            return len(await producer.partitions_for(topic))
        except KafkaError as exc:
            raise self._error(f"looking up the partitions of topic {topic!r}", exc) from exc

    def _route(self, topic: str, key: Any, partition: int | None, count: int) -> int:
        """The partition a message goes to: as given, else murmur2 of the key, else round-robin."""
        if partition is None:
            return self._round_robin.next(topic, count) if key is None else partition_for(key, count)
        if not 0 <= partition < count:
            raise TransportError(
                f"Kafka {self.url}: cannot send to partition {partition} of topic {topic!r}: "
                f"it has partitions 0..{count - 1}"
            )
        return partition

    def _metadata(self, md: Any, timestamp_ms: int) -> RecordMetadata:
        """aiokafka's RecordMetadata as rxstream's; the broker's time only for LogAppendTime topics.

        aiokafka reports the first record's CreateTime for every record of a batch, so the time we sent wins.
        """
        ms = md.timestamp if md.timestamp_type == 1 and md.timestamp is not None else timestamp_ms
        return RecordMetadata(md.topic, md.partition, md.offset, ms / 1000)

    async def send(
        self,
        topic: str,
        key: Any,
        value: Any,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> RecordMetadata:
        """Append one message and wait for the broker's acknowledgment (acks=all by default)."""
        check_records(topic, ((key, value, partition, headers),), self.max_message_bytes)
        producer = self._started_producer()
        check_bytes("key", key, topic)
        check_bytes("value", value, topic)
        encoded_headers = kafka_headers(headers, topic)
        await self._ensure_topics([topic])
        partition = self._route(topic, key, partition, await self._partition_ids(producer, topic))
        timestamp_ms = round((time.time() if timestamp is None else timestamp) * 1000)
        try:
            if key is None and value is None:  # a valid Kafka record that aiokafka's send() refuses
                batch = producer.create_batch()
                batch.append(timestamp=timestamp_ms, key=None, value=None, headers=encoded_headers)
                fut = await self._submit(producer, topic, partition, batch)
            else:
                fut = await producer.send(
                    topic, value, key, partition, timestamp_ms=timestamp_ms, headers=encoded_headers
                )
            md = await fut
        except KafkaError as exc:
            raise self._error(f"sending to topic {topic!r} partition {partition}", exc) from exc
        return self._metadata(md, timestamp_ms)

    async def send_values(self, topic: str, values: Sequence[Any]) -> None:
        """Append values without key or headers in order (round-robin over partitions), batched."""
        values = list(values)  # as they are now: they are read while earlier batches go out
        check_values(topic, values, self.max_message_bytes)
        if not set(map(type, values)) <= {bytes, type(None)}:  # else the value that is not bytes is named
            for value in values:
                check_bytes("value", value, topic)
        if values:
            producer = self._started_producer()
            await self._ensure_topics([topic])
            turns = self._round_robin.turns(topic, len(values), await self._partition_ids(producer, topic))
            await self._pack(producer, topic, zip(turns, repeat(None), values, repeat(None)))

    async def send_many(
        self, topic: str, records: Sequence[tuple[Any, Any, int | None, Headers | None]]
    ) -> None:
        """Append records in order, packed into one producer batch per partition, then await the batches.

        Every record is checked before any is sent, so a bad one fails the call without a partial send.
        """
        if not records:
            return
        check_records(topic, records, self.max_message_bytes)
        await self.send_batches(self._started_producer(), topic, records)

    async def send_batches(self, producer: Any, topic: str, records: Sequence[OutputRecord]) -> None:
        """Send checked records through ``producer`` (this transport's, or a transactional one), batched."""
        await self._ensure_topics([topic])
        count = await self._partition_ids(producer, topic)
        routed: list[tuple[int, Any, Any, list[tuple[str, bytes]] | None]] = []
        for key, value, partition, headers in records:
            if type(value) is not bytes or key is not None:  # a sink's keyless bytes need no check
                check_bytes("key", key, topic)
                check_bytes("value", value, topic)
            encoded = kafka_headers(headers, topic) if headers else None
            routed.append((self._route(topic, key, partition, count), key, value, encoded))
        await self._pack(producer, topic, routed)

    async def _pack(self, producer: Any, topic: str, routed: Iterable[tuple[int, Any, Any, Any]]) -> None:
        """Send (partition, key, value, headers) records packed into one producer batch per partition."""
        open_batches: dict[int, Any] = {}
        futures: list[asyncio.Future[Any]] = []
        try:
            stamp = round(time.time() * 1000)
            for partition, key, value, headers in routed:
                batch = open_batches.get(partition)
                if batch is not None:
                    if batch.append(timestamp=stamp, key=key, value=value, headers=headers) is not None:
                        continue
                    futures.append(await self._submit(producer, topic, partition, batch))  # it was full
                batch = open_batches[partition] = producer.create_batch()
                batch.append(timestamp=stamp, key=key, value=value, headers=headers)  # always fits
            while open_batches:
                partition, batch = open_batches.popitem()
                futures.append(await self._submit(producer, topic, partition, batch))
        except BaseException:
            # failed or cancelled part-way: what was queued still goes out; its failures are logged, not lost
            for fut in futures:
                fut.add_done_callback(functools.partial(self._log_failure, topic))
            raise
        await self._await_sends(topic, futures)

    async def _submit(self, producer: Any, topic: str, partition: int, batch: Any) -> asyncio.Future[Any]:
        """Queue a filled batch for ``partition``; waits while that partition's previous batch is unsent."""
        batch.close()
        try:
            fut: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
        except KafkaError as exc:
            raise self._error(f"sending to topic {topic!r} partition {partition}", exc) from exc
        return fut

    def _log_failure(self, topic: str, fut: asyncio.Future[Any]) -> None:
        """Log a batch that failed after its send_many call had already failed or been cancelled."""
        if not fut.cancelled() and (exc := fut.exception()) is not None:
            log.error(
                "Kafka %s: a batch for topic %r failed after its send_many ended: %s", self.url, topic, exc
            )

    async def _await_sends(self, topic: str, futures: list[asyncio.Future[Any]]) -> None:
        """Wait for every batch; the first failure is raised, and none is left unretrieved."""
        if not futures:
            return
        await asyncio.wait(futures)
        errors = [exc for fut in futures if (exc := fut.exception()) is not None]
        if errors:
            raise self._error(
                f"sending {len(errors)} of {len(futures)} batches to topic {topic!r}", errors[0]
            ) from errors[0]

    # ---- consuming ---------------------------------------------------------------------------------

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        on_rebalance: RebalanceListener,
        *,
        auto_offset_reset: str = "earliest",
        transactional: bool = False,
    ) -> KafkaConsumer:
        """A member of consumer group ``group_id`` subscribed to ``topics`` (start it to join)."""
        return KafkaConsumer(
            self,
            group_id,
            topics,
            on_rebalance,
            auto_offset_reset=auto_offset_reset,
            transactional=transactional,
        )


class _ListenerAdapter(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks forwarded to rxstream's listener (the rebalance awaits it)."""

    def __init__(self, owner: KafkaConsumer, client: Any) -> None:
        self._owner = owner
        self._client = client

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Kafka's (eager) rebalance revokes everything first: tell the listener ``(revoked, [])``."""
        await self._owner._notify(from_kafka_tps(revoked), [])

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """Then it hands out the new assignment (which may repeat revoked partitions): ``([], assigned)``."""
        try:
            await self._owner._open_transactions(self._client, from_kafka_tps(assigned))
            await self._owner._notify([], from_kafka_tps(assigned), ends_rebalance=True)
        finally:
            self._owner._joined.set()


class KafkaConsumer:
    """A member of a Kafka consumer group: manual commits, explicit offsets, rows of bytes.

    Rebalances are Kafka's eager protocol: the listener is called twice per rebalance, first as
    ``on_rebalance(revoked, [])`` with every partition this member held (commit them now: positions restart
    from committed offsets, and pauses are lifted), then ``on_rebalance([], assigned)`` with its whole new
    assignment (told even when empty). A call with nothing revoked (the first join) is skipped; `stop` also
    calls ``on_rebalance(assignment, [])`` before leaving, as the memory transport does. An exception raised
    by the listener is logged and raised from the next `getmany` as a TransportError (aiokafka's rebalance
    cannot carry it). A ``transactional`` member is `rxstream.transport.base.Transactional`, through a
    producer per assigned partition (`rxstream.transport.kafka_transactions`).
    """

    def __init__(
        self,
        transport: KafkaTransport,
        group_id: str,
        topics: Sequence[str],
        on_rebalance: RebalanceListener,
        *,
        auto_offset_reset: str = "earliest",
        transactional: bool = False,
    ) -> None:
        if not topics:
            raise ConfigurationError(f"a consumer of group {group_id!r} needs at least one topic")
        if auto_offset_reset not in OFFSET_RESETS:
            raise ConfigurationError(
                f"auto_offset_reset must be one of {OFFSET_RESETS}, got {auto_offset_reset!r} "
                f"(consumer group {group_id!r})"
            )
        self.transport = transport
        self.group_id = group_id
        self.topics = tuple(topics)
        self.on_rebalance = on_rebalance
        self.auto_offset_reset = auto_offset_reset
        self._consumer: Any = None
        self._joining: Any = None  # the aiokafka consumer while start waits for the first assignment
        self._stopped = False
        self._listener_error: BaseException | None = None
        self._joined = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._listening = 0
        self._generation = 0
        owned = self.assignment
        self._transactions = PartitionProducers(transport, group_id, owned) if transactional else None

    def __repr__(self) -> str:
        return f"<KafkaConsumer group={self.group_id!r} topics={list(self.topics)} {self.transport.url}>"

    def _describe(self) -> str:
        """This member for error messages."""
        return f"consumer group {self.group_id!r}"

    async def _notify(
        self, revoked: list[TopicPartition], assigned: list[TopicPartition], *, ends_rebalance: bool = False
    ) -> None:
        """Await the rxstream listener; keep its error for the next getmany (aiokafka would only log it).

        The assignment is told even when empty (``ends_rebalance``): what was revoked is then gone for good.
        """
        if not revoked and not assigned and not ends_rebalance:
            return
        # aiokafka may fetch newly assigned partitions while the listener runs (e.g. a table restoring its
        # state): getmany waits until it settles and drops what was fetched across a rebalance
        self._generation += 1
        self._listening += 1
        self._settled.clear()
        try:
            await self.on_rebalance(revoked, assigned)
        except Exception as exc:
            log.exception(
                "%s: rebalance listener failed (revoked=%s, assigned=%s)", self._describe(), revoked, assigned
            )
            if self._listener_error is None:
                self._listener_error = exc
        finally:
            self._listening -= 1
            if not self._listening:
                self._settled.set()

    async def start(self) -> None:
        """Create missing topics, join the group and wait for the first assignment (bounded)."""
        if self._stopped:
            raise TransportError(f"{self._describe()}: this consumer was stopped; create a new one")
        if self._consumer is not None:
            return
        transport = self.transport
        await transport._ensure_topics(self.topics)
        config = transport.consumer_config
        instance = transport.group_instance_ids.get(self.group_id)
        if instance is not None:
            config = {**config, "group_instance_id": instance}
        consumer = AIOKafkaConsumer(
            **transport.client_kwargs(),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            # partition p of every topic to one member (tables follow it), staying with its owner across
            # rebalances so that what stays keeps its state
            **{"partition_assignment_strategy": (CopartitionedAssignor.for_member(),), **config},
        )
        consumer.subscribe(list(self.topics), listener=_ListenerAdapter(self, consumer))
        # joining waits for the other members to rejoin, which Kafka bounds by the rebalance timeout
        rebalance_ms = config.get("rebalance_timeout_ms") or config.get("session_timeout_ms", 10_000)
        self._joining = consumer
        try:
            await transport._bounded(
                consumer.start(),
                f"joining {self._describe()} for topics {list(self.topics)}",
                timeout=transport.connect_timeout + rebalance_ms / 1000,
            )
            # the first assignment (and the listener's work on it) completes before start returns
            await transport._bounded(
                self._joined.wait(),
                f"waiting for the first assignment of {self._describe()}",
                timeout=transport.connect_timeout + rebalance_ms / 1000,
            )
        except BaseException:
            await consumer.stop()
            raise
        finally:
            self._joining = None
        self._consumer = consumer

    async def stop(self) -> None:
        """Tell the listener everything is revoked (it may commit), then leave the group for the others."""
        if self._stopped:
            return
        self._stopped = True
        consumer = self._consumer
        if consumer is None:
            return
        try:
            await self._notify(sorted(self.assignment()), [])
        finally:
            self._consumer = None
            if self._transactions is not None:
                await self._transactions.close()
            await consumer.stop()

    def _started(self) -> Any:
        """The aiokafka consumer, or a clear error when `start` was not awaited."""
        if self._consumer is None:
            raise TransportError(
                f"Kafka {self.transport.url}: {self._describe()} not started; await consumer.start() first"
            )
        return self._consumer

    async def getmany(self, timeout: float, max_records: int) -> dict[TopicPartition, Sequence[Row]]:
        """Up to ``max_records`` messages of assigned, unpaused partitions; waits up to ``timeout`` s."""
        if max_records < 1:
            raise ConfigurationError(f"max_records must be at least 1, got {max_records}")
        error, self._listener_error = self._listener_error, None
        if error is not None:
            raise TransportError(f"the rebalance listener of {self._describe()} failed: {error!r}") from error
        if self._stopped:
            return {}
        consumer = self._started()
        if not self._settled.is_set():
            await self._settled.wait()
        generation = self._generation
        try:
            batches = await consumer.getmany(
                timeout_ms=max(0, round(timeout * 1000)), max_records=max_records
            )
        except KafkaError as exc:
            raise self.transport._error(f"fetching for {self._describe()}", exc) from exc
        if generation != self._generation or not self._settled.is_set():
            owned = consumer.assignment()
            for tp, records in batches.items():  # fetched across a rebalance: read them again once settled
                if records and tp in owned:
                    consumer.seek(tp, records[0].offset)
            return {}
        return {
            TopicPartition(tp.topic, tp.partition): [row_of(r) for r in records]
            for tp, records in batches.items()
            if records
        }

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, per partition, the offset of the next message to read (bounded by connect_timeout)."""
        if not offsets:
            return
        consumer = self._started()
        # a partition not (or no longer) assigned here fails with aiokafka's IllegalStateError
        await self.transport._bounded(
            consumer.commit({to_kafka_tp(tp): offset for tp, offset in offsets.items()}),
            f"committing {dict(offsets)} for {self._describe()}",
        )

    async def _open_transactions(self, client: Any, assigned: Sequence[TopicPartition]) -> None:
        """Open the transactional producers of an assignment (fencing the previous owners), close the rest;
        a partition new here is read from its committed offset fetched again (`PartitionProducers.assign`)."""
        if self._transactions is not None:
            try:
                await self._transactions.assign(assigned, client)
            except Exception as exc:
                log.exception("%s: opening the transactions of %s failed", self._describe(), assigned)
                if self._listener_error is None:
                    self._listener_error = exc

    async def commit_transaction(
        self, source: TopicPartition, records: Mapping[str, Sequence[OutputRecord]], offset: int
    ) -> None:
        """Send ``records`` and commit ``offset`` of ``source`` in one transaction (see `Transactional`)."""
        if self._transactions is None:
            raise TransportError(
                f"{self._describe()}: a transaction needs a consumer created with transactional=True"
            )
        await self._transactions.commit(source, records, offset)

    async def position(self, tp: TopicPartition) -> int:
        """The offset the next fetch of ``tp`` starts at (past transaction markers, which are not records)."""
        offset: int = await self.transport._bounded(
            self._started().position(to_kafka_tp(tp)), f"reading the position of {tp} for {self._describe()}"
        )
        return offset

    async def committed(self, tp: TopicPartition) -> int | None:
        """The offset this group last committed for ``tp``, or None (bounded; also while `start` waits).

        A transactional member first settles a transaction of ``tp`` left in doubt (`PartitionProducers`)."""
        consumer = self._joining or self._started()
        if self._transactions is not None:
            await self._transactions.settle(tp)
        offset: int | None = await self.transport._bounded(
            consumer.committed(to_kafka_tp(tp)),
            f"reading the committed offset of {tp} for {self._describe()}",
        )
        return offset

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member owns now (empty during a rebalance)."""
        if self._consumer is None:
            return frozenset()
        return frozenset(TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment())

    def _owned(self, tps: Sequence[TopicPartition]) -> list[Any]:
        """Those of ``tps`` assigned here, as aiokafka partitions (a rebalance may have moved the others)."""
        owned = self.assignment()
        return [to_kafka_tp(tp) for tp in tps if tp in owned]

    def pause(self, tps: Sequence[TopicPartition]) -> None:
        """Stop fetching these partitions until resumed (or revoked); ones not assigned here are ignored."""
        self._started().pause(*self._owned(tps))

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        """Fetch these partitions again; ones not assigned here are ignored."""
        self._started().resume(*self._owned(tps))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next; TransportError if ``tp`` is not assigned to this member."""
        if offset < 0:
            raise ConfigurationError(f"cannot seek {tp} to negative offset {offset}")
        consumer = self._started()
        if not self._owned([tp]):
            raise TransportError(
                f"Kafka {self.transport.url}: cannot seek {tp} for {self._describe()}: the partition is not "
                "assigned to this member"
            )
        consumer.seek(to_kafka_tp(tp), offset)
