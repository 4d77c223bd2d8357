"""A topic's batching producer: buffered values and records are stored in order, once flushed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from rxstream import App
from rxstream._producer import SEND_BATCH
from rxstream.transport.memory import MemoryTransport


async def test_buffered_values_and_keyed_records_are_stored_in_the_order_they_were_queued() -> None:
    app = App("producer", broker=f"memory://producer-{uuid.uuid4().hex[:8]}")
    topic = app.topic("out", partitions=1)
    async with app:
        assert topic.buffer_nowait(0)
        assert topic.buffer_nowait(1)
        await topic.send_buffered(2, key="k")  # the buffer turns into (key, value, ...) records
        assert not topic.buffer_nowait(3)  # a keyed buffer is only appended to by send_buffered
        await topic.send_buffered(3)
        await topic.batching.flush()
        transport = app.transport
        assert isinstance(transport, MemoryTransport)
        log = transport.broker.existing_topic("out").partition(0).log
        assert [(row[4], row[5]) for row in log] == [(None, 0), (None, 1), ("k", 2), (None, 3)]


async def test_a_value_queued_before_the_transport_exists_waits_for_send_buffered() -> None:
    app = App("producer-early", broker=f"memory://producer-{uuid.uuid4().hex[:8]}")
    topic = app.topic("out", partitions=1)
    assert not topic.buffer_nowait(0)
    await topic.send_buffered(0)
    await topic.batching.flush()
    assert await app.transport.end_offsets("out") == {("out", 0): 1}
    await app.transport.stop()


async def test_a_full_buffer_waits_for_the_batch_in_flight_not_for_its_own_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = App("producer-full", broker=f"memory://producer-{uuid.uuid4().hex[:8]}")
    topic = app.topic("out", partitions=1)
    async with app:
        transport = app.transport
        assert isinstance(transport, MemoryTransport)
        gates = [asyncio.Event(), asyncio.Event()]  # the first two batches are held until let through
        batches: list[int] = []
        send_values = transport.send_values

        async def held(name: str, values: Sequence[Any]) -> None:
            batches.append(len(values))
            if len(batches) <= len(gates):
                await gates[len(batches) - 1].wait()
            await send_values(name, values)

        monkeypatch.setattr(transport, "send_values", held)
        try:
            await asyncio.wait_for(_fill(topic, 0, SEND_BATCH), 5)  # full: the sender takes it as batch one
            assert batches == [SEND_BATCH]
            second = asyncio.ensure_future(_fill(topic, SEND_BATCH, 2 * SEND_BATCH))
            await asyncio.sleep(0.05)
            assert not second.done()  # full again while the first batch is on its way
            gates[0].set()
            await asyncio.wait_for(second, 5)  # the sender took it as the second batch, still held
            assert batches == [SEND_BATCH, SEND_BATCH]
            assert await transport.end_offsets("out") == {("out", 0): SEND_BATCH}
            gates[1].set()
            await topic.batching.flush()
            log = transport.broker.existing_topic("out").partition(0).log
            assert [row[5] for row in log] == list(range(2 * SEND_BATCH))
        finally:  # let held batches through, so the app can stop whatever happened
            for gate in gates:
                gate.set()


async def _fill(topic: Any, start: int, stop: int) -> None:
    for i in range(start, stop):
        await topic.send_buffered(i)
