"""What an app runs besides its agents: timers, cron jobs and one-off tasks, and whether only its leader does.

Each function is called with no argument, or with the app when it takes one (as Faust calls them); sync
and async functions both work. Timers and cron jobs count time on the app's ``scheduler`` (virtual time in
tests); a failure is logged and the next run comes as planned.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

from ._timers import cron, every, gated
from .durations import Duration, seconds
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .app import App
    from .crontab import CronSchedule

__all__ = ["Schedule", "crontab", "task", "timer"]

F = TypeVar("F", bound=Callable[..., Any])


def timer(
    app: App, interval: Duration, *, on_leader: bool = False, name: str | None = None
) -> Callable[[F], F]:
    """``@app.timer(seconds)``: call the decorated function every ``interval`` of the app's ``scheduler``
    time; ``on_leader=True``: only on the group's leader (`App.is_leader`); ``name`` names it in logs."""
    return app.schedule.timer(interval, on_leader, name)


def crontab(
    app: App,
    cron_format: str,
    *,
    timezone: tzinfo | str | None = None,
    tz: tzinfo | str | None = None,
    on_leader: bool = False,
) -> Callable[[F], F]:
    """``@app.crontab("0 20 * * *")``: call the decorated function at the times a cron expression names, in
    ``timezone`` (Faust's ``tz=`` too; default the app's, else UTC). Needs the ``cron`` extra."""
    return app.schedule.crontab(cron_format, timezone or tz, on_leader)


def task(app: App, fun: Any = None, *, on_leader: bool = False) -> Any:
    """``@app.task``: run the decorated coroutine function once the app started (``@app.task()`` too)."""
    return app.schedule.task(fun, on_leader)


class Schedule:
    """An app's timers, cron jobs and tasks, declared by its decorators and started with it."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.timers: list[tuple[float, Callable[[], Any], bool]] = []
        """Interval, the call, whether only the leader runs it."""
        self.crons: list[tuple[CronSchedule, Callable[[], Any]]] = []
        self.tasks: list[Callable[[], Any]] = []

    def timer(self, interval: Duration, on_leader: bool, name: str | None = None) -> Callable[[F], F]:
        """`App.timer`."""
        every_s = seconds(interval)
        if isinstance(every_s, bool) or not isinstance(every_s, (int, float)) or every_s <= 0:
            raise ConfigurationError(
                f"app.timer interval must be a positive number of seconds or a timedelta, got {interval!r}"
            )

        def decorate(fun: F) -> F:
            if not callable(fun):
                raise ConfigurationError(f"@app.timer({interval!r}) decorates a function, got {fun!r}")
            call = self._gated(fun, on_leader)
            if name is not None:
                call.__name__ = name
            self.timers.append((every_s, call, on_leader))
            return fun

        return decorate

    def crontab(self, cron_format: str, timezone: tzinfo | str | None, on_leader: bool) -> Callable[[F], F]:
        """`App.crontab`."""
        from .crontab import CronSchedule

        schedule = CronSchedule(cron_format, timezone if timezone is not None else self.app.conf.timezone)

        def decorate(fun: F) -> F:
            self.crons.append((schedule, self._gated(fun, on_leader)))
            return fun

        return decorate

    def task(self, fun: Any, on_leader: bool) -> Any:
        """`App.task`."""
        if fun is None:
            return functools.partial(self.task, on_leader=on_leader)
        if not inspect.iscoroutinefunction(fun):
            raise ConfigurationError(f"@app.task decorates an async def function, got {fun!r}")
        self.tasks.append(self._gated(fun, on_leader))
        return fun

    def _gated(self, fun: Callable[..., Any], on_leader: bool) -> Callable[[], Any]:
        app = self.app
        if on_leader:
            app.leader.declare()
        return gated(fun, app, app.is_leader if on_leader else None)

    def start(self) -> list[asyncio.Task[None]]:
        """Start the timers and cron jobs (returned: the app cancels them on stop) and run the tasks."""
        app = self.app
        loop = asyncio.get_running_loop()
        running = []
        for interval, call, _ in self.timers:
            timer = every(interval, call, app.scheduler, f"app {app.id}: timer")
            running.append(loop.create_task(timer, name=f"timer {call.__name__}"))
        for schedule, call in self.crons:
            job = cron(schedule, call, app.scheduler, f"app {app.id}: cron job")
            running.append(loop.create_task(job, name=f"cron job {call.__name__}"))
        for fun in self.tasks:
            started = fun()
            if started is not None:
                app.spawn(started, f"task {fun.__name__}")
        return running
