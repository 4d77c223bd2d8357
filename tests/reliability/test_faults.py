"""The app under a deterministic fault plan on memory://: fetches, sends and commits fail, the "broker" goes
away for a while, rebalances are forced; a crashed worker is started again, as a supervisor would. The
promises: nothing is lost, no commit passes unprocessed work (or work whose outputs are not stored), and
table counts are never below the truth. ``RXSTREAM_RELIABILITY_SCALE`` multiplies the event count."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream.transport import TopicPartition

from .faults import FaultPlan, FaultyTransport

SCALE = max(1, int(os.environ.get("RXSTREAM_RELIABILITY_SCALE", "1")))
EVENTS = 2000 * SCALE
PARTITIONS = 4
KEYS = 10
MAX_RESTARTS = 10
MAXSIZE = 50  # events a fetch brings at most: the work spans many fetches, sends and commits


class World:
    """What the workers did, kept across restarts: processed inputs, and checks of every commit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.s = uuid.uuid4().hex[:8]
        self.processed: set[tuple[int, int]] = set()
        self.commits = 0
        self.transport: FaultyTransport | None = None

    def stored_outputs(self) -> set[tuple[int, int]]:
        assert self.transport is not None
        out = self.transport.broker.existing_topic("out")
        return {tuple(row[5]) for part in out.partitions for row in part.log}  # type: ignore[misc]

    def committed(self) -> dict[TopicPartition, int]:
        """The main group's committed offsets of the source's non-empty partitions."""
        assert self.transport is not None
        group = self.transport.broker.group(f"faults-{self.s}-main")
        return {tp: offset for tp, offset in group.committed.items() if tp.topic == "source" and offset}

    def check_commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """No commit passes an input that was not processed, or whose output is not stored yet."""
        if not any(tp.topic == "source" for tp in offsets):
            return
        stored = self.stored_outputs()
        for tp, offset in offsets.items():
            if tp.topic != "source":
                continue
            for below in range(offset):
                assert (tp.partition, below) in self.processed, f"commit {offset} of {tp} passes {below}"
                assert (tp.partition, below) in stored, (
                    f"commit {offset} of {tp}: output of {below} not stored"
                )
        self.commits += 1

    def app(self, plan: FaultPlan) -> tuple[App, Any]:
        app = App(f"faults-{self.s}-main", broker=self.url, commit_interval=0.05, topic_partitions=PARTITIONS)
        self.transport = FaultyTransport(self.url, plan, self.check_commit, default_partitions=PARTITIONS)
        app._transport = self.transport
        source = app.topic("source", partitions=PARTITIONS, maxsize=MAXSIZE)
        out = app.topic("out", partitions=1)
        counts = app.Table("counts", default=int)
        processed = self.processed

        @app.agent(source, sink=[out])
        async def count(stream: rxstream.Stream[Any]) -> AsyncIterator[list[int]]:
            async for event in stream.events():
                message = event.message
                assert message is not None
                counts[event.key] += 1
                processed.add((message.partition, message.offset))
                yield [message.partition, message.offset]

        return app, counts


async def _fill(url: str) -> dict[TopicPartition, int]:
    feeder = App(f"feeder-{uuid.uuid4().hex[:6]}", broker=url, topic_partitions=PARTITIONS)
    source = feeder.topic("source", partitions=PARTITIONS)
    transport = await feeder.producer()
    await transport.create_topics(source.specs(PARTITIONS))
    await transport.send_many("source", [(f"k{i % KEYS}", i, None, None) for i in range(EVENTS)])
    ends = {tp: end for tp, end in (await transport.end_offsets("source")).items() if end}
    await feeder.stop()
    return ends


PLANS = {
    "fetch-send-commit": FaultPlan(fail_fetch={3, 9}, fail_send={4}, fail_commit={2, 5, 6}),
    "unavailable": FaultPlan(unavailable={5: 0.3}, fail_commit={1}),
    "rebalances": FaultPlan(rebalance={3, 8, 20}, fail_send={12}),
    "rebalance-at-commit": FaultPlan(rebalance_commit={1, 2, 4, 7}, fail_fetch={10}),
    "everything": FaultPlan(
        fail_fetch={2, 40}, fail_send={6, 30}, fail_commit={3, 11}, unavailable={15: 0.2}, rebalance={4, 25}
    ),
}


@pytest.mark.parametrize("name", sorted(PLANS))
async def test_nothing_is_lost_and_no_commit_passes_unprocessed_work_under_faults(name: str) -> None:
    plan = FaultPlan(**{k: v for k, v in vars(PLANS[name]).items() if k != "injected"})
    world = World(f"memory://faults-{uuid.uuid4().hex[:8]}")
    ends = await _fill(world.url)
    truth = Counter(f"k{i % KEYS}" for i in range(EVENTS))
    runs = 0
    for runs in range(1, MAX_RESTARTS + 1):  # noqa: B007
        app, counts = world.app(plan)
        runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
        async with asyncio.timeout(60):
            while not runner.done():
                if len(world.processed) == EVENTS and world.committed() == ends:
                    break
                await asyncio.sleep(0.02)
        if not runner.done():
            # a table holds the partitions its worker owns: read it once the visiting members left
            assert world.transport is not None
            plan.end()
            await asyncio.gather(*world.transport.extra_members, return_exceptions=True)
            for _ in range(500):  # 10 s at most
                below = {k: (counts.get(k, 0), n) for k, n in truth.items() if counts.get(k, 0) < n}
                if not below and app.consuming:
                    break
                await asyncio.sleep(0.02)
            assert not below, f"table counts below the truth: {below}"
            await app.stop()
            assert await runner == 0
            break
        assert await runner == 1  # crashed by an injected fault: start a new worker, as a supervisor would
        assert app.crashed is not None
    else:
        pytest.fail(f"not done after {MAX_RESTARTS} restarts; injected: {plan.injected}")
    await asyncio.gather(*(world.transport.extra_members if world.transport else []), return_exceptions=True)
    assert world.processed == {(tp.partition, o) for tp, end in ends.items() for o in range(end)}
    assert world.stored_outputs() >= world.processed
    assert world.commits > 0 and plan.injected, plan.injected
    print(f"{name}: {runs} run(s), {world.commits} commits, injected {plan.injected}")
