"""Key-hash partitioning shared by every transport: the same key lands on the same partition everywhere.

The hash is Kafka's default partitioner (murmur2 of the key bytes, sign bit cleared, modulo the partition
count), so a key sent through ``memory://`` and through ``kafka://`` (or a Java producer) picks the same
partition. Messages without a key go round-robin: `RoundRobin` keeps a transport's turns per topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from itertools import cycle, islice
from typing import Any

from aiokafka.partitioner import murmur2  # type: ignore[import-untyped,unused-ignore]

from ..errors import ConfigurationError

__all__ = ["RoundRobin", "key_bytes", "partition_for"]


def key_bytes(key: Any) -> bytes:
    """The bytes a key hashes as: bytes as is, str as UTF-8, anything else as canonical compact JSON."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytearray | memoryview):
        return bytes(key)
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str).encode()


@lru_cache(maxsize=65_536)
def _positive_murmur2(data: bytes) -> int:
    """murmur2 with the sign bit cleared (Kafka's ``toPositive``); cached, as it is pure Python."""
    return int(murmur2(data)) & 0x7FFFFFFF


def partition_for(key: Any, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, as Kafka's default partitioner picks it."""
    if key is None:
        raise ConfigurationError("partition_for() needs a key: messages without a key are sent round-robin")
    if partitions < 1:
        raise ConfigurationError(f"partition_for() needs at least one partition, got {partitions}")
    return _positive_murmur2(key_bytes(key)) % partitions


class RoundRobin:
    """The partitions of a transport's keyless messages: each topic's in turn, across calls."""

    __slots__ = ("_turns",)

    def __init__(self) -> None:
        self._turns: dict[str, int] = {}
        """Per topic, how many keyless messages were given a partition."""

    def next(self, topic: str, partitions: int) -> int:
        """The partition of the next keyless message of ``topic``."""
        turn = self._turns.get(topic, 0)
        self._turns[topic] = turn + 1
        return turn % partitions

    def turns(self, topic: str, n: int, partitions: int) -> Iterator[int]:
        """The partitions of the next ``n`` keyless messages of ``topic``, in order."""
        turn = self._turns.get(topic, 0)
        self._turns[topic] = turn + n
        return islice(cycle(range(partitions)), turn % partitions, turn % partitions + n)
