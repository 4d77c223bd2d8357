"""A broker outage, end to end with worker processes: within broker_availability_timeout the worker waits
and processes again; past it, the worker exits non-zero; SIGTERM meanwhile exits without a traceback; and
the log holds a few summarised lines, not a flood."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

from rxstream.transport import TopicSpec
from rxstream.transport.kafka import KafkaTransport
from tests.kafka_broker import RestartableBroker

from .workers import Worker, send, until_count

OUTAGE = 8.0  # seconds the broker is away: past the hasty worker's timeout, within the patient one's
HASTY_TIMEOUT = 3.0


async def test_an_outage_is_waited_out_within_the_timeout_and_ends_the_worker_past_it(
    restartable_broker: RestartableBroker, tmp_path: Path
) -> None:
    broker = restartable_broker
    started = await asyncio.to_thread(broker.start)
    url = f"kafka://{broker.bootstrap}"
    s = uuid.uuid4().hex[:8]
    source = f"rel-src-{s}"
    labels = ("patient", "hasty", "terminated")
    results = {label: f"rel-{label}-{s}" for label in labels}
    admin = KafkaTransport(url)
    await admin.start()
    await admin.create_topics([TopicSpec(source, 2), *(TopicSpec(name, 1) for name in results.values())])
    await admin.stop()
    timeouts = {"patient": "60", "hasty": str(HASTY_TIMEOUT), "terminated": "60"}
    workers = {
        label: Worker(
            label,
            url,
            tmp_path,
            app=f"rel-{label}-{s}",
            source=source,
            results=results[label],
            availability=timeouts[label],
        )
        for label in labels
    }
    try:
        await send(url, source, range(10))
        for label in labels:
            await until_count(url, results[label], 10, 60)
        await asyncio.to_thread(broker.stop)
        away = time.monotonic()
        await asyncio.sleep(1)
        workers["terminated"].proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(OUTAGE - (time.monotonic() - away))
        restarted = await asyncio.to_thread(broker.start)
        outage = time.monotonic() - away
        hasty = await workers["hasty"].exit_code(40)
        terminated = await workers["terminated"].exit_code(40)
        await send(url, source, range(10, 20))
        await until_count(url, results["patient"], 20, 60)
        assert workers["patient"].proc.poll() is None
        workers["patient"].proc.send_signal(signal.SIGTERM)
        patient = await workers["patient"].exit_code(30)
    finally:
        for worker in workers.values():
            worker.close()
    logs = {label: worker.log() for label, worker in workers.items()}
    flood = sum(" aiokafka" in line for line in logs["patient"].splitlines())
    print(
        f"broker start {started:.1f}s, away {outage:.1f}s (restart {restarted:.1f}s); exits: hasty {hasty}, "
        f"terminated {terminated}, patient {patient}; aiokafka lines of the patient worker: {flood}"
    )
    assert hasty == 1 and "broker_availability_timeout" in logs["hasty"]
    assert terminated != 0 or "stopped" in logs["terminated"]
    assert patient == 0
    for label, text in logs.items():
        assert "Traceback" not in text, label
    assert flood < 40
