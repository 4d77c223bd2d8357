"""A worker app counting keys in a table, for the exact-state tests (``rxstream worker -A
tests.reliability.counting_app:app``), set by the environment: ``RXSTREAM_REL_APP`` (app id and group),
``RXSTREAM_REL_SOURCE``, ``RXSTREAM_REL_PARTITIONS`` (of the source) and ``RXSTREAM_REL_DELAY`` (seconds of
work per event). The table is ``counts``; its changelog is ``{app id}-counts-changelog``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import rxstream

app = rxstream.App(
    os.environ.get("RXSTREAM_REL_APP", "rxstream-counting"),
    commit_interval=0.3,
    session_timeout=6.0,  # the broker's smallest: a killed member's partitions move on sooner
)
DELAY = float(os.environ.get("RXSTREAM_REL_DELAY", "0"))
source = app.topic(
    os.environ.get("RXSTREAM_REL_SOURCE", "counting-source"),
    partitions=int(os.environ.get("RXSTREAM_REL_PARTITIONS", "2")),
)
counts = app.Table("counts", default=int)


@app.agent(source)
async def count(stream: rxstream.Stream[Any]) -> None:
    """Count every event of a key."""
    async for key, _ in stream.items():
        counts[key] += 1
        if DELAY:
            await asyncio.sleep(DELAY)
