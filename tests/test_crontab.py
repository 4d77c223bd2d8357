"""Cron jobs: schedules in a timezone, ``@app.crontab`` on virtual time, leader-only jobs, refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import uuid
from zoneinfo import ZoneInfo

import pytest
from reactivex.testing import TestScheduler

from rxstream import App
from rxstream.crontab import CronSchedule, zone_of
from rxstream.errors import ConfigurationError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # a TestScheduler's clock 0


async def settle(turns: int = 200) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


def test_the_next_run_is_strictly_after_the_moment_in_the_schedules_timezone() -> None:
    nightly = CronSchedule("0 20 * * *", "US/Pacific")
    at_eight = dt.datetime(1969, 12, 31, 20, tzinfo=ZoneInfo("US/Pacific"))  # 04:00 UTC
    assert nightly.next_after(EPOCH) == at_eight
    assert nightly.next_after(at_eight) == at_eight + dt.timedelta(days=1)
    assert CronSchedule("*/15 * * * *").next_after(EPOCH) == EPOCH + dt.timedelta(minutes=15)


def test_a_schedule_counts_seconds_on_the_schedulers_clock() -> None:
    scheduler = TestScheduler()
    assert CronSchedule("* * * * *").seconds_until_next(scheduler) == 60.0
    scheduler.advance_to(45.0)
    assert CronSchedule("* * * * *").seconds_until_next(scheduler) == 15.0
    assert CronSchedule("0 20 * * *", "US/Pacific").seconds_until_next(scheduler) == 4 * 3600 - 45


def test_timezones_are_names_zoneinfos_pytz_zones_or_utc() -> None:
    class PytzLike(dt.tzinfo):
        zone = "Europe/Oslo"

    assert zone_of(None) is dt.UTC
    assert zone_of("Europe/Oslo") == ZoneInfo("Europe/Oslo") == zone_of(PytzLike())
    assert zone_of(dt.UTC) is dt.UTC
    with pytest.raises(ConfigurationError, match="unknown timezone 'Mars/Olympus'"):
        zone_of("Mars/Olympus")


def test_a_bad_expression_or_a_missing_extra_is_refused_at_declaration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = App("cron-refusals")
    with pytest.raises(ConfigurationError, match="'61 \\* \\* \\* \\*' is not a cron expression"):
        app.crontab("61 * * * *")
    monkeypatch.setitem(sys.modules, "cronsim", None)
    with pytest.raises(ConfigurationError, match=r"needs the 'cron' extra: pip install 'rxstream\[cron\]'"):
        app.crontab("* * * * *")


async def test_a_cron_job_runs_at_each_time_its_expression_names_on_virtual_time() -> None:
    scheduler = TestScheduler()
    app = App("cron-virtual", broker=f"memory://cron-{uuid.uuid4().hex[:8]}", scheduler=scheduler)
    runs: list[float] = []
    nightly: list[float] = []

    @app.crontab("*/2 * * * *")
    async def every_other_minute() -> None:
        runs.append(scheduler.clock)

    @app.crontab("0 20 * * *", tz="US/Pacific")  # Faust's examples spell it tz=
    def at_eight_pacific(app_: App) -> None:
        assert app_ is app
        nightly.append(scheduler.clock)

    async with app:
        await settle()
        scheduler.advance_to(119.0)
        await settle()
        assert runs == []
        for minute in (2, 4, 6):
            scheduler.advance_to(60.0 * minute)
            await settle()
        assert runs == [120.0, 240.0, 360.0]
        scheduler.advance_to(4 * 3600.0)
        await settle()
        assert nightly == [4 * 3600.0]


async def test_the_apps_timezone_is_the_default_of_its_cron_jobs() -> None:
    scheduler = TestScheduler()
    broker = f"memory://cron-{uuid.uuid4().hex[:8]}"
    app = App("cron-zone", broker=broker, scheduler=scheduler, timezone="Asia/Tokyo")
    runs: list[float] = []

    @app.crontab("0 9 * * *")
    def at_nine_in_tokyo() -> None:
        runs.append(scheduler.clock)

    async with app:
        await settle()
        scheduler.advance_to(24 * 3600.0)  # 09:00 in Tokyo is 00:00 UTC
        await settle()
    assert runs == [24 * 3600.0]
