"""Events/s through an App on Kafka (consume -> map -> produce) against a raw aiokafka loop, and latency.

Run: python benchmarks/bench_kafka.py [--events N] [--repeat R] [--bootstrap HOST:PORT] [--rate R --seconds S]

Broker: ``--bootstrap``, else ``RXSTREAM_KAFKA_BOOTSTRAP``, else a private single-node broker is started
from the jars ``tests/kafka/install.sh`` caches (Java 17 needed) on free ports, and stopped at the end.

Throughput: a fresh 4-partition source topic is pre-filled with N small JSON values; the clock runs from
the first consumed message until all N results are in the sink topic. The App is one agent, ``map`` on
each decoded value with the app's JSON codec, yielding to a sink topic (acks, batched sink sends flushed
before every commit, commits every 2.8 s). The baseline, measured in the same run (the two alternate
which goes first), is a hand-written at-least-once aiokafka loop with the same client settings
(rxstream's producer and consumer defaults, getmany of up to 2048 records): decode, map, encode, pack
per-partition batches with ``create_batch``, ``send_batch`` them, and commit consumed offsets every 2.8 s
once the batches before are stored.

The ceiling a librdkafka client reaches on this machine: the same loop written with confluent-kafka
(``pip install -e '.[bench]'``; the line is skipped with a message when it is not installed), run in a
thread, with the producer's batching settings mapped to librdkafka's.

Latency: a producer in the same process sends R messages per second for S seconds (2,000/s for 5 s by
default), each stamped with its send time; the latency is the time until the App's agent sees it. The
reference, measured in the same run on a topic of its own, is a raw aiokafka consume loop (getmany with the
App's consumer settings) stamping each record as it comes. Both run --repeat times, alternating; each
percentile is the median of the runs'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from rxstream import App, Stream
from rxstream.transport.kafka_settings import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS

PARTITIONS = 4
MAX_RECORDS = 2048  # what the App's consumer asks getmany for
COMMIT_INTERVAL = 2.8  # the App's default
KAFKA_DIR = Path(__file__).resolve().parent.parent / "tests" / "kafka"


def transform(order: dict[str, Any]) -> dict[str, Any]:
    """The map both pipelines run."""
    return {"id": order["id"], "doubled": order["amount"] * 2}


# ---------------------------------------------------------------------------------------------------
# the broker


class Broker:
    """A broker to benchmark against: the one given, or a private one started from tests/kafka."""

    def __init__(self, bootstrap: str | None) -> None:
        self.bootstrap = bootstrap or ""
        self._pid: int | None = None
        self._dir: str | None = None

    async def __aenter__(self) -> Broker:
        if not self.bootstrap:
            self._start()
        await _wait_ready(self.bootstrap, 90.0)
        return self

    def _start(self) -> None:
        subprocess.run(["bash", str(KAFKA_DIR / "install.sh")], check=True, stdout=subprocess.DEVNULL)
        ports = []
        for _ in range(2):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                ports.append(sock.getsockname()[1])
        self._dir = tempfile.mkdtemp(prefix="rxstream-bench-kafka-")
        cmd = ["bash", str(KAFKA_DIR / "broker.sh"), "start", str(ports[0]), str(ports[1]), self._dir]
        env = {**os.environ, "RXSTREAM_KAFKA_WATCH_PID": str(os.getpid())}
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, timeout=120)
        self._pid = int(out.stdout.strip().splitlines()[-1])
        self.bootstrap = f"127.0.0.1:{ports[0]}"
        print(f"started a broker at {self.bootstrap} (pid {self._pid})")

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._pid is not None:
            subprocess.run(["bash", str(KAFKA_DIR / "broker.sh"), "stop", str(self._pid)], timeout=60)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


async def _wait_ready(bootstrap: str, timeout: float) -> None:
    """Wait until the broker lists topics (aiokafka's connection errors meanwhile are not printed)."""
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        await _probe(bootstrap, timeout)
    finally:
        quiet.setLevel(level)


async def _probe(bootstrap: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 10)
            await asyncio.wait_for(admin.list_topics(), 10)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"no Kafka broker answers at {bootstrap}: {exc!r}") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def _topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
        for _ in range(100):  # until every partition has a leader
            described = await admin.describe_topics(list(names))
            if all(len(t["partitions"]) == PARTITIONS for t in described):
                return
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def _drop_topics(bootstrap: str, *names: str) -> None:
    """Delete a run's topics, so every run meets a broker holding the same partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    except Exception as exc:  # a broker that refuses deletes (delete.topic.enable=false) keeps them
        print(f"topics {', '.join(names)} were not deleted: {exc!r}")
    finally:
        await admin.close()


async def _prefill(bootstrap: str, topic: str, n: int) -> None:
    """N JSON orders, packed into batches round-robin over the partitions."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_DEFAULTS)
    await producer.start()
    try:
        futures = []
        for start in range(0, n, 10_000):
            batches: dict[int, Any] = {}
            for i in range(start, min(n, start + 10_000)):
                value = json.dumps({"id": f"o{i}", "amount": i * 0.5}).encode()
                partition = i % PARTITIONS
                batch = batches.get(partition)
                if batch is None or batch.append(key=None, value=value, timestamp=None) is None:
                    if batch is not None:
                        futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=None, value=value, timestamp=None)
            for partition, batch in batches.items():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _until_complete(bootstrap: str, topic: str, n: int, timeout: float) -> float:
    """The time at which ``topic`` holds ``n`` records (polled every 5 ms)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        deadline = time.monotonic() + timeout
        while sum((await reader.end_offsets(tps)).values()) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"only part of {n} results reached {topic} within {timeout:g}s")
            await asyncio.sleep(0.005)
        return time.perf_counter()
    finally:
        await reader.stop()


# ---------------------------------------------------------------------------------------------------
# throughput


async def through_app(bootstrap: str, n: int) -> float:
    """Seconds from the App's first event until all N results are in its sink topic."""
    s = uuid.uuid4().hex[:8]
    source, sink = f"bench-src-{s}", f"bench-sink-{s}"
    await _topics(bootstrap, source, sink)
    await _prefill(bootstrap, source, n)
    app = App(f"bench-{s}", broker=f"kafka://{bootstrap}", topic_partitions=PARTITIONS)
    first: list[float] = []

    @app.agent(app.topic(source), sink=[app.topic(sink)])
    async def double(stream: Stream[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async for order in stream:
            if not first:
                first.append(time.perf_counter())
            yield transform(order)

    async with app:
        done = await _until_complete(bootstrap, sink, n, 600)
    await _drop_topics(bootstrap, source, sink)
    return done - first[0]


async def through_aiokafka(bootstrap: str, n: int) -> float:
    """Seconds from the raw loop's first record until all N results are in its sink topic."""
    s = uuid.uuid4().hex[:8]
    source, sink = f"raw-src-{s}", f"raw-sink-{s}"
    await _topics(bootstrap, source, sink)
    await _prefill(bootstrap, source, n)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{s}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **CONSUMER_DEFAULTS,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_DEFAULTS)
    await producer.start()
    await consumer.start()
    first: list[float] = []
    loop = asyncio.get_running_loop()
    task = loop.create_task(_raw_loop(consumer, producer, sink, first))
    try:
        done = await _until_complete(bootstrap, sink, n, 600)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
    await _drop_topics(bootstrap, source, sink)
    return done - first[0]


async def _raw_loop(consumer: Any, producer: Any, sink: str, first: list[float]) -> None:
    """getmany, map, pack and send batches; every COMMIT_INTERVAL commit once what came before is stored."""
    positions: dict[Any, int] = {}
    pending: list[asyncio.Future[Any]] = []
    next_partition = 0
    last_commit = time.monotonic()
    while True:
        fetched = await consumer.getmany(timeout_ms=100, max_records=MAX_RECORDS)
        if not fetched:
            continue
        if not first:
            first.append(time.perf_counter())
        batches: dict[int, Any] = {}
        for tp, records in fetched.items():
            for record in records:
                value = json.dumps(transform(json.loads(record.value))).encode()
                partition = next_partition
                next_partition = (next_partition + 1) % PARTITIONS
                batch = batches.get(partition)
                if batch is None or batch.append(key=None, value=value, timestamp=None) is None:
                    if batch is not None:
                        pending.append(await producer.send_batch(batch, sink, partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=None, value=value, timestamp=None)
            positions[tp] = records[-1].offset + 1
        for partition, batch in batches.items():
            pending.append(await producer.send_batch(batch, sink, partition=partition))
        if len(pending) > 64 or time.monotonic() - last_commit >= COMMIT_INTERVAL:
            await asyncio.gather(*pending)
            pending = []
            if time.monotonic() - last_commit >= COMMIT_INTERVAL:
                await consumer.commit(dict(positions))
                last_commit = time.monotonic()


def confluent_kafka_module() -> Any:
    """confluent_kafka, or None when the ``bench`` extra is not installed."""
    try:
        import confluent_kafka  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    return confluent_kafka


async def through_confluent(bootstrap: str, n: int) -> float:
    """Seconds from a confluent-kafka loop's first record until all N results are in its sink topic."""
    ck = confluent_kafka_module()
    s = uuid.uuid4().hex[:8]
    source, sink = f"ck-src-{s}", f"ck-sink-{s}"
    await _topics(bootstrap, source, sink)
    await _prefill(bootstrap, source, n)
    first: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    running = loop.run_in_executor(None, _confluent_loop, ck, bootstrap, source, sink, s, first, stop)
    try:
        done = await _until_complete(bootstrap, sink, n, 600)
    finally:
        loop.call_soon(stop.set)
        await running
    await _drop_topics(bootstrap, source, sink)
    return done - first[0]


def _confluent_loop(
    ck: Any, bootstrap: str, source: str, sink: str, s: str, first: list[float], stop: asyncio.Event
) -> None:
    """consume, map, produce; every COMMIT_INTERVAL commit once what came before is delivered."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ck-{s}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": CONSUMER_DEFAULTS["session_timeout_ms"],
            "heartbeat.interval.ms": CONSUMER_DEFAULTS["heartbeat_interval_ms"],
        }
    )
    producer = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": PRODUCER_DEFAULTS["acks"],
            "enable.idempotence": PRODUCER_DEFAULTS["enable_idempotence"],
            "linger.ms": PRODUCER_DEFAULTS["linger_ms"],
            "batch.size": PRODUCER_DEFAULTS["max_batch_size"],
        }
    )
    consumer.subscribe([source])
    next_partition = 0
    last_commit = time.monotonic()
    try:
        while not stop.is_set():
            records = consumer.consume(num_messages=MAX_RECORDS, timeout=0.1)
            if not records:
                continue
            if not first:
                first.append(time.perf_counter())
            for record in records:
                if record.error():
                    continue
                value = json.dumps(transform(json.loads(record.value()))).encode()
                while True:
                    try:
                        producer.produce(sink, value, partition=next_partition)
                        break
                    except BufferError:  # librdkafka's local queue is full: let deliveries drain it
                        producer.poll(0.1)
                next_partition = (next_partition + 1) % PARTITIONS
            producer.poll(0)
            if time.monotonic() - last_commit >= COMMIT_INTERVAL:
                producer.flush()
                consumer.commit(asynchronous=False)
                last_commit = time.monotonic()
        producer.flush()
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------------------
# latency


async def latency(bootstrap: str, rate: int, seconds: float) -> list[float]:
    """Milliseconds from send to the App's agent, for ``rate`` messages/s during ``seconds``."""
    s = uuid.uuid4().hex[:8]
    source = f"lat-src-{s}"
    await _topics(bootstrap, source)
    app = App(f"lat-{s}", broker=f"kafka://{bootstrap}", topic_partitions=PARTITIONS)
    seen: list[float] = []

    @app.agent(app.topic(source))
    async def observe(stream: Stream[dict[str, Any]]) -> None:
        async for order in stream:
            seen.append((time.perf_counter() - order["t"]) * 1000)

    async with app:
        await _send_at(bootstrap, source, rate, seconds, seen)
    return seen


async def latency_aiokafka(bootstrap: str, rate: int, seconds: float) -> list[float]:
    """Milliseconds from send to a raw aiokafka consume loop, measured the same way."""
    s = uuid.uuid4().hex[:8]
    source = f"raw-lat-src-{s}"
    await _topics(bootstrap, source)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"raw-lat-{s}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # the topic is new: nothing sent before counts
        **CONSUMER_DEFAULTS,
    )
    await consumer.start()
    seen: list[float] = []

    async def consume() -> None:
        while True:
            fetched = await consumer.getmany(timeout_ms=100, max_records=MAX_RECORDS)
            for records in fetched.values():
                for record in records:
                    seen.append((time.perf_counter() - json.loads(record.value)["t"]) * 1000)

    task = asyncio.get_running_loop().create_task(consume())
    try:
        while not consumer.assignment():  # as the App does before it counts as started
            await asyncio.sleep(0.01)
        await _send_at(bootstrap, source, rate, seconds, seen)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
    return seen


async def _send_at(bootstrap: str, topic: str, rate: int, seconds: float, seen: list[float]) -> None:
    """Send ``rate`` stamped messages per second for ``seconds``, then wait until ``seen`` has them all."""
    total = int(rate * seconds)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)  # aiokafka's defaults: linger 0, acks=1
    await producer.start()
    try:
        tick = 0.01
        per_tick = max(1, round(rate * tick))
        start = time.perf_counter()
        sent = 0
        while sent < total:
            for _ in range(min(per_tick, total - sent)):
                value = json.dumps({"id": f"o{sent}", "t": time.perf_counter()}).encode()
                await producer.send(topic, value)  # queued: delivery is not awaited here
                sent += 1
            delay = start + (sent / rate) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
        await _wait_for(lambda: len(seen) >= total, 30)
    finally:
        await producer.stop()


async def _wait_for(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("not every message sent arrived within the time allowed")
        await asyncio.sleep(0.01)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(args: argparse.Namespace) -> None:
    async with Broker(args.bootstrap or os.environ.get("RXSTREAM_KAFKA_BOOTSTRAP")) as broker:
        n = args.events
        await through_aiokafka(broker.bootstrap, min(n, 2000))  # warm up: a fresh broker is slow at first
        raw, ours = [], []
        for i in range(args.repeat):  # interleaved, so a noisy moment hits both; neither always first
            if i % 2:
                ours.append(await through_app(broker.bootstrap, n))
            raw.append(await through_aiokafka(broker.bootstrap, n))
            if not i % 2:
                ours.append(await through_app(broker.bootstrap, n))
        base, app = statistics.median(raw), statistics.median(ours)
        print(f"raw aiokafka getmany -> map -> send_batch loop: {n / base:,.0f} events/s")
        print(f"App: topic -> agent(map) -> sink topic, acks+commits: {n / app:,.0f} events/s")
        print(f"ratio App / raw loop: {base / app:.2f}")
        if confluent_kafka_module() is None:
            print("raw confluent-kafka loop: skipped (pip install -e '.[bench]' installs confluent-kafka)")
        else:
            ceiling = statistics.median(
                [await through_confluent(broker.bootstrap, n) for _ in range(args.repeat)]
            )
            print(
                f"raw confluent-kafka consume -> map -> produce loop (librdkafka's ceiling here): "
                f"{n / ceiling:,.0f} events/s, {base / ceiling:.2f}x the raw aiokafka loop"
            )
        raw_label = "raw aiokafka getmany loop"
        runs: dict[str, list[list[float]]] = {raw_label: [], "App agent": []}
        for _ in range(args.repeat):  # interleaved, so one stall of the machine does not decide
            runs[raw_label].append(await latency_aiokafka(broker.bootstrap, args.rate, args.seconds))
            runs["App agent"].append(await latency(broker.bootstrap, args.rate, args.seconds))
        p99s = {}
        for label, samples in runs.items():
            p99s[label] = statistics.median(percentile(values, 0.99) for values in samples)
            print(
                f"latency send -> {label} at {args.rate:,}/s for {args.seconds:g}s "
                f"({len(samples[0]):,} messages, median of {len(samples)} runs): "
                f"p50 {statistics.median(percentile(values, 0.5) for values in samples):.1f} ms, "
                f"p99 {p99s[label]:.1f} ms, max {max(max(values) for values in samples):.1f} ms"
            )
        ratio = p99s["App agent"] / p99s[raw_label]
        print(f"ratio of p99 latencies, App / raw aiokafka loop: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--bootstrap", help="host:port of a running broker (default: RXSTREAM_KAFKA_BOOTSTRAP)"
    )
    parser.add_argument("--rate", type=int, default=2_000, help="messages/s of the latency run")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the latency run")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
