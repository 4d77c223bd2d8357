"""The rxstream command line: listing, custom commands, and a worker that stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import GroupCoordinatorNotAvailableError  # type: ignore[import-untyped,unused-ignore]

from rxstream import App, Stream
from rxstream.cli import JsonFormatter, _parser, _reset, main
from rxstream.transport import TopicPartition, TopicSpec
from rxstream.transport.kafka import KafkaTransport
from rxstream.transport.memory import MemoryBroker
from tests.test_app import read_all

ROOT = Path(__file__).parent.parent
APP = '''
import rxstream

app = rxstream.App("cli-test")
numbers = app.topic("numbers", partitions=2, value_type=int)

@app.agent(numbers, concurrency=2)
async def double(stream):
    """Doubles numbers."""
    async for n in stream:
        yield n * 2

@app.command
async def hello():
    """Says hello."""
    print("hello from", app.id)
'''


@pytest.fixture
def app_module(tmp_path: Path) -> Path:
    (tmp_path / "cliapp.py").write_text(APP)
    return tmp_path


def rxstream(cwd: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rxstream.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_agents_topics_and_custom_commands(app_module: Path) -> None:
    agents = rxstream(app_module, "agents", "-A", "cliapp:app")
    assert agents.returncode == 0, agents.stderr
    assert (
        "cliapp.double" in agents.stdout
        and "concurrency=2" in agents.stdout
        and "Doubles numbers." in agents.stdout
    )
    topics = rxstream(app_module, "topics", "-A", "cliapp:app")
    assert "numbers\tpartitions=2\tvalue_type=int" in topics.stdout
    hello = rxstream(app_module, "hello", "-A", "cliapp:app")
    assert hello.stdout.strip() == "hello from cli-test"


def test_a_bad_app_reference_names_what_was_wrong(app_module: Path) -> None:
    missing = rxstream(app_module, "agents", "-A", "nowhere:app")
    assert missing.returncode == 2
    assert "cannot import module 'nowhere'" in missing.stderr
    not_an_app = rxstream(app_module, "agents", "-A", "cliapp:numbers")
    assert "cliapp.numbers is not an rxstream.App" in not_an_app.stderr


def test_worker_stops_cleanly_on_sigterm(app_module: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "rxstream.cli", "worker", "-A", "cliapp:app", "-l", "info"],
        cwd=app_module,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        lines: list[str] = []
        assert worker.stdout is not None
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            lines.append(line)
            if "started" in line:
                break
        assert any("app cli-test started" in line for line in lines), lines
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0
    assert "app cli-test stopped" in output


# ---------------------------------------------------------------------------------------------------
# operations: version, tables, JSON logs, offset resets

TABLE_APP = """
import rxstream

app = rxstream.App("tables-test")
words = app.topic("words", partitions=3)
counts = app.Table("counts", default=int, partitions=3)
"""


def test_version_and_tables(tmp_path: Path) -> None:
    (tmp_path / "tableapp.py").write_text(TABLE_APP)
    version = rxstream(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("rxstream ")
    tables = rxstream(tmp_path, "tables", "-A", "tableapp:app")
    assert tables.returncode == 0, tables.stderr
    assert tables.stdout.split("\t") == [
        "counts",
        "partitions=3",
        "changelog=tables-test-counts-changelog",
        "store=memory://",
        "local_size=0\n",
    ]


def test_json_log_lines_carry_topic_partition_offset_and_agent(app_module: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "rxstream.cli", "worker", "-A", "cliapp:app", "--log-format", "json"],
        cwd=app_module,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert worker.stdout is not None
        first = json.loads(worker.stdout.readline())
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
    lines = [first, *(json.loads(line) for line in output.splitlines())]
    assert worker.returncode == 0
    assert any(line["message"] == "app cli-test stopped" and line["level"] == "INFO" for line in lines)
    record = logging.LogRecord(
        "rxstream.agents", logging.ERROR, __file__, 1, "agent %s raised %r on %s", None, None
    )
    record.args = ("shop.process", ValueError(3), "orders[2]@41")
    line = json.loads(JsonFormatter().format(record))
    assert (line["agent"], line["topic"], line["partition"], line["offset"]) == (
        "shop.process",
        "orders",
        2,
        41,
    )


RESET_APP = """
import rxstream

app = rxstream.App("resetting")
numbers = app.topic("numbers", partitions=2)
"""


def test_reset_moves_the_group_offsets_of_the_in_process_log_and_refuses_while_a_member_lives() -> None:
    url = f"memory://reset-{os.getpid()}-{time.monotonic_ns()}"
    namespace: dict[str, Any] = {}
    exec(RESET_APP, namespace)
    app: App = namespace["app"]
    app.broker = url
    seen: list[int] = []

    @app.agent(app.topics["numbers"])
    async def take(stream: Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    async def run_and_commit() -> None:
        async with app:
            await app.topics["numbers"].send_many(list(range(10)))
            while len(seen) < 10:
                await asyncio.sleep(0.01)
            await app.commit()

    asyncio.run(run_and_commit())
    group = MemoryBroker.for_url(url).groups["resetting"]
    tp0, tp1 = TopicPartition("numbers", 0), TopicPartition("numbers", 1)
    assert group.committed == {tp0: 5, tp1: 5}

    def reset(*args: str) -> int:
        other = App("resetting", broker=url)  # the command line loads the app afresh
        other.topic("numbers", partitions=2)
        with pytest.raises(SystemExit) as exit:
            main(["reset", "--topic", "numbers", *args], app=other)
        return int(exit.value.code or 0)

    assert reset("--to-offset", "3") == 0 and group.committed == {tp0: 3, tp1: 3}
    retained = {
        tp: MemoryBroker.for_url(url).topics["numbers"].partitions[tp.partition].base
        for tp in group.committed
    }
    assert reset("--to-earliest") == 0 and group.committed == retained
    assert reset("--to-latest") == 0 and group.committed == {tp0: 5, tp1: 5}

    async def reset_while_a_member_lives() -> int:
        member = App("resetting", broker=url)

        async def no_listener(revoked: Any, assigned: Any) -> None:
            return None

        consumer = member.transport.consumer("resetting", ["numbers"], no_listener)
        await consumer.start()
        try:
            other = App("resetting", broker=url)
            other.topic("numbers", partitions=2)
            args = _parser(other).parse_args(["reset", "--topic", "numbers", "--to-earliest"])
            return await _reset(other, args)
        finally:
            await consumer.stop()

    assert asyncio.run(reset_while_a_member_lives()) == 1
    assert group.committed == {tp0: 5, tp1: 5}


async def _kafka_committed(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:  # a fresh broker still creating its offsets topic
        return {}
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


async def test_reset_on_kafka_moves_committed_offsets_and_refuses_while_a_worker_runs(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from tests.test_web import APP, Worker

    suffix = uuid.uuid4().hex[:8]
    app_id, source = f"reset-{suffix}", f"reset-numbers-{suffix}"
    (tmp_path / "webapp.py").write_text(APP)
    env = {"WEB_TEST_APP": app_id, "WEB_TEST_SOURCE": source, "WEB_TEST_SINK": f"reset-out-{suffix}"}
    broker = f"kafka://{kafka_bootstrap}"
    producer = KafkaTransport(broker, connect_timeout=10, default_partitions=2)
    await producer.start()
    try:
        await producer.create_topics([TopicSpec(source, 2)])
        await producer.send_many(source, [(None, str(i).encode(), i % 2, None) for i in range(20)])
    finally:
        await producer.stop()

    def reset(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rxstream.cli", "reset", "-A", "webapp:app", "--broker", broker, *args],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    worker = Worker(tmp_path, broker=broker, **env)
    try:
        deadline = time.monotonic() + 60
        while await _kafka_committed(kafka_bootstrap, app_id) != {0: 10, 1: 10}:
            assert time.monotonic() < deadline, worker.output()
            await asyncio.sleep(0.2)
        refused = await asyncio.to_thread(reset, "--topic", source, "--to-earliest")
        assert refused.returncode == 1 and "live member" in refused.stderr, refused.stderr
    finally:
        assert worker.stop() == 0, worker.output()
    moved = await asyncio.to_thread(reset, "--topic", source, "--to-offset", "4")
    assert moved.returncode == 0, moved.stderr
    assert await _kafka_committed(kafka_bootstrap, app_id) == {0: 4, 1: 4}
    earliest = await asyncio.to_thread(reset, "--topic", source, "--to-earliest")
    assert earliest.returncode == 0, earliest.stderr
    assert await _kafka_committed(kafka_bootstrap, app_id) == {0: 0, 1: 0}
    latest = await asyncio.to_thread(reset, "--topic", source, "--to-latest")
    assert latest.returncode == 0 and f"{source}[1] -> 10" in latest.stdout
    assert await _kafka_committed(kafka_bootstrap, app_id) == {0: 10, 1: 10}


def test_send_file_sends_a_message_per_line_json_or_key_tab_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"memory://send-{os.getpid()}-{time.monotonic_ns()}"
    lines = tmp_path / "lines.txt"
    lines.write_text('{"n": 1}\nk2\t{"n": 2}\n\n3\n')
    app = App("sending", broker=url, topic_partitions=1)
    with pytest.raises(SystemExit) as exit:
        main(["send", "inbox", "--file", str(lines)], app=app)
    assert exit.value.code == 0
    log = MemoryBroker.for_url(url).topics["inbox"].partitions[0]
    assert log.end == 3

    async def read() -> list[Any]:
        reader = App("reading", broker=url)
        return [(m.key, m.value) for m in await read_all(reader, "inbox")]

    assert asyncio.run(read()) == [(None, b'{"n": 1}'), (b"k2", b'{"n": 2}'), (None, b"3")]
    lines.write_text("not json\n")
    with pytest.raises(SystemExit) as exit:
        main(["send", "inbox", "--file", str(lines)], app=app)
    assert exit.value.code == 2 and "line 1 is neither JSON nor key<TAB>value" in capsys.readouterr().err
