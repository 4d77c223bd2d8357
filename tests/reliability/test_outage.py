"""A broker outage, end to end with worker processes: within broker_availability_timeout the worker waits
and processes again; past it, the worker exits non-zero; SIGTERM meanwhile exits without a traceback; and
the log holds a few summarised lines, not a flood."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from rxstream.transport import TopicSpec
from rxstream.transport.kafka import KafkaTransport
from tests.kafka_broker import RestartableBroker

REPO = Path(__file__).resolve().parents[2]
OUTAGE = 8.0  # seconds the broker is away: past the hasty worker's timeout, within the patient one's
HASTY_TIMEOUT = 3.0


class Worker:
    """One ``rxstream worker`` process of tests/reliability/worker_app.py, logging to a file."""

    def __init__(self, label: str, url: str, log_dir: Path, **env: str) -> None:
        self.label = label
        self.log_path = log_dir / f"{label}.log"
        settings = {f"RXSTREAM_REL_{name.upper()}": value for name, value in env.items()}
        cmd = [sys.executable, "-m", "rxstream.cli", "worker", "-A", "tests.reliability.worker_app:app"]
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


async def _count(url: str, topic: str) -> int:
    transport = KafkaTransport(url)
    await transport.start()
    try:
        return sum((await transport.end_offsets(topic)).values())
    finally:
        await transport.stop()


async def _until_count(url: str, topic: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await _count(url, topic)) < count:
        assert time.monotonic() < deadline, f"{topic}: {seen} of {count} after {timeout:g}s"
        await asyncio.sleep(0.3)


async def _send(url: str, topic: str, values: range) -> None:
    transport = KafkaTransport(url)
    await transport.start()
    try:
        await transport.send_many(topic, [(None, str(v).encode(), None, None) for v in values])
    finally:
        await transport.stop()


async def test_an_outage_is_waited_out_within_the_timeout_and_ends_the_worker_past_it(
    restartable_broker: RestartableBroker, tmp_path: Path
) -> None:
    broker = restartable_broker
    started = await asyncio.to_thread(broker.start)
    url = f"kafka://{broker.bootstrap}"
    s = uuid.uuid4().hex[:8]
    source = f"rel-src-{s}"
    labels = ("patient", "hasty", "terminated")
    results = {label: f"rel-{label}-{s}" for label in labels}
    admin = KafkaTransport(url)
    await admin.start()
    await admin.create_topics([TopicSpec(source, 2), *(TopicSpec(name, 1) for name in results.values())])
    await admin.stop()
    timeouts = {"patient": "60", "hasty": str(HASTY_TIMEOUT), "terminated": "60"}
    workers = {
        label: Worker(
            label,
            url,
            tmp_path,
            app=f"rel-{label}-{s}",
            source=source,
            results=results[label],
            availability=timeouts[label],
        )
        for label in labels
    }
    try:
        await _send(url, source, range(10))
        for label in labels:
            await _until_count(url, results[label], 10, 60)
        await asyncio.to_thread(broker.stop)
        away = time.monotonic()
        await asyncio.sleep(1)
        workers["terminated"].proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(OUTAGE - (time.monotonic() - away))
        restarted = await asyncio.to_thread(broker.start)
        outage = time.monotonic() - away
        hasty = await workers["hasty"].exit_code(40)
        terminated = await workers["terminated"].exit_code(40)
        await _send(url, source, range(10, 20))
        await _until_count(url, results["patient"], 20, 60)
        assert workers["patient"].proc.poll() is None
        workers["patient"].proc.send_signal(signal.SIGTERM)
        patient = await workers["patient"].exit_code(30)
    finally:
        for worker in workers.values():
            worker.close()
    logs = {label: worker.log() for label, worker in workers.items()}
    flood = sum(" aiokafka" in line for line in logs["patient"].splitlines())
    print(
        f"broker start {started:.1f}s, away {outage:.1f}s (restart {restarted:.1f}s); exits: hasty {hasty}, "
        f"terminated {terminated}, patient {patient}; aiokafka lines of the patient worker: {flood}"
    )
    assert hasty == 1 and "broker_availability_timeout" in logs["hasty"]
    assert terminated != 0 or "stopped" in logs["terminated"]
    assert patient == 0
    for label, text in logs.items():
        assert "Traceback" not in text, label
    assert flood < 40
