"""Events and acknowledgment: automatic acks on the next request, noack, filter, crashes, reject."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from rxstream import Event, Message, Stream, current_event
from rxstream.offsets import OffsetTracker


class Log:
    """A partition's acknowledger backed by the real offset bookkeeping."""

    def __init__(self, n: int) -> None:
        self.tracker = OffsetTracker()
        self.tracker.delivered(0, n - 1)
        self.acked: list[int] = []
        self.rejected: list[int] = []

    def ack(self, refs: Sequence[Any]) -> None:
        for message in refs:
            self.acked.append(message.offset)
            self.tracker.ack(message.offset)

    def reject(self, ref: Any) -> None:
        self.rejected.append(ref.offset)

    def events(self, n: int) -> list[Event]:
        messages = [Message("orders", 0, i, 1000.0 + i, key=f"k{i}", value=i) for i in range(n)]
        return [Event(m.key, m.value, {"h": b"1"}, m, m.timestamp, acker=self) for m in messages]


async def test_an_event_is_acked_when_the_consumer_asks_for_the_next_value() -> None:
    log = Log(3)
    stream = Stream.from_iterable(log.events(3))
    iterator = aiter(stream)
    assert await anext(iterator) == 0
    assert log.acked == []
    assert await anext(iterator) == 1
    assert await anext(iterator) == 2
    with pytest.raises(StopAsyncIteration):
        await anext(iterator)
    assert log.acked == [0, 1, 2]
    assert log.tracker.committable == 3


async def test_a_consumer_that_raises_leaves_its_event_unacknowledged() -> None:
    log = Log(10)
    stream = Stream.from_iterable(log.events(10)).map(lambda v: v * 2)
    with pytest.raises(RuntimeError):
        async for value in stream:
            if value == 10:
                raise RuntimeError("handler failed on offset 5")
    await stream.aclose()
    assert log.acked == [0, 1, 2, 3, 4]
    assert log.tracker.committable == 5


async def test_noack_leaves_acknowledgment_to_the_consumer() -> None:
    log = Log(4)
    async for event in Stream.from_iterable(log.events(4)).noack().events():
        if event.value % 2 == 0:
            event.ack()
            event.ack()  # idempotent
    assert log.acked == [0, 2]
    assert log.tracker.committable == 1  # the gap at offset 1 holds the commit back


async def test_filtered_out_events_are_acknowledged_at_once() -> None:
    log = Log(6)
    stream = Stream.from_iterable(log.events(6)).filter(lambda v: v >= 4)
    iterator = aiter(stream)
    assert await anext(iterator) == 4
    assert sorted(log.acked) == [0, 1, 2, 3]


async def test_filtered_out_events_between_kept_ones_are_acknowledged_with_the_kept_one_before_them() -> None:
    log = Log(12)
    iterator = aiter(Stream.from_iterable(log.events(12)).filter(lambda v: v % 3 == 0 and v < 10))
    assert await anext(iterator) == 0
    assert log.acked == [10, 11]  # after the last kept value: at once
    assert [await anext(iterator) for _ in range(3)] == [3, 6, 9]
    with pytest.raises(StopAsyncIteration):
        await anext(iterator)
    assert sorted(log.acked) == list(range(12))
    assert log.tracker.committable == 12


async def test_a_consumer_that_raises_after_a_filter_commits_up_to_the_value_it_failed_on() -> None:
    log = Log(10)
    stream = Stream.from_iterable(log.events(10)).filter(lambda v: v % 3 == 0)  # keeps 0, 3, 6, 9
    with pytest.raises(RuntimeError):
        async for value in stream:
            if value == 6:
                raise RuntimeError("handler failed on offset 6")
    await stream.aclose()
    assert sorted(log.acked) == [0, 1, 2, 3, 4, 5]  # 7 and 8 go again with 6, and are dropped again then
    assert log.tracker.committable == 6


async def test_acknowledging_a_filtered_event_out_of_order_releases_every_dropped_one() -> None:
    log = Log(10)
    events = Stream.from_iterable(log.events(10)).noack().filter(lambda v: v % 3 == 0).events()
    kept = {event.value: event async for event in events}
    assert log.acked == []
    kept[6].ack()
    assert sorted(log.acked) == [1, 2, 4, 5, 6, 7, 8]
    assert log.tracker.committable == 0
    kept[0].ack()
    assert log.tracker.committable == 3
    kept[3].ack()
    kept[9].ack()
    assert log.tracker.committable == 10


async def test_take_batches_are_acked_when_the_next_batch_is_requested() -> None:
    log = Log(5)
    iterator = aiter(Stream.from_iterable(log.events(5)).take(2))
    assert await anext(iterator) == [0, 1]
    assert log.acked == []
    assert await anext(iterator) == [2, 3]
    assert log.acked == [0, 1]


async def test_a_grouped_event_acknowledges_and_rejects_every_input_of_its_group() -> None:
    log = Log(6)
    events = Stream.from_iterable(log.events(6)).noack().take(3).events()
    grouped = [event async for event in events]
    assert [event.value for event in grouped] == [[0, 1, 2], [3, 4, 5]]
    assert grouped[0].message is not None and grouped[0].message.offset == 2  # metadata of the last input
    grouped[0].ack()
    grouped[1].reject()
    assert log.acked == [0, 1, 2]
    assert log.rejected == [3, 4, 5]


async def test_events_carry_key_headers_timestamp_and_message() -> None:
    log = Log(2)
    events = await Stream.from_iterable(log.events(2)).map(lambda v: v + 100).events().to_list()
    first = events[0]
    assert (first.key, first.value, first.headers, first.timestamp) == ("k0", 100, {"h": b"1"}, 1000.0)
    assert first.message is not None and (first.message.topic, first.message.offset) == ("orders", 0)
    assert "orders[0]@0" in repr(first)


async def test_reject_is_not_overridden_by_the_automatic_ack() -> None:
    log = Log(3)
    async for event in Stream.from_iterable(log.events(3)).events():
        if event.value == 1:
            event.reject()
    assert log.rejected == [1]
    assert log.acked == [0, 2]


async def test_items_use_the_message_key() -> None:
    log = Log(2)
    assert await Stream.from_iterable(log.events(2)).items().to_list() == [("k0", 0), ("k1", 1)]


async def test_stream_current_event_follows_the_consumer() -> None:
    log = Log(3)
    stream = Stream.from_iterable(log.events(3))
    async for value in stream:
        event = stream.current_event()
        assert event is not None and event.value == value and event.key == f"k{value}"


def test_current_event_outside_an_agent_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="outside an agent"):
        current_event()


def test_offset_tracker_commits_only_the_contiguous_acknowledged_prefix() -> None:
    tracker = OffsetTracker(committed=10)
    tracker.delivered(10, 14)
    tracker.ack(12)
    tracker.ack(11)
    assert tracker.committable == 10
    tracker.ack(10)
    assert tracker.committable == 13
    assert tracker.needs_commit
    tracker.ack(10)  # idempotent
    tracker.ack(99)  # never delivered: ignored
    tracker.ack(14)
    tracker.ack(13)
    assert tracker.committable == 15
    assert tracker.pending == 0
    tracker.mark_committed(15)
    assert not tracker.needs_commit


def test_offset_tracker_ack_many_matches_one_by_one_acks_in_any_order() -> None:
    rng = random.Random(7)
    for _ in range(200):
        start = rng.randrange(0, 5)
        many, single = OffsetTracker(committed=start), OffsetTracker(committed=start)
        many.delivered(start, start + 40)
        single.delivered(start, start + 40)
        for _ in range(6):
            chunk = sorted(rng.sample(range(start - 3, start + 45), rng.randrange(1, 12)))
            if rng.random() < 0.3:
                rng.shuffle(chunk)
            many.ack_many(chunk)
            for offset in chunk:
                single.ack(offset)
            assert many.committable == single.committable
            assert many.pending == single.pending
            assert all(many.is_acked(o) == single.is_acked(o) for o in range(start - 3, start + 45))


def test_offset_tracker_ack_many_steps_over_a_prefix_acknowledged_out_of_order() -> None:
    tracker = OffsetTracker(committed=0)
    tracker.delivered(0, 999)
    tracker.ack_many([o for o in range(1, 1000) if o % 3])  # what a filter drops, acked at once
    assert tracker.committable == 0
    tracker.ack_many(range(0, 1000, 3))  # what it kept, acked after processing
    assert tracker.committable == 1000
    assert tracker.pending == 0


def test_acknowledging_pairs_never_hands_an_acknowledger_a_run_that_falls_back() -> None:
    from rxstream._core.refs import ack_pairs

    log = Log(8)
    messages = [Message("orders", 0, i, 0.0, value=i) for i in range(8)]
    runs: list[list[int]] = []

    class Recorder:
        def ack(self, refs: Sequence[Any]) -> None:
            runs.append([m.offset for m in refs])
            log.ack(refs)

        def reject(self, ref: Any) -> None:
            raise AssertionError("not rejected")

    acker = Recorder()
    ack_pairs([(acker, messages[i]) for i in (5, 4, 7, 7, 2, 3)])  # a join's pairs, in window order
    assert runs == [[5], [4, 7], [7], [2, 3]]
    assert log.tracker.committable == 0 and not log.tracker.is_acked(6)


def test_an_early_acknowledgment_of_an_offset_not_yet_delivered_is_ignored() -> None:
    tracker = OffsetTracker(committed=3)
    tracker.delivered(3, 4)
    tracker.ack_many([3, 4])
    tracker.ack(5)  # a stale acknowledgment after a reassignment, say
    assert tracker.committable == 5
    tracker.delivered(5, 6)
    assert not tracker.is_acked(5)
