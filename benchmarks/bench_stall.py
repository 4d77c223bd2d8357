"""The group's processing stall per membership change on Kafka, with default group settings and tuned ones.

Run: python benchmarks/bench_stall.py [--scenarios sigkill,sigterm,join] [--window S] [--records N]
                                      [--rate R] [--bootstrap HOST:PORT]

Two worker processes (``group_worker.py``) count the keys of a 4-partition source topic in a table whose
changelog was pre-filled with N records, while a producer sends R events/s. One after another, each
scenario changes the group's membership and watches ``--window`` seconds from that moment:

- ``sigkill``: the second worker is SIGKILLed and started again at once (what a supervisor does);
- ``sigterm``: the second worker is stopped with SIGTERM and started again once it exited;
- ``join``: a third worker joins.

Reported per scenario: the group's stall (the longest time in the window in which no worker processed
anything) and the longest stall of any one partition. Configurations: ``default`` (session_timeout 10 s,
dynamic membership, no standbys) and ``tuned`` (session_timeout 6 s, the broker's minimum; static
membership, one instance id per worker; ``table_standby_replicas=1``). Broker as in bench_kafka.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_kafka import Broker
from group_harness import Worker, create_topics, longest_gap, prefill_changelog, produce_steadily, until

PARTITIONS = 4
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {"session_timeout": 10.0, "standbys": 0, "static": False},
    "tuned": {"session_timeout": 6.0, "standbys": 1, "static": True},
}


def stalls(workers: list[Worker], start: float, end: float) -> tuple[float, float]:
    """The group's longest gap in processing within [start, end], and the longest gap of one partition."""
    rows = [row for worker in workers for row in worker.processed()]
    group = longest_gap((t for _, t in rows), start, end)
    partition = max(longest_gap((t for p, t in rows if p == q), start, end) for q in range(PARTITIONS))
    return group, partition


async def run_config(
    bootstrap: str, workdir: Path, args: argparse.Namespace, name: str
) -> dict[str, tuple[float, float]]:
    """Start a group of two, run the scenarios one after another; per scenario (group, partition) stall."""
    config = CONFIGS[name]
    app_id = f"stall-{name}-{uuid.uuid4().hex[:8]}"
    source, changelog = f"{app_id}-source", f"{app_id}-counts-changelog"
    await create_topics(bootstrap, PARTITIONS, [source], [changelog])
    await prefill_changelog(bootstrap, changelog, PARTITIONS, args.records)

    def worker(label: str) -> Worker:
        options = {
            "partitions": PARTITIONS,
            "standbys": config["standbys"],
            "session_timeout": config["session_timeout"],
        }
        if config["static"]:
            options["instance"] = label
        return Worker(f"{app_id}-{label}", workdir, bootstrap, app_id, **options)

    a, b = worker("a"), worker("b")
    workers = [a, b]
    stop = asyncio.Event()
    producing: asyncio.Task[int] | None = None
    results: dict[str, tuple[float, float]] = {}
    try:
        a.start()
        await until(lambda: a.status().get("consuming", False), "the first worker", 300, a)
        b.start()
        await until(
            lambda: len(a.status().get("owned", [])) == len(b.status().get("owned", [])) == PARTITIONS // 2,
            "two workers splitting the partitions",
            300,
            a,
            b,
        )
        producing = asyncio.get_running_loop().create_task(
            produce_steadily(bootstrap, source, PARTITIONS, args.rate, stop)
        )
        await asyncio.sleep(3.0)
        for scenario in args.scenarios.split(","):
            if scenario == "sigkill":
                began = b.signal(signal.SIGKILL)
                await b.exited()
                b.start()
            elif scenario == "sigterm":
                began = b.signal(signal.SIGTERM)
                await b.exited()
                b.start()
            elif scenario == "join":
                c = worker("c")
                workers.append(c)
                began = time.time()
                c.start()
            else:
                raise SystemExit(f"unknown scenario {scenario!r}; expected sigkill, sigterm or join")
            await asyncio.sleep(began + args.window - time.time())
            results[scenario] = stalls(workers, began, began + args.window)
            print(
                f"  {name:8} {scenario:8} group stall {results[scenario][0]:6.2f} s, "
                f"longest partition stall {results[scenario][1]:6.2f} s"
            )
        return results
    finally:
        stop.set()
        if producing is not None:
            await producing
        for w in workers:
            await w.stop()


async def main_async(args: argparse.Namespace) -> None:
    async with Broker(args.bootstrap or os.environ.get("RXSTREAM_KAFKA_BOOTSTRAP")) as broker:
        with tempfile.TemporaryDirectory(prefix="rxstream-stall-") as tmp:
            results = {}
            for name in CONFIGS:
                results[name] = await run_config(broker.bootstrap, Path(tmp), args, name)
    print(
        f"stall per membership change, {args.rate:g} events/s over {PARTITIONS} partitions, "
        f"{args.records:,} records of table state, {args.window:g} s watched (group / longest partition):"
    )
    for scenario in args.scenarios.split(","):
        cells = ", ".join(
            f"{name} {results[name][scenario][0]:.2f} / {results[name][scenario][1]:.2f} s"
            for name in CONFIGS
        )
        print(f"  {scenario:8} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", default="sigkill,sigterm,join")
    parser.add_argument("--window", type=float, default=25.0, help="seconds watched after each change")
    parser.add_argument("--records", type=int, default=100_000, help="records of table state")
    parser.add_argument("--rate", type=float, default=400.0, help="events/s sent throughout")
    parser.add_argument(
        "--bootstrap", help="host:port of a running broker (default: RXSTREAM_KAFKA_BOOTSTRAP)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
