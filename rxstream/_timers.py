"""Loops an app runs in the background on its clock: timers, and the watch on the broker's availability."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._rx import SchedulerBase
from .errors import TransportError

__all__ = ["every", "wait", "watch_broker"]

logger = logging.getLogger("rxstream.app")


async def wait(seconds: float, scheduler: SchedulerBase | None) -> None:
    """Wait ``seconds`` on ``scheduler`` (virtual time in tests), or on the loop without one."""
    if scheduler is None:
        await asyncio.sleep(seconds)
        return
    loop = asyncio.get_running_loop()
    due: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not due.done():
            due.set_result(None)

    def wake(*_: Any) -> None:
        loop.call_soon_threadsafe(settle)  # the scheduler may run its actions on a thread of its own

    scheduled = scheduler.schedule_relative(seconds, wake)
    try:
        await due
    finally:
        scheduled.dispose()


async def every(interval: float, fun: Callable[..., Any], scheduler: SchedulerBase | None, what: str) -> None:
    """Call ``fun`` (sync or async) every ``interval`` seconds; a failure is logged and the timer goes on."""
    while True:
        await wait(interval, scheduler)
        try:
            result = fun()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s %s failed", what, getattr(fun, "__name__", fun))


async def watch_broker(
    reachable: Callable[[float], Awaitable[bool]],
    limit: float,
    owner: str,
    broker: str,
    crash: Callable[[BaseException], None],
) -> None:
    """Crash once the broker stayed unreachable for ``limit`` seconds (broker_availability_timeout): the
    worker exits non-zero, so its supervisor restarts it instead of it waiting forever."""
    period = min(limit / 4, 5.0)
    loop = asyncio.get_running_loop()
    seen = loop.time()
    away = False
    while True:
        await asyncio.sleep(period)
        if await reachable(period):
            if away:
                logger.warning("%s: the broker answers again after %.0fs", owner, loop.time() - seen)
            seen, away = loop.time(), False
        elif loop.time() - seen >= limit:
            crash(
                TransportError(
                    f"{owner}: the broker {broker} was unreachable for {limit:g}s "
                    "(broker_availability_timeout); exiting for the worker to be restarted"
                )
            )
            return
        elif not away:
            away = True
            logger.warning("%s: the broker %s does not answer; waiting up to %gs", owner, broker, limit)
