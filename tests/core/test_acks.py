"""A subscription's acknowledgment state, sans I/O: offsets done, messages held back, batches settled."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rxstream._core.acks import Acknowledgments, ack_run
from rxstream._core.redelivery import ErrorPolicy, Redeliveries
from rxstream.events import Message, Row
from rxstream.offsets import OffsetTracker


def rows(offsets: range | list[int], partition: int = 0, topic: str = "orders") -> list[Row]:
    return [Message(topic, partition, offset, 0.0, None, offset) for offset in offsets]


def book_with(n: int, partitions: int = 1) -> tuple[Acknowledgments, Redeliveries, list[list[Row]]]:
    """A book with offsets 0..n-1 of each partition delivered, and those messages."""
    redeliveries = Redeliveries()
    book = Acknowledgments(redeliveries)
    delivered = [rows(range(n), p) for p in range(partitions)]
    for p, messages in enumerate(delivered):
        book.delivered("orders", p, 0, n - 1, messages)
    return book, redeliveries, delivered


@pytest.mark.parametrize(
    ("runs", "committable"),
    [
        ([[0, 1, 2, 3]], 4),
        ([[1, 2, 3]], 0),
        ([[0, 2, 3]], 1),
        ([[0, 2, 3], [1]], 4),
        ([[2, 3], [0, 1]], 4),
    ],
)
def test_a_run_acks_its_offsets_whether_or_not_it_has_gaps(runs: list[list[int]], committable: int) -> None:
    tracker = OffsetTracker()
    tracker.delivered(0, 3)
    for run in runs:
        ack_run(tracker, rows(run))
    assert tracker.committable == committable


@pytest.mark.parametrize(
    ("first", "last", "fetched", "committable"),
    [
        (0, 4, [0, 1, 2, 3, 4], 0),
        (0, 4, [1, 3], 1),
        (10, 14, [12], 12),
        (0, 2, [], 3),
    ],
    ids=["all-present", "gaps", "starts-late", "all-compacted"],
)
def test_offsets_with_no_fetched_message_count_as_done(
    first: int, last: int, fetched: list[int], committable: int
) -> None:
    book = Acknowledgments(Redeliveries())
    book.delivered("orders", 0, first, last, rows(fetched))
    assert book.tracker("orders", 0).committable == committable


def reject(book: Acknowledgments, m: list[Row]) -> None:
    book.reject(m[1])


def reject_ack_original(book: Acknowledgments, m: list[Row]) -> None:
    book.reject(m[1])
    book.redelivered(m[1])
    book.ack_partition("orders", 0, [m[1]])


def reject_ack_copy(book: Acknowledgments, m: list[Row]) -> None:
    book.reject(m[1])
    book.redelivered(m[1])
    book.ack_partition("orders", 0, [Message._make(m[1])])


def to_policy(book: Acknowledgments, m: list[Row]) -> None:
    book.to_policy(m[1])


def policy_done(book: Acknowledgments, m: list[Row]) -> None:
    book.to_policy(m[1])
    book.ack_partition("orders", 0, [m[1]])
    book.policy_done(m[1])


@pytest.mark.parametrize(
    ("before", "committable"),
    [
        (None, 3),
        (reject, 1),
        (reject_ack_original, 1),
        (reject_ack_copy, 3),
        (to_policy, 1),
        (policy_done, 3),
    ],
    ids=["nothing-held", "rejected", "original-of-a-copy", "copy", "with-the-policy", "policy-done"],
)
def test_an_ack_of_a_held_message_waits_for_its_copy_or_the_policy(
    before: Callable[[Acknowledgments, list[Row]], None] | None, committable: int
) -> None:
    book, _, (messages,) = book_with(3)
    if before is not None:
        before(book, messages)
    book.ack_partition("orders", 0, messages)
    assert book.tracker("orders", 0).committable == committable


@pytest.mark.parametrize(
    ("refs", "committable"),
    [
        ([(0, 0), (0, 1), (1, 0)], {0: 2, 1: 1}),
        ([(1, 1), (0, 0), (1, 0)], {0: 1, 1: 2}),
        ([(0, 2), (0, 0)], {0: 1, 1: 0}),
    ],
)
def test_an_ack_across_partitions_acks_each_message_where_it_belongs(
    refs: list[tuple[int, int]], committable: dict[int, int]
) -> None:
    book, _, delivered = book_with(3, partitions=2)
    book.ack([delivered[p][o] for p, o in refs])
    assert {p: book.tracker("orders", p).committable for p in (0, 1)} == committable


def test_an_ack_clears_the_failures_counted_against_its_messages() -> None:
    book, redeliveries, (messages,) = book_with(3)
    redeliveries.failed(messages[0], ErrorPolicy(), rejected=False)
    redeliveries.failed(messages[2], ErrorPolicy(), rejected=False)
    book.ack_partition("orders", 0, messages[:2])
    assert set(redeliveries.attempts) == {("orders", 0, 2)}
    assert book.tracker("orders", 0).committable == 2


@pytest.mark.parametrize(
    ("steps", "accepted"),
    [
        (["reject"], [True]),
        (["reject", "reject"], [True, False]),
        (["to_policy", "reject"], [False]),
        (["reject", "redelivered", "reject"], [True, True]),
    ],
)
def test_a_message_is_rejected_once_until_redelivered_and_never_while_the_policy_has_it(
    steps: list[str], accepted: list[bool]
) -> None:
    book, _, (messages,) = book_with(1)
    got = []
    for step in steps:
        if step == "reject":
            got.append(book.reject(messages[0]))
        else:
            getattr(book, step)(messages[0])
    assert got == accepted


@pytest.mark.parametrize(
    ("acked", "settled"),
    [([], False), ([0, 1], False), ([0, 1, 2], True), ([1, 2], False)],
)
def test_a_batch_settles_once_all_its_offsets_are_done(acked: list[int], settled: bool) -> None:
    book, _, (messages,) = book_with(3)
    book.ack_partition("orders", 0, [messages[o] for o in acked])
    assert book.settle(messages) is settled


def test_a_settled_batch_lets_its_originals_go() -> None:
    book, _, (messages,) = book_with(2)
    book.reject(messages[0])
    book.redelivered(messages[0])
    assert book.superseded == 1
    book.ack_partition("orders", 0, [Message._make(messages[0]), messages[1]])
    assert book.settle(messages)
    assert book.superseded == 0


@pytest.mark.parametrize(
    ("acked", "rejected", "back"),
    [
        ([], None, [0, 1, 2, 3]),
        ([0, 2], None, [1, 3]),
        ([0], 2, [1, 3]),
        ([0, 1, 2, 3], None, []),
    ],
)
def test_a_leaving_reader_hands_back_what_is_neither_done_nor_held(
    acked: list[int], rejected: int | None, back: list[int]
) -> None:
    book, _, (messages,) = book_with(4)
    book.ack([messages[o] for o in acked])
    if rejected is not None:
        book.reject(messages[rejected])
    assert book.take_back(messages) == [messages[o] for o in back]


def test_partitions_that_moved_away_are_forgotten_with_what_they_held() -> None:
    book, redeliveries, delivered = book_with(2, partitions=2)
    book.reject(delivered[0][0])
    book.reject(delivered[1][0])
    redeliveries.failed(delivered[0][1], ErrorPolicy(), rejected=False)
    book.forget({("orders", 0)})
    assert set(book.trackers()) == {("orders", 1)}
    assert not book.holds(delivered[0][0]) and book.holds(delivered[1][0])
    assert not redeliveries.attempts
    assert book.take_back(delivered[0]) == []
    assert book.settle(delivered[0])
