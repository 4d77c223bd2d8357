"""An app for worker-process tests, configured by environment variables (run with ``rxstream worker -A``).

``RXSTREAM_TEST_APP`` (app id and consumer group), ``RXSTREAM_TEST_SOURCE`` (topic read),
``RXSTREAM_TEST_RESULTS`` (topic each processed event is recorded to), ``RXSTREAM_TEST_WORKER`` (this
process's label), ``RXSTREAM_TEST_PARTITIONS`` (4), ``RXSTREAM_TEST_COMMIT_INTERVAL`` (seconds, 0.5) and
``RXSTREAM_TEST_DELAY`` (seconds of work per event, 0). Every processed event becomes one JSON record
``{"w": worker, "p": partition, "o": offset}`` in the results topic (through the agent's sink, so the app's
rule "outputs are stored before the input's offset is committed" is what the tests observe).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import rxstream

APP_ID = os.environ.get("RXSTREAM_TEST_APP", "rxstream-test-worker")
WORKER = os.environ.get("RXSTREAM_TEST_WORKER", str(os.getpid()))
DELAY = float(os.environ.get("RXSTREAM_TEST_DELAY", "0"))
PARTITIONS = int(os.environ.get("RXSTREAM_TEST_PARTITIONS", "4"))

app = rxstream.App(APP_ID, commit_interval=float(os.environ.get("RXSTREAM_TEST_COMMIT_INTERVAL", "0.5")))
source = app.topic(os.environ.get("RXSTREAM_TEST_SOURCE", f"{APP_ID}-source"), partitions=PARTITIONS)
results = app.topic(os.environ.get("RXSTREAM_TEST_RESULTS", f"{APP_ID}-results"), partitions=1)


@app.agent(source, sink=[results])
async def record(stream: rxstream.Stream[Any]) -> AsyncIterator[dict[str, Any]]:
    """Record which worker processed which partition and offset."""
    async for event in stream.events():
        message = event.message
        assert message is not None
        if DELAY:
            await asyncio.sleep(DELAY)
        yield {"w": WORKER, "p": message.partition, "o": message.offset}
