"""A worker app for outage tests (``rxstream worker -A tests.reliability.worker_app:app``), set by the
environment: ``RXSTREAM_REL_APP`` (app id and group), ``RXSTREAM_REL_SOURCE``, ``RXSTREAM_REL_RESULTS``
(each event read is written there as ``[partition, offset]``), ``RXSTREAM_REL_PARTITIONS`` (of the source,
2), ``RXSTREAM_REL_DELAY`` (seconds of work per event, 0) and ``RXSTREAM_REL_AVAILABILITY``
(broker_availability_timeout, seconds)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import rxstream

app = rxstream.App(
    os.environ.get("RXSTREAM_REL_APP", "rxstream-reliability"),
    commit_interval=0.3,
    broker_availability_timeout=float(os.environ.get("RXSTREAM_REL_AVAILABILITY", "60")),
)
DELAY = float(os.environ.get("RXSTREAM_REL_DELAY", "0"))
source = app.topic(
    os.environ.get("RXSTREAM_REL_SOURCE", "reliability-source"),
    partitions=int(os.environ.get("RXSTREAM_REL_PARTITIONS", "2")),
)
results = app.topic(os.environ.get("RXSTREAM_REL_RESULTS", "reliability-results"), partitions=1)


@app.agent(source, sink=[results])
async def copy(stream: rxstream.Stream[Any]) -> AsyncIterator[list[int]]:
    """Write where every event read was (partition, offset) to the results topic."""
    async for event in stream.events():
        message = event.message
        assert message is not None
        if DELAY:
            await asyncio.sleep(DELAY)
        yield [message.partition, message.offset]
