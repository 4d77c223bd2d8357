"""A topic's batching producer: buffered values and records are stored in order, once flushed."""

from __future__ import annotations

import uuid

from rxstream import App
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
