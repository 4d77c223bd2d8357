"""Events/s through topic -> agent (map, filter) -> sink topic on memory://, acks and commits on, and
through a channel hand-off to an agent.

Run: python benchmarks/bench_agents.py [--events N] [--repeat R] [--monitor]
The source topic is filled first; the clock runs from app start until every result is in the sink topic.
The baseline is a plain `async for` loop over an async generator doing the same map and filter and
appending to a list, measured in the same run; RSS is reported with the log filled and at its peak.
The channel hand-off sends each value with one `await channel.send(value=...)` to an agent doing the same
map and filter; its baseline is an `asyncio.Queue` of the same size read by a task doing the same work.
With --monitor the pipeline runs with app.monitor on and off, alternating, and both ratios are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
import uuid
from collections.abc import AsyncIterator

from rxstream import App, Stream


def double(x: int) -> int:
    return x * 2


def divisible_by_three(x: int) -> bool:
    return x % 3 == 0


async def baseline(n: int) -> float:
    async def source() -> AsyncIterator[int]:
        for i in range(n):
            yield i

    out: list[int] = []
    start = time.perf_counter()
    async for x in source():
        y = double(x)
        if divisible_by_three(y):
            out.append(y)
    took = time.perf_counter() - start
    assert len(out) == len(range(0, 2 * n, 6))
    return took


async def pipeline(n: int, monitor: bool = True) -> float:
    """Pre-fill the source topic, then time the app from start until every result is in the sink topic."""
    url = f"memory://bench-{uuid.uuid4().hex}"
    app = App(f"bench-{uuid.uuid4().hex[:6]}", broker=url, commit_interval=0.5)
    app.monitor.enabled = monitor
    source = app.topic("source", partitions=4)
    sink = app.topic("sink", partitions=4)
    expected = len(range(0, 2 * n, 6))

    @app.agent(source, sink=[sink])
    async def process(stream: Stream[int]) -> AsyncIterator[int]:
        async for value in stream.map(double).filter(divisible_by_three):
            yield value

    chunk = 10_000
    for i in range(0, n, chunk):
        await source.send_many(range(i, min(n, i + chunk)))
    FILLED_RSS.append(current_rss_mib())
    start = time.perf_counter()
    async with app:
        while sum((await app.transport.end_offsets("sink")).values()) < expected:
            await asyncio.sleep(0.001)
        took = time.perf_counter() - start
        committed = await app.commit()  # empty when an early commit already stored every offset
        assert sum(committed.values()) + sum(app.committed_offsets().values()) > 0
    return took


FILLED_RSS: list[float] = []

CHANNEL_SIZE = 1000
"""The channel's default maxsize, given to the queue of the hand-off baseline too."""


async def queue_handoff(n: int) -> float:
    """Each value put on an `asyncio.Queue` read by a task doing the map and filter, until all are seen."""
    queue: asyncio.Queue[int] = asyncio.Queue(CHANNEL_SIZE)
    expected = len(range(0, 2 * n, 6))
    done = asyncio.Event()

    async def reader() -> None:
        kept = 0
        while True:
            y = double(await queue.get())
            if divisible_by_three(y):
                kept += 1
                if kept == expected:
                    done.set()

    task = asyncio.get_running_loop().create_task(reader())
    start = time.perf_counter()
    for i in range(n):
        await queue.put(i)
    await done.wait()
    took = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return took


async def channel_handoff(n: int) -> float:
    """Each value sent with one `await channel.send(value=...)` to an agent doing the map and filter."""
    app = App(f"bench-{uuid.uuid4().hex[:6]}", broker=f"memory://bench-{uuid.uuid4().hex}")
    channel = app.channel(maxsize=CHANNEL_SIZE)
    expected = len(range(0, 2 * n, 6))
    done = asyncio.Event()

    @app.agent(channel)
    async def process(stream: Stream[int]) -> None:
        kept = 0
        async for _ in stream.map(double).filter(divisible_by_three):
            kept += 1
            if kept == expected:
                done.set()

    async with app:
        start = time.perf_counter()
        for i in range(n):
            await channel.send(value=i)
        await done.wait()
        took = time.perf_counter() - start
    return took


def compare_handoff(n: int, repeat: int) -> None:
    """The channel hand-off against the queue hand-off, alternating which runs first."""
    times: dict[str, list[float]] = {"queue": [], "channel": []}
    for fun in (queue_handoff, channel_handoff):  # a process's first runs are slower: warm up both
        asyncio.run(fun(min(n, 20_000)))
    for i in range(repeat):
        for which in ("queue", "channel") if i % 2 == 0 else ("channel", "queue"):
            fun = queue_handoff if which == "queue" else channel_handoff
            times[which].append(asyncio.run(fun(n)))
    base, ours = statistics.median(times["queue"]), statistics.median(times["channel"])
    print(
        f"channel -> agent(map, filter), one await send() per value: {n / ours:,.0f} events/s, "
        f"asyncio.Queue + task loop {n / base:,.0f} events/s, ratio {base / ours:.2f}"
    )


def current_rss_mib() -> float:
    """This process's resident memory now (Linux), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--monitor", action="store_true", help="compare app.monitor on and off side by side")
    args = parser.parse_args()
    n = args.events
    if args.monitor:
        compare_monitor(n, args.repeat)
        return
    base = statistics.median(asyncio.run(baseline(n)) for _ in range(args.repeat))
    ours = statistics.median(asyncio.run(pipeline(n)) for _ in range(args.repeat))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"baseline async-generator loop: {n / base:,.0f} events/s")
    print(
        f"topic -> agent(map, filter) -> sink topic, memory://, acks+commits: "
        f"{n / ours:,.0f} events/s, ratio {base / ours:.2f}"
    )
    filled = max(FILLED_RSS)
    print(
        f"RSS with {n:,} events in the memory log: {filled:,.0f} MiB; peak while processing them: "
        f"{peak:,.0f} MiB (+{peak - filled:,.0f} MiB for the pipeline, bounded by its buffers)"
    )
    compare_handoff(n, args.repeat)


def compare_monitor(n: int, repeat: int) -> None:
    """The pipeline with the monitor off and on, alternating run by run, against one baseline."""
    base = statistics.median(asyncio.run(baseline(n)) for _ in range(repeat))
    times: dict[bool, list[float]] = {False: [], True: []}
    for monitor in (True, False):  # a process's first runs are slower: warm up both before timing
        asyncio.run(pipeline(n, monitor))
    for i in range(repeat):
        for monitor in (False, True) if i % 2 else (True, False):  # neither always runs first
            times[monitor].append(asyncio.run(pipeline(n, monitor)))
    print(f"baseline async-generator loop: {n / base:,.0f} events/s")
    ratios = {}
    for monitor, took in times.items():
        median = statistics.median(took)
        ratios[monitor] = base / median
        state = "on " if monitor else "off"
        print(f"agent pipeline, monitor {state}: {n / median:,.0f} events/s, ratio {base / median:.2f}")
    print(f"ratio with the monitor on / off: {ratios[True] / ratios[False]:.3f} (1.000: no cost)")


if __name__ == "__main__":
    main()
