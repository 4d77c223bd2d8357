"""An agent's concurrency: a burst already in its topic keeps every instance busy, commits stay in order."""

from __future__ import annotations

import asyncio
import uuid

import rxstream
from rxstream import App


async def test_a_burst_keeps_every_instance_busy_and_commits_wait_for_the_first_job() -> None:
    app = App("burst", broker=f"memory://burst-{uuid.uuid4().hex[:8]}")
    jobs = app.topic("jobs", value_type=int, partitions=1)
    busy: set[int] = set()
    done: list[int] = []
    all_busy = asyncio.Event()
    first_may_finish = asyncio.Event()

    @app.agent(jobs, concurrency=10)
    async def work(stream: rxstream.Stream[int]) -> None:
        async for job in stream:
            busy.add(job)
            if len(busy) == 10:
                all_busy.set()
            await all_busy.wait()
            if job == 0:
                await first_may_finish.wait()
            busy.discard(job)
            done.append(job)

    await jobs.send_many(range(60))  # in the topic before any instance reads
    async with app:
        await asyncio.wait_for(all_busy.wait(), 5)  # one instance holding the whole batch never gets here
        async with asyncio.timeout(5):
            while len(done) < 54:  # all but the slice of jobs 0-5, which waits for job 0
                await asyncio.sleep(0.005)
        tracker = jobs.subscription().tracker("jobs", 0)
        assert tracker.committable == 0  # job 0 is unfinished: no commit passes it
        first_may_finish.set()
        async with asyncio.timeout(5):
            while tracker.committable < 60:
                await asyncio.sleep(0.005)
    assert sorted(done) == list(range(60))
