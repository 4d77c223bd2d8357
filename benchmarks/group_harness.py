"""Worker processes of one consumer group for the rebalance benchmarks, a steady producer, and gap math.

Each `Worker` runs ``benchmarks/group_worker.py`` in a process of its own; what it processed (partition,
wall-clock time) and its status are read back from the files it writes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from rxstream.codecs import encode_value
from rxstream.transport.kafka_settings import PRODUCER_DEFAULTS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class Worker:
    """One worker process of the group (``group_worker.py``), started, signalled and read from outside."""

    def __init__(self, name: str, workdir: Path, bootstrap: str, app_id: str, **options: Any) -> None:
        self.name = name
        self.out = workdir / f"{name}.out"
        self.out.unlink(missing_ok=True)
        self.args = ["--bootstrap", bootstrap, "--app-id", app_id, "--out", str(self.out)]
        for option, value in options.items():
            self.args += [f"--{option.replace('_', '-')}", str(value)]
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (appending to what an earlier run of this worker processed)."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "group_worker.py"), *self.args], env=env, stdout=log, stderr=log
            )

    def signal(self, sig: signal.Signals) -> float:
        """Send ``sig``; returns when (wall clock)."""
        assert self.proc is not None
        now = time.time()
        self.proc.send_signal(sig)
        return now

    async def exited(self, timeout: float = 60.0) -> int:
        """Wait for the process to end; its exit code."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit(f"worker {self.name} did not exit within {timeout:g} s; see {self.log}")
            await asyncio.sleep(0.05)
        return code

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it hangs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            await self.exited()

    def status(self) -> dict[str, Any]:
        """What the worker last wrote about itself ({} before its first write)."""
        try:
            return dict(json.loads(Path(f"{self.out}.status").read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def processed(self) -> list[tuple[int, float]]:
        """(partition, time) of every event it processed so far."""
        if not self.out.exists():
            return []
        rows = []
        for line in self.out.read_text().splitlines():
            p, t = line.split()
            rows.append((int(p), float(t)))
        return rows


async def until(check: Callable[[], bool], what: str, timeout: float, *workers: Worker) -> None:
    """Wait until ``check()`` holds; exit naming ``what`` after ``timeout`` s or when a worker died."""
    deadline = time.monotonic() + timeout
    while not check():
        for worker in workers:
            if worker.proc is not None and worker.proc.poll() is not None:
                raise SystemExit(f"worker {worker.name} exited waiting for {what}; see {worker.log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


async def create_topics(
    bootstrap: str, partitions: int, names: Iterable[str], compacted: Iterable[str]
) -> None:
    """Create the source topics and the (compacted) changelog before any worker starts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [NewTopic(n, partitions, 1) for n in names]
        topics += [NewTopic(n, partitions, 1, topic_configs={"cleanup.policy": "compact"}) for n in compacted]
        await admin.create_topics(topics)
        names = [t.name for t in topics]
        for _ in range(100):  # until every partition has a leader
            described = await admin.describe_topics(names)
            if all(p["leader"] >= 0 for t in described for p in t["partitions"]) and all(
                len(t["partitions"]) == partitions for t in described
            ):
                return
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def prefill_changelog(bootstrap: str, topic: str, partitions: int, records: int) -> None:
    """``records`` table entries (distinct keys, JSON as tables write them) spread over the partitions."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_DEFAULTS)
    await producer.start()
    try:
        futures = []
        for partition in range(partitions):
            batch = producer.create_batch()
            for i in range(partition, records, partitions):
                key, value = encode_value(f"state-{i}", "json"), encode_value(i, "json")
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_steadily(
    bootstrap: str, topic: str, partitions: int, rate: float, stop: asyncio.Event
) -> int:
    """Send ``rate`` keyed events per second round-robin over the partitions until ``stop``; how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    sent = 0
    began = time.monotonic()
    try:
        while not stop.is_set():
            due = int((time.monotonic() - began) * rate)
            for i in range(sent, due):
                key = encode_value(f"k{i % 1000}", "json")
                await producer.send(topic, value=encode_value(i, "json"), key=key, partition=i % partitions)
            sent = max(sent, due)
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def longest_gap(times: Iterable[float], start: float, end: float) -> float:
    """The longest stretch of ``[start, end]`` in which nothing was processed."""
    edges = [start, *sorted(t for t in times if start < t < end), end]
    return max(b - a for a, b in itertools.pairwise(edges))
