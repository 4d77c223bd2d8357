"""The worker's web endpoints, scraped over loopback from real worker processes (memory:// and Kafka)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rxstream.transport.kafka import KafkaTransport

ROOT = Path(__file__).parent.parent
APP = '''
import os
from pathlib import Path

import rxstream

app = rxstream.App(os.environ.get("WEB_TEST_APP", "web-test"), commit_interval=0.2)
numbers = app.topic(os.environ.get("WEB_TEST_SOURCE", "numbers"), partitions=2, value_type=int)
doubled = app.topic(os.environ.get("WEB_TEST_SINK", "doubled"), partitions=2)
counts = app.Table("counts", default=int, partitions=2)


@app.agent(numbers, sink=[doubled])
async def double(stream):
    async for n in stream:
        counts[str(n % 5)] += 1
        yield n * 2


@app.timer(0.05)
async def feed():
    """On memory://, send as many numbers as the file FEED asks for (the test's traffic)."""
    feed = Path("FEED")
    if feed.exists():
        count = int(feed.read_text())
        feed.unlink()
        await numbers.send_many(list(range(count)))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    """``rxstream worker -A webapp:app --web-port N`` in a process of its own."""

    def __init__(self, cwd: Path, *, broker: str | None = None, **env: str) -> None:
        self.cwd = cwd
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["worker", "-A", "webapp:app", "--web-port", str(self.port)]
        if broker is not None:
            args += ["--broker", broker]
        self.log = (cwd / f"worker-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rxstream.cli", *args],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return (self.cwd / f"worker-{self.port}.log").read_text()

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.log.close()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "webapp.py").write_text(APP)
    return tmp_path


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float, worker: Worker) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except aiohttp.ClientConnectionError:
            pass  # the server is not listening yet
        if worker.proc.poll() is not None:
            raise AssertionError(
                f"the worker exited ({worker.proc.returncode}) before {what}:\n{worker.output()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}:\n{worker.output()}")
        await asyncio.sleep(0.05)


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def _consumed(stats: dict[str, Any], topic: str) -> int:
    return sum(p["received"] for p in stats["partitions"] if p["topic"] == topic)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.stop()


async def test_a_memory_worker_serves_counters_that_move_with_its_traffic(
    app_dir: Path, http: aiohttp.ClientSession, workers: list[Worker]
) -> None:
    worker = Worker(app_dir)
    workers.append(worker)

    async def healthy() -> bool:
        return (await _get(http, f"{worker.url}/health"))[0] == 200

    await _until(healthy, "/health 200", 30, worker)
    for count, expected in ((500, 500), (300, 800)):
        (app_dir / "FEED").write_text(str(count))

        async def consumed(expected: int = expected) -> bool:
            status, body = await _get(http, f"{worker.url}/stats")
            stats = json.loads(body)
            return status == 200 and _consumed(stats, "numbers") == expected and stats["agents"]

        await _until(consumed, f"{expected} messages consumed in /stats", 30, worker)
        status, text = await _get(http, f"{worker.url}/metrics")
        assert status == 200
        assert _metric(
            text, "messaging_client_consumed_messages_total", messaging_destination_name="numbers"
        ) == (expected)
        assert _metric(
            text, "messaging_client_consumed_messages_total", messaging_consumer_group_name="web-test"
        )
        assert "# TYPE messaging_process_duration_seconds histogram" in text
        assert "rxstream_consumer_lag{" in text

    async def sent_and_committed() -> bool:
        status, text = await _get(http, f"{worker.url}/metrics")
        return status == 200 and (
            _metric(text, "messaging_client_sent_messages_total", messaging_destination_name="doubled") == 800
            and _metric(text, "rxstream_committed_offset", messaging_destination_name="numbers") == 800
            and _metric(text, "rxstream_consumer_lag", messaging_destination_name="numbers") == 0
            and _metric(text, "rxstream_acknowledged_messages_total") == 800
        )

    await _until(sent_and_committed, "800 sent, committed and acknowledged with no lag", 30, worker)
    status, body = await _get(http, f"{worker.url}/tables/counts/0")
    assert status == 200 and json.loads(body)["value"] == 100 + 60  # n % 5 == 0 in range(500), range(300)
    status, body = await _get(http, f"{worker.url}/tables/nothing/0")
    assert status == 404 and "no table 'nothing'" in json.loads(body)["error"]
    assert worker.stop() == 0


def test_the_web_extra_is_named_when_missing(app_dir: Path) -> None:
    code = "import sys; sys.modules['aiohttp'] = None; import rxstream.web"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=app_dir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "pip install 'rxstream[web]'" in result.stderr


# ---------------------------------------------------------------------------------------------------
# on the real Kafka broker


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[KafkaTransport]:
    transport = KafkaTransport(f"kafka://{kafka_bootstrap}", connect_timeout=10, default_partitions=2)
    await transport.start()
    yield transport
    await asyncio.wait_for(transport.stop(), 20)


async def test_a_kafka_worker_turns_healthy_only_after_recovering_its_table_and_counts_its_traffic(
    kafka_bootstrap: str,
    producer: KafkaTransport,
    app_dir: Path,
    http: aiohttp.ClientSession,
    workers: list[Worker],
) -> None:
    suffix = uuid.uuid4().hex[:8]
    app_id, source = f"web-{suffix}", f"web-numbers-{suffix}"
    changelog = f"{app_id}-counts-changelog"
    from rxstream.transport import TopicSpec

    await producer.create_topics([TopicSpec(changelog, 2, compacting=True), TopicSpec(source, 2)])
    recorded = 20_000  # distinct keys, so compaction keeps them all
    for partition in (0, 1):
        records = [
            (json.dumps(f"old-{partition}-{i}").encode(), b"1", partition, None) for i in range(recorded // 2)
        ]
        await producer.send_many(changelog, records)
    worker = Worker(
        app_dir,
        broker=f"kafka://{kafka_bootstrap}",
        WEB_TEST_APP=app_id,
        WEB_TEST_SOURCE=source,
        WEB_TEST_SINK=f"web-doubled-{suffix}",
    )
    workers.append(worker)
    seen: list[int] = []

    async def healthy() -> bool:
        status, _ = await _get(http, f"{worker.url}/health")
        seen.append(status)
        return status == 200

    await _until(healthy, "/health 200", 60, worker)
    assert 503 in seen, "the worker was never seen starting or recovering"
    status, body = await _get(http, f"{worker.url}/stats")
    recovery = json.loads(body)["recovery"]["counts"]
    assert sum(p["done"] for p in recovery.values()) == recorded
    assert all(p["finished"] and p["done"] == p["total"] for p in recovery.values())
    status, body = await _get(http, f"{worker.url}/tables/counts/old-1-7")
    assert status == 200 and json.loads(body)["value"] == 1

    await producer.send_many(source, [(None, str(i).encode(), i % 2, None) for i in range(400)])

    async def counted() -> bool:
        status, text = await _get(http, f"{worker.url}/metrics")
        return status == 200 and (
            _metric(text, "messaging_client_consumed_messages_total", messaging_destination_name=source)
            == 400
            and _metric(text, "rxstream_committed_offset", messaging_destination_name=source) == 400
            and _metric(text, "rxstream_consumer_lag", messaging_destination_name=source) == 0
        )

    await _until(counted, "400 consumed and committed on Kafka", 60, worker)
    status, text = await _get(http, f"{worker.url}/metrics")
    assert _metric(text, "rxstream_recovery_records", rxstream_table="counts") == recorded
    assert _metric(text, "rxstream_rebalances_total") >= 1
    assert worker.stop() == 0


async def test_health_follows_the_app_and_a_key_of_another_workers_partition_is_a_404_naming_it(
    http: aiohttp.ClientSession,
) -> None:
    from rxstream import App
    from rxstream.transport.partitioner import partition_for
    from rxstream.web import WebServer
    from tests.test_app import memory_url

    url = memory_url()

    def worker() -> App:
        app = App("sharing", broker=url)
        words = app.topic("words", partitions=4)
        app.Table("counts", default=int, partitions=4)

        @app.agent(words)
        async def count(stream: Any) -> None:
            async for _ in stream:
                pass

        return app

    a, b = worker(), worker()
    server = WebServer(a, port=0)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert (await _get(http, f"{base}/health"))[0] == 503
        async with a, b:
            assert (await _get(http, f"{base}/health")) == (200, '{"state": "running"}')
            owned = a.tables["counts"].store.partitions()
            assert 0 < len(owned) < 4
            key = next(k for k in (f"k{i}" for i in range(100)) if partition_for(k, 4) not in owned)
            status, body = await _get(http, f"{base}/tables/counts/{key}")
            error = json.loads(body)
            assert status == 404 and error["partition"] == partition_for(key, 4)
            assert f"belongs to partition {error['partition']}, which another worker owns" in error["error"]
        status, body = await _get(http, f"{base}/health")
        assert (status, json.loads(body)["state"]) == (503, "stopping")
    finally:
        await server.stop()
