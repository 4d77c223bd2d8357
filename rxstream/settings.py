"""An app's settings with their defaults, checked when the App is built; read them back as ``app.conf``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import tzinfo
from types import MappingProxyType
from typing import Any

from .codecs import CodecArg, get_codec
from .durations import Duration, seconds
from .errors import ConfigurationError
from .migration import FAUST_GUIDE, FAUST_RENAMED, FAUST_UNNEEDED
from .subscriptions import ErrorPolicy
from .transport.kafka_settings import group_timings, parse_url
from .transport.memory import MAX_PARTITION_BACKLOG, MAX_PARTITION_UNREAD
from .urls import redact

__all__ = ["PROCESSING_GUARANTEES", "Settings"]

PROCESSING_GUARANTEES = ("at_least_once", "exactly_once")
"""The values of ``processing_guarantee`` (Faust's names)."""


@dataclass(kw_only=True, eq=False)
class Settings:
    """What an App was given, durations in seconds (``timedelta`` accepted), checked when it is built.

    ``broker`` [memory://] and ``store`` [memory://] are URLs; ``value_serializer`` [json];
    ``topic_partitions`` [8] and ``topic_replicas`` [1] for topics declared without them; ``commit_interval``
    [2.8 s]; ``broker_credentials`` [None] (SASLCredentials or SSLCredentials, Kafka only);
    ``max_redeliveries`` [3] and ``on_error`` [dead_letter] are topic defaults; ``shutdown_timeout`` [10 s];
    ``revocation_timeout`` [10 s] is how long a rebalance waits for events of revoked partitions to finish;
    ``reply_topic`` [``{id}-replies``]; ``scheduler`` [None: the asyncio loop's clock] is the reactivex
    scheduler `timer` intervals are counted on (a ``reactivex.testing.TestScheduler`` drives timers on
    virtual time); ``broker_availability_timeout`` [60 s, Kafka] is how long the worker waits for an
    unreachable broker (sends wait as long) before it crashes and exits non-zero for its supervisor to
    restart it; ``max_partition_unread`` [10,000, memory://] is how many messages of a partition its
    slowest reader may not have fetched yet before senders wait (what bounds an embedded app's memory when
    an agent is slower than its senders); ``max_partition_backlog`` [1,000,000, memory://] is how many
    messages a partition holds beyond the slowest group's commit before senders wait (it must exceed what
    the app holds uncommitted).

    Rebalances: ``session_timeout`` [10 s], ``heartbeat_interval`` [1 s] and ``max_poll_interval`` [300 s]
    are the consumer group's timings (Kafka only); ``group_instance_id`` [None] makes this worker a static
    member of its group (Kafka only: restarted within ``session_timeout`` it takes its partitions back
    without a rebalance; give each worker its own); ``table_standby_replicas`` [0] keeps warm copies of the
    table partitions this worker does not own, so taking one over replays only the changelog's tail.

    ``processing_guarantee`` [at_least_once]: ``exactly_once`` commits what each source partition's events
    sent to sinks and tables together with their offsets, in one transaction (`rxstream.exactly_once`).

    As in Faust: ``version`` [1] names the group, changelogs, repartition, reply and agent topics by
    ``{id}-v{version}`` from 2 on (`app_id`); ``origin`` [None] is the module the app is defined in, and
    ``autodiscover`` [False] imports it and its submodules (True) or the listed modules before the worker
    starts, so agents declared there register; ``key_serializer`` [raw] is the key codec of topics declared
    without one; ``stream_buffer_maxsize`` [4096] is how many messages a topic's readers hold;
    ``timezone`` [UTC] is the default of ``@app.crontab``'s. ``ignored`` holds the Faust settings given that
    rxstream does not need (`FAUST_UNNEEDED`); Faust's names of rxstream's settings (`FAUST_RENAMED`) are
    taken too.
    """

    id: str
    broker: str = "memory://"
    store: str = "memory://"
    value_serializer: CodecArg = "json"
    topic_partitions: int = 8
    topic_replicas: int = 1
    commit_interval: Duration = 2.8
    broker_credentials: Any = None
    max_redeliveries: int = 3
    on_error: str = "dead_letter"
    shutdown_timeout: Duration = 10.0
    revocation_timeout: Duration = 10.0
    reply_topic: str | None = None
    scheduler: Any = None
    broker_availability_timeout: Duration = 60.0
    max_partition_backlog: int = MAX_PARTITION_BACKLOG
    max_partition_unread: int = MAX_PARTITION_UNREAD
    session_timeout: Duration = 10.0
    heartbeat_interval: Duration = 1.0
    max_poll_interval: Duration = 300.0
    group_instance_id: str | None = None
    table_standby_replicas: int = 0
    processing_guarantee: str = "at_least_once"
    version: int = 1
    origin: str | None = None
    autodiscover: bool | Sequence[str] = False
    key_serializer: CodecArg = "raw"
    stream_buffer_maxsize: int = 4096
    timezone: tzinfo | str | None = None
    ignored: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = f"App {self.id!r}"
        if not isinstance(self.id, str) or not self.id:
            raise ConfigurationError(f"App needs a non-empty string id, got {self.id!r}")
        broker = self.broker
        if not isinstance(broker, str) or "://" not in broker:
            shown = redact(broker) if isinstance(broker, str) else broker
            raise ConfigurationError(
                f"{owner}: broker must be a URL like memory:// or kafka://host:port, got {shown!r}"
            )
        if broker.lower().startswith("kafka://"):
            parse_url(broker)  # refused here, not at first use, so a bad URL is never shown unredacted
        for name in (
            "commit_interval",
            "shutdown_timeout",
            "revocation_timeout",
            "broker_availability_timeout",
            "session_timeout",
            "heartbeat_interval",
            "max_poll_interval",
        ):
            object.__setattr__(self, name, seconds(getattr(self, name)))
        if seconds(self.revocation_timeout) < 0:
            raise ConfigurationError(
                f"{owner}: revocation_timeout must not be negative, got {self.revocation_timeout!r}"
            )
        for name in ("commit_interval", "broker_availability_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(
                    f"{owner}: {name} must be a positive number of seconds or a timedelta, got {value!r}"
                )
        for name in ("version", "stream_buffer_maxsize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{owner}: {name} must be an integer >= 1, got {value!r}")
        for name in ("max_partition_backlog", "max_partition_unread", "table_standby_replicas"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{owner}: {name} must be an integer >= 0, got {value!r}")
        if self.group_instance_id is not None and (
            not isinstance(self.group_instance_id, str) or not self.group_instance_id
        ):
            raise ConfigurationError(
                f"{owner}: group_instance_id must be a non-empty string (one per worker), "
                f"got {self.group_instance_id!r}"
            )
        if self.processing_guarantee not in PROCESSING_GUARANTEES:
            raise ConfigurationError(
                f"{owner}: processing_guarantee must be one of {', '.join(PROCESSING_GUARANTEES)}, "
                f"got {self.processing_guarantee!r}"
            )
        group_timings(owner, self.group_timings)
        get_codec(self.value_serializer)
        get_codec(self.key_serializer)
        ErrorPolicy.make(self.on_error, None, self.max_redeliveries)
        object.__setattr__(self, "ignored", MappingProxyType(dict(self.ignored)))
        object.__setattr__(self, "_checked", True)

    def __setattr__(self, name: str, value: Any) -> None:
        """Settings are read-only once checked, except Faust's that rxstream does not need (kept in
        ``ignored``, so ``app.conf.table_cleanup_interval = 1.0`` still runs)."""
        if not self.__dict__.get("_checked"):
            object.__setattr__(self, name, value)
        elif name in FAUST_UNNEEDED:
            self.__dict__["ignored"] = MappingProxyType({**self.ignored, name: value})
        elif name in {f.name for f in fields(self)} or name in FAUST_RENAMED:
            raise ConfigurationError(
                f"App {self.id!r}: app.conf.{name} is read-only: pass "
                f"{FAUST_RENAMED.get(name, name)}= to App(...) ({FAUST_GUIDE})"
            )
        else:
            raise ConfigurationError(f"App {self.id!r}: {name!r} is not a setting ({FAUST_GUIDE})")

    def __getattr__(self, name: str) -> Any:
        """A Faust setting rxstream accepts without needing it reads back as given (None when not)."""
        if name in FAUST_UNNEEDED:
            return self.__dict__.get("ignored", {}).get(name)
        if name in FAUST_RENAMED:
            return getattr(self, FAUST_RENAMED[name])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def transport_options(self, app_id: str, broker: str) -> dict[str, Any]:
        """What the transport of ``broker`` (the app's, or the worker's ``--broker``) is built with."""
        options: dict[str, Any] = {"default_partitions": self.topic_partitions}
        if self.broker_credentials is not None:
            options["credentials"] = self.broker_credentials
        scheme = broker.partition("://")[0].lower()
        if scheme == "memory":
            options.update(self.memory_bounds)
        elif scheme == "kafka":
            options["availability_timeout"] = self.broker_availability_timeout
            options["consumer_config"] = self.kafka_consumer_config
            if self.group_instance_id is not None:
                options["group_instance_ids"] = {app_id: self.group_instance_id}
        return options

    @property
    def app_id(self) -> str:
        """The id the app's group, internal topics and stores are named by: ``{id}-v{version}`` from
        version 2 on (as Faust: raising the version starts over with new changelogs, replies and offsets)."""
        return self.id if self.version == 1 else f"{self.id}-v{self.version}"

    @property
    def group_timings(self) -> dict[str, float]:
        """The consumer group's timings in seconds (Kafka only)."""
        return {
            "session_timeout": seconds(self.session_timeout),
            "heartbeat_interval": seconds(self.heartbeat_interval),
            "max_poll_interval": seconds(self.max_poll_interval),
        }

    @property
    def memory_bounds(self) -> dict[str, int]:
        """What a memory:// log holds per partition before senders wait."""
        return {
            "max_partition_backlog": self.max_partition_backlog,
            "max_partition_unread": self.max_partition_unread,
        }

    @property
    def exactly_once(self) -> bool:
        """Whether sinks, table changes and offsets are committed in transactions."""
        return self.processing_guarantee == "exactly_once"

    @property
    def kafka_consumer_config(self) -> dict[str, Any]:
        """The aiokafka consumer settings: group timings; reading committed records only with exactly-once."""
        config: dict[str, Any] = dict(group_timings(f"App {self.id!r}", self.group_timings))
        if self.exactly_once:
            config["isolation_level"] = "read_committed"
        return config

    @property
    def reply_topic_name(self) -> str:
        """The topic replies to this app's asks arrive on."""
        return self.reply_topic or f"{self.app_id}-replies"

