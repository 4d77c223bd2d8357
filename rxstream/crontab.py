"""Cron schedules for ``@app.crontab``: when a job runs next, in its timezone (UTC unless given one).

Parsing and stepping through cron expressions is the ``cron`` extra's (``pip install 'rxstream[cron]'``,
the cronsim library); this module only turns "the next run" into seconds to wait on the app's clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._rx import SchedulerBase
from .errors import ConfigurationError

__all__ = ["CronSchedule", "zone_of"]


def zone_of(timezone: dt.tzinfo | str | None) -> dt.tzinfo:
    """``timezone`` as a tzinfo cron arithmetic can trust: a name, a zoneinfo, a pytz zone, or None (UTC)."""
    if timezone is None:
        return dt.UTC
    name = timezone if isinstance(timezone, str) else getattr(timezone, "zone", None)
    if isinstance(name, str):  # a pytz zone works only through its localize(); its name gives the zoneinfo
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(f"@app.crontab: unknown timezone {name!r}") from exc
    if isinstance(timezone, dt.tzinfo):
        return timezone
    raise ConfigurationError(f"@app.crontab: timezone must be a tzinfo or a zone name, got {timezone!r}")


class CronSchedule:
    """A cron expression in a timezone: how long from a moment to its next run."""

    def __init__(self, spec: str, timezone: dt.tzinfo | str | None = None) -> None:
        try:
            from cronsim import CronSim, CronSimError
        except ImportError as exc:
            raise ConfigurationError(
                f"@app.crontab({spec!r}) needs the 'cron' extra: pip install 'rxstream[cron]' ({exc})"
            ) from exc
        self.spec = spec
        self.zone = zone_of(timezone)
        self._steps: Callable[[dt.datetime], Any] = lambda start: CronSim(spec, start)
        try:
            next(self._steps(dt.datetime.now(self.zone)))
        except (CronSimError, StopIteration) as exc:
            raise ConfigurationError(f"@app.crontab: {spec!r} is not a cron expression: {exc}") from exc

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first run strictly after ``moment``."""
        return next(self._steps(moment.astimezone(self.zone).replace(microsecond=0)))  # type: ignore[no-any-return]

    def seconds_until_next(self, scheduler: SchedulerBase | None) -> float:
        """Seconds from now on ``scheduler``'s clock (the wall clock without one) to the next run."""
        now = scheduler.now if scheduler is not None else dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        return max((self.next_after(now) - now).total_seconds(), 0.0)
