"""Worker processes of tests/reliability/worker_app.py, and plain Kafka clients to feed and count topics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rxstream.transport.kafka import KafkaTransport

REPO = Path(__file__).resolve().parents[2]
WORKER_APP = "tests.reliability.worker_app:app"


class Worker:
    """One ``rxstream worker`` process of ``target`` (tests/reliability/worker_app.py), logging to a file."""

    def __init__(self, label: str, url: str, log_dir: Path, target: str = WORKER_APP, **env: str) -> None:
        self.label = label
        self.log_path = log_dir / f"{label}.log"
        settings = {f"RXSTREAM_REL_{name.upper()}": value for name, value in env.items()}
        cmd = [sys.executable, "-m", "rxstream.cli", "worker", "-A", target]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--broker", url, "-l", "info"],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), **settings},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def exit_code(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, (
                f"{self.label} still runs after {timeout:g}s:\n{self.log()[-3000:]}"
            )
            await asyncio.sleep(0.1)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        print(f"--- {self.label} (exit {self.proc.returncode}) ---\n{self.log()[-3000:]}")


async def count(url: str, topic: str) -> int:
    transport = KafkaTransport(url)
    await transport.start()
    try:
        return sum((await transport.end_offsets(topic)).values())
    finally:
        await transport.stop()


async def until_count(url: str, topic: str, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await count(url, topic)) < target:
        assert time.monotonic() < deadline, f"{topic}: {seen} of {target} after {timeout:g}s"
        await asyncio.sleep(0.3)


async def send(url: str, topic: str, values: range) -> None:
    transport = KafkaTransport(url)
    await transport.start()
    try:
        await transport.send_many(topic, [(None, str(v).encode(), None, None) for v in values])
    finally:
        await transport.stop()


async def read_rows(url: str, topic: str) -> list[tuple[int, int]]:
    """Every ``[partition, offset]`` record of partition 0 of ``topic``, from the start."""
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]
    from aiokafka import TopicPartition as KafkaTP

    end = await count(url, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=url.removeprefix("kafka://"), enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 20)
    rows: list[tuple[int, int]] = []
    try:
        tp = KafkaTP(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        async with asyncio.timeout(30):
            while len(rows) < end:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    rows.extend(tuple(json.loads(r.value)) for r in records)
    finally:
        await asyncio.wait_for(consumer.stop(), 20)
    return rows
