"""Leadership on the real Kafka broker: of two worker processes of one group exactly one runs the
``on_leader=True`` timer, and the other takes over when the leader stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rxstream.transport import TopicSpec
from rxstream.transport.kafka import KafkaTransport
from tests.transport.test_kafka_app import REPO, Results, _assignments, admin, producer

__all__ = ["admin", "producer"]  # fixtures used here

LEADER_APP = "tests.transport.kafka_leader_app:app"


class LeaderWorkers:
    """Worker processes of the leader app; whatever still runs at the end is killed and its log printed."""

    def __init__(self, bootstrap: str, log_dir: Path, app_id: str, results: str) -> None:
        self.bootstrap, self.log_dir = bootstrap, log_dir
        self.env = {"RXSTREAM_TEST_APP": app_id, "RXSTREAM_TEST_RESULTS": results}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, label: str) -> None:
        cmd = [sys.executable, "-m", "rxstream.cli", "-A", LEADER_APP, "worker"]  # Faust's order
        cmd += ["--broker", f"kafka://{self.bootstrap}"]
        with open(self.log_dir / f"{label}.log", "ab") as log:
            self.procs[label] = subprocess.Popen(
                cmd,
                cwd=REPO,
                env={**os.environ, **self.env, "RXSTREAM_TEST_WORKER": label},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, label: str, timeout: float = 30.0) -> int:
        proc = self.procs[label]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def close(self) -> None:
        for label, proc in self.procs.items():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            log = (self.log_dir / f"{label}.log").read_text(errors="replace")
            print(f"--- worker {label} (exit {proc.returncode}) ---\n{log[-4000:]}")


@pytest.fixture
def names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {"app": f"leader-{suffix}", "results": f"leader-res-{suffix}"}


@pytest.fixture
def leader_workers(kafka_bootstrap: str, tmp_path: Path, names: dict[str, str]) -> Iterator[LeaderWorkers]:
    pool = LeaderWorkers(kafka_bootstrap, tmp_path, names["app"], names["results"])
    try:
        yield pool
    finally:
        pool.close()


async def test_one_of_two_workers_leads_and_the_other_takes_over_when_it_stops(
    kafka_bootstrap: str,
    admin: object,
    producer: KafkaTransport,
    names: dict[str, str],
    leader_workers: LeaderWorkers,
) -> None:
    await producer.create_topics([TopicSpec(names["results"], 1)])
    async with asyncio.timeout(150), Results(kafka_bootstrap, names["results"]) as results:
        leader_workers.start("a")
        await results.until(lambda rows: any(w == "a" for w, _, _ in rows), "worker a to lead alone", 60)
        leader_workers.start("b")
        deadline = time.monotonic() + 60
        while True:  # both are members and the group settled
            state, sizes = await _assignments(admin, names["app"])
            if state == "Stable" and len(sizes) == 2:
                break
            assert time.monotonic() < deadline, f"group {names['app']} did not settle: {state} {sizes}"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # ticks of a leader that lost the partition mid-rebalance are behind us
        settled = len(await results.until(lambda rows: True, "", 1))
        rows = await results.until(
            lambda rows: len(rows) >= settled + 20, "20 ticks of the settled group", 30
        )
        leaders = {w for w, _, _ in rows[settled:]}
        assert len(leaders) == 1, f"more than one worker led at once: {leaders}"
        [leader] = leaders
        follower = "b" if leader == "a" else "a"
        assert leader_workers.stop(leader) == 0
        await results.until(
            lambda rows: any(w == follower for w, _, _ in rows[settled:]),
            f"worker {follower} to take over",
            60,
        )
