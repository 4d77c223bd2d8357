"""A worker app for outage tests (``rxstream worker -A tests.reliability.worker_app:app``), set by the
environment: ``RXSTREAM_REL_APP`` (app id and group), ``RXSTREAM_REL_SOURCE``, ``RXSTREAM_REL_RESULTS``
(each value read is written there) and ``RXSTREAM_REL_AVAILABILITY`` (broker_availability_timeout, s)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import rxstream

app = rxstream.App(
    os.environ.get("RXSTREAM_REL_APP", "rxstream-reliability"),
    commit_interval=0.3,
    broker_availability_timeout=float(os.environ.get("RXSTREAM_REL_AVAILABILITY", "60")),
)
source = app.topic(os.environ.get("RXSTREAM_REL_SOURCE", "reliability-source"), partitions=2)
results = app.topic(os.environ.get("RXSTREAM_REL_RESULTS", "reliability-results"), partitions=1)


@app.agent(source, sink=[results])
async def copy(stream: rxstream.Stream[Any]) -> AsyncIterator[Any]:
    """Write every value read to the results topic."""
    async for value in stream:
        yield value
