"""A worker process of the rebalance benchmarks: counts keys in a table and records when it processed what.

Run by bench_failover.py and bench_stall.py as ``python benchmarks/group_worker.py --bootstrap ... --app-id
... --out FILE``. Every 0.1 s it appends ``partition time`` lines (one per processed event, wall-clock
seconds) to ``FILE`` and rewrites ``FILE.status`` as JSON: whether it consumes, the table partitions it
owns, its standby partitions with their changelog offsets, and its last recovery. SIGTERM stops it
cleanly (App.run); SIGKILL is what the benchmarks use to crash it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import rxstream
from rxstream import App


def build(args: argparse.Namespace) -> App:
    """The benchmark's app: one agent counting source keys in a table, settings from the command line."""
    app = App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        commit_interval=0.5,
        topic_partitions=args.partitions,
        session_timeout=args.session_timeout,
        heartbeat_interval=min(1.0, args.session_timeout / 3),
        group_instance_id=args.instance or None,
        table_standby_replicas=args.standbys,
    )
    source = app.topic(f"{args.app_id}-source", partitions=args.partitions, key_serializer="json")
    counts = app.Table("counts", default=int, partitions=args.partitions)
    processed: list[tuple[int, float]] = []
    out = Path(args.out)
    status = Path(f"{args.out}.status")

    @app.agent(source)
    async def count(stream: rxstream.Stream[Any]) -> None:
        async for event in stream.events():
            counts[event.key] += 1
            assert event.message is not None
            processed.append((event.message.partition, time.time()))

    @app.timer(0.1)
    def record() -> None:
        if processed:
            lines = "".join(f"{p} {t:.4f}\n" for p, t in processed)
            processed.clear()
            with out.open("a") as file:
                file.write(lines)
        standby = counts.standby
        last = counts.last_recovery
        state = {
            "consuming": app.consuming,
            "owned": sorted(counts.store.partitions()),
            "standby": {str(p): standby.offsets.get(p, 0) for p in standby.partitions} if standby else {},
            "recovered": counts.recovered_records,
            "last_recovery": [last.records, last.seconds] if last is not None else None,
            "pid": os.getpid(),
        }
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(status)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--standbys", type=int, default=0)
    parser.add_argument("--instance", default="")
    parser.add_argument("--session-timeout", type=float, default=10.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    raise SystemExit(asyncio.run(build(args).run()))


if __name__ == "__main__":
    main()
