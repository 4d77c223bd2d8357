"""Coming from Faust: Faust's names that rxstream spells or handles differently, and where the guide is.

Every refusal of a Faust shape names the README's "Coming from Faust" section (`FAUST_GUIDE`), where each
difference is explained with the change to make.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "FAUST_ABSENT",
    "FAUST_GUIDE",
    "FAUST_RENAMED",
    "FAUST_UNNEEDED",
    "FaustShapes",
    "absent",
    "faust_settings",
]

FAUST_GUIDE = "see 'Coming from Faust' in rxstream's README"

FAUST_RENAMED: Mapping[str, str] = MappingProxyType(
    {
        "broker_commit_interval": "commit_interval",
        "broker_session_timeout": "session_timeout",
        "broker_heartbeat_interval": "heartbeat_interval",
        "broker_max_poll_interval": "max_poll_interval",
        "consumer_group_instance_id": "group_instance_id",
        "topic_replication_factor": "topic_replicas",
        "reply_to": "reply_topic",
    }
)
"""Faust's setting names that rxstream spells differently: taken under the Faust name too."""

FAUST_UNNEEDED: Mapping[str, str] = MappingProxyType(
    {
        "reply_create_topic": "reply topics are always created",
        "reply_expires": "an ask waits for its own timeout=",
        "reply_to_prefix": "the reply topic is reply_topic (default {id}-replies)",
        "table_cleanup_interval": "windows expire as events pass their expires=",
        "table_key_index_size": "windowed tables keep no key index",
        "topic_allow_declare": "topics are created on start when missing",
        "topic_disable_leader": "the leader topic exists only when on_leader= or is_leader() asks for it",
        "stream_wait_empty": "a stopping worker always finishes the events it holds",
        "stream_publish_on_commit": "sends are flushed before every commit",
        "stream_recovery_delay": "recovery starts at once",
        "stream_ack_exceptions": "an event an agent raised on is redelivered, never acknowledged",
        "stream_ack_cancelled_tasks": "an event of a cancelled agent is redelivered, never acknowledged",
        "web_enabled": "the web server runs when the worker gets --web-port",
        "web_port": "pass --web-port to the worker",
        "web_host": "pass --web-host to the worker",
        "web_bind": "pass --web-host to the worker",
        "datadir": "rocksdb:// stores take their directory in the store URL",
        "tabledir": "rocksdb:// stores take their directory in the store URL",
        "debug": "use the worker's -l debug",
        "logging_config": "configure logging as usual in Python",
        "loghandlers": "configure logging as usual in Python",
        "producer_linger_ms": "sends are batched per agent batch",
        "producer_acks": "sends wait for every in-sync replica",
        "broker_client_id": "the client id is the app id",
        "broker_commit_every": "commits run every commit_interval",
    }
)
"""Faust settings rxstream accepts and does not need, with why (logged when given)."""

FAUST_ABSENT: Mapping[str, str] = MappingProxyType(
    {
        "service": "rxstream runs no mode services: start background work with @app.task or @app.timer",
        "start_client": "use `async with app:` (or just send: topic.send() starts the producer)",
        "on_produce_message": "wrap topic.send() in a function of your own",
        "web": "declare pages with @app.page and serve them with `rxstream worker --web-port N`",
        "LiveCheck": "test agents with agent.test_context() and rxstream.testing",
    }
)
"""Faust's App attributes rxstream has no counterpart for, with what to use instead."""


def faust_settings(owner: str, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Faust's keyword arguments to App: (those renamed, under rxstream's names; those not needed)."""
    renamed: dict[str, Any] = {}
    unneeded: dict[str, Any] = {}
    for name, value in options.items():
        if name in FAUST_RENAMED:
            renamed[FAUST_RENAMED[name]] = value
        elif name in FAUST_UNNEEDED:
            unneeded[name] = value
        else:
            raise ConfigurationError(f"{owner}: App() got an unknown setting {name!r} ({FAUST_GUIDE})")
    return renamed, unneeded


def absent(app_id: str, name: str) -> AttributeError:
    """The error for an App attribute that does not exist, saying what to use for Faust's ones."""
    if name in FAUST_ABSENT:
        instead = FAUST_ABSENT[name]
        return AttributeError(f"App {app_id!r} has no {name!r} as Faust's: {instead} ({FAUST_GUIDE})")
    return AttributeError(f"'App' object has no attribute {name!r}")


class FaustShapes:
    """Faust's App attributes that only read what rxstream keeps elsewhere (a base of App), and the
    refusal, saying what to use, of those rxstream has no counterpart for."""

    @property
    def rebalancing(self) -> bool:
        """Whether the app is joining its group or recovering tables after an assignment (Faust's flag;
        ``app.monitor.state`` tells which)."""
        app = cast("App", self)
        return app.started and app.monitor.state in ("starting", "recovering")

    if not TYPE_CHECKING:  # typed code sees only the App's real attributes

        def __getattr__(self, name: str) -> Any:
            raise absent(self.__dict__.get("id", "?"), name)
