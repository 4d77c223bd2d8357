"""memory:// bounds memory by default: a sender faster than its agent waits for the agent's fetches (not its
commits, so a pipeline of agents in one app never waits for itself), and the process's RSS stays bounded."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator

import pytest

import rxstream
from rxstream import App
from rxstream.errors import ConfigurationError
from rxstream.transport import TopicPartition, TopicSpec
from rxstream.transport.memory import MAX_PARTITION_UNREAD, MemoryTransport

EVENTS = 200_000
PARTITIONS = 8

_SLOW_AGENT = textwrap.dedent(
    """
    import asyncio, json, resource, sys, time
    import rxstream

    EVENTS, PARTITIONS, UNREAD = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    options = {"max_partition_unread": UNREAD} if UNREAD else {}
    app = rxstream.App("backlog", broker="memory://backlog", topic_partitions=PARTITIONS, **options)
    source = app.topic("orders")
    done = 0

    @app.agent(source)
    async def work(stream):
        global done
        async for order in stream:
            until = time.perf_counter() + 10e-6  # real work per event, slower than the sender
            while time.perf_counter() < until:
                pass
            done += 1

    async def main():
        async with app:
            began = time.perf_counter()
            ahead = 0
            held = 0
            partitions = app.transport.broker.topics[source.name].partitions
            for start in range(0, EVENTS, 1000):  # made as they are sent: memory is the app's
                orders = [{"id": i, "item": "widget", "qty": i % 7} for i in range(start, start + 1000)]
                await source.send_many(orders)
                ahead = max(ahead, start + 1000 - done)
                held = max(held, sum(len(part.log) for part in partitions))
            sent = time.perf_counter() - began
            while done < EVENTS:
                await asyncio.sleep(0.01)
            total = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # counts the parent's before exec
        with open("/proc/self/status") as status:  # this process image's own peak, where Linux says it
            peak = next((int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")), peak)
        print(json.dumps({"sent_s": sent, "ahead": ahead, "held": held, "total_s": total, "peak_mib": peak}))

    asyncio.run(main())
    """
)


def _run_slow_agent(unread: int) -> dict[str, float]:
    """Run the sender and the slow agent in a process of their own; what it measured."""
    result = subprocess.run(
        [sys.executable, "-c", _SLOW_AGENT, str(EVENTS), str(PARTITIONS), str(unread)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"slow agent, max_partition_unread={unread or MAX_PARTITION_UNREAD}: {figures}")
    return figures


def test_a_slow_agent_makes_its_sender_wait_and_rss_stays_bounded() -> None:
    figures = _run_slow_agent(0)
    # the sender was never further ahead of the agent than the partitions' unread bound and what it fetched,
    # and the log held no more than that and what was processed since the last commit
    assert figures["ahead"] <= PARTITIONS * MAX_PARTITION_UNREAD + 3 * 4096 + 1000, figures
    assert figures["held"] <= figures["ahead"] + 2 * MAX_PARTITION_UNREAD, figures
    assert figures["peak_mib"] < 80, figures  # 48-56 MiB; with all 200,000 events held at once: 106 MiB


def test_max_partition_unread_is_an_app_setting_reaching_the_memory_transport() -> None:
    transport = App("a", max_partition_unread=500).transport
    assert isinstance(transport, MemoryTransport) and transport.max_partition_unread == 500
    assert App("a").conf.max_partition_unread == MAX_PARTITION_UNREAD
    with pytest.raises(ConfigurationError, match="max_partition_unread"):
        App("a", max_partition_unread=0).transport  # noqa: B018
    with pytest.raises(ConfigurationError, match="max_partition_unread"):
        App("a", max_partition_unread="many")  # type: ignore[arg-type]


async def test_senders_wait_for_fetches_not_commits() -> None:
    transport = MemoryTransport(f"memory://unread-{uuid.uuid4().hex[:8]}", max_partition_unread=5)
    await transport.start()
    try:

        async def ignore(*_: object) -> None:
            pass

        consumer = transport.consumer("g", ["orders"], ignore)
        await transport.create_topics([TopicSpec("orders", 1)])
        await consumer.start()
        records = [(None, i, None, None) for i in range(12)]
        sending = asyncio.create_task(transport.send_many("orders", records))
        await asyncio.sleep(0.01)
        assert not sending.done() and transport.watermarks(TopicPartition("orders", 0))[1] == 5
        fetched = await consumer.getmany(0, 3)
        assert sum(map(len, fetched.values())) == 3
        await asyncio.sleep(0.01)
        assert transport.watermarks(TopicPartition("orders", 0))[1] == 8  # no commit needed
        consumer.seek(TopicPartition("orders", 0), 8)  # a reader moving on makes room too
        await asyncio.sleep(0.01)
        assert transport.watermarks(TopicPartition("orders", 0))[1] == 12 and sending.done()
        await sending
        more = asyncio.create_task(transport.send_many("orders", records))
        await asyncio.sleep(0.01)
        assert not more.done()
        await consumer.stop()  # no reader left: only the bound on commits holds senders back
        await asyncio.wait_for(more, 5)
    finally:
        await transport.stop()


async def test_a_three_agent_chain_with_a_small_bound_completes() -> None:
    app = App(
        "chain",
        broker=f"memory://chain-{uuid.uuid4().hex[:8]}",
        max_partition_unread=50,
        topic_partitions=4,
        commit_interval=0.05,
    )
    first, second, third = (app.topic(name) for name in ("first", "second", "third"))
    seen: list[int] = []

    @app.agent(first, sink=[second])
    async def double(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n * 2

    @app.agent(second, sink=[third])
    async def increment(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n + 1

    @app.agent(third)
    async def collect(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    events = 20_000
    async with app:
        await asyncio.wait_for(first.send_many(range(events)), 60)
        async with asyncio.timeout(60):
            while len(seen) < events:
                await asyncio.sleep(0.01)
    assert sorted(seen) == [n * 2 + 1 for n in range(events)]
