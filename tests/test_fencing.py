"""Fencing beyond the agent's loop: the operator chain, grouped values, every consumer, the wake-up,
per-app bookkeeping, redeliveries and what readers hold, for partitions paused or revoked by a rebalance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import rxstream
from rxstream import App, Stream
from rxstream._core.fence import cut
from rxstream._core.redelivery import ErrorPolicy
from rxstream.events import Message, Row
from rxstream.subscriptions import Subscription
from tests.test_app import eventually, memory_url

TOPIC = "orders"


def subscription() -> Subscription:
    """A subscription of its own (no app): rejected messages are redelivered after 20 ms."""

    async def dead_letter(message: Message, exc: BaseException, what: str) -> None:
        raise AssertionError(f"nothing is dead-lettered here: {message} {what}")

    def crash(exc: BaseException) -> None:
        raise AssertionError(f"nothing crashes here: {exc!r}")

    policy = ErrorPolicy.make("skip", None, 3, backoff=0.02)
    return Subscription(TOPIC, lambda _: policy, dead_letter=dead_letter, crash=crash)


def rows(partition: int, offsets: range) -> list[Row]:
    return [Message(TOPIC, partition, offset, 0.0, None, (partition, offset)) for offset in offsets]


def deliver(sub: Subscription, partition: int, offsets: range) -> None:
    sub.deliver(TOPIC, partition, rows(partition, offsets), offsets[0], offsets[-1])


def where(partition: int) -> list[tuple[str, int]]:
    return [(TOPIC, partition)]


def pause(sub: Subscription, partition: int, settled: asyncio.Future[None]) -> set[Any]:
    """Pause a partition as a rebalance's revocation does; ``settled`` is resolved once it is decided."""
    return sub.pause(where(partition), settled)


def committable(sub: Subscription, partition: int) -> int:
    return sub.trackers()[TOPIC, partition].committable


async def settle(settled: asyncio.Future[None]) -> None:
    settled.set_result(None)
    for _ in range(3):
        await asyncio.sleep(0)


async def consume(stream: AsyncIterator[Any], into: list[Any]) -> None:
    async for value in stream:
        into.append(value)


# ------------------------------------------------------------ the operator chain


async def test_operators_upstream_of_the_consumer_never_run_on_a_paused_or_revoked_partition() -> None:
    sub = subscription()
    deliver(sub, 0, range(0, 4))
    deliver(sub, 1, range(0, 4))
    deliver(sub, 0, range(4, 8))
    settled = asyncio.get_running_loop().create_future()
    pause(sub, 0, settled)
    mapped: list[Any] = []

    def record(value: Any) -> Any:
        mapped.append(value)
        return value

    out: list[Any] = []
    task = asyncio.create_task(consume(sub.stream().map(record).filter(lambda v: True).__aiter__(), out))
    try:
        await eventually(lambda: len(out) == 4)
        assert [p for p, _ in mapped] == [1, 1, 1, 1]  # partition 1 goes on meanwhile
        sub.resume(where(0))
        await settle(settled)
        await eventually(lambda: len(out) == 12)
        assert [v for v in mapped if v[0] == 0] == [(0, o) for o in range(8)]  # in order once resumed
        deliver(sub, 0, range(8, 12))
        await eventually(lambda: len(out) == 16)
        settled = asyncio.get_running_loop().create_future()
        pause(sub, 0, settled)
        deliver(sub, 0, range(12, 16))
        await asyncio.sleep(0.02)
        sub.forget(where(0))
        await settle(settled)
        deliver(sub, 1, range(4, 8))
        await eventually(lambda: len(out) == 20)
        assert max(o for p, o in mapped if p == 0) == 11
    finally:
        task.cancel()


async def test_batches_pulled_ahead_into_an_async_operator_wait_for_the_rebalance() -> None:
    sub = subscription()
    sub.batch = 2  # one batch per two messages: several wait in the operator
    deliver(sub, 0, range(0, 8))
    release = asyncio.Event()
    mapped: list[Any] = []

    async def slow(value: Any) -> Any:
        mapped.append(value)
        await release.wait()
        return value

    out: list[Any] = []
    task = asyncio.create_task(consume(sub.stream().map(slow).__aiter__(), out))
    try:
        await eventually(lambda: len(mapped) == 1)  # the first batch is being mapped, more wait for it
        settled = asyncio.get_running_loop().create_future()
        pause(sub, 0, settled)
        release.set()
        await asyncio.sleep(0.05)
        assert mapped == [(0, 0), (0, 1)]  # the batch in hand finishes; the ones pulled ahead wait
        sub.forget(where(0))
        await settle(settled)
        await asyncio.sleep(0.05)
        assert mapped == [(0, 0), (0, 1)] and out == []  # revoked: dropped, the finished one too
    finally:
        task.cancel()


@pytest.mark.parametrize(
    "timed",
    [
        pytest.param(lambda s: s.take(100, within=0.05), id="take within"),
        pytest.param(lambda s: s.rate_limit(1, per=0.02, within=0.02), id="rate_limit"),
    ],
)
async def test_functions_after_an_operator_on_its_own_clock_never_run_on_a_revoked_partition(
    timed: Callable[[Stream[Any]], Stream[Any]],
) -> None:
    sub = subscription()
    deliver(sub, 0, range(0, 3))
    settled = asyncio.get_running_loop().create_future()
    before: list[Any] = []
    after: list[Any] = []

    def enter(value: Any) -> Any:
        before.append(value)
        if not settled.done():
            pause(sub, 0, settled)  # the rebalance begins once the batch is inside the chain
        return value

    stream = timed(sub.stream().map(enter)).map(after.append)
    task = asyncio.create_task(consume(stream.__aiter__(), []))
    try:
        await asyncio.sleep(0.15)  # the operator passes its values on meanwhile
        sub.forget(where(0))
        await settle(settled)
        await asyncio.sleep(0.05)
        assert len(before) == 3 and after == []
    finally:
        task.cancel()


# ------------------------------------------------------------ values made of several inputs


async def test_a_mixed_value_is_processed_and_acknowledges_only_its_live_inputs() -> None:
    sub = subscription()
    deliver(sub, 1, range(0, 3))
    deliver(sub, 0, range(0, 3))
    deliver(sub, 2, range(0, 3))
    deliver(sub, 0, range(3, 6))
    iterator = sub.stream().take(3).take(2).__aiter__()  # [[1, 1, 1], [0, 0, 0]], [[2, 2, 2], [0, 0, 0]]
    first = await iterator.__anext__()
    assert [[p for p, _ in group] for group in first] == [[1, 1, 1], [0, 0, 0]]
    settled = asyncio.get_running_loop().create_future()
    pause(sub, 0, settled)
    pause(sub, 2, settled)
    second = asyncio.create_task(iterator.__anext__())
    await asyncio.sleep(0.02)
    assert not second.done()  # a group with a paused input waits
    assert committable(sub, 1) == 3  # the first group's inputs are acknowledged, a paused one's too
    sub.forget(where(0))
    sub.resume(where(2))
    await settle(settled)
    mixed = await asyncio.wait_for(second, 1)
    assert [[p for p, _ in group] for group in mixed] == [[2, 2, 2], [0, 0, 0]]  # still processed
    deliver(sub, 1, range(3, 4))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(iterator.__anext__())), 0.05)
    assert committable(sub, 2) == 3  # the mixed value acknowledged its live inputs
    assert (TOPIC, 0) not in sub.trackers()


async def test_a_group_of_only_revoked_inputs_is_not_handed_to_the_consumer() -> None:
    sub = subscription()
    deliver(sub, 1, range(0, 3))
    deliver(sub, 0, range(0, 3))
    deliver(sub, 1, range(3, 6))
    iterator = sub.stream().take(3).__aiter__()
    assert [p for p, _ in await iterator.__anext__()] == [1, 1, 1]
    await asyncio.sleep(0.01)  # the other groups are built and wait in the consumer's buffer
    settled = asyncio.get_running_loop().create_future()
    pause(sub, 0, settled)
    sub.forget(where(0))
    await settle(settled)
    assert [p for p, _ in await iterator.__anext__()] == [1, 1, 1]
    await iterator.aclose()  # type: ignore[attr-defined]


async def test_pipe_and_flat_map_into_a_stream_carry_their_inputs_leases() -> None:
    from reactivex import operators as ops

    for build in (
        lambda s: s.pipe(ops.map(lambda v: v)),
        lambda s: s.flat_map(lambda v: Stream.from_iterable([v])),
    ):
        sub = subscription()
        deliver(sub, 1, range(0, 2))
        deliver(sub, 0, range(0, 2))
        deliver(sub, 1, range(2, 4))
        iterator = build(sub.stream()).__aiter__()
        assert (await iterator.__anext__())[0] == 1
        await asyncio.sleep(0.01)
        settled = asyncio.get_running_loop().create_future()
        pause(sub, 0, settled)
        sub.forget(where(0))
        await settle(settled)
        rest = [(await iterator.__anext__())[0] for _ in range(3)]
        assert rest == [1, 1, 1]
        await iterator.aclose()


# ------------------------------------------------------------ consumers other than async for


def held_in_a_timed_take(sub: Subscription) -> Stream[Any]:
    """Partition 0's values inside a take closed by time: past the source when the rebalance begins."""
    deliver(sub, 0, range(0, 3))
    return sub.stream().take(100, within=0.05)


async def pause_and_forget_while_held(sub: Subscription, before: Callable[[], None]) -> None:
    await asyncio.sleep(0.01)
    settled = asyncio.get_running_loop().create_future()
    pause(sub, 0, settled)
    await asyncio.sleep(0.08)  # the take closed its list meanwhile
    before()
    sub.forget(where(0))
    await settle(settled)


async def test_to_list_holds_a_paused_partitions_values_back_and_drops_revoked_ones() -> None:
    sub = subscription()
    stream = held_in_a_timed_take(sub)
    task = asyncio.create_task(stream.to_list(1))
    await pause_and_forget_while_held(sub, lambda: None)
    assert not task.done()
    deliver(sub, 1, range(0, 2))
    assert [[p for p, _ in group] for group in await asyncio.wait_for(task, 1)] == [[1, 1]]


async def test_subscribe_callbacks_wait_for_a_paused_partition_and_never_see_a_revoked_one() -> None:
    sub = subscription()
    seen: list[Any] = []
    disposable = held_in_a_timed_take(sub).subscribe(seen.append)
    try:

        def nothing_yet() -> None:
            assert seen == []

        await pause_and_forget_while_held(sub, nothing_yet)
        deliver(sub, 1, range(0, 2))
        await eventually(lambda: len(seen) == 1)
        assert [p for p, _ in seen[0]] == [1, 1]
    finally:
        disposable.dispose()


async def test_a_paused_partitions_values_reach_subscribe_once_it_is_resumed() -> None:
    sub = subscription()
    seen: list[Any] = []
    disposable = held_in_a_timed_take(sub).subscribe(seen.append)
    try:
        await asyncio.sleep(0.01)
        settled = asyncio.get_running_loop().create_future()
        pause(sub, 0, settled)
        await asyncio.sleep(0.08)
        assert seen == []
        sub.resume(where(0))
        await settle(settled)
        assert [[p for p, _ in group] for group in seen] == [[0, 0, 0]]
        assert committable(sub, 0) == 3
    finally:
        disposable.dispose()


class Recorder:
    """A channel stand-in for ``through``: records what is sent; reading it back waits for ever."""

    def __init__(self, on_send: Callable[[], None]) -> None:
        self.sent: list[Any] = []
        self._on_send = on_send

    async def send(self, *, key: Any = None, value: Any = None) -> None:
        self.sent.append(value)
        self._on_send()

    def stream(self) -> Stream[Any]:
        async def nothing() -> AsyncIterator[Any]:
            await asyncio.Event().wait()
            yield None

        return Stream.from_async_iterable(nothing())


async def test_through_sends_nothing_of_a_paused_or_revoked_partition() -> None:
    sub = subscription()
    deliver(sub, 0, range(0, 3))
    settled = asyncio.get_running_loop().create_future()
    channel = Recorder(lambda: pause(sub, 0, settled))  # the rebalance begins during the first send
    disposable = sub.stream().rate_limit(1, per=0.02, within=0.02).through(channel).subscribe()
    try:
        await eventually(lambda: len(channel.sent) == 1)
        await asyncio.sleep(0.1)  # the rate limit releases the other two meanwhile
        assert channel.sent == [(0, 0)]
        sub.forget(where(0))
        await settle(settled)
        deliver(sub, 1, range(0, 1))
        await eventually(lambda: len(channel.sent) == 2)
        assert channel.sent == [(0, 0), (1, 0)]
    finally:
        disposable.dispose()


async def test_a_tee_hands_its_targets_nothing_of_a_paused_or_revoked_partition() -> None:
    sub = subscription()
    deliver(sub, 0, range(0, 4))
    teed: list[Any] = []
    iterator = sub.stream().tee(teed.append).__aiter__()
    assert await iterator.__anext__() == (0, 0)
    settled = asyncio.get_running_loop().create_future()
    cut(pause(sub, 0, settled))
    step = asyncio.create_task(iterator.__anext__())
    await asyncio.sleep(0.02)
    assert teed == [(0, 0)] and not step.done()
    sub.resume(where(0))
    await settle(settled)
    assert await asyncio.wait_for(step, 1) == (0, 1) and teed == [(0, 0), (0, 1)]
    settled = asyncio.get_running_loop().create_future()
    cut(pause(sub, 0, settled))
    step = asyncio.create_task(iterator.__anext__())
    await asyncio.sleep(0.02)
    sub.forget(where(0))
    await settle(settled)
    await asyncio.sleep(0.02)
    assert teed == [(0, 0), (0, 1)] and not step.done()
    step.cancel()


# ------------------------------------------------------------ waking up, per-app bookkeeping


async def test_a_consumer_waiting_for_a_paused_partition_arms_no_timer_and_wakes_when_it_settles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sub = subscription()
    deliver(sub, 0, range(0, 2))
    iterator = sub.stream().__aiter__()
    assert await iterator.__anext__() == (0, 0)
    settled = asyncio.get_running_loop().create_future()
    cut(pause(sub, 0, settled))  # as the consumer group's revocation does
    step = asyncio.create_task(iterator.__anext__())
    loop = asyncio.get_running_loop()
    later = loop.create_future()
    loop.call_later(0.05, later.set_result, None)
    armed: list[Any] = []
    monkeypatch.setattr(loop, "call_later", lambda *args: armed.append(args))
    await later
    assert not step.done() and armed == []  # waiting costs nothing: no polling timer
    sub.resume(where(0))
    settled.set_result(None)
    for _ in range(3):  # woken by the future at once
        await asyncio.sleep(0)
    assert step.done() and step.result() == (0, 1)
    await iterator.aclose()  # type: ignore[attr-defined]


async def test_each_app_sees_only_the_runs_of_its_own_leases() -> None:
    apps, started, release = [], [], asyncio.Event()
    for name in ("one", "two"):
        app = App(name, broker=memory_url())
        topic = app.topic("keys", partitions=1)
        began = asyncio.Event()

        @app.agent(topic)
        async def hold(stream: rxstream.Stream[str], began: asyncio.Event = began) -> None:
            async for _ in stream:
                began.set()
                await release.wait()

        apps.append((app, topic))
        started.append(began)
    try:
        for (app, topic), began in zip(apps, started, strict=True):
            await app.start()
            await topic.send(value="x")
            await asyncio.wait_for(began.wait(), 5)
        for app, _ in apps:
            (subscription,) = [a.subscription() for a in app.agents.values()]
            (lease,) = subscription._acks.values()
            assert len(lease.runs) == 1  # its own agent's run, not the other app's
    finally:
        release.set()
        for app, _ in reversed(apps):
            await app.stop()


# ------------------------------------------------------------ redeliveries and what readers hold


async def test_redeliveries_due_are_cancelled_when_their_partition_is_forgotten_or_the_reader_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []
    call_later = loop.call_later

    def recording(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        timer = call_later(delay, callback, *args)
        timers.append(timer)
        return timer

    monkeypatch.setattr(loop, "call_later", recording)
    sub = subscription()
    deliver(sub, 0, range(0, 2))
    deliver(sub, 1, range(0, 2))
    sub.reject(rows(0, range(0, 1))[0])
    sub.reject(rows(1, range(0, 1))[0])
    assert len(timers) == 2
    sub.forget(where(0))
    assert timers[0].cancelled() and not timers[1].cancelled()
    sub.close(drain=False)
    assert timers[1].cancelled()
    await asyncio.sleep(0.05)
    assert sub.queued == 2 - 1  # partition 1's batch: no copy was queued after the close


async def test_forgetting_a_partition_drops_what_readers_hold_of_it() -> None:
    sub = subscription()
    deliver(sub, 0, range(5, 10))
    iterator = sub.stream().noack().__aiter__()
    assert await iterator.__anext__() == (0, 5)  # the reader holds offsets 5-9, none acknowledged
    settled = asyncio.get_running_loop().create_future()
    pause(sub, 0, settled)
    sub.forget(where(0))
    await settle(settled)
    (reader,) = sub._readers
    assert list(reader.outstanding) == []
    deliver(sub, 0, range(0, 10))  # back later, from an earlier commit of another worker
    await iterator.aclose()  # type: ignore[attr-defined]  # the reader leaves: it hands back nothing stale
    queued = [row[2] for batch in sub._queue for row in batch.refs or ()]
    assert queued == list(range(10))
