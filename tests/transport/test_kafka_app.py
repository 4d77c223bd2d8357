"""Apps on the real Kafka broker: records round trip, worker processes in one group, kill -9, restarts,
dead letters, an unreachable broker, a lost sink send and a broker that goes away mid-run.

Worker processes run ``python -m rxstream.cli worker -A tests.transport.kafka_worker_app:app`` (configured by
environment variables) and record every event they process as ``{"w": worker, "p": partition, "o": offset}``
in a results topic; the tests read that topic and the group's committed offsets with plain aiokafka clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]
from aiokafka import TopicPartition as KafkaTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]
from aiokafka.coordinator.protocol import (  # type: ignore[import-untyped,unused-ignore]
    ConsumerProtocolMemberAssignment,
)

import rxstream
from rxstream import App, Record
from rxstream.codecs import decode_value
from rxstream.errors import TransportError
from rxstream.subscriptions import MAX_BATCH
from rxstream.transport import TopicPartition, TopicSpec
from rxstream.transport.kafka import KafkaTransport
from tests import kafka_broker

REPO = Path(__file__).resolve().parents[2]
WORKER_APP = "tests.transport.kafka_worker_app:app"
PARTITIONS = 4

Row = tuple[str, int, int]  # (worker, partition, offset) of one processed event


class Order(Record):
    id: str
    amount: float


class Total(Record):
    id: str
    doubled: float


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


async def _until(check: Callable[[], bool], what: str, timeout: float) -> None:
    """Wait until ``check()`` holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------------
# observing the broker with plain aiokafka clients


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[Any]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(client.start(), 20)
    yield client
    await asyncio.wait_for(client.close(), 20)


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[KafkaTransport]:
    transport = KafkaTransport(
        f"kafka://{kafka_bootstrap}", connect_timeout=10, default_partitions=PARTITIONS
    )
    await transport.start()
    yield transport
    await asyncio.wait_for(transport.stop(), 20)


async def _committed(admin: Any, group: str) -> dict[int, int]:
    """The group's committed offset per partition (one source topic per group here)."""
    offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), 15)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def _until_committed(admin: Any, group: str, offsets: dict[int, int], timeout: float) -> None:
    """Wait until the group committed (at least) ``offsets``, partition by partition."""
    deadline = time.monotonic() + timeout
    while True:
        committed = await _committed(admin, group)
        if all(committed.get(p, 0) >= offset for p, offset in offsets.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} committed {committed}, not {offsets}, within {timeout:g}s")
        await asyncio.sleep(0.1)


async def _assignments(admin: Any, group: str) -> tuple[str, list[int]]:
    """The group's state and how many partitions each member holds."""
    response = (await asyncio.wait_for(admin.describe_consumer_groups([group]), 15))[0]
    _, _, state, _, _, members = response.groups[0]
    sizes = [len(ConsumerProtocolMemberAssignment.decode(m[4]).partitions()) if m[4] else 0 for m in members]
    return state, sizes


async def _wait_split(admin: Any, group: str, members: int, timeout: float = 40.0) -> None:
    """Wait until the group is stable with ``members`` members, each holding partitions."""
    deadline = time.monotonic() + timeout
    while True:
        state, sizes = await _assignments(admin, group)
        if state == "Stable" and len(sizes) == members and all(sizes):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} not split over {members} members: {state} {sizes}")
        await asyncio.sleep(0.1)


class Results:
    """Every record of a one-partition results topic, read from the start outside any consumer group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.rows: list[Row] = []
        self._consumer: Any = None

    async def __aenter__(self) -> Results:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await asyncio.wait_for(consumer.start(), 20)
        tp = KafkaTP(self.topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await asyncio.wait_for(self._consumer.stop(), 20)

    async def until(self, check: Callable[[list[Row]], bool], what: str, timeout: float) -> list[Row]:
        """Read on until ``check(rows)`` holds (bounded)."""
        deadline = time.monotonic() + timeout
        while not check(self.rows):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what} ({len(self.rows)} rows)"
                )
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    row = json.loads(record.value)
                    self.rows.append((row["w"], row["p"], row["o"]))
        return self.rows

    def distinct(self) -> set[tuple[int, int]]:
        """The (partition, offset) pairs processed so far."""
        return {(p, o) for _, p, o in self.rows}


# ---------------------------------------------------------------------------------------------------
# worker processes


class Workers:
    """``rxstream worker`` processes of one test; whatever still runs at the end is killed."""

    def __init__(self, bootstrap: str, log_dir: Path) -> None:
        self.bootstrap = bootstrap
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, label: str, *, broker: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """Start a worker of the test app; ``env`` sets its RXSTREAM_TEST_* variables.

        ``RXSTREAM_TEST_LOGLEVEL=debug`` in the test's environment makes the workers log every commit.
        """
        level = os.environ.get("RXSTREAM_TEST_LOGLEVEL", "info")
        cmd = [sys.executable, "-m", "rxstream.cli", "worker", "-A", WORKER_APP]
        cmd += ["--broker", broker or f"kafka://{self.bootstrap}", "-l", level]
        settings = {f"RXSTREAM_TEST_{name.upper()}": value for name, value in env.items()}
        with open(self.log_dir / f"{label}.log", "ab") as log:  # the child keeps its own handle
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env={**os.environ, "RXSTREAM_TEST_WORKER": label, **settings},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[label] = proc
        return proc

    def log(self, label: str) -> str:
        """What the worker wrote so far."""
        return (self.log_dir / f"{label}.log").read_text(errors="replace")

    async def exit_code(self, label: str, timeout: float) -> int:
        """Wait (bounded) for the worker to exit."""
        proc = self.procs[label]
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker {label} still running after {timeout:g}s:\n{self.log(label)[-3000:]}"
                )
            await asyncio.sleep(0.05)
        return proc.returncode

    async def stop(self, label: str, timeout: float = 30.0) -> int:
        """SIGTERM the worker and wait (bounded) for its exit code."""
        self.procs[label].send_signal(signal.SIGTERM)
        return await self.exit_code(label, timeout)

    def close(self) -> None:
        """Kill what still runs and print each worker's log tail (pytest shows it when the test failed)."""
        for label, proc in self.procs.items():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            print(f"--- worker {label} (exit {proc.returncode}) ---\n{self.log(label)[-4000:]}")


@pytest.fixture
def workers(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(kafka_bootstrap, tmp_path)
    try:
        yield pool
    finally:
        pool.close()


async def _setup(producer: KafkaTransport, prefix: str) -> dict[str, str]:
    """Fresh app, source and results names; the topics are created up front (workers race otherwise)."""
    s = _suffix()
    names = {"app": f"{prefix}-{s}", "source": f"{prefix}-src-{s}", "results": f"{prefix}-res-{s}"}
    await producer.create_topics(
        [
            TopicSpec(names["source"], PARTITIONS),
            TopicSpec(names["results"], 1),
        ]
    )
    return names


async def _fill(producer: KafkaTransport, topic: str, count: int) -> None:
    """Append ``count`` keyless JSON numbers, round-robin over the partitions."""
    for start in range(0, count, 5000):
        records = [(None, json.dumps(i).encode(), None, None) for i in range(start, min(count, start + 5000))]
        await producer.send_many(topic, records)


async def _read(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
    """The first ``count`` records of partition 0 of ``topic`` (aiokafka ConsumerRecords), bounded."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 20)
    records: list[Any] = []
    try:
        tp = KafkaTP(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout
        while len(records) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(records)} of {count} records in {topic} after {timeout:g}s")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await asyncio.wait_for(consumer.stop(), 20)
    return records


async def _all_offsets(producer: KafkaTransport, topic: str) -> set[tuple[int, int]]:
    ends = await producer.end_offsets(topic)
    return {(tp.partition, offset) for tp, end in ends.items() for offset in range(end)}


# ---------------------------------------------------------------------------------------------------
# in-process apps


async def test_records_round_trip_through_an_app_with_headers_timestamps_and_ask(
    kafka_bootstrap: str,
) -> None:
    s = _suffix()
    app = App(f"rt-{s}", broker=f"kafka://{kafka_bootstrap}", commit_interval=0.2)
    orders = app.topic(f"orders-{s}", value_type=Order, partitions=PARTITIONS)
    totals = app.topic(f"totals-{s}", value_type=Total, partitions=1)
    forwarded = app.topic(f"fwd-{s}", value_type=Order, partitions=1)
    seen: list[rxstream.Event] = []

    @app.agent(orders, sink=[totals])
    async def process(stream: rxstream.Stream[Order]) -> AsyncIterator[Total]:
        async for event in stream.events():
            seen.append(event)
            await event.forward(forwarded, partition=0)
            yield Total(id=event.value.id, doubled=event.value.amount * 2)

    stamps = {f"o{i}": 1_700_000_000.125 + i for i in range(5)}
    async with asyncio.timeout(60):
        async with app:
            for i, (key, stamp) in enumerate(stamps.items()):
                await orders.send(
                    key=key, value=Order(id=key, amount=i + 0.5), headers={"trace": f"t{i}"}, timestamp=stamp
                )
            reply = await process.ask(Order(id="q", amount=21.0), timeout=30)
            await _until(lambda: len(seen) == 6, "the agent to see 6 orders", 30)
            await _until(lambda: sum(app.committed_offsets().values()) == 6, "6 acknowledged offsets", 30)
        got = {name: await _read(kafka_bootstrap, name, 6) for name in (totals.name, forwarded.name)}

    assert reply == {"id": "q", "doubled": 42.0}  # a reply travels as JSON: a record comes back as its dict
    by_key = {event.key: event for event in seen if event.key in stamps}
    assert sorted(by_key) == sorted(stamps)
    for i, (key, stamp) in enumerate(stamps.items()):
        event = by_key[key]
        assert event.value == Order(id=key, amount=i + 0.5)
        assert event.headers["trace"] == f"t{i}".encode()
        assert event.timestamp == pytest.approx(stamp, abs=1e-6)
        assert event.message is not None and event.message.topic == orders.name
    stored = sorted((decode_value(r.value, "json", Total) for r in got[totals.name]), key=lambda t: t.id)
    assert stored == [Total(id=f"o{i}", doubled=2 * i + 1.0) for i in range(5)] + [
        Total(id="q", doubled=42.0)
    ]
    forwarded_by_key = {r.key.decode(): r for r in got[forwarded.name] if r.key is not None}
    for i, (key, stamp) in enumerate(stamps.items()):
        record = forwarded_by_key[key]
        assert dict(record.headers)["trace"] == f"t{i}".encode()
        assert record.timestamp == round(stamp * 1000)
        assert json.loads(record.value) == {"id": key, "amount": i + 0.5}
    # the ask() carried its reply-to and correlation headers through forward as well
    asked = [r for r in got[forwarded.name] if r.key is None]
    assert (
        len(asked) == 1 and {"rxstream-reply-to", "rxstream-correlation-id"} <= dict(asked[0].headers).keys()
    )


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    kafka_bootstrap: str, producer: KafkaTransport
) -> None:
    s = _suffix()
    app = App(f"dl-{s}", broker=f"kafka://{kafka_bootstrap}", commit_interval=0.2)
    orders = app.topic(f"orders-{s}", value_type=Order, partitions=1, max_redeliveries=1)
    handled: list[str] = []
    attempts: Counter[str] = Counter()

    @app.agent(orders)
    async def process(stream: rxstream.Stream[Order]) -> None:
        async for order in stream:
            attempts[order.id] += 1
            if order.id == "boom":
                raise ValueError("boom is poison")
            handled.append(order.id)

    good = b'{"id": "%s", "amount": 1}'
    async with asyncio.timeout(60):
        async with app:
            await producer.send(orders.name, None, good % b"a")
            await producer.send(orders.name, None, b"not json")
            await producer.send(orders.name, None, good % b"boom", headers={"origin": "test"})
            await producer.send(orders.name, None, good % b"b")
            await _until(lambda: "b" in handled, "the order after the poison ones", 30)
            await _until(
                lambda: app.committed_offsets().get(TopicPartition(orders.name, 0)) == 4,
                "every offset acknowledged",
                30,
            )
        dead = await _read(kafka_bootstrap, f"{orders.name}-dead-letter", 2)

    assert handled == ["a", "b"]
    assert attempts["boom"] == 2  # first try plus max_redeliveries=1
    by_offset = {int(dict(r.headers)["rxstream-offset"]): r for r in dead}
    assert sorted(by_offset) == [1, 2]
    undecodable, raised = by_offset[1], by_offset[2]
    assert undecodable.value == b"not json"
    headers = {name: value.decode() for name, value in undecodable.headers}
    assert headers["rxstream-topic"] == orders.name and headers["rxstream-partition"] == "0"
    assert headers["rxstream-reason"] == "could not be decoded"
    assert f"topic '{orders.name}', partition 0, offset 1" in headers["rxstream-error"]
    assert raised.value == good % b"boom"
    headers = {name: value.decode() for name, value in raised.headers}
    assert "boom is poison" in headers["rxstream-error"] and headers["origin"] == "test"
    assert headers["rxstream-reason"].startswith("raised 2 times")


async def test_a_plain_topic_decodes_in_place_and_dead_letters_what_fails_to_decode_or_encode(
    kafka_bootstrap: str, producer: KafkaTransport
) -> None:
    s = _suffix()
    app = App(f"plain-{s}", broker=f"kafka://{kafka_bootstrap}", commit_interval=0.2)
    events = app.topic(f"events-{s}", partitions=1, max_redeliveries=0)
    relayed = app.topic(f"relayed-{s}", partitions=1)
    keys: list[Any] = []

    @app.agent(events, sink=[relayed])
    async def relay(stream: rxstream.Stream[Any]) -> AsyncIterator[Any]:
        async for event in stream.events():
            keys.append(event.key)
            value = event.value
            yield {"n": 5, "opaque": object()} if value["n"] == 5 else value

    async with asyncio.timeout(60):
        async with app:
            await producer.send(events.name, None, b'{"n": 1}')
            await producer.send(events.name, None, b"not json")
            await producer.send(events.name, b"k", b'{"n": 3}')
            for n in (4, 5, 6):
                await producer.send(events.name, None, b'{"n": %d}' % n)
            await _until(
                lambda: app.committed_offsets().get(TopicPartition(events.name, 0)) == 6,
                "every offset acknowledged",
                30,
            )
        dead = await _read(kafka_bootstrap, f"{events.name}-dead-letter", 2)
        out = await _read(kafka_bootstrap, relayed.name, 4)

    assert [json.loads(r.value) for r in out] == [{"n": 1}, {"n": 3}, {"n": 4}, {"n": 6}]
    assert keys == [None, "k", None, None, None]
    by_offset = {int(dict(r.headers)["rxstream-offset"]): r for r in dead}
    assert sorted(by_offset) == [1, 4]
    assert by_offset[1].value == b"not json"
    assert by_offset[4].value == b'{"n": 5}'
    assert "cannot represent object" in dict(by_offset[4].headers)["rxstream-error"].decode()


# ---------------------------------------------------------------------------------------------------
# worker processes in one consumer group


async def test_two_worker_processes_split_the_partitions_and_process_every_message(
    kafka_bootstrap: str, producer: KafkaTransport, admin: Any, workers: Workers
) -> None:
    count = 20_000
    names = await _setup(producer, "split")
    for label in ("a", "b"):
        workers.start(label, app=names["app"], source=names["source"], results=names["results"])
    await _wait_split(admin, names["app"], 2)
    started = time.monotonic()
    await _fill(producer, names["source"], count)
    expected = await _all_offsets(producer, names["source"])
    assert len(expected) == count
    async with Results(kafka_bootstrap, names["results"]) as results:
        await results.until(lambda rows: len(results.distinct()) == count, f"{count} processed", 60)
    took = time.monotonic() - started
    partitions = {w: {p for worker, p, _ in results.rows if worker == w} for w in ("a", "b")}
    shares = Counter(w for w, _, _ in results.rows)
    print(
        f"{count} messages through two workers in {took:.1f}s; shares {dict(shares)}, partitions {partitions}"
    )
    assert results.distinct() == expected  # nothing lost
    assert shares["a"] > 0 and shares["b"] > 0  # both got a share ...
    assert not partitions["a"] & partitions["b"]  # ... of disjoint partitions (no rebalance happened)
    assert len(results.rows) == count  # and so nothing twice
    for label in ("a", "b"):
        assert await workers.stop(label) == 0, workers.log(label)
    assert await _committed(admin, names["app"]) == {p: count // PARTITIONS for p in range(PARTITIONS)}


async def test_kill_9_of_a_worker_hands_its_partitions_to_the_survivor_at_least_once(
    kafka_bootstrap: str, producer: KafkaTransport, admin: Any, workers: Workers
) -> None:
    count = 4_000
    names = await _setup(producer, "kill")
    settings = {"app": names["app"], "source": names["source"], "results": names["results"], "delay": "0.002"}
    for label in ("a", "b"):
        workers.start(label, **settings)
    await _wait_split(admin, names["app"], 2)
    await _fill(producer, names["source"], count)
    expected = await _all_offsets(producer, names["source"])
    async with Results(kafka_bootstrap, names["results"]) as results:
        await results.until(lambda rows: sum(w == "b" for w, _, _ in rows) >= 700, "b to process 700", 30)
        workers.procs["b"].kill()
        assert await workers.exit_code("b", 10) == -signal.SIGKILL
        await asyncio.sleep(0.5)  # a commit request already on the wire when b died lands now, if ever
        committed_at_kill = await _committed(admin, names["app"])
        await results.until(lambda rows: results.distinct() == expected, "every message processed", 60)
    b_parts = {p for w, p, _ in results.rows if w == "b"}  # b is dead: all its rows predate the kill
    b_last = {p: max(o for w, q, o in results.rows if w == "b" and q == p) for p in b_parts}
    taken_over = {p: min(o for w, q, o in results.rows if w == "a" and q == p) for p in b_parts}
    seen = Counter((p, o) for _, p, o in results.rows)
    duplicates = Counter(p for (p, o), n in seen.items() if n > 1)
    uncommitted = {p: b_last[p] + 1 - committed_at_kill.get(p, 0) for p in b_parts}
    print(
        f"kill -9 of b: committed then {committed_at_kill}, b got to {b_last}, a took over at {taken_over}; "
        f"duplicates per partition {dict(duplicates)}, processed but uncommitted by b {uncommitted}"
    )
    assert results.distinct() == expected  # at least once: nothing lost
    assert any(committed_at_kill.get(p, 0) > 0 for p in b_parts)  # b committed as it went
    for p in b_parts:
        # the survivor resumed exactly at b's last commit, which never ran past what b had processed, so
        # what was done twice is exactly what b had processed and not committed
        assert taken_over[p] == committed_at_kill.get(p, 0) <= b_last[p] + 1
        assert duplicates[p] == uncommitted[p]
        assert all(o >= committed_at_kill.get(p, 0) for q, o in seen if q == p and seen[q, o] > 1)
    for p in (
        set(duplicates) - b_parts
    ):  # a's own partitions replay at most a batch in flight at the rebalance
        assert duplicates[p] <= MAX_BATCH
    assert max(seen.values()) <= 2
    assert await workers.stop("a") == 0, workers.log("a")


async def test_a_worker_frozen_past_its_session_survives_its_failed_commits_and_rejoins(
    kafka_bootstrap: str, producer: KafkaTransport, admin: Any, workers: Workers
) -> None:
    count = 3_000
    names = await _setup(producer, "frozen")
    settings = {"app": names["app"], "source": names["source"], "results": names["results"], "delay": "0.002"}
    for label in ("a", "b"):
        workers.start(label, **settings)
    await _wait_split(admin, names["app"], 2)
    await _fill(producer, names["source"], count)
    expected = await _all_offsets(producer, names["source"])
    async with Results(kafka_bootstrap, names["results"]) as results:
        await results.until(lambda rows: sum(w == "b" for w, _, _ in rows) >= 300, "b to process 300", 30)
        workers.procs["b"].send_signal(signal.SIGSTOP)  # a long GC pause or a stalled VM
        try:
            # a takes b's partitions once the broker gives up on b (session timeout, 10 s)
            await _wait_split(admin, names["app"], 1, timeout=30)
        finally:
            workers.procs["b"].send_signal(signal.SIGCONT)
        await results.until(lambda rows: results.distinct() == expected, "every message processed", 60)
        await _wait_split(admin, names["app"], 2, timeout=30)  # b rejoined instead of crashing
    # what was replayed after the takeover is processed and committed too
    await _until_committed(admin, names["app"], {p: count // PARTITIONS for p in range(PARTITIONS)}, 30)
    assert workers.procs["b"].poll() is None, workers.log("b")
    for label in ("a", "b"):
        assert await workers.stop(label) == 0, workers.log(label)
    failures = [
        line for line in workers.log("b").splitlines() if "rxstream.consumer" in line and "failed" in line
    ]
    # whether b tries a commit while fenced (CommitFailedError, logged and retried) or its heartbeat notices
    # first depends on timing; either way it must neither crash nor lose anything (checked above)
    print("b's failed commits:", *failures, sep="\n")
    assert not any("crashed" in line for line in workers.log("b").splitlines()), workers.log("b")


async def test_a_restarted_worker_resumes_from_the_offsets_committed_on_sigterm(
    kafka_bootstrap: str, producer: KafkaTransport, admin: Any, workers: Workers
) -> None:
    names = await _setup(producer, "restart")
    # commits come only from the shutdown: the interval is longer than the test
    settings = {"app": names["app"], "source": names["source"], "results": names["results"]}
    workers.start("first", commit_interval="600", **settings)
    await _wait_split(admin, names["app"], 1)
    await _fill(producer, names["source"], 400)
    async with Results(kafka_bootstrap, names["results"]) as results:
        await results.until(lambda rows: len(rows) >= 400, "400 processed", 30)
        assert await _committed(admin, names["app"]) == {}
        assert await workers.stop("first") == 0, workers.log("first")
        assert await _committed(admin, names["app"]) == {p: 100 for p in range(PARTITIONS)}
        await _fill(producer, names["source"], 400)
        workers.start("second", commit_interval="600", **settings)
        await results.until(lambda rows: len(results.distinct()) == 800, "800 processed", 30)
        assert await workers.stop("second") == 0, workers.log("second")
        await results.until(lambda rows: True, "a last read", 1)
    assert results.distinct() == await _all_offsets(producer, names["source"])
    assert Counter(w for w, _, _ in results.rows) == {"first": 400, "second": 400}  # none twice
    assert await _committed(admin, names["app"]) == {p: 200 for p in range(PARTITIONS)}


# ---------------------------------------------------------------------------------------------------
# failures: an unreachable broker, a lost sink send, a broker that goes away


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_broker_fails_app_start_and_the_worker_naming_the_url(workers: Workers) -> None:
    url = f"kafka://127.0.0.1:{_closed_port()}"
    app = App(f"down-{_suffix()}", broker=url)
    topic = app.topic("anything", partitions=1)

    @app.agent(topic)
    async def process(stream: rxstream.Stream[Any]) -> None:
        async for _ in stream:
            pass

    for attempt in range(2):  # a failed start leaves the app stopped, so starting again fails again
        started = time.monotonic()
        with pytest.raises(TransportError, match=url):
            await asyncio.wait_for(app.start(), 40)
        assert time.monotonic() - started < 30, attempt
    started = time.monotonic()
    workers.start("down", broker=url, app=f"down-{_suffix()}")
    code = await workers.exit_code("down", 40)
    assert code == 1 and time.monotonic() - started < 35
    output = workers.log("down")
    assert f"rxstream: Kafka {url}: connecting failed" in output
    assert "Traceback" not in output


async def test_a_lost_sink_send_crashes_the_app_without_committing_past_it(
    kafka_bootstrap: str, admin: Any
) -> None:
    s = _suffix()
    app = App(f"lost-{s}", broker=f"kafka://{kafka_bootstrap}", commit_interval=0.1)
    source = app.topic(f"lost-src-{s}", partitions=1)
    sink = app.topic(f"lost-sink-{s}", partitions=1)
    # the broker refuses batches over 400 bytes on the sink topic: a big output cannot be stored
    await admin.create_topics([NewTopic(sink.name, 1, 1, topic_configs={"max.message.bytes": "400"})])

    @app.agent(source, sink=[sink])
    async def process(stream: rxstream.Stream[str]) -> AsyncIterator[str]:
        async for value in stream:
            yield value * 1000 if value == "big" else value

    runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
    try:
        await _until(lambda: app._started, "the app to start", 30)
        for value in ("a", "b", "c"):
            await source.send(value=value)
        await _until_committed(admin, app.id, {0: 3}, 30)
        for value in ("big", "d", "e"):
            await source.send(value=value)
        assert await asyncio.wait_for(asyncio.shield(runner), 40) == 1  # crashed, stopped, did not hang
    finally:
        if not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    assert isinstance(app.crashed, TransportError)
    assert sink.name in str(app.crashed)
    assert (await _committed(admin, app.id)).get(0, 0) <= 3  # never past the event whose output was lost


class PrivateBroker:
    """A broker of one test's own (tests/kafka/broker.sh on free ports), to stop and restart on its data."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.port, self.cport = kafka_broker._free_ports(2)
        self.pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> float:
        """Start (again, on the same ports and data) and wait until it answers; returns the seconds taken."""
        started = time.monotonic()
        env = {**os.environ, "RXSTREAM_KAFKA_WATCH_PID": str(os.getpid())}
        cmd = ["bash", str(kafka_broker.BROKER_SH), "start", str(self.port), str(self.cport), str(self.dir)]
        result = await asyncio.to_thread(kafka_broker._run_bounded, cmd, 120, env)
        assert result.returncode == 0, result.stderr
        self.pid = int(result.stdout.strip().splitlines()[-1])
        await asyncio.to_thread(kafka_broker._wait_ready, self.bootstrap, self.port, self.pid, 90)
        return time.monotonic() - started

    async def stop(self) -> None:
        """SIGTERM, and wait (bounded) until it is gone."""
        if self.pid is not None:
            pid, self.pid = self.pid, None
            await asyncio.to_thread(kafka_broker._stop, pid)


@pytest.fixture
async def private_broker(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[PrivateBroker]:
    try:
        await asyncio.to_thread(kafka_broker._ensure_installed)
    except kafka_broker.BrokerUnavailable as exc:
        kafka_broker._unavailable(str(exc))
    broker = PrivateBroker(tmp_path / "private-broker")
    try:
        yield broker
    finally:
        await broker.stop()


async def test_a_broker_that_goes_away_is_waited_for_and_processing_resumes_when_it_returns(
    private_broker: PrivateBroker,
) -> None:
    first_start = await private_broker.start()
    s = _suffix()
    app = App(f"outage-{s}", broker=f"kafka://{private_broker.bootstrap}", commit_interval=0.2)
    source = app.topic(f"outage-src-{s}", partitions=2)
    sink = app.topic(f"outage-sink-{s}", partitions=1)
    gate = asyncio.Event()
    processed: list[int] = []

    @app.agent(source, sink=[sink])
    async def process(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for value in stream:
            if value >= 50:
                await gate.wait()  # the second lot is held until the broker is gone
            processed.append(value)
            yield value

    def committed() -> int:
        return sum(app._conductor._committed.values()) if app._conductor is not None else 0

    runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
    try:
        await _until(lambda: app._started, "the app to start", 40)
        await source.send_many(range(50))
        await _until(lambda: committed() == 50, "the first 50 committed", 30)
        await source.send_many(range(50, 100))
        await _until(lambda: app._conductor is not None and app._conductor.fetched == 100, "100 fetched", 30)
        await private_broker.stop()
        outage = time.monotonic()
        gate.set()  # processed while the broker is away: outputs wait, so must the commits
        await _until(lambda: len(processed) == 100, "the held events to be processed", 20)
        await asyncio.sleep(2)  # commits are tried and fail meanwhile
        assert committed() == 50 and app.crashed is None
        restart = await private_broker.start()
        away = time.monotonic() - outage
        print(f"broker away {away:.1f}s (start took {first_start:.1f}s, restart {restart:.1f}s)")
        await _until(lambda: committed() == 100, "the held events committed after the broker returned", 45)
        await source.send_many(range(100, 150))
        await _until(lambda: committed() == 150, "new events processed and committed", 30)
        assert app.crashed is None and not runner.done()
    finally:
        await asyncio.wait_for(app.stop(), 60)
        await asyncio.wait_for(runner, 30)
    stored = [json.loads(r.value) for r in await _read(private_broker.bootstrap, sink.name, len(processed))]
    assert set(stored) == set(range(150))  # every committed event's output was stored
