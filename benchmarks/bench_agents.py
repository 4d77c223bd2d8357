"""Events/s through topic -> agent (map, filter) -> sink topic on memory://, acks and commits on.

Run: python benchmarks/bench_agents.py [--events N] [--repeat R]
The baseline is a plain `async for` loop over an async generator doing the same map and filter and
appending to a list, measured in the same run; peak RSS is reported after the largest run.
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


async def pipeline(n: int) -> float:
    app = App(
        f"bench-{uuid.uuid4().hex[:6]}", broker=f"memory://bench-{uuid.uuid4().hex}", commit_interval=0.5
    )
    source = app.topic("source", partitions=4)
    sink = app.topic("sink", partitions=4)
    expected = len(range(0, 2 * n, 6))
    counted = 0
    done = asyncio.Event()

    @app.agent(source, sink=[sink])
    async def process(stream: Stream[int]) -> AsyncIterator[int]:
        async for value in stream.map(double).filter(divisible_by_three):
            yield value

    @app.agent(sink)
    async def count(stream: Stream[int]) -> None:
        nonlocal counted
        async for _ in stream:
            counted += 1
            if counted == expected:
                done.set()

    async with app:
        chunk = 10_000
        start = time.perf_counter()
        for i in range(0, n, chunk):
            await source.send_many(range(i, min(n, i + chunk)))
        await asyncio.wait_for(done.wait(), 300)
        took = time.perf_counter() - start
        await app.commit()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.events
    base = statistics.median(asyncio.run(baseline(n)) for _ in range(args.repeat))
    ours = statistics.median(asyncio.run(pipeline(n)) for _ in range(args.repeat))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"baseline async-generator loop: {n / base:,.0f} events/s")
    print(
        f"topic -> agent(map, filter) -> sink topic -> counting agent, memory://, acks+commits: "
        f"{n / ours:,.0f} events/s, ratio {base / ours:.2f}"
    )
    print(f"peak RSS after {n:,} events: {rss_mb:,.0f} MiB")


if __name__ == "__main__":
    main()
