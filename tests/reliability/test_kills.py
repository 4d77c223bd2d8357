"""Worker processes SIGKILLed at random points, then SIGTERMed, on the real broker: afterwards every input
was processed at least once, and the duplicates are counted. ``RXSTREAM_RELIABILITY_SCALE`` adds rounds."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from collections import Counter
from pathlib import Path

from rxstream.transport import TopicSpec
from rxstream.transport.kafka import KafkaTransport

from .workers import Worker, read_rows, send

SCALE = max(1, int(os.environ.get("RXSTREAM_RELIABILITY_SCALE", "1")))
ROUNDS = 3 if SCALE == 1 else 10
WORKERS = 3
PARTITIONS = 6
PER_ROUND = 600


async def test_sigkilled_workers_lose_nothing_and_their_duplicates_are_counted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    url = f"kafka://{kafka_bootstrap}"
    s = uuid.uuid4().hex[:8]
    env = {
        "app": f"kills-{s}",
        "source": f"kills-src-{s}",
        "results": f"kills-res-{s}",
        "partitions": str(PARTITIONS),
        "delay": "0.002",
    }
    admin = KafkaTransport(url)
    await admin.start()
    await admin.create_topics([TopicSpec(env["source"], PARTITIONS), TopicSpec(env["results"], 1)])
    ends = {}
    workers: dict[str, Worker] = {}
    spawned = 0

    def start(label: str) -> None:
        nonlocal spawned
        spawned += 1
        workers[label] = Worker(f"{label}-{spawned}", url, tmp_path, **env)

    chance = random.Random(s)
    try:
        for n in range(WORKERS):
            start(f"w{n}")
        for _ in range(ROUNDS):
            await send(url, env["source"], range(PER_ROUND))
            await asyncio.sleep(chance.uniform(0.5, 2.5))
            victim = chance.choice(sorted(workers))
            workers[victim].proc.send_signal(signal.SIGKILL)
            await workers[victim].exit_code(10)
            workers[victim].close()
            start(victim)
        ends = await admin.end_offsets(env["source"])
        expected = {(tp.partition, o) for tp, end in ends.items() for o in range(end)}
        async with asyncio.timeout(60):  # the killed members leave when their sessions (10 s) expire
            while not expected <= set(await read_rows(url, env["results"])):
                await asyncio.sleep(1)
        codes = []
        for worker in workers.values():
            worker.proc.send_signal(signal.SIGTERM)
        for worker in workers.values():
            codes.append(await worker.exit_code(40))
    finally:
        await admin.stop()
        for worker in workers.values():
            worker.close()
    rows = await read_rows(url, env["results"])
    seen = Counter(rows)
    duplicates = sum(n - 1 for n in seen.values())
    print(
        f"{ROUNDS} kill rounds, {len(expected)} inputs, {duplicates} processed twice or more, exits {codes}"
    )
    assert set(seen) == expected  # every input at least once, nothing that was not an input
    assert codes == [0] * WORKERS
