"""Latency of an in-memory channel: from `await channel.send()` until the agent holds the value.

Run: python benchmarks/bench_latency.py [--messages N] [--repeat R]
One message at a time: the sender stamps each value with `time.perf_counter()`, sends it, and waits until
the agent saw it before sending the next, so each figure is one hand-off through an idle app (the
channel's queue and the agent's `async for`, which takes the batch itself). The same is measured for an
`asyncio.Queue` read by a task, in the same run, as the floor of a hand-off between two asyncio tasks.
Percentiles are in microseconds, over every message of R runs (a warm-up run first is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from rxstream import App, Stream


async def through_channel(n: int) -> list[float]:
    """Microseconds from send to the agent, for ``n`` messages sent one at a time."""
    app = App(f"lat-{uuid.uuid4().hex[:6]}", broker=f"memory://lat-{uuid.uuid4().hex}")
    channel = app.channel()
    seen: list[float] = []
    arrived = asyncio.Event()

    @app.agent(channel)
    async def observe(stream: Stream[float]) -> None:
        async for sent in stream:
            seen.append((time.perf_counter() - sent) * 1e6)
            arrived.set()

    async with app:
        for _ in range(n):
            arrived.clear()
            await channel.send(value=time.perf_counter())
            await arrived.wait()
    return seen


async def through_queue(n: int) -> list[float]:
    """The same hand-off through an `asyncio.Queue` read by a task."""
    queue: asyncio.Queue[float] = asyncio.Queue(1000)
    seen: list[float] = []
    arrived = asyncio.Event()

    async def reader() -> None:
        while True:
            sent = await queue.get()
            seen.append((time.perf_counter() - sent) * 1e6)
            arrived.set()

    task = asyncio.get_running_loop().create_task(reader())
    for _ in range(n):
        arrived.clear()
        await queue.put(time.perf_counter())
        await arrived.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    asyncio.run(through_channel(min(n, 1000)))  # a process's first run is slower: warm up
    asyncio.run(through_queue(min(n, 1000)))
    results: dict[str, list[float]] = {"channel": [], "queue": []}
    for i in range(args.repeat):  # alternating, so a noisy moment hits both
        for which in ("channel", "queue") if i % 2 == 0 else ("queue", "channel"):
            fun = through_channel if which == "channel" else through_queue
            results[which].extend(asyncio.run(fun(n)))
    for which, label in (
        ("channel", "channel send -> agent, memory, one at a time"),
        ("queue", "asyncio.Queue put -> task, one at a time"),
    ):
        seen = results[which]
        print(
            f"{label} ({len(seen):,} messages): p50 {percentile(seen, 0.5):.1f} us, "
            f"p99 {percentile(seen, 0.99):.1f} us, max {max(seen):.1f} us"
        )


if __name__ == "__main__":
    main()
