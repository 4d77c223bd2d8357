"""At-least-once table state that never double-counts: a worker dies between writing its table changes and
committing the events that made them, and its successor's counts equal the truth exactly (those events are
processed again; their first changes are not applied on recovery). On memory:// with a fault plan, and on
the real broker with worker processes SIGKILLed mid-run."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream.events import current_source
from rxstream.tables import Table
from rxstream.transport import TopicSpec
from rxstream.transport.kafka import KafkaTransport

from .faults import FaultPlan, FaultyTransport
from .test_faults import EVENTS, KEYS, MAXSIZE, PARTITIONS, World, _fill
from .workers import Worker

MAX_RESTARTS = 10


class StoreWorld(World):
    """The fault-plan world with the table in a given store; keeps every worker's table."""

    def __init__(self, url: str, store: str, *, windowed: bool = False) -> None:
        super().__init__(url)
        self.store = store
        self.windowed = windowed
        """Count in hour-long tumbling windows (the counts are then summed per key)."""
        self.tables: list[Table] = []

    def app(self, plan: FaultPlan) -> tuple[App, Any]:
        app = App(f"faults-{self.s}-main", broker=self.url, commit_interval=0.05, topic_partitions=PARTITIONS)
        self.transport = FaultyTransport(self.url, plan, self.check_commit, default_partitions=PARTITIONS)
        app._transport = self.transport
        source = app.topic("source", partitions=PARTITIONS, maxsize=MAXSIZE)
        out = app.topic("out", partitions=1)
        table = app.Table("counts", default=int, store=self.store)
        counts: Any = table.tumbling(3600) if self.windowed else table
        processed = self.processed

        @app.agent(source, sink=[out])
        async def count(stream: rxstream.Stream[Any]) -> AsyncIterator[list[int]]:
            async for key, _ in stream.items():
                row = current_source()
                assert row is not None
                counts[key] += 1
                processed.add((row[1], row[2]))
                if row[2] % 25 == 0:
                    await asyncio.sleep(0.002)  # the work spans several commits
                yield [row[1], row[2]]

        self.tables.append(table)
        return app, table


async def _run_until_done(world: StoreWorld, plan: FaultPlan) -> tuple[dict[Any, Any], int]:
    """Run workers (each started again after dying) until every input is committed: the last one's counts
    (read while it runs: a RocksDB table is closed with its app) and how many workers ran."""
    ends = await _fill(world.url)
    for runs in range(1, MAX_RESTARTS + 1):
        app, counts = world.app(plan)
        runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
        async with asyncio.timeout(60):
            while not runner.done():
                if len(world.processed) == EVENTS and world.committed() == ends:
                    break
                await asyncio.sleep(0.02)
        if not runner.done():
            plan.end()
            final: Counter[Any] = Counter()
            for key, n in counts.as_dict().items():
                final[key[0] if world.windowed else key] += n  # a windowed key is (key, window)
            await app.stop()
            assert await runner == 0
            return final, runs
        assert await runner == 1, "the worker should have died by the plan"
    pytest.fail(f"not done after {MAX_RESTARTS} restarts; injected: {plan.injected}")


@pytest.mark.parametrize("store", ["memory", "rocksdb", "memory-windowed"])
async def test_counts_are_exact_after_dying_between_changelog_write_and_commit(
    store: str, tmp_path: Path
) -> None:
    if store == "rocksdb":
        pytest.importorskip("rocksdict")
    url = f"memory://exact-{uuid.uuid4().hex[:8]}"
    where = f"rocksdb://{tmp_path}" if store == "rocksdb" else "memory://"
    world = StoreWorld(url, where, windowed=store.endswith("windowed"))
    plan = FaultPlan(kill_commit={2, 3, 5})
    last, runs = await _run_until_done(world, plan)
    truth = Counter(f"k{i % KEYS}" for i in range(EVENTS))
    assert runs >= 3 and len(plan.injected) == runs - 1, plan.injected  # deaths, then one that finishes
    assert dict(last) == dict(truth), "the table counts differ from the true counts"
    skipped = sum(t.skipped_records for t in world.tables)
    assert skipped > 0, "each death left changes of uncommitted events, which recovery leaves out"
    print(f"{store}: {runs} runs, {skipped} changelog records of uncommitted events not applied")


KILLS = 3
COUNTING_APP = "tests.reliability.counting_app:app"
KAFKA_PARTITIONS = 4
KAFKA_KEYS = 20
PER_ROUND = 1200
SKIPPED = re.compile(r"table 'counts': (\d+) changelog records of partitions .* not applied")


async def _committed(url: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The offsets ``group`` committed for ``topic`` (0 where none)."""
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]
    from aiokafka import TopicPartition as KafkaTP

    consumer = AIOKafkaConsumer(
        bootstrap_servers=url.removeprefix("kafka://"), group_id=group, enable_auto_commit=False
    )
    await asyncio.wait_for(consumer.start(), 20)
    try:
        return {p: await consumer.committed(KafkaTP(topic, p)) or 0 for p in range(partitions)}
    finally:
        await asyncio.wait_for(consumer.stop(), 20)


async def _last_values(url: str, topic: str) -> dict[str, int]:
    """The last value of every key of a table's changelog (what a compacted changelog keeps)."""
    import json

    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]

    transport = KafkaTransport(url)
    await transport.start()
    try:
        ends = {tp.partition: end for tp, end in (await transport.end_offsets(topic)).items()}
    finally:
        await transport.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=url.removeprefix("kafka://"), auto_offset_reset="earliest"
    )
    await asyncio.wait_for(consumer.start(), 20)
    last: dict[str, int] = {}
    read = {p: 0 for p in ends}
    try:
        async with asyncio.timeout(30):
            while any(read[p] < end for p, end in ends.items()):
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    for record in records:
                        key = json.loads(record.key)
                        if record.value is None:
                            last.pop(key, None)
                        else:
                            last[key] = json.loads(record.value)
                    read[tp.partition] = records[-1].offset + 1
    finally:
        await asyncio.wait_for(consumer.stop(), 20)
    return last


async def test_sigkilled_worker_leaves_table_counts_exact_on_the_broker(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    url = f"kafka://{kafka_bootstrap}"
    s = uuid.uuid4().hex[:8]
    env = {
        "app": f"exact-{s}",
        "source": f"exact-src-{s}",
        "partitions": str(KAFKA_PARTITIONS),
        "delay": "0.004",
    }
    admin = KafkaTransport(url)
    await admin.start()
    await admin.create_topics([TopicSpec(env["source"], KAFKA_PARTITIONS)])
    truth: Counter[str] = Counter()
    sent = 0
    workers: dict[str, Worker] = {}
    spawned: list[Worker] = []

    def start(label: str) -> None:
        workers[label] = Worker(f"{label}-{len(spawned) + 1}", url, tmp_path, target=COUNTING_APP, **env)
        spawned.append(workers[label])

    async def feed(n: int) -> None:
        nonlocal sent
        records = []
        for i in range(sent, sent + n):
            key = f"k{i % KAFKA_KEYS}"  # key j always goes to partition j % KAFKA_PARTITIONS
            truth[key] += 1
            records.append((key.encode(), b"1", i % KAFKA_PARTITIONS, None))
        await admin.send_many(env["source"], records)
        sent += n

    chance = random.Random(s)
    codes: list[int] = []
    try:
        start("steady")
        start("victim")
        for _ in range(KILLS):
            victim = workers["victim"]
            async with asyncio.timeout(40):  # a killed member's partitions move when its session expires
                while "partitions assigned" not in victim.log():
                    await asyncio.sleep(0.2)
            await feed(PER_ROUND)
            await asyncio.sleep(chance.uniform(0.5, 1.5))  # the victim is busy with the round's events
            victim.proc.send_signal(signal.SIGKILL)
            await workers["victim"].exit_code(10)
            workers["victim"].close()
            start("victim")
        await feed(PER_ROUND)
        ends = {tp.partition: end for tp, end in (await admin.end_offsets(env["source"])).items()}
        async with asyncio.timeout(60):  # a killed member leaves when its session (10 s) expires
            while await _committed(url, env["app"], env["source"], KAFKA_PARTITIONS) != ends:
                await asyncio.sleep(1)
        for worker in workers.values():
            worker.proc.send_signal(signal.SIGTERM)
        for worker in workers.values():
            codes.append(await worker.exit_code(40))
    finally:
        await admin.stop()
        for worker in workers.values():
            worker.close()
    last = await _last_values(url, f"{env['app']}-counts-changelog")
    wrong = {key: (last.get(key), n) for key, n in truth.items() if last.get(key) != n}
    skipped = sum(int(n) for worker in spawned for n in SKIPPED.findall(worker.log()))
    print(
        f"{KILLS} kills, {sent} events, {len(truth)} keys, {skipped} changelog records of uncommitted "
        f"events not applied on recovery, wrong: {wrong}, exits {codes}"
    )
    assert not wrong, f"table counts (changelog, truth) that differ: {wrong}"
    assert skipped > 0, "no recovery met changes of uncommitted events: the kills hit idle workers"
    assert codes == [0, 0]
