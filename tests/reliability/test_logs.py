"""Repeated log records (a client retrying a lost broker): a first line, then one per interval."""

from __future__ import annotations

import logging

from rxstream.logs import RepeatSummary, summarise_repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(
    msg: str, *args: object, level: int = logging.ERROR, name: str = "aiokafka.conn"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_flood_is_one_line_then_one_summary_per_interval() -> None:
    clock = Clock()
    summary = RepeatSummary(interval=30, clock=clock)
    passed = []
    for i in range(90_000):  # a minute of an outage as aiokafka logs it
        clock.now = i * 60 / 90_000
        record = _record("Unable connect to node with id %s: %s", 1, f"[Errno 111] attempt {i}")
        if summary.filter(record):
            passed.append(record.getMessage())
    assert len(passed) == 2
    assert passed[0] == "Unable connect to node with id 1: [Errno 111] attempt 0"
    assert passed[1].endswith("[44999 more like this in the last 30s]")


def test_kinds_are_counted_apart_and_a_quiet_kind_starts_over() -> None:
    clock = Clock()
    summary = RepeatSummary(interval=10, clock=clock)
    assert summary.filter(_record("Unable connect to node %s", 1))
    assert summary.filter(_record("Unable to update metadata from %s", [1]))
    assert summary.filter(_record("Unable connect to node %s", 1, level=logging.WARNING))
    assert not summary.filter(_record("Unable connect to node %s", 2))
    clock.now = 100.0  # the broker came back long ago; a new outage logs its first line again
    again = _record("Unable connect to node %s", 1)
    assert (
        summary.filter(again)
        and again.getMessage() == "Unable connect to node 1 [1 more like this in the last 100s]"
    )
    assert not summary.filter(_record("Unable connect to node %s", 1))


def test_info_and_debug_records_are_never_held_back() -> None:
    summary = RepeatSummary(interval=10, clock=Clock())
    assert all(summary.filter(_record("Joined group %s", "g", level=logging.INFO)) for _ in range(5))


def test_the_kafka_transport_installs_it_on_aiokafka_loggers() -> None:
    from rxstream.transport.kafka import KafkaTransport

    KafkaTransport("kafka://127.0.0.1:9092")
    summary = summarise_repeats("aiokafka")
    for name in (
        "aiokafka",
        "aiokafka.conn",
        "aiokafka.consumer.group_coordinator",
        "aiokafka.producer.sender",
    ):
        assert logging.getLogger(name).filters.count(summary) == 1
