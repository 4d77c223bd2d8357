"""Leadership on memory://: two apps of one group in one process, exactly one leads, and on_leader timers
run only there; the other takes over when the leader stops."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from reactivex.testing import TestScheduler

from rxstream import App
from rxstream.leader import leader_topic_name


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def settled(first: App, second: App) -> bool:
    """The second worker joined and the first went through the rebalance that its joining caused."""
    rebalances = [app.conductors()[0].rebalances if app.conductors() else 0 for app in (first, second)]
    return rebalances[0] >= 2 and rebalances[1] >= 1 and first.is_leader() != second.is_leader()


def twin_apps(scheduler: TestScheduler | None = None) -> tuple[App, App]:
    """Two workers of one app (same id, same in-process broker)."""
    broker = f"memory://leader-{uuid.uuid4().hex[:8]}"
    return (
        App("twins", broker=broker, scheduler=scheduler, commit_interval=0.05),
        App("twins", broker=broker, scheduler=scheduler, commit_interval=0.05),
    )


async def test_exactly_one_of_two_workers_leads_and_the_other_takes_over_when_it_stops() -> None:
    first, second = twin_apps()
    async with first:
        await until(first.is_leader, "the only worker to lead")
        await second.start()
        try:
            await until(lambda: first.is_leader() != second.is_leader(), "exactly one leader of two")
            leader, follower = (first, second) if first.is_leader() else (second, first)
            await leader.stop()
            await until(follower.is_leader, "the remaining worker to take over")
        finally:
            await second.stop()


async def test_on_leader_timers_run_on_the_leader_only() -> None:
    scheduler = TestScheduler()
    first, second = twin_apps(scheduler)
    ticks: list[str] = []
    for app, label in ((first, "first"), (second, "second")):

        @app.timer(1.0, on_leader=True)
        async def tick(label: str = label) -> None:
            ticks.append(label)

        @app.timer(1.0)
        def everywhere(label: str = label) -> None:
            ticks.append(f"{label}/all")

    async with first, second:
        await until(lambda: settled(first, second), "the group of two to settle")
        await asyncio.sleep(0.05)  # the timers, started last, wait on the virtual clock
        leader = "first" if first.is_leader() else "second"
        for second_ in (1, 2, 3):
            scheduler.advance_to(float(second_))
            await until(lambda n=second_: len(ticks) >= 3 * n, f"the timers of second {second_}")
    assert sorted(ticks) == sorted([leader, "first/all", "second/all"] * 3)


async def test_the_leader_topic_exists_only_when_asked_for() -> None:
    plain, asking = twin_apps()
    assert leader_topic_name(plain.id) not in plain.topics

    @asking.timer(5.0, on_leader=True)
    def tick() -> None:
        return None

    spec = asking.topics[leader_topic_name(asking.id)]
    assert spec.partitions == 1 and leader_topic_name(asking.id) == "twins-__assignor-__leader"


async def test_is_leader_asked_while_running_joins_a_group_of_its_own() -> None:
    app = App("late-leader", broker=f"memory://leader-{uuid.uuid4().hex[:8]}")
    async with app:
        assert app.is_leader() is False  # just subscribed: not assigned yet
        await until(app.is_leader, "the only worker to lead")
