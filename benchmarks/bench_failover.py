"""Fail-over time on Kafka: from a worker's SIGKILL to the survivor processing that worker's partition again,
with a large table, without and with standby replicas.

Run: python benchmarks/bench_failover.py [--records N] [--session-timeout S] [--rate R] [--bootstrap H:P]

Two worker processes (``group_worker.py``) share a 2-partition source topic and a table whose changelog was
pre-filled with N records (half per partition). Once both run (and, with ``table_standby_replicas=1``, each
one's standby caught up with the other's partition), a producer sends R events/s to both partitions and
the second worker is SIGKILLed. The figure is the time from the kill to the survivor's first processed
event of the victim's partition: the broker's session timeout (it notices the dead member), the rebalance,
and the table recovery of that partition (the whole changelog without standbys, the tail with them).
Broker as in bench_kafka.py (``--bootstrap``, ``RXSTREAM_KAFKA_BOOTSTRAP``, else a private one).
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
from group_harness import Worker, create_topics, prefill_changelog, produce_steadily, until

PARTITIONS = 2


async def failover(bootstrap: str, workdir: Path, args: argparse.Namespace, standbys: int) -> dict[str, Any]:
    """One run: prefill, two workers, SIGKILL one; seconds until its partition is processed again."""
    app_id = f"failover-{uuid.uuid4().hex[:8]}"
    source, changelog = f"{app_id}-source", f"{app_id}-counts-changelog"
    await create_topics(bootstrap, PARTITIONS, [source], [changelog])
    began = time.monotonic()
    await prefill_changelog(bootstrap, changelog, PARTITIONS, args.records)
    print(f"  changelog pre-filled with {args.records:,} records in {time.monotonic() - began:.1f} s")
    options = {"partitions": PARTITIONS, "standbys": standbys, "session_timeout": args.session_timeout}
    survivor = Worker(f"{app_id}-a", workdir, bootstrap, app_id, **options)
    victim = Worker(f"{app_id}-b", workdir, bootstrap, app_id, **options)
    stop = asyncio.Event()
    producing: asyncio.Task[int] | None = None
    try:
        survivor.start()
        await until(
            lambda: survivor.status().get("consuming", False), "the first worker to start", 300, survivor
        )
        victim.start()
        await until(
            lambda: len(survivor.status().get("owned", [])) == len(victim.status().get("owned", [])) == 1,
            "the two workers to split the partitions",
            300,
            survivor,
            victim,
        )
        moved = victim.status()["owned"][0]
        if standbys:
            needed = (args.records - moved + PARTITIONS - 1) // PARTITIONS

            def caught_up() -> bool:
                return survivor.status().get("standby", {}).get(str(moved), 0) >= needed

            await until(caught_up, "the survivor's standby to catch up", 300, survivor, victim)
        producing = asyncio.get_running_loop().create_task(
            produce_steadily(bootstrap, source, PARTITIONS, args.rate, stop)
        )
        await asyncio.sleep(2.0)
        killed = victim.signal(signal.SIGKILL)
        await victim.exited()

        def resumed() -> float | None:
            times = [t for p, t in survivor.processed() if p == moved and t > killed]
            return min(times) if times else None

        await until(
            lambda: resumed() is not None, "the survivor to process the victim's partition", 300, survivor
        )
        took = (resumed() or 0.0) - killed
        await asyncio.sleep(0.3)  # the status file catches up with the recovery
        last = survivor.status().get("last_recovery") or [0, 0.0]
        return {"failover": took, "replayed": last[0], "recovery": last[1]}
    finally:
        stop.set()
        if producing is not None:
            await producing
        await survivor.stop()
        await victim.stop()


async def main_async(args: argparse.Namespace) -> None:
    async with Broker(args.bootstrap or os.environ.get("RXSTREAM_KAFKA_BOOTSTRAP")) as broker:
        with tempfile.TemporaryDirectory(prefix="rxstream-failover-") as tmp:
            results = {}
            for standbys in (0, 1):
                print(f"table_standby_replicas={standbys}:")
                results[standbys] = await failover(broker.bootstrap, Path(tmp), args, standbys)
        print(
            f"SIGKILL -> survivor processing the victim's partition again, {args.records:,} records of table "
            f"state ({args.records // PARTITIONS:,} in the moved partition), session_timeout "
            f"{args.session_timeout:g} s:"
        )
        for standbys, r in results.items():
            print(
                f"  table_standby_replicas={standbys}: {r['failover']:.2f} s "
                f"(recovery replayed {r['replayed']:,} records in {r['recovery']:.2f} s)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="records of table state")
    parser.add_argument(
        "--session-timeout", type=float, default=10.0, help="the App's session_timeout (Kafka's minimum: 6)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="events/s sent during the kill")
    parser.add_argument(
        "--bootstrap", help="host:port of a running broker (default: RXSTREAM_KAFKA_BOOTSTRAP)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
