"""Redelivery decisions, sans I/O: failures counted per offset, the back-off, when the policy takes over."""

from __future__ import annotations

import pytest

from rxstream._core.redelivery import Decision, ErrorPolicy, Redeliveries
from rxstream.errors import ConfigurationError
from rxstream.events import Message


def message(offset: int, partition: int = 0, topic: str = "orders") -> Message:
    return Message(topic, partition, offset, 0.0, None, offset)


@pytest.mark.parametrize(
    ("on_error", "max_redeliveries", "error"),
    [
        ("dead_letter", 3, None),
        ("skip", 0, None),
        ("crash", 10, None),
        ("retry", 3, "on_error must be one of"),
        ("skip", -1, "max_redeliveries must be an integer >= 0"),
        ("skip", 1.5, "max_redeliveries must be an integer >= 0"),
        ("skip", True, "max_redeliveries must be an integer >= 0"),
    ],
)
def test_policy_settings_are_validated(on_error: str, max_redeliveries: int, error: str | None) -> None:
    if error is None:
        policy = ErrorPolicy.make(on_error, "orders-dead-letter", max_redeliveries)
        assert (policy.on_error, policy.max_redeliveries) == (on_error, max_redeliveries)
    else:
        with pytest.raises(ConfigurationError, match=error):
            ErrorPolicy.make(on_error, None, max_redeliveries)


@pytest.mark.parametrize(
    ("backoff", "attempts", "delay"),
    [(0.05, 1, 0.05), (0.05, 2, 0.1), (0.05, 3, 0.2), (0.05, 4, 0.4), (1.0, 6, 32.0), (0.0, 3, 0.0)],
)
def test_the_back_off_doubles_with_each_attempt(backoff: float, attempts: int, delay: float) -> None:
    assert ErrorPolicy(backoff=backoff).delay(attempts) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("policy", "failures", "decisions"),
    [
        (
            ErrorPolicy("dead_letter", max_redeliveries=2, backoff=0.1),
            ["rejected", "rejected", "rejected"],
            [Decision("redeliver", 1, 0.1), Decision("redeliver", 2, 0.2), Decision("dead_letter", 3)],
        ),
        (
            ErrorPolicy("skip", max_redeliveries=1),
            ["raised", "raised"],
            [Decision("retry", 1), Decision("skip", 2)],
        ),
        (ErrorPolicy("crash", max_redeliveries=0), ["rejected"], [Decision("crash", 1)]),
        (ErrorPolicy("crash", max_redeliveries=0), ["raised"], [Decision("crash", 1)]),
        (
            ErrorPolicy("dead_letter", max_redeliveries=2, backoff=1.0),
            ["raised", "rejected", "raised"],
            [Decision("retry", 1), Decision("redeliver", 2, 2.0), Decision("dead_letter", 3)],
        ),
    ],
    ids=["rejects-then-dead-letter", "raises-then-skip", "reject-crash", "raise-crash", "mixed"],
)
def test_failures_are_redelivered_until_the_policy_takes_over(
    policy: ErrorPolicy, failures: list[str], decisions: list[Decision]
) -> None:
    redeliveries = Redeliveries()
    got = [redeliveries.failed(message(7), policy, rejected=how == "rejected") for how in failures]
    assert got == decisions


def test_a_redelivered_copy_shares_its_originals_count_and_an_ack_clears_it() -> None:
    policy = ErrorPolicy(max_redeliveries=5)
    redeliveries = Redeliveries()
    original = message(3)
    copy = Message._make(original)
    assert redeliveries.failed(original, policy, rejected=True).attempts == 1
    assert redeliveries.failed(copy, policy, rejected=True).attempts == 2
    redeliveries.clear([copy])
    assert not redeliveries.attempts
    assert redeliveries.failed(original, policy, rejected=True).attempts == 1


@pytest.mark.parametrize(
    ("failing", "gone", "left"),
    [
        ([("a", 0, 1), ("a", 1, 1), ("b", 0, 1)], {("a", 0)}, {("a", 1, 1), ("b", 0, 1)}),
        ([("a", 0, 1), ("a", 0, 2)], {("a", 0)}, set()),
        ([("a", 0, 1)], {("b", 0)}, {("a", 0, 1)}),
    ],
)
def test_counts_of_partitions_that_moved_away_are_dropped(
    failing: list[tuple[str, int, int]], gone: set[tuple[str, int]], left: set[tuple[str, int, int]]
) -> None:
    redeliveries = Redeliveries()
    for topic, partition, offset in failing:
        redeliveries.failed(message(offset, partition, topic), ErrorPolicy(), rejected=False)
    redeliveries.forget(gone)
    assert set(redeliveries.attempts) == left
