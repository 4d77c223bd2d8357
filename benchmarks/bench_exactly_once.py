"""Exactly-once throughput on Kafka as a ratio of at-least-once: same app, same run, same broker.

Run: python benchmarks/bench_exactly_once.py [--events N] [--repeat R] [--commit-interval S] [--bootstrap H:P]

Broker: ``--bootstrap``, else ``RXSTREAM_KAFKA_BOOTSTRAP``, else a private single-node broker (as
``bench_kafka.py`` starts one). Each round pre-fills a fresh 4-partition topic with N small JSON values and
runs one App per guarantee, alternating: an agent maps each value to a sink topic and counts it in a table
(100 keys), so every event makes one sink record and one changelog record. The clock runs from the
agent's first event until every input is committed (the last commit is asked for once the agent saw
the N-th event). Reported per guarantee: events/s, and the time spent inside commits (flushing,
transactions, offsets), which runs in a task of its own, concurrently with fetching and processing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from bench_kafka import PARTITIONS, Broker, _prefill, _topics, transform

from rxstream import App, Stream

GUARANTEES = ("at_least_once", "exactly_once")


async def run(bootstrap: str, n: int, guarantee: str, commit_interval: float) -> tuple[float, float, int]:
    """(seconds from the first event until all N are committed, seconds spent committing, commits)."""
    s = uuid.uuid4().hex[:8]
    source, sink = f"eos-bench-src-{s}", f"eos-bench-sink-{s}"
    await _topics(bootstrap, source, sink)
    await _prefill(bootstrap, source, n)
    app = App(
        f"eos-bench-{s}",
        broker=f"kafka://{bootstrap}",
        topic_partitions=PARTITIONS,
        commit_interval=commit_interval,
        processing_guarantee=guarantee,
    )
    counts = app.Table("counts", default=int, partitions=PARTITIONS)
    first: list[float] = []
    seen = [0]
    all_seen = asyncio.Event()

    @app.agent(app.topic(source), sink=[app.topic(sink)])
    async def double(stream: Stream[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async for order in stream:
            if not first:
                first.append(time.perf_counter())
            counts[order["id"][-2:]] += 1
            seen[0] += 1
            if seen[0] == n:
                all_seen.set()
            yield transform(order)

    committing = [0.0, 0]
    async with app:
        conductor = app._main_conductor()
        commit = conductor.commit

        async def timed(only: Any = None) -> dict[Any, int]:
            began = time.perf_counter()
            try:
                return await commit(only)
            finally:
                committing[0] += time.perf_counter() - began
                committing[1] += 1

        conductor.commit = timed  # type: ignore[method-assign]
        await asyncio.wait_for(all_seen.wait(), 600)
        while sum(conductor.committable().values()) < n:  # the last events are acknowledged
            await asyncio.sleep(0.001)
        await conductor.commit()  # what a commit under way did not cover yet
        done = time.perf_counter()
    return done - first[0], committing[0], int(committing[1])


async def main_async(args: argparse.Namespace) -> None:
    async with Broker(args.bootstrap or os.environ.get("RXSTREAM_KAFKA_BOOTSTRAP")) as broker:
        results: dict[str, list[tuple[float, float, int]]] = {g: [] for g in GUARANTEES}
        await run(broker.bootstrap, min(args.events, 2000), "exactly_once", args.commit_interval)  # warm-up
        for _ in range(args.repeat):
            for guarantee in GUARANTEES:
                results[guarantee].append(
                    await run(broker.bootstrap, args.events, guarantee, args.commit_interval)
                )
        rates: dict[str, float] = {}
        for guarantee, runs in results.items():
            took = statistics.median(r[0] for r in runs)
            rates[guarantee] = args.events / took
            committing = statistics.median(r[1] for r in runs)
            commits = statistics.median(r[2] for r in runs)
            print(
                f"{guarantee:>13}: {rates[guarantee]:9,.0f} events/s ({args.events:,} events in "
                f"{took:.2f} s; {commits:.0f} commits took {committing:.2f} s, concurrently with processing)"
            )
        ratios = [a[0] / e[0] for a, e in zip(results["at_least_once"], results["exactly_once"], strict=True)]
        print(
            f"exactly_once / at_least_once throughput: {statistics.median(ratios):.2f} "
            f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}; commit_interval {args.commit_interval:g} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--commit-interval", type=float, default=0.5)
    parser.add_argument("--bootstrap", default=None, help="host:port of a running broker")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
