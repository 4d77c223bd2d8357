"""Loops an app runs in the background on its clock: timers, cron jobs, and the watch on the broker."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._rx import SchedulerBase
from .errors import TransportError

if TYPE_CHECKING:
    from .crontab import CronSchedule

__all__ = ["cron", "every", "gated", "wait", "watch_broker"]

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


def gated(fun: Callable[..., Any], app: Any, gate: Callable[[], bool] | None) -> Callable[[], Any]:
    """``fun`` called with no argument, or with ``app`` when it takes one (as Faust's tasks and timers are),
    and only while ``gate()`` holds (``on_leader=True``: while this worker leads)."""
    try:
        takes_app = any(
            p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            for p in inspect.signature(fun).parameters.values()
        )
    except (TypeError, ValueError):  # a callable without a signature takes nothing
        takes_app = False

    @functools.wraps(fun)
    def call() -> Any:
        if gate is not None and not gate():
            return None
        return fun(app) if takes_app else fun()

    return call


async def _run(fun: Callable[[], Any], what: str) -> None:
    """Call ``fun`` (sync or async); a failure is logged and the loop calling it goes on."""
    try:
        result = fun()
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("%s %s failed", what, getattr(fun, "__name__", fun))


async def every(interval: float, fun: Callable[..., Any], scheduler: SchedulerBase | None, what: str) -> None:
    """Call ``fun`` (sync or async) every ``interval`` seconds; a failure is logged and the timer goes on."""
    while True:
        await wait(interval, scheduler)
        await _run(fun, what)


async def cron(
    schedule: CronSchedule, fun: Callable[[], Any], scheduler: SchedulerBase | None, what: str
) -> None:
    """Call ``fun`` at each time ``schedule`` names, on ``scheduler``'s clock; failures are logged."""
    while True:
        await wait(schedule.seconds_until_next(scheduler), scheduler)
        await _run(fun, what)


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
