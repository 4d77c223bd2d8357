"""Transports: the partitioned logs rxstream runs on, chosen by URL scheme (``memory://``, ``kafka://``)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from .base import (
    Consumer,
    RebalanceListener,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    Transport,
    TransportFactory,
)
from .memory import MemoryTransport

__all__ = [
    "Consumer",
    "MemoryTransport",
    "RebalanceListener",
    "RecordMetadata",
    "TopicPartition",
    "TopicSpec",
    "Transport",
    "TransportFactory",
    "get_transport",
]

SCHEMES = ("memory", "kafka")


def get_transport(url: str, **options: Any) -> Transport:
    """The transport for ``url``: ``memory://[name]`` in-process, ``kafka://host:port[;host2:port2]`` Kafka.

    Example::

        transport = get_transport("memory://")
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "memory":
        options.pop("credentials", None)
        return MemoryTransport(url, **options)
    if scheme == "kafka":
        # imported here: aiokafka's client machinery loads only for apps that use Kafka
        from .kafka import KafkaTransport

        transport: Transport = KafkaTransport(url, **options)
        return transport
    supported = ", ".join(f"{name}://" for name in SCHEMES)
    raise ConfigurationError(f"unsupported transport URL {url!r}: the supported schemes are {supported}")
