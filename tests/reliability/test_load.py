"""Load: events through a 3-agent pipeline on memory://, with the process's peak RSS reported and bounded.

50,000 events in CI; ``RXSTREAM_RELIABILITY_SCALE=20`` runs 1,000,000. The sender makes its events as it
sends them, so what the process holds is the app's: the log's bounds, not the event count, set it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCALE = max(1, int(os.environ.get("RXSTREAM_RELIABILITY_SCALE", "1")))
EVENTS = 50_000 * SCALE
PEAK_MIB = 120
"""The bound on peak RSS at any size (about 35 MiB of it is the interpreter with rxstream imported)."""

_PIPELINE = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import rxstream

    EVENTS = int(sys.argv[1])
    app = rxstream.App("load", broker="memory://load", topic_partitions=8)
    orders, priced, billed = app.topic("orders"), app.topic("priced"), app.topic("billed")
    totals = {"count": 0, "sum": 0}

    @app.agent(orders, sink=[priced])
    async def price(stream):
        async for order in stream:
            yield {"id": order["id"], "amount": order["qty"] * 3}

    @app.agent(priced, sink=[billed])
    async def bill(stream):
        async for item in stream:
            yield {"id": item["id"], "amount": item["amount"] + 1}

    @app.agent(billed)
    async def total(stream):
        async for item in stream:
            totals["count"] += 1
            totals["sum"] += item["amount"]

    def peak_mib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))

    async def main():
        async with app:
            began = time.perf_counter()
            for start in range(0, EVENTS, 1000):
                chunk = range(start, min(start + 1000, EVENTS))
                await orders.send_many([{"id": i, "qty": i % 7} for i in chunk])
            while totals["count"] < EVENTS:
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - began
        print(json.dumps({**totals, "seconds": seconds, "peak_mib": peak_mib()}))

    asyncio.run(main())
    """
)


def test_events_through_a_three_agent_pipeline_in_bounded_memory() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PIPELINE, str(EVENTS)],
        capture_output=True,
        text=True,
        timeout=120 + EVENTS / 2000,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    rate = EVENTS / figures["seconds"]
    print(
        f"load: {EVENTS:,} events through 3 agents in {figures['seconds']:.1f} s ({rate:,.0f}/s), "
        f"peak RSS {figures['peak_mib']:.0f} MiB"
    )
    assert figures["count"] == EVENTS  # every event went through all three agents, none twice
    assert figures["sum"] == sum((i % 7) * 3 + 1 for i in range(EVENTS))
    assert figures["peak_mib"] < PEAK_MIB, figures
