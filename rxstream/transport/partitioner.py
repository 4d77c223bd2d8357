"""Key-hash partitioning shared by every transport: the same key lands on the same partition everywhere.

The hash is Kafka's default partitioner (murmur2 of the key bytes, sign bit cleared, modulo the partition
count), so a key sent through ``memory://`` and through ``kafka://`` (or a Java producer) picks the same
partition. Keys without a key go round-robin, which needs per-topic state and stays in the transports.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aiokafka.partitioner import murmur2  # type: ignore[import-untyped,unused-ignore]

from ..errors import ConfigurationError

__all__ = ["key_bytes", "partition_for"]


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
