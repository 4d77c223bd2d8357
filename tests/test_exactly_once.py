"""Exactly-once processing on memory://: sinks, table changes and offsets commit together or not at all."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, ProducerFenced  # type: ignore[import-untyped,unused-ignore]

import rxstream
from rxstream import App
from rxstream.errors import ConfigurationError, TransactionFencedError, TransportError
from rxstream.events import Row, reset_event_source, set_event_source
from rxstream.exactly_once import EARLY_COMMIT_RECORDS, Outbox
from rxstream.transport import TopicPartition
from rxstream.transport.base import OutputRecord, RebalanceListener, transactional_id
from rxstream.transport.kafka import KafkaTransport
from rxstream.transport.kafka_transactions import PartitionProducers
from rxstream.transport.memory import MemoryConsumer, MemoryTransport
from tests.test_app import eventually, memory_url, read_all

KEYS = [f"key-{i}" for i in range(20)]
PARTITIONS = 4


def counting_app(url: str, delay: float = 0.0, **options: Any) -> tuple[App, Any, Any, Any]:
    """A worker counting keys in a table and sending each input's (partition, offset) to a sink."""
    options.setdefault("processing_guarantee", "exactly_once")
    app = App("eos", broker=url, topic_partitions=PARTITIONS, **options)
    source = app.topic("keys", partitions=PARTITIONS)
    out = app.topic("seen", partitions=PARTITIONS)
    counts = app.Table("counts", default=int, partitions=PARTITIONS)

    @app.agent(source, sink=[out])
    async def count(stream: rxstream.Stream[str]) -> AsyncIterator[list[int]]:
        async for key in stream:
            counts[key] += 1
            message = rxstream.current_event().message
            assert message is not None
            app.processed.append((message.partition, message.offset))  # type: ignore[attr-defined]
            if delay:
                await asyncio.sleep(delay)
            yield [message.partition, message.offset]

    app.processed = []  # type: ignore[attr-defined]
    return app, source, out, counts


@contextlib.contextmanager
def serving(row: Row) -> Iterator[None]:
    """Make ``row`` the record being processed in this context (what a stream iterator does)."""

    class Source:
        def current_event(self) -> None:
            return None

        def current_row(self) -> Row:
            return row

    token = set_event_source(Source())
    try:
        yield
    finally:
        reset_event_source(token)


def processed(app: App) -> list[tuple[int, int]]:
    """The (partition, offset) of every event a `counting_app` processed, in order."""
    events: list[tuple[int, int]] = app.processed  # type: ignore[attr-defined]
    return events


async def fill(app: App, source: Any, n: int) -> Counter[str]:
    """Send ``n`` keyed events; the true count of each key."""
    sent = [KEYS[i % len(KEYS)] for i in range(n)]
    for key in sent:
        await source.send(key=key, value=key)
    return Counter(sent)


async def stored(url: str, topic: str, timeout: float = 1.0) -> list[Any]:
    """Every record of ``topic`` on ``url`` (read by an app of its own, after the workers stopped)."""
    return await read_all(App("reader", broker=url), topic, timeout=timeout)


def final_values(changelog: list[Any]) -> dict[Any, Any]:
    """Each key's last value in a changelog read in offset order per partition."""
    final: dict[Any, Any] = {}
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        final[record.key] = record.value
    return final


async def committed_total(app: App, topic: str) -> int:
    """How many events of ``topic`` the app's group committed past."""
    consumer = app._main_conductor().consumer
    assert consumer is not None
    total = 0
    for p in range(PARTITIONS):
        total += await consumer.committed(TopicPartition(topic, p)) or 0
    return total


def test_processing_guarantee_is_checked_and_readable() -> None:
    assert App("a").conf.processing_guarantee == "at_least_once"
    assert App("a", processing_guarantee="exactly_once").conf.exactly_once
    with pytest.raises(
        ConfigurationError, match=r"processing_guarantee .*at_least_once, exactly_once, got 'once'"
    ):
        App("a", processing_guarantee="once")


async def test_outputs_and_table_changes_are_stored_exactly_once() -> None:
    url = memory_url()
    app, source, out, counts = counting_app(url, commit_interval=0.05)
    truth = await fill(app, source, 400)
    await app.start()
    try:
        await eventually(lambda: sum(counts.as_dict().values()) == 400)
        await eventually(
            lambda: (
                app.outbox is not None
                and not any(app.outbox.count(TopicPartition("keys", p)) for p in range(PARTITIONS))
            )
        )
    finally:
        await app.stop()
    outputs = Counter(tuple(r.value) for r in await stored(url, out.name))
    assert len(outputs) == 400 and set(outputs.values()) == {1}
    assert final_values(await stored(url, counts.changelog_topic)) == dict(truth)


async def test_a_worker_killed_before_its_commit_leaves_no_output_and_no_table_change_behind() -> None:
    """The first worker processes every event but dies before committing: nothing of it is visible, and
    the worker that takes over produces every output once and counts every key exactly."""
    url = memory_url()
    first, source, out, counts = counting_app(url, commit_interval=3600)
    truth = await fill(first, source, 300)
    await first.start()
    await eventually(lambda: sum(counts.as_dict().values()) == 300)
    conductor = first._main_conductor()

    async def dies_before_committing(only: Sequence[TopicPartition] | None = None) -> dict[Any, int]:
        return {}

    conductor.commit = dies_before_committing  # type: ignore[method-assign]
    await first.stop()
    assert await stored(url, out.name, timeout=0.3) == []
    assert await stored(url, counts.changelog_topic, timeout=0.3) == []
    second, _, _, _ = counting_app(url, commit_interval=0.05)
    await second.start()
    try:
        await eventually(lambda: len(second.processed) == 300)  # type: ignore[attr-defined]
        await second.commit()
    finally:
        await second.stop()
    outputs = Counter(tuple(r.value) for r in await stored(url, out.name))
    assert len(outputs) == 300 and set(outputs.values()) == {1}
    assert final_values(await stored(url, counts.changelog_topic)) == dict(truth)


async def test_at_least_once_repeats_the_outputs_of_a_worker_killed_before_its_commit() -> None:
    """The same kill with at-least-once: the outputs were stored before the commit, so they repeat."""
    url = memory_url()
    first, source, out, counts = counting_app(url, commit_interval=3600, processing_guarantee="at_least_once")
    await fill(first, source, 300)
    await first.start()
    await eventually(lambda: sum(counts.as_dict().values()) == 300)
    await first.flush()

    async def dies_before_committing(only: Sequence[TopicPartition] | None = None) -> dict[Any, int]:
        return {}

    first._main_conductor().commit = dies_before_committing  # type: ignore[method-assign]
    await first.stop()
    second, _, _, _ = counting_app(url, commit_interval=0.05, processing_guarantee="at_least_once")
    await second.start()
    try:
        await eventually(lambda: len(second.processed) == 300)  # type: ignore[attr-defined]
    finally:
        await second.stop()
    outputs = Counter(tuple(r.value) for r in await stored(url, out.name))
    assert len(outputs) == 300 and set(outputs.values()) == {2}


async def test_a_rebalance_commits_the_revoked_partitions_transactions_before_the_new_owner_reads() -> None:
    url = memory_url()
    old, source, out, _ = counting_app(url, delay=0.001, commit_interval=3600)
    truth = await fill(old, source, 800)
    await old.start()
    new, _, _, _ = counting_app(url, delay=0.001, commit_interval=3600)
    try:
        await eventually(lambda: len(old.processed) >= 200)  # type: ignore[attr-defined]
        await new.start()  # the old owner's revocation committed what it processed of the moved partitions
        moved = {tp.partition for tp in new._main_conductor().consumer.assignment()}  # type: ignore[union-attr]
        assert moved and moved != set(range(PARTITIONS))
        await eventually(lambda: len(set(processed(old)) | set(processed(new))) == 800, timeout=20)
    finally:
        await new.stop()
        await old.stop()
    outputs = Counter(tuple(r.value) for r in await stored(url, out.name))
    assert len(outputs) == 800 and set(outputs.values()) == {1}
    assert final_values(await stored(url, f"{old.id}-counts-changelog")) == dict(truth)
    again = [e for e in processed(old) if e[0] in moved and e in set(processed(new))]
    assert again == []  # nothing the old owner committed was processed again


class FailingTransport(MemoryTransport):
    """A memory transport whose transactions fail at chosen call numbers (before anything is appended)."""

    def __init__(self, url: str, fail: set[int], **options: Any) -> None:
        super().__init__(url, **options)
        self.fail = fail
        self.calls = 0
        self.lost_replies: set[int] = set()
        """Calls whose transaction commits but whose caller is told it failed (a timeout past the commit)."""
        self.stalls: set[int] = set()
        """Calls that wait for ``resume`` before committing."""
        self.stalled = asyncio.Event()
        self.resume = asyncio.Event()
        self.refused_seeks = 0
        """How many of the next seeks fail."""
        self.broken: set[int] = set()
        """Calls that fail with an error no transport should raise."""

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        on_rebalance: RebalanceListener,
        *,
        auto_offset_reset: str = "earliest",
        transactional: bool = False,
    ) -> MemoryConsumer:
        consumer = FailingConsumer(self, group_id, topics, on_rebalance, auto_offset_reset, transactional)
        self._consumers.append(consumer)
        return consumer


class FailingConsumer(MemoryConsumer):
    transport: FailingTransport

    async def commit_transaction(
        self, source: TopicPartition, records: Mapping[str, Sequence[OutputRecord]], offset: int
    ) -> None:
        transport = self.transport
        transport.calls += 1
        call = transport.calls
        if call in transport.fail:
            raise TransportError(f"injected: transaction {call} of {source} failed")
        if call in transport.broken:
            raise RuntimeError(f"injected: a bug in transaction {call}")
        if call in transport.stalls:
            transport.stalled.set()
            await transport.resume.wait()
        await super().commit_transaction(source, records, offset)
        if call in transport.lost_replies:
            raise TransportError(f"injected: the reply to transaction {call} of {source} was lost")

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if self.transport.refused_seeks:
            self.transport.refused_seeks -= 1
            raise TransportError(f"injected: seeking {tp} to {offset} failed")
        super().seek(tp, offset)


async def test_a_failed_transaction_is_aborted_and_its_partition_read_again_from_its_commit() -> None:
    url = memory_url()
    transport = FailingTransport(url, fail={2, 3}, default_partitions=PARTITIONS)
    app, source, out, counts = counting_app(url, commit_interval=0.02)
    app._transport = transport
    truth = await fill(app, source, 600)
    await app.start()
    try:
        await eventually(lambda: sum(counts.as_dict().values()) == 600 and transport.calls >= 6, timeout=20)
        await app.commit()
    finally:
        await app.stop()
    assert app.crashed is None
    assert len(app.processed) > 600  # type: ignore[attr-defined]  # the aborted partitions' events, again
    outputs = Counter(tuple(r.value) for r in await stored(url, out.name))
    assert len(outputs) == 600 and set(outputs.values()) == {1}
    assert final_values(await stored(url, counts.changelog_topic)) == dict(truth)
    assert counts.as_dict() == dict(truth)


async def test_a_member_fenced_by_a_newer_owner_cannot_commit() -> None:
    url = memory_url()
    transport = MemoryTransport(url, default_partitions=1)
    await transport.start()
    await transport.send_many("in", [(b"k", b"v", 0, None)])

    async def listener(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        return None

    zombie = transport.consumer("group", ["in"], listener, transactional=True)
    await zombie.start()
    tp = TopicPartition("in", 0)
    transport.broker.transactions.init(transactional_id("group", tp))  # a new owner took the partition
    with pytest.raises(TransactionFencedError, match="group-in-0"):
        await zombie.commit_transaction(tp, {"out": [(b"k", b"zombie", None, None)]}, 1)
    assert await zombie.committed(tp) is None
    assert "out" not in transport.broker.topics
    await zombie.stop()
    await transport.stop()


async def test_sends_outside_an_agent_go_out_at_once() -> None:
    url = memory_url()
    app, _, out, _ = counting_app(url, commit_interval=3600)
    await app.start()
    try:
        await out.send_buffered([9, 9])
        await app.flush()
        assert [r.value for r in await read_all(app, out.name, timeout=0.3)] == [[9, 9]]
    finally:
        await app.stop()


def test_the_outbox_hands_over_only_the_records_of_events_before_the_committed_offset() -> None:
    outbox = Outbox()
    outbox.read(["keys"])
    rows = [("keys", 1, offset, 0.0, None, None, None, None, None) for offset in range(3)]
    for row in rows:
        with serving(row):
            assert outbox.hold("out", (None, f"v{row[2]}", None, None))
            assert outbox.hold("changelog", (b"k", row[2], 1, None))
    assert outbox.hold("out", (None, "no source", None, None)) is False  # sent at once by the caller
    tp = TopicPartition("keys", 1)
    assert outbox.size == outbox.count(tp) == 6
    assert outbox.take(tp, 2) == {
        "out": [(None, "v0", None, None), (None, "v1", None, None)],
        "changelog": [(b"k", 0, 1, None), (b"k", 1, 1, None)],
    }
    assert outbox.size == 2
    assert outbox.take(TopicPartition("keys", 0), 10) == {}
    outbox.drop([tp])
    assert outbox.size == outbox.count(tp) == 0


def test_exactly_once_workers_read_committed_records_only_on_kafka() -> None:
    app = App("a", broker="kafka://127.0.0.1:9", processing_guarantee="exactly_once")
    assert app.conf.kafka_consumer_config["isolation_level"] == "read_committed"
    assert "isolation_level" not in App("a", broker="kafka://127.0.0.1:9").conf.kafka_consumer_config


async def _relay_with_one_oversized_output(app: App) -> rxstream.Topic[Any, Any]:
    """Ten inputs to an agent whose output for input 5 is over max_message_bytes; started; its sink."""
    source = app.topic("in", partitions=1)
    out = app.topic("out", partitions=1)

    @app.agent(source, sink=[out])
    async def relay(stream: rxstream.Stream[int]) -> AsyncIterator[str]:
        async for n in stream:
            yield "x" * (2 * 1024 * 1024) if n == 5 else str(n)

    for n in range(10):
        await source.send(value=n)
    await app.start()
    return out


async def test_an_output_that_can_never_be_stored_crashes_the_app_without_committing_its_event() -> None:
    url = memory_url()
    app = App(
        "eos-refused", broker=url, commit_interval=0.02, processing_guarantee="exactly_once", on_error="crash"
    )
    try:
        out = await _relay_with_one_oversized_output(app)
        await eventually(lambda: app.crashed is not None)
    finally:
        await app.stop()
    reader = App("reader", broker=url)
    committed = await reader.transport.consumer("eos-refused", ["in"], _no_listener).committed(
        TopicPartition("in", 0)
    )
    assert committed is None or committed <= 5
    outputs = [r.value for r in await stored(url, out.name, timeout=0.3)]
    assert outputs == [str(n) for n in range(committed or 0)]


async def test_an_output_that_can_never_be_stored_dead_letters_its_input_and_commits_the_rest_once() -> None:
    url = memory_url()
    app = App("eos-dead", broker=url, commit_interval=0.02, processing_guarantee="exactly_once")
    try:
        out = await _relay_with_one_oversized_output(app)
        consumer = App("reader", broker=url).transport.consumer("eos-dead", ["in"], _no_listener)

        async def committed() -> int | None:
            return await consumer.committed(TopicPartition("in", 0))

        deadline = asyncio.get_running_loop().time() + 5
        while await committed() != 10:
            assert asyncio.get_running_loop().time() < deadline, f"committed {await committed()}"
            await asyncio.sleep(0.01)
        assert app.crashed is None
    finally:
        await app.stop()
    outputs = [r.value for r in await stored(url, out.name, timeout=0.3)]
    assert outputs == [str(n) for n in range(10) if n != 5]
    dead = [r.value for r in await stored(url, "in-dead-letter", timeout=0.3)]
    assert dead == [5]


async def _no_listener(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
    return None


async def test_what_an_agent_reading_a_channel_produces_goes_out_outside_any_transaction() -> None:
    """No consumer commits a channel: its events' sink sends and table changes are not held for one."""
    url = memory_url()
    app = App("eos-channel", broker=url, commit_interval=0.02, processing_guarantee="exactly_once")
    numbers = app.channel(value_type=int)
    out = app.topic("out", partitions=1)
    totals = app.Table("totals", default=int, partitions=1)

    @app.agent(numbers, sink=[out])
    async def add(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            totals["sum"] += n
            yield n

    await app.start()
    try:
        for n in range(10):
            await numbers.send(value=n)
        await eventually(lambda: totals["sum"] == 45)
        await app.flush()
        assert app.outbox is not None and app.outbox.size == 0
    finally:
        await app.stop()
    assert sorted(r.value for r in await stored(url, out.name, timeout=0.3)) == list(range(10))
    assert final_values(await stored(url, totals.changelog_topic, timeout=0.3)) == {"sum": 45}


async def exactly_once_on(
    transport: FailingTransport, commits: int = 6, delay: float = 0.0
) -> tuple[App, Counter[str]]:
    """Run a `counting_app` over ``transport`` until every event is counted and ``commits`` transactions
    were tried; what it stored must then hold each output once and each key's true count."""
    app, source, out, counts = counting_app(transport.url, delay=delay, commit_interval=0.02)
    app._transport = transport
    truth = await fill(app, source, 600)
    await app.start()
    try:
        await eventually(
            lambda: sum(counts.as_dict().values()) == 600 and transport.calls >= commits, timeout=20
        )
        await app.commit()
    finally:
        await app.stop()
    assert app.crashed is None
    outputs = Counter(tuple(r.value) for r in await stored(transport.url, out.name))
    assert len(outputs) == 600 and set(outputs.values()) == {1}
    assert final_values(await stored(transport.url, counts.changelog_topic)) == dict(truth)
    assert counts.as_dict() == dict(truth)
    return app, truth


async def test_a_partition_that_cannot_be_seeked_is_read_again_at_the_next_try() -> None:
    transport = FailingTransport(memory_url(), fail={2, 3}, default_partitions=PARTITIONS)
    transport.refused_seeks = 1
    await exactly_once_on(transport)
    assert transport.refused_seeks == 0


async def test_a_transaction_that_committed_though_it_reported_a_failure_is_not_repeated() -> None:
    """Read again from the group's committed offset, not from the last commit this worker knew of."""
    url = memory_url()
    transport = FailingTransport(url, fail=set(), default_partitions=1)
    app, source, out, counts = counting_app(url, commit_interval=3600)
    app._transport = transport
    truth = await fill(app, source, 100)
    retaining = transport.consumer("retains-the-input", ["keys"], _no_listener)  # never commits
    await retaining.start()
    await app.start()
    try:
        await eventually(lambda: sum(counts.as_dict().values()) == 100)
        await app.commit()
        truth += await fill(app, source, 100)
        await eventually(lambda: sum(counts.as_dict().values()) == 200)
        transport.lost_replies = {transport.calls + 1}
        with pytest.raises(TransportError, match="reply to transaction"):
            await app.commit()
        assert await app._main_conductor()._try_commit()  # reads the partition again from its commit
        await asyncio.sleep(0.2)
        await app.commit()
    finally:
        await app.stop()
        await retaining.stop()
    assert len(app.processed) == 200  # type: ignore[attr-defined]
    outputs = Counter(tuple(r.value) for r in await stored(url, out.name))
    assert len(outputs) == 200 and set(outputs.values()) == {1}
    assert final_values(await stored(url, counts.changelog_topic)) == dict(truth)
    assert counts.as_dict() == dict(truth)


async def test_stop_lets_a_transaction_under_way_finish() -> None:
    url = memory_url()
    transport = FailingTransport(url, fail=set(), default_partitions=PARTITIONS)
    transport.stalls = {1}
    app, source, out, counts = counting_app(url, commit_interval=0.02)
    app._transport = transport
    truth = await fill(app, source, 400)
    await app.start()
    try:
        await eventually(lambda: sum(counts.as_dict().values()) == 400 and transport.stalled.is_set())
        stopping = asyncio.ensure_future(app.stop())
        await asyncio.sleep(0.05)
        transport.resume.set()
        await stopping
    finally:
        await app.stop()
    outputs = Counter(tuple(r.value) for r in await stored(url, out.name))
    assert len(outputs) == 400 and set(outputs.values()) == {1}
    assert final_values(await stored(url, counts.changelog_topic)) == dict(truth)


async def test_a_commit_cancelled_mid_transaction_commits_no_offset_past_what_it_took() -> None:
    url = memory_url()
    transport = FailingTransport(url, fail=set(), default_partitions=PARTITIONS)
    transport.stalls = {1}
    app, source, out, counts = counting_app(url, commit_interval=3600)
    app._transport = transport
    await fill(app, source, 400)
    await app.start()
    try:
        await eventually(lambda: sum(counts.as_dict().values()) == 400)
        commit = asyncio.ensure_future(app.commit())
        await asyncio.wait_for(transport.stalled.wait(), 5)
        commit.cancel()
        await asyncio.gather(commit, return_exceptions=True)
        transport.resume.set()
    finally:
        await app.stop()
    await stored_up_to_committed(url, out.name)


class ScriptedProducer:
    """A transactional producer whose commits and aborts fail as told."""

    def __init__(self, fail_commit: BaseException | None = None, fail_abort: bool = False) -> None:
        self.fail_commit = fail_commit
        self.fail_abort = fail_abort
        self.committed: list[int] = []
        self.stopped = False

    async def begin_transaction(self) -> None:
        return None

    async def send_offsets_to_transaction(self, offsets: Mapping[Any, Any], group_id: str) -> None:
        self.offset = next(iter(offsets.values())).offset

    async def commit_transaction(self) -> None:
        if self.fail_commit is not None:
            raise self.fail_commit
        self.committed.append(self.offset)

    async def abort_transaction(self) -> None:
        if self.fail_abort:
            raise KafkaTimeoutError()

    async def stop(self) -> None:
        self.stopped = True


class NeverCommitted:
    """An aiokafka consumer of a group that never committed."""

    async def committed(self, tp: Any) -> None:
        return None


def scripted_producers(*producers: ScriptedProducer) -> tuple[PartitionProducers, TopicPartition]:
    """The transactions of one assigned partition, started with ``producers`` in turn."""
    tp = TopicPartition("in", 0)
    transactions = PartitionProducers(KafkaTransport("kafka://127.0.0.1:9"), "group", lambda: frozenset({tp}))
    started = iter(producers)

    async def start(source: TopicPartition) -> ScriptedProducer:
        return next(started)

    transactions._open = start  # type: ignore[method-assign]
    return transactions, tp


async def test_a_kafka_producer_closed_after_its_abort_failed_is_started_again_while_assigned() -> None:
    first = ScriptedProducer(fail_commit=KafkaTimeoutError(), fail_abort=True)
    second = ScriptedProducer()
    transactions, tp = scripted_producers(first, second)
    await transactions.assign([tp], NeverCommitted())
    with pytest.raises(TransportError) as failure:
        await transactions.commit(tp, {}, 5)
    assert not isinstance(failure.value, TransactionFencedError) and first.stopped
    await transactions.settle(tp)  # what the broker made of the transaction in doubt is settled first
    await transactions.commit(tp, {}, 5)
    assert second.committed == [5]


async def test_a_kafka_producer_that_did_not_start_on_assignment_is_started_at_the_next_commit() -> None:
    second = ScriptedProducer()
    transactions, tp = scripted_producers(second)

    async def fails(source: TopicPartition) -> ScriptedProducer:
        raise TransportError("injected: the broker is away")

    opened = transactions._open
    transactions._open = fails  # type: ignore[method-assign]
    with pytest.raises(TransportError):
        await transactions.assign([tp], NeverCommitted())
    transactions._open = opened  # type: ignore[method-assign]
    await transactions.commit(tp, {}, 3)
    assert second.committed == [3]


async def test_a_fenced_kafka_producer_is_not_started_again() -> None:
    transactions, tp = scripted_producers(ScriptedProducer(fail_commit=ProducerFenced()), ScriptedProducer())
    await transactions.assign([tp], NeverCommitted())
    with pytest.raises(TransactionFencedError):
        await transactions.commit(tp, {}, 5)
    await transactions.settle(tp)
    with pytest.raises(TransactionFencedError, match="not assigned"):
        await transactions.commit(tp, {}, 5)


async def test_a_transaction_failing_unexpectedly_crashes_the_app_without_committing_its_partition() -> None:
    url = memory_url()
    transport = FailingTransport(url, fail=set(), default_partitions=1)
    transport.broken = {1}
    app, source, out, _ = counting_app(url, commit_interval=0.02)
    app._transport = transport
    await fill(app, source, 50)
    await app.start()
    try:
        await eventually(lambda: app.crashed is not None)
    finally:
        await app.stop()
    assert isinstance(app.crashed, TransportError)
    assert "the transaction of TopicPartition(topic='keys', partition=" in str(app.crashed)
    assert "failed unexpectedly: RuntimeError('injected: a bug in transaction 1')" in str(app.crashed)
    await stored_up_to_committed(url, out.name)


async def stored_up_to_committed(url: str, topic: str) -> None:
    """Check that the outputs of each partition of "keys" stored in ``topic`` are those of the events before
    its committed offset, no more, no less."""
    outputs = {tuple(r.value) for r in await stored(url, topic)}
    reader = App("reader", broker=url).transport.consumer("eos", ["keys"], _no_listener)
    for p in range(PARTITIONS):
        committed = await reader.committed(TopicPartition("keys", p)) or 0
        assert {o for q, o in outputs if q == p} == set(range(committed)), f"partition {p}"


async def test_what_an_event_sends_after_its_offset_was_committed_is_committed_next() -> None:
    url = memory_url()
    app = App("eos-late", broker=url, commit_interval=0.02, processing_guarantee="exactly_once")
    source = app.topic("in", partitions=1)
    out = app.topic("out", partitions=1)
    go = asyncio.Event()
    sent: list[int] = []

    @app.agent(source, sink=[out])
    async def relay(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            rxstream.current_event().ack()
            await go.wait()
            yield n
            sent.append(n)

    await source.send(value=7)
    await app.start()
    try:
        consumer = app._main_conductor().consumer
        assert consumer is not None
        deadline = asyncio.get_running_loop().time() + 5
        while await consumer.committed(TopicPartition("in", 0)) != 1:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        go.set()
        await eventually(lambda: sent == [7] and app.outbox is not None and app.outbox.size == 0)
    finally:
        await app.stop()
    assert [r.value for r in await stored(url, out.name, timeout=0.3)] == [7]


async def test_the_outbox_wakes_its_commit_loops_when_enough_records_are_held_for_an_early_commit() -> None:
    outbox = Outbox()
    outbox.read(["keys"])
    waker = outbox.waker()
    with serving(("keys", 0, 0, 0.0, None, None, None, None, None)):
        for _ in range(EARLY_COMMIT_RECORDS - 1):
            outbox.hold("out", (None, 1, None, None))
        assert not waker.is_set()
        outbox.hold("out", (None, 1, None, None))
    assert waker.is_set()
    outbox.forget(waker)


async def test_a_commit_comes_before_the_interval_is_over_when_many_records_are_held() -> None:
    url = memory_url()
    app, source, _, _ = counting_app(url, commit_interval=3600)
    await fill(app, source, EARLY_COMMIT_RECORDS // 2 + 100)  # a sink send and a table change each
    await app.start()
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while await committed_total(app, "keys") == 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
    finally:
        await app.stop()
