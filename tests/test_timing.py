"""Timing operators (take within, buffer timeout, rate_limit, join window) on reactivex's virtual time."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex.testing import ReactiveTest, TestScheduler

from rxstream import Event, Message, Stream

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed


def run(scheduler: TestScheduler, stream: Stream[Any], until: float = 1000) -> list[tuple[float, Any]]:
    """Subscribe at virtual time 0 and advance the clock; returns (time, value) pairs."""
    got: list[tuple[float, Any]] = []
    stream.subscribe(lambda value: got.append((scheduler.clock, value)))
    scheduler.advance_to(until)
    return got


def test_take_closes_a_batch_at_max_or_within_seconds_after_its_first_value() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(10, "a"),
        on_next(12, "b"),
        on_next(30, "c"),
        on_next(31, "d"),
        on_next(32, "e"),
        on_next(33, "f"),
        on_next(100, "g"),
        on_completed(200),
    )
    got = run(scheduler, Stream.from_observable(xs, scheduler=scheduler).take(3, within=10))
    assert got == [(20, ["a", "b"]), (32, ["c", "d", "e"]), (43, ["f"]), (110, ["g"])]


def test_take_never_emits_an_empty_batch() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(5, 1), on_completed(500))
    got = run(scheduler, Stream.from_observable(xs, scheduler=scheduler).take(10, within=1))
    assert got == [(6, [1])]


def test_buffer_flushes_on_timeout_counted_from_the_last_flush() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(5, 1),
        on_next(12, 2),
        on_next(13, 3),
        on_next(14, 4),
        on_next(35, 5),
        on_completed(100),
    )
    got = run(scheduler, Stream.from_observable(xs, scheduler=scheduler).buffer(3, timeout=10))
    # timer from subscription (0): flush [1] at 10; count flush [2,3,4] at 14 restarts the clock;
    # nothing at 24 (never empty); [5] at 44.
    assert got == [(10, [1]), (14, [2, 3, 4]), (44, [5])]


def test_rate_limit_delays_without_dropping() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(*(on_next(100, i) for i in range(6)), on_completed(101))
    got = run(scheduler, Stream.from_observable(xs, scheduler=scheduler).rate_limit(2, per=10))
    assert [value for _, value in got] == [0, 1, 2, 3, 4, 5]
    assert [time for time, _ in got] == [100, 100, 105, 110, 115, 120]


def test_rate_limit_within_allows_a_larger_burst() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(*(on_next(100, i) for i in range(6)), on_completed(101))
    got = run(scheduler, Stream.from_observable(xs, scheduler=scheduler).rate_limit(2, per=10, within=20))
    assert [time for time, _ in got] == [100, 100, 100, 100, 105, 110]


def test_join_pairs_values_with_the_same_key_within_the_window() -> None:
    scheduler = TestScheduler()
    orders = scheduler.create_hot_observable(
        on_next(10, {"id": 1, "item": "book"}), on_next(50, {"id": 2, "item": "pen"}), on_completed(300)
    )
    payments = scheduler.create_hot_observable(
        on_next(12, {"id": 1, "paid": 5}), on_next(80, {"id": 2, "paid": 1}), on_completed(300)
    )
    left = Stream.from_observable(orders, scheduler=scheduler)
    right = Stream.from_observable(payments, scheduler=scheduler)
    got = run(scheduler, left.join(right, on=lambda v: v["id"], within=10))
    # id 1 arrives 2 s apart and joins; id 2 arrives 30 s apart, outside the window.
    assert got == [(12, ({"id": 1, "item": "book"}, {"id": 1, "paid": 5}))]


class _Clocked:
    """An acknowledger that notes the virtual time each offset was acknowledged at."""

    def __init__(self, scheduler: TestScheduler) -> None:
        self.scheduler = scheduler
        self.acked: dict[int, float] = {}

    def ack(self, refs: Any) -> None:
        for message in refs:
            self.acked[message.offset] = self.scheduler.clock

    def reject(self, ref: Any) -> None:
        raise AssertionError("nothing is rejected here")

    def events(self, topic: str, *values: Any) -> list[Event]:
        messages = [Message(topic, 0, i, 0.0, value=value) for i, value in enumerate(values)]
        return [Event(None, m.value, None, m, 0.0, acker=self) for m in messages]


def test_join_acknowledges_inputs_as_they_leave_the_window_while_the_sources_stay_open() -> None:
    scheduler = TestScheduler()
    left_log, right_log = _Clocked(scheduler), _Clocked(scheduler)
    lefts = left_log.events("orders", {"id": 1}, {"id": 2})
    (right,) = right_log.events("payments", {"id": 1})
    orders = scheduler.create_hot_observable(on_next(10, lefts[0]), on_next(20, lefts[1]), on_completed(900))
    payments = scheduler.create_hot_observable(on_next(12, right), on_completed(900))
    left = Stream.from_observable(orders, scheduler=scheduler)
    joined = left.join(Stream.from_observable(payments, scheduler=scheduler), on=lambda v: v["id"], within=10)
    got = run(scheduler, joined, until=100)
    assert [value for _, value in got] == [({"id": 1}, {"id": 1})]
    # each input is acknowledged about `within` after it arrived, with no later input to trigger it
    assert left_log.acked == {0: pytest.approx(20, abs=0.01), 1: pytest.approx(30, abs=0.01)}
    assert right_log.acked == {0: pytest.approx(22, abs=0.01)}


def test_group_timeout_keeps_expiring_groups_after_every_group_expired_once() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(10, "a"),
        on_next(100, "b"),  # every group expired before this one arrives
        on_next(300, "b"),  # ...and this one comes after b's own group expired: a new group
        on_completed(400),
    )
    stream = Stream.from_observable(xs, scheduler=scheduler)
    groups = stream.group_by(lambda v: v, name="idle", group_timeout=20).map(lambda pair: pair[0])
    got = run(scheduler, groups)  # the key of every group dealt, when it is dealt
    assert got == [(10, "a"), (100, "b"), (300, "b")]
