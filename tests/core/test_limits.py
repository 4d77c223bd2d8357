"""Limits in time, sans I/O: the token bucket, the join window and group expiry, fed a clock by hand."""

from __future__ import annotations

from typing import Any

import pytest

from rxstream._core.limits import GroupExpiry, JoinWindow, TokenBucket

# --- token bucket -------------------------------------------------------------------------------------------

# (capacity, rate per second, [(at, asked)], [granted])
TAKES = [
    pytest.param(5.0, 1.0, [(0.0, 3), (0.0, 3)], [3, 2], id="starts-full-then-runs-dry"),
    pytest.param(5.0, 1.0, [(0.0, 5), (0.5, 1), (1.0, 1)], [5, 0, 1], id="a-whole-token-is-needed"),
    pytest.param(5.0, 1.0, [(0.0, 5), (100.0, 10)], [5, 5], id="refill-stops-at-capacity"),
    pytest.param(2.0, 4.0, [(0.0, 2), (0.25, 2), (1.0, 9)], [2, 1, 2], id="refill-rate-per-second"),
    pytest.param(1.0, 0.5, [(0.0, 1), (1.0, 1), (2.0, 1)], [1, 0, 1], id="slow-rate"),
    pytest.param(3.0, 1.0, [(0.0, 0), (0.0, 3)], [0, 3], id="asking-nothing-takes-nothing"),
]


@pytest.mark.parametrize(("capacity", "rate", "takes", "granted"), TAKES)
def test_token_bucket_grants_whole_tokens_that_refill_over_time(
    capacity: float, rate: float, takes: list[tuple[float, int]], granted: list[int]
) -> None:
    bucket = TokenBucket(capacity, rate, now=0.0)
    assert [bucket.take(asked, at) for at, asked in takes] == granted


# (capacity, rate, taken at 0, at, available, delay)
WAITS = [
    pytest.param(5.0, 1.0, 0, 0.0, 5, 0.0, id="full"),
    pytest.param(5.0, 1.0, 5, 0.0, 0, 1.0, id="empty-waits-one-token"),
    pytest.param(5.0, 2.0, 5, 0.0, 0, 0.5, id="faster-rate-waits-less"),
    pytest.param(5.0, 1.0, 5, 0.75, 0, 0.25, id="part-of-a-token-refilled"),
    pytest.param(5.0, 1.0, 5, 2.5, 2, 0.0, id="some-refilled"),
]


@pytest.mark.parametrize(("capacity", "rate", "taken", "at", "available", "delay"), WAITS)
def test_token_bucket_tells_what_may_pass_and_how_long_until_the_next_token(
    capacity: float, rate: float, taken: int, at: float, available: int, delay: float
) -> None:
    bucket = TokenBucket(capacity, rate, now=0.0)
    assert bucket.take(taken, 0.0) == taken
    assert bucket.available(at) == available
    assert bucket.delay(at) == pytest.approx(delay)


def test_token_bucket_available_does_not_take() -> None:
    bucket = TokenBucket(3.0, 1.0, now=10.0)
    assert bucket.available(10.0) == 3
    assert bucket.available(10.0) == 3
    assert bucket.take(2, 10.0) == 2
    assert bucket.tokens == pytest.approx(1.0)


# --- join window --------------------------------------------------------------------------------------------

# (sources, [(index, key, value, at)], combinations emitted by each add)
JOINS = [
    pytest.param(
        2, [(0, "k", "a", 0.0), (1, "k", "x", 1.0)], [[], [("a", "x")]], id="pair-in-source-order"
    ),
    pytest.param(
        2, [(1, "k", "x", 0.0), (0, "k", "a", 1.0)], [[], [("a", "x")]], id="order-of-arrival-irrelevant"
    ),
    pytest.param(2, [(0, "k", "a", 0.0), (1, "j", "x", 0.0)], [[], []], id="different-keys-do-not-join"),
    pytest.param(2, [(0, "k", "a", 0.0), (0, "k", "b", 0.0)], [[], []], id="one-source-never-joins-itself"),
    pytest.param(
        2,
        [(0, "k", "a", 0.0), (0, "k", "b", 0.0), (1, "k", "x", 1.0)],
        [[], [], [("a", "x"), ("b", "x")]],
        id="every-partner-in-arrival-order",
    ),
    pytest.param(
        3,
        [(0, "k", "a", 0.0), (2, "k", "z", 0.0), (1, "k", "x", 0.0), (1, "k", "y", 0.0)],
        [[], [], [("a", "x", "z")], [("a", "y", "z")]],
        id="three-sources-need-all",
    ),
    pytest.param(1, [(0, "k", "a", 0.0)], [[("a",)]], id="a-single-source-emits-every-value"),
]


@pytest.mark.parametrize(("sources", "adds", "emitted"), JOINS)
def test_join_window_emits_one_value_per_source_for_a_shared_key(
    sources: int, adds: list[tuple[int, str, str, float]], emitted: list[list[tuple[str, ...]]]
) -> None:
    window = JoinWindow(sources, within=10.0)
    got = [window.add(index, key, value, None, None, at) for index, key, value, at in adds]
    assert got == emitted
    assert len(window) == len(adds)


class _Acker:
    """Stands for an acknowledger: the core only hands it back."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


L, R = _Acker("left"), _Acker("right")

# ([(index, key, acker, ref, at)], expire at, pairs that left, due after, len after)
EXPIRIES = [
    pytest.param([(0, "k", L, 1, 0.0)], 10.0, [], 10.0, 1, id="exactly-within-stays"),
    pytest.param([(0, "k", L, 1, 0.0)], 10.5, [(L, 1)], None, 0, id="older-than-within-leaves"),
    pytest.param(
        [(0, "k", L, 1, 0.0), (1, "k", R, 7, 3.0), (0, "j", L, 2, 6.0)],
        13.5,
        [(L, 1), (R, 7)],
        16.0,
        1,
        id="oldest-first-across-sources",
    ),
    pytest.param(
        [(0, "k", None, 1, 0.0), (0, "k", L, None, 1.0), (0, "k", L, 3, 2.0)],
        20.0,
        [(L, 3)],
        None,
        0,
        id="entries-without-acker-or-ref-leave-silently",
    ),
    pytest.param([], 5.0, [], None, 0, id="empty"),
]


@pytest.mark.parametrize(("adds", "at", "left", "due", "size"), EXPIRIES)
def test_join_window_expires_values_older_than_within_and_returns_what_to_acknowledge(
    adds: list[tuple[int, str, Any, Any, float]],
    at: float,
    left: list[tuple[Any, Any]],
    due: float | None,
    size: int,
) -> None:
    window = JoinWindow(2, within=10.0)
    for index, key, acker, ref, arrival in adds:
        window.add(index, key, f"v{ref}", acker, ref, arrival)
    assert window.due() == (adds[0][4] + 10.0 if adds else None)
    assert window.expire(at) == left
    assert window.due() == due
    assert len(window) == size


def test_join_window_forgets_expired_partners() -> None:
    window = JoinWindow(2, within=10.0)
    window.add(0, "k", "a", L, 1, 0.0)
    window.add(0, "k", "b", L, 2, 5.0)
    assert window.expire(12.0) == [(L, 1)]
    assert window.add(1, "k", "x", R, 9, 12.0) == [("b", "x")]
    assert window.expire(30.0) == [(L, 2), (R, 9)]
    assert window.add(1, "k", "y", R, 10, 30.0) == []


def test_join_window_drain_returns_what_is_left_per_source_and_empties_it() -> None:
    window = JoinWindow(2, within=10.0)
    window.add(0, "k", "a", L, 1, 0.0)
    window.add(1, "j", "x", R, 7, 1.0)
    window.add(0, "j", "b", L, None, 2.0)
    window.add(0, "k", "c", None, 3, 3.0)
    assert window.drain() == [[(L, 1), (None, 3)], [(R, 7)]]
    assert len(window) == 0
    assert window.due() is None
    assert window.expire(100.0) == []
    assert window.add(1, "k", "y", R, 8, 4.0) == []


# --- group expiry -------------------------------------------------------------------------------------------

# ([(key, at)], checked at, expired keys, keys left)
GROUPS = [
    pytest.param([("a", 0.0)], 4.9, [], 1, id="idle-less-than-timeout-stays"),
    pytest.param([("a", 0.0)], 5.0, ["a"], 0, id="idle-exactly-timeout-expires"),
    pytest.param([("a", 0.0), ("a", 3.0)], 5.0, [], 1, id="a-touch-restarts-the-clock"),
    pytest.param(
        [("a", 0.0), ("b", 1.0), ("c", 4.0), ("a", 2.0)], 7.0, ["a", "b"], 1, id="in-the-order-first-seen"
    ),
    pytest.param([], 100.0, [], 0, id="nothing-tracked"),
]


@pytest.mark.parametrize(("touches", "at", "expired", "left"), GROUPS)
def test_group_expiry_returns_keys_idle_for_the_timeout_once(
    touches: list[tuple[str, float]], at: float, expired: list[str], left: int
) -> None:
    expiry = GroupExpiry(timeout=5.0)
    for key, seen in touches:
        expiry.touch(key, seen)
    assert expiry.expired(at) == expired
    assert len(expiry) == left
    assert expiry.expired(at) == []


def test_group_expiry_checks_again_after_the_timeout_while_keys_remain() -> None:
    expiry = GroupExpiry(timeout=5.0)
    assert expiry.next_check() is None
    expiry.touch("a", 0.0)
    expiry.touch("b", 3.0)
    assert expiry.next_check() == 5.0
    assert expiry.expired(5.0) == ["a"]
    assert expiry.next_check() == 5.0
    assert expiry.expired(10.0) == ["b"]
    assert expiry.next_check() is None
