"""Stopping survives whatever the broker client raises: the app ends stopped, disconnected and crashed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream.errors import TransportError


def _app() -> tuple[App, list[int]]:
    app = App(f"stop-{uuid.uuid4().hex[:8]}", broker=f"memory://stop-{uuid.uuid4().hex[:8]}")
    seen: list[int] = []

    @app.agent(app.topic("inbox", partitions=2))
    async def process(stream: rxstream.Stream[int]) -> None:
        async for value in stream:
            seen.append(value)

    return app, seen


def _failing(exc: BaseException) -> Any:
    async def stop() -> None:
        await asyncio.sleep(0)
        raise exc

    return stop


@pytest.mark.parametrize("exc", [asyncio.CancelledError(), RuntimeError("coordinator dead")])
async def test_a_consumer_stop_raising_still_stops_the_app_and_closes_the_transport(
    exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = _app()
    await app.start()
    assert app._conductor is not None
    app._conductor.stop = _failing(exc)  # type: ignore[method-assign]
    transport = app.transport
    with caplog.at_level(logging.ERROR, logger="rxstream.app"):
        await asyncio.wait_for(app.stop(), 10)
    assert not app.started and app._stopped is not None and app._stopped.is_set()
    assert not app._transport_started and transport._stopped  # type: ignore[attr-defined]
    assert isinstance(app.crashed, TransportError) and "stopping failed" in str(app.crashed)
    assert any(f"stopping consumer {app.id} failed" in r.getMessage() for r in caplog.records)


async def test_run_returns_1_when_a_crash_meets_a_consumer_stop_raising_cancelled_error() -> None:
    app, seen = _app()
    runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
    async with asyncio.timeout(10):
        while not app.consuming:
            await asyncio.sleep(0.005)
    assert app._conductor is not None
    app._conductor.stop = _failing(asyncio.CancelledError())  # type: ignore[method-assign]
    await app.topics["inbox"].send(value=1)
    async with asyncio.timeout(10):
        while not seen:
            await asyncio.sleep(0.005)
    app.crash(TransportError("broker gone"))
    assert await asyncio.wait_for(runner, 10) == 1  # before: CancelledError escaped and run() never returned
    assert str(app.crashed) == "broker gone"


async def test_a_stop_cancelled_from_outside_still_finishes_then_reraises() -> None:
    app, _ = _app()
    await app.start()
    assert app._conductor is not None
    gate = asyncio.Event()

    async def slow_stop() -> None:
        gate.set()
        await asyncio.sleep(30)

    app._conductor.stop = slow_stop  # type: ignore[method-assign]
    stopper = asyncio.get_running_loop().create_task(app.stop())
    await gate.wait()
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(stopper, 10)
    assert not app.started and not app._transport_started
