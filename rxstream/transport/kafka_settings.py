"""The Kafka transport's settings: the broker URL, aiokafka defaults, and what the transport sets itself."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from ..errors import ConfigurationError
from ..urls import redact

__all__ = [
    "CONSUMER_DEFAULTS",
    "GROUP_TIMINGS",
    "OFFSET_RESETS",
    "PRODUCER_DEFAULTS",
    "check_config",
    "group_timings",
    "parse_url",
]

DEFAULT_PORT: Final = 9092
HOST_PATTERN = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$")
OFFSET_RESETS: Final = ("earliest", "latest", "none")
"""Where a member starts in a partition its group never committed ("none": fail, Kafka only)."""

PRODUCER_DEFAULTS: Final[Mapping[str, Any]] = {
    "acks": "all",
    "enable_idempotence": False,
    "linger_ms": 5,
    "max_batch_size": 256 * 1024,
}
"""What `KafkaTransport` gives its producer unless ``producer_config`` says otherwise."""

CONSUMER_DEFAULTS: Final[Mapping[str, Any]] = {
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 1_000,
    "max_poll_interval_ms": 300_000,
}
"""What `KafkaConsumer` gives its aiokafka consumer unless ``consumer_config`` says otherwise."""

GROUP_TIMINGS: Final[Mapping[str, str]] = {
    "session_timeout": "session_timeout_ms",
    "heartbeat_interval": "heartbeat_interval_ms",
    "max_poll_interval": "max_poll_interval_ms",
}
"""The App's group timing settings (seconds) and the aiokafka consumer settings (ms) they become."""


CLIENT_OWN: Final = frozenset({"bootstrap_servers", "client_id", "loop"})
PRODUCER_OWN: Final = CLIENT_OWN | {"key_serializer", "value_serializer", "partitioner"}
CONSUMER_OWN: Final = CLIENT_OWN | {
    "group_id",
    "group_instance_id",
    "enable_auto_commit",
    "auto_offset_reset",
    "key_deserializer",
    "value_deserializer",
}


def check_config(name: str, config: Mapping[str, Any] | None, owned: frozenset[str]) -> None:
    """Refuse extra aiokafka settings that the transport sets itself (they come from its own arguments)."""
    clash = sorted(owned.intersection(config or ()))
    if clash:
        raise ConfigurationError(
            f"{name} may not set {', '.join(clash)}: KafkaTransport sets them (from the URL, client_id, "
            "the consumer's group and auto_offset_reset; keys and values are bytes, routed by rxstream)"
        )


def group_timings(owner: str, timings: Mapping[str, float]) -> dict[str, int]:
    """Check the group timings (seconds) and turn them into aiokafka consumer settings (milliseconds).

    Kafka expires a member that sent no heartbeat for ``session_timeout``, so heartbeats must come more often.
    """
    for name, value in timings.items():
        if name not in GROUP_TIMINGS:
            raise ConfigurationError(
                f"{owner}: unknown group timing {name!r}; expected one of {list(GROUP_TIMINGS)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigurationError(
                f"{owner}: {name} must be a positive number of seconds or a timedelta, got {value!r}"
            )
    session, heartbeat = timings.get("session_timeout"), timings.get("heartbeat_interval")
    if session is not None and heartbeat is not None and heartbeat >= session:
        raise ConfigurationError(
            f"{owner}: heartbeat_interval ({heartbeat} s) must be shorter than session_timeout "
            f"({session} s), "
            "or the group expires its members between heartbeats"
        )
    return {GROUP_TIMINGS[name]: round(value * 1000) for name, value in timings.items()}


def parse_url(url: str) -> list[str]:
    """``kafka://h1:p1;h2:p2`` (or ``,``) as aiokafka bootstrap servers; the port defaults to 9092.

    Credentials in the URL (``kafka://user:password@host``) are refused: a URL is shown in logs, errors and
    process listings, so they come from ``credentials=`` (App's ``broker_credentials``) instead.
    """

    def bad(reason: str) -> ConfigurationError:
        return ConfigurationError(
            f"invalid Kafka URL {redact(url)!r}: {reason}; expected kafka://host:port[;host2:port2]"
        )

    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "kafka":
        raise bad("the scheme must be kafka://")
    rest = rest.rstrip("/")
    if not rest:
        raise bad("no host")
    if "@" in rest:
        raise bad(
            "it carries credentials, which rxstream does not read from URLs; pass them as "
            "broker_credentials=SASLCredentials(user, password) (KafkaTransport: credentials=)"
        )
    servers = []
    for part in re.split(r"[;,]", rest):
        part = part.strip()
        host, port_s = part, None
        if part.startswith("["):  # [ipv6]:port
            close = part.find("]") + 1
            host, port_s = part[:close], part[close:].removeprefix(":") if part[close:] else None
        elif ":" in part:
            host, _, port_s = part.rpartition(":")
        if not host or not HOST_PATTERN.match(host):
            raise bad(f"bad host {host!r}")
        if port_s is not None and not (port_s.isdigit() and 0 < int(port_s) < 65536):
            raise bad(f"bad port {port_s!r} for host {host!r}")
        servers.append(f"{host}:{port_s or DEFAULT_PORT}")
    return servers
