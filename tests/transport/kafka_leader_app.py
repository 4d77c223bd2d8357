"""A worker-process app whose only work is a leader-only timer (run with ``rxstream worker -A``).

``RXSTREAM_TEST_APP`` (app id and group), ``RXSTREAM_TEST_RESULTS`` (the one-partition topic each tick is
recorded to) and ``RXSTREAM_TEST_WORKER`` (this process's label). Every 0.1 s the leader, and only it,
records ``{"w": worker, "p": 0, "o": tick number}``.
"""

from __future__ import annotations

import itertools
import os

import rxstream

APP_ID = os.environ.get("RXSTREAM_TEST_APP", "rxstream-test-leader")
WORKER = os.environ.get("RXSTREAM_TEST_WORKER", str(os.getpid()))

app = rxstream.App(APP_ID, session_timeout=6.0, heartbeat_interval=0.5)
results = app.topic(os.environ.get("RXSTREAM_TEST_RESULTS", f"{APP_ID}-results"), partitions=1)
ticks = itertools.count()


@app.timer(0.1, on_leader=True)
async def lead() -> None:
    """Record that this worker led at this tick."""
    await results.send(value={"w": WORKER, "p": 0, "o": next(ticks)})
