"""Table updates/s (count per key, 10,000 keys) against a plain dict loop, and changelog recovery time.

Run: python benchmarks/bench_tables.py [--updates N] [--records N] [--repeat R]
Updates: ``table[key] += 1`` inside an ``async for`` over a stream of keyed events (changes are queued for
the changelog and flushed before the clock stops), for the memory and RocksDB stores; the baselines are a
plain ``dict`` update loop and the same ``async for`` loop updating a dict, measured in the same run. Then the
same in an agent reading a memory topic (acks and commits), against the same agent updating a dict.
Recovery: the changelog is pre-filled with ``--records`` records, then a fresh app's start is timed (full
replay); for RocksDB a second start shows the incremental recovery.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from typing import Any

from rxstream import App, Event, Message, Stream
from rxstream.transport.partitioner import partition_for

KEYS = 10_000
PARTITIONS = 8


def keyed_events(n: int) -> list[Event]:
    """Events with messages (so a table knows their partition), keys cycling over 10,000 keys; each
    partition's events at consecutive offsets, as a topic's are."""
    keys = [f"key-{i}" for i in range(KEYS)]
    parts = [partition_for(key, PARTITIONS) for key in keys]
    offsets = [0] * PARTITIONS
    events = []
    for i in range(n):
        key, part = keys[i % KEYS], parts[i % KEYS]
        events.append(Event(key, 1, message=Message("words", part, offsets[part], 0.0, key, 1)))
        offsets[part] += 1
    return events


def plain_loop(n: int) -> float:
    keys = [f"key-{i % KEYS}" for i in range(n)]
    counts: dict[str, int] = {}
    start = time.perf_counter()
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return time.perf_counter() - start


async def stream_loop(events: list[Event], target: Any, app: App | None) -> float:
    start = time.perf_counter()
    async for key, _ in Stream.from_iterable(iter(events)).items():
        target[key] += 1
    if app is not None:
        await app.flush()
    return time.perf_counter() - start


async def stream_dict(n: int) -> float:
    counts: dict[str, int] = dict.fromkeys((f"key-{i}" for i in range(KEYS)), 0)
    return await stream_loop(keyed_events(n), counts, None)


async def stream_table(n: int, store: str) -> float:
    app = App(f"bench-{uuid.uuid4().hex[:6]}", broker=f"memory://bench-{uuid.uuid4().hex}")
    counts = app.Table("counts", default=int, partitions=PARTITIONS, store=store)
    events = keyed_events(n)
    async with app:
        took = await stream_loop(events, counts, app)
        assert sum(counts.values()) == n
    return took


async def agent_loop(n: int, store: str | None) -> float:
    """An agent counting keys of ``n`` events in a memory topic: in a Table (``store``) or in a dict (None).

    Timed from the send of the events until the last one was counted and the table's changes were stored.
    """
    url = f"memory://bench-{uuid.uuid4().hex}"
    app = App(f"bench-{uuid.uuid4().hex[:6]}", broker=url)
    words = app.topic("words", partitions=PARTITIONS)
    keys = [f"key-{i}" for i in range(KEYS)]
    counts: Any = (
        dict.fromkeys(keys, 0)
        if store is None
        else app.Table("counts", default=int, partitions=PARTITIONS, store=store)
    )
    done = asyncio.get_running_loop().create_future()
    left = n

    @app.agent(words)
    async def count(stream: Stream[Any]) -> None:
        nonlocal left
        async for key, _ in stream.items():
            counts[key] += 1
            left -= 1
            if not left:
                done.set_result(None)

    parts = [partition_for(key, PARTITIONS) for key in keys]
    records = [(keys[i % KEYS], 1, parts[i % KEYS], None) for i in range(n)]
    async with app:
        transport = await app.producer()
        start = time.perf_counter()
        await transport.send_many("words", records)
        await done
        await app.flush()
        took = time.perf_counter() - start
        assert sum(counts.values()) == n
    return took


async def recovery(records: int, store: str, *, starts: int = 1) -> list[tuple[int, float]]:
    """Fill a changelog with ``records`` records, then time ``starts`` app starts (records, seconds each)."""
    url = f"memory://bench-{uuid.uuid4().hex}"
    app_id = f"bench-{uuid.uuid4().hex[:6]}"
    filler = App(app_id, broker=url)
    table = filler.Table("counts", default=int, partitions=PARTITIONS)
    transport = await filler.producer()
    await filler.transport.create_topics(table.changelog.specs(PARTITIONS))
    chunk = 50_000
    for first in range(0, records, chunk):
        batch = []
        for i in range(first, min(records, first + chunk)):
            key = f"key-{i % 100_000}"
            batch.append((key, i, partition_for(key, PARTITIONS), None))
        await transport.send_many(table.changelog.name, batch)
    out: list[tuple[int, float]] = []
    for _ in range(starts):
        app = App(app_id, broker=url)
        counts = app.Table("counts", default=int, partitions=PARTITIONS, store=store)
        start = time.perf_counter()
        await app.start()
        took = time.perf_counter() - start
        stats = counts.last_recovery
        assert stats is not None and len(counts) == min(records, 100_000)
        out.append((stats.records, took))
        await app.stop()
    await filler.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=500_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.updates
    base = statistics.median(plain_loop(n) for _ in range(args.repeat))
    loop_dict = statistics.median(asyncio.run(stream_dict(n)) for _ in range(args.repeat))
    print(f"plain dict update loop: {n / base:,.0f} updates/s")
    print(
        f"async for over a stream, dict update: {n / loop_dict:,.0f} updates/s, ratio {base / loop_dict:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, store in (("memory://", "memory://"), ("rocksdb://", f"rocksdb://{tmp}/updates")):
            took = statistics.median(asyncio.run(stream_table(n, store)) for _ in range(args.repeat))
            print(
                f"async for over a stream, Table[key] += 1, {label}: {n / took:,.0f} updates/s, "
                f"ratio {base / took:.2f} (vs the same loop on a dict: {loop_dict / took:.2f})"
            )
        agent_dict = statistics.median(asyncio.run(agent_loop(n, None)) for _ in range(args.repeat))
        print(f"agent over a memory topic, dict update: {n / agent_dict:,.0f} updates/s")
        for label, store in (("memory://", "memory://"), ("rocksdb://", f"rocksdb://{tmp}/agent")):
            took = statistics.median(asyncio.run(agent_loop(n, store)) for _ in range(args.repeat))
            print(
                f"agent over a memory topic, Table[key] += 1, {label}: {n / took:,.0f} updates/s, "
                f"{agent_dict / took:.2f} of the same agent updating a dict"
            )
        records = args.records
        ((full, took),) = asyncio.run(recovery(records, "memory://"))
        print(
            f"recovery of {full:,} changelog records, memory://: {took:.2f} s ({full / took:,.0f} records/s)"
        )
        runs = asyncio.run(recovery(records, f"rocksdb://{tmp}/recovery", starts=2))
        (full, took), (again, took2) = runs
        print(
            f"recovery of {full:,} changelog records, rocksdb://: {took:.2f} s "
            f"({full / took:,.0f} records/s); second start replayed {again:,} records in {took2:.2f} s"
        )


if __name__ == "__main__":
    main()
