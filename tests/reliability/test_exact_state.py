"""At-least-once table state that never double-counts: a worker dies between writing its table changes and
committing the events that made them, and its successor's counts equal the truth exactly (those events are
processed again; their first changes are not applied on recovery). On memory:// with a fault plan, and on
the real broker with worker processes SIGKILLed mid-run."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream.events import current_row
from rxstream.tables import Table

from .faults import FaultPlan, FaultyTransport
from .test_faults import EVENTS, KEYS, MAXSIZE, PARTITIONS, World, _fill

MAX_RESTARTS = 10


class StoreWorld(World):
    """The fault-plan world with the table in a given store; keeps every worker's table."""

    def __init__(self, url: str, store: str) -> None:
        super().__init__(url)
        self.store = store
        self.tables: list[Table] = []

    def app(self, plan: FaultPlan) -> tuple[App, Any]:
        app = App(f"faults-{self.s}-main", broker=self.url, commit_interval=0.05, topic_partitions=PARTITIONS)
        self.transport = FaultyTransport(self.url, plan, self.check_commit, default_partitions=PARTITIONS)
        app._transport = self.transport
        source = app.topic("source", partitions=PARTITIONS, maxsize=MAXSIZE)
        out = app.topic("out", partitions=1)
        counts = app.Table("counts", default=int, store=self.store)
        processed = self.processed

        @app.agent(source, sink=[out])
        async def count(stream: rxstream.Stream[Any]) -> AsyncIterator[list[int]]:
            async for key, _ in stream.items():
                row = current_row()
                assert row is not None
                counts[key] += 1
                processed.add((row[1], row[2]))
                if row[2] % 25 == 0:
                    await asyncio.sleep(0.002)  # the work spans several commits
                yield [row[1], row[2]]

        self.tables.append(counts)
        return app, counts


async def _run_until_done(world: StoreWorld, plan: FaultPlan) -> tuple[dict[Any, Any], int]:
    """Run workers (each started again after dying) until every input is committed: the last one's counts
    (read while it runs: a RocksDB table is closed with its app) and how many workers ran."""
    ends = await _fill(world.url)
    for runs in range(1, MAX_RESTARTS + 1):
        app, counts = world.app(plan)
        runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
        async with asyncio.timeout(60):
            while not runner.done():
                if len(world.processed) == EVENTS and world.committed() == ends:
                    break
                await asyncio.sleep(0.02)
        if not runner.done():
            plan.end()
            final = counts.as_dict()
            await app.stop()
            assert await runner == 0
            return final, runs
        assert await runner == 1, "the worker should have died by the plan"
    pytest.fail(f"not done after {MAX_RESTARTS} restarts; injected: {plan.injected}")


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
async def test_counts_are_exact_after_dying_between_changelog_write_and_commit(
    store: str, tmp_path: Path
) -> None:
    if store == "rocksdb":
        pytest.importorskip("rocksdict")
    url = f"memory://exact-{uuid.uuid4().hex[:8]}"
    world = StoreWorld(url, "memory://" if store == "memory" else f"rocksdb://{tmp_path}")
    plan = FaultPlan(kill_commit={2, 3, 5})
    last, runs = await _run_until_done(world, plan)
    truth = Counter(f"k{i % KEYS}" for i in range(EVENTS))
    assert runs >= 3 and len(plan.injected) == runs - 1, plan.injected  # deaths, then one that finishes
    assert last == dict(truth), "the table counts differ from the true counts"
    skipped = sum(t.skipped_records for t in world.tables)
    assert skipped > 0, "each death left changes of uncommitted events, which recovery leaves out"
    print(f"{store}: {runs} runs, {skipped} changelog records of uncommitted events not applied")
