"""rxstream's rows, partitions, headers and topic specs as aiokafka and the broker take them, and back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from aiokafka import TopicPartition as _KafkaTP  # type: ignore[import-untyped,unused-ignore]

from ..errors import EncodeError
from ..events import Headers, Row
from .base import TopicPartition, TopicSpec

__all__ = ["check_bytes", "from_kafka_tps", "kafka_headers", "row_of", "to_kafka_tp", "topic_config"]

_BYTES: Final = (bytes, bytearray, memoryview)


def to_kafka_tp(tp: TopicPartition) -> Any:
    """rxstream's TopicPartition as aiokafka's (aiokafka checks the type)."""
    return _KafkaTP(tp.topic, tp.partition)


def from_kafka_tps(tps: Iterable[Any]) -> list[TopicPartition]:
    """aiokafka partitions as rxstream's, sorted so listeners see a stable order."""
    return sorted(TopicPartition(tp.topic, tp.partition) for tp in tps)


def check_bytes(what: str, data: Any, topic: str) -> None:
    """Fail early and clearly when a non-bytes key or value reaches the Kafka transport."""
    if data is not None and not isinstance(data, _BYTES):
        raise EncodeError(
            f"the Kafka transport sends bytes, but the {what} for topic {topic!r} is a "
            f"{type(data).__name__}: encode it first (the channel layer does when needs_bytes is true)"
        )


def kafka_headers(headers: Headers | None, topic: str) -> list[tuple[str, bytes]]:
    """rxstream headers as Kafka's list of (name, bytes); str values are sent as UTF-8."""
    if not headers:
        return []
    out = []
    for name, value in headers.items():
        if isinstance(value, str):
            out.append((name, value.encode()))
        elif isinstance(value, _BYTES):
            out.append((name, bytes(value)))
        else:
            raise EncodeError(
                f"header {name!r} for topic {topic!r} is a {type(value).__name__}: "
                "header values must be bytes or str"
            )
    return out


def row_of(record: Any) -> Row:
    """An aiokafka ConsumerRecord as a row (raw bytes kept as key/value and raw_key/raw_value).

    Kafka allows repeated header names; the last one wins here. A null header value becomes b"".
    """
    key, value, headers = record.key, record.value, record.headers
    return (
        record.topic,
        record.partition,
        record.offset,
        record.timestamp / 1000,
        key,
        value,
        {name: b"" if data is None else data for name, data in headers} if headers else None,
        key,
        value,
    )


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """The broker-side topic config of ``spec``: its extra config plus retention.ms and cleanup.policy."""
    config = dict(spec.config)
    if spec.retention is not None:
        config["retention.ms"] = str(round(spec.retention * 1000))
    if spec.compacting:
        config["cleanup.policy"] = "compact"
    return config
