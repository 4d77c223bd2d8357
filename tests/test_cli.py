"""The rxstream command line: listing, custom commands, and a worker that stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
