"""Pytest plugin: one real Apache Kafka broker (KRaft, single node, 127.0.0.1) per test session.

Register it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.kafka_broker"]``
(or ``-p tests.kafka_broker``).

Fixtures:

* ``kafka_bootstrap`` (session): ``"127.0.0.1:PORT"`` of a broker started from the jars that
  ``tests/kafka/install.sh`` downloads from Maven Central (``tests/kafka/broker.sh`` runs it).
  Stopped (SIGTERM, then SIGKILL) and its data removed at the end of the session.
* ``kafka_topic_name`` (function): a fresh topic name for one test.
* ``restartable_broker`` (function): a `RestartableBroker` of the test's own, to stop and start again
  (an outage) on the same ports and data; started by the test, stopped at its end.

If java or Maven is missing, or the broker cannot be installed or started, the tests that use the broker
are skipped with the reason; with ``RXSTREAM_REQUIRE_KAFKA=1`` (what CI sets) they fail instead, with the
tail of the broker log in the message.

Environment:

* ``RXSTREAM_REQUIRE_KAFKA=1``: turn "broker unavailable" skips into failures.
* ``RXSTREAM_KAFKA_BOOTSTRAP=host:port``: use an already running broker instead of starting one.
* ``RXSTREAM_KAFKA_CACHE``: where install.sh keeps the jars (default ``~/.cache/rxstream-kafka``).
* ``RXSTREAM_KAFKA_INSTALL_TIMEOUT`` (600 s), ``RXSTREAM_KAFKA_READY_TIMEOUT`` (90 s).

Tests that use ``kafka_bootstrap`` or ``restartable_broker`` get the ``kafka`` marker automatically, so
``-m "not kafka"`` deselects them. The jars are installed during collection when a selected test needs the
broker, so a cold download does not count against the first test's pytest-timeout budget.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
INSTALL_SH = KAFKA_DIR / "install.sh"
BROKER_SH = KAFKA_DIR / "broker.sh"

FIXTURE_NAME = "kafka_bootstrap"
BROKER_FIXTURES = (FIXTURE_NAME, "restartable_broker")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


INSTALL_TIMEOUT = _env_float("RXSTREAM_KAFKA_INSTALL_TIMEOUT", 600.0)
READY_TIMEOUT = _env_float("RXSTREAM_KAFKA_READY_TIMEOUT", 90.0)
STOP_TIMEOUT = 20.0
START_ATTEMPTS = 2  # a second try, with new ports, only if the first broker dies (e.g. a port was taken)


class BrokerUnavailable(Exception):
    """The broker could not be installed or started; the message says why."""


class BrokerExited(BrokerUnavailable):
    """The broker process died during startup (worth one more try with other ports)."""


def _require_kafka() -> bool:
    return os.environ.get("RXSTREAM_REQUIRE_KAFKA", "") not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    if _require_kafka():
        pytest.fail(
            f"Kafka broker required (RXSTREAM_REQUIRE_KAFKA=1) but unavailable: {reason}", pytrace=False
        )
    pytest.skip(f"Kafka broker unavailable: {reason}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _run_bounded(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run cmd in its own process group; on timeout kill the whole group (mvn/java children too)."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        raise BrokerUnavailable(
            f"{' '.join(cmd)} timed out after {timeout:.0f}s\n{(err or '')[-2000:]}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# ----------------------------------------------------------------------------------------------------
# install (memoised: done once per process, during collection when possible)

_install_result: str | BrokerUnavailable | None = None


def _java_available() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK):
        return True
    return shutil.which("java") is not None


def _ensure_installed() -> str:
    """Run install.sh once; return the cache dir or raise BrokerUnavailable."""
    global _install_result
    if _install_result is None:
        try:
            _install_result = _install()
        except BrokerUnavailable as exc:
            _install_result = exc
    if isinstance(_install_result, BrokerUnavailable):
        raise _install_result
    return _install_result


def _install() -> str:
    if not _java_available():
        raise BrokerUnavailable("java not found (Java 17+ is needed; set JAVA_HOME or put java on PATH)")
    if shutil.which("bash") is None:
        raise BrokerUnavailable("bash not found")
    started = time.monotonic()
    result = _run_bounded(["bash", str(INSTALL_SH)], timeout=INSTALL_TIMEOUT)
    if result.returncode != 0:
        raise BrokerUnavailable(
            f"tests/kafka/install.sh failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise BrokerUnavailable("tests/kafka/install.sh printed no cache dir")
    elapsed = time.monotonic() - started
    if elapsed > 5:
        print(f"\n[kafka_broker] installed Kafka jars in {elapsed:.1f}s")
    return lines[-1]


# ----------------------------------------------------------------------------------------------------
# start / wait / stop


def _free_ports(count: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie counts as gone
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


async def _probe_async(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
    finally:
        await admin.close()


def _probe(bootstrap: str) -> None:
    """List topics with aiokafka in a fresh event loop on its own thread (safe under a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _probe_async(bootstrap)).result(timeout=30)


def _wait_ready(bootstrap: str, port: int, pid: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if pid is not None and not _pid_alive(pid):
            raise BrokerExited(f"broker process {pid} exited during startup")
        if _port_open(port):
            try:
                _probe(bootstrap)
                return
            except Exception as exc:  # not ready yet
                last_error = exc
        time.sleep(0.25)
    raise BrokerUnavailable(
        f"broker at {bootstrap} not ready after {timeout:.0f}s (last error: {last_error!r})"
    )


def _stop(pid: int) -> None:
    env = dict(os.environ, RXSTREAM_KAFKA_STOP_TIMEOUT=str(int(STOP_TIMEOUT)))
    try:
        _run_bounded(["bash", str(BROKER_SH), "stop", str(pid)], timeout=STOP_TIMEOUT + 15, env=env)
    except BrokerUnavailable:
        pass
    if _pid_alive(pid):  # broker.sh could not stop it: last resort
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _start_once(data_dir: Path) -> tuple[str, int]:
    port, cport = _free_ports(2)
    env = dict(os.environ, RXSTREAM_KAFKA_WATCH_PID=str(os.getpid()))
    result = _run_bounded(
        ["bash", str(BROKER_SH), "start", str(port), str(cport), str(data_dir)], timeout=120, env=env
    )
    if result.returncode != 0:
        raise BrokerUnavailable(
            f"tests/kafka/broker.sh start failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    try:
        pid = int(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BrokerUnavailable(f"tests/kafka/broker.sh start printed no PID: {result.stdout!r}") from None
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_ready(bootstrap, port, pid, READY_TIMEOUT)
    except BaseException:
        _stop(pid)
        raise
    return bootstrap, pid


def _log_tails(data_dir: Path) -> str:
    parts = []
    for name in ("format.log", "broker.log"):
        tail = _tail(data_dir / name)
        if tail:
            parts.append(f"--- tail of {name} ---\n{tail}")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------
# pytest hooks and fixtures


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_broker = False
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in BROKER_FIXTURES):
            item.add_marker(pytest.mark.kafka)
            needs_broker = True
    if needs_broker and not os.environ.get("RXSTREAM_KAFKA_BOOTSTRAP"):
        try:  # download now, outside any test's timeout; errors are reported by the fixture
            _ensure_installed()
        except BrokerUnavailable:
            pass


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``"127.0.0.1:PORT"`` of a real Kafka broker that lives for the whole test session."""
    external = os.environ.get("RXSTREAM_KAFKA_BOOTSTRAP")
    if external:
        port_s = external.rpartition(":")[2]
        try:
            _wait_ready(external, int(port_s), None, READY_TIMEOUT)
        except (BrokerUnavailable, ValueError) as exc:
            _unavailable(f"RXSTREAM_KAFKA_BOOTSTRAP={external}: {exc}")
        yield external
        return

    try:
        _ensure_installed()
    except BrokerUnavailable as exc:
        _unavailable(str(exc))

    data_dir = Path(tempfile.mkdtemp(prefix="rxstream-kafka-"))
    bootstrap: str | None = None
    pid: int | None = None
    errors: list[str] = []
    try:
        for attempt in range(START_ATTEMPTS):
            attempt_dir = data_dir / f"run{attempt}"
            started = time.monotonic()
            try:
                bootstrap, pid = _start_once(attempt_dir)
            except BrokerUnavailable as exc:
                errors.append(f"attempt {attempt + 1}: {exc}\n{_log_tails(attempt_dir)}")
                if isinstance(exc, BrokerExited):
                    continue
                break
            print(
                f"\n[kafka_broker] broker {bootstrap} (pid {pid}) ready in {time.monotonic() - started:.1f}s"
            )
            break
        if bootstrap is None or pid is None:
            _unavailable("could not start the broker\n" + "\n".join(errors))
        yield bootstrap
    finally:
        if pid is not None:
            _stop(pid)
        shutil.rmtree(data_dir, ignore_errors=True)


_UNSAFE_TOPIC_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@pytest.fixture
def kafka_topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses: ``t-<test name>-<uuid>``."""
    base = _UNSAFE_TOPIC_CHARS.sub("-", request.node.name).strip("-.")[:60] or "topic"
    return f"t-{base}-{uuid.uuid4().hex[:12]}"


class RestartableBroker:
    """A broker of one test (broker.sh on free ports) that the test stops and starts again on its data."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.port, self.cport = _free_ports(2)
        self.pid: int | None = None

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"``, the same across restarts."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start (again) and wait until it answers; returns the seconds it took."""
        started = time.monotonic()
        env = dict(os.environ, RXSTREAM_KAFKA_WATCH_PID=str(os.getpid()))
        cmd = ["bash", str(BROKER_SH), "start", str(self.port), str(self.cport), str(self.dir)]
        result = _run_bounded(cmd, timeout=120, env=env)
        if result.returncode != 0:
            raise BrokerUnavailable(
                f"broker.sh start failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
            )
        self.pid = int(result.stdout.strip().splitlines()[-1])
        _wait_ready(self.bootstrap, self.port, self.pid, READY_TIMEOUT)
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait until it is gone; its data stays for `start`."""
        if self.pid is not None:
            pid, self.pid = self.pid, None
            _stop(pid)


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[RestartableBroker]:
    """A stopped `RestartableBroker` of this test (skipped, or failed, as ``kafka_bootstrap`` is)."""
    if os.environ.get("RXSTREAM_KAFKA_BOOTSTRAP"):
        pytest.skip(
            "restartable_broker starts a broker of its own; RXSTREAM_KAFKA_BOOTSTRAP names an external one"
        )
    try:
        _ensure_installed()
    except BrokerUnavailable as exc:
        _unavailable(str(exc))
    broker = RestartableBroker(tmp_path / "restartable-broker")
    try:
        yield broker
    finally:
        broker.stop()
