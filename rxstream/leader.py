"""Leadership: exactly one worker of an app's consumer group leads, the one holding a one-partition topic.

The topic ``{app id}-__assignor-__leader`` has a single partition and nothing is ever sent to it; the
group deals its partition 0 to one member, as it deals every partition, so the member holding it leads
until a rebalance moves it (and a member that leaves hands it on). ``@app.timer(..., on_leader=True)`` and
``@app.crontab(..., on_leader=True)`` run only there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .transport.base import TopicPartition

if TYPE_CHECKING:
    from .app import App
    from .channels import Topic

__all__ = ["Leader", "is_leader", "leader_topic_name"]


def leader_topic_name(app_id: str) -> str:
    """The one-partition topic whose owner leads the group of app ``app_id``."""
    return f"{app_id}-__assignor-__leader"


def is_leader(app: App) -> bool:
    """``app.is_leader()``: whether this worker leads its group (it holds the leader topic's partition)."""
    return app.leader.holds()


class Leader:
    """An app's view of leadership: declares the leader topic on first need, tells whether it holds it."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.topic: Topic[Any, Any] | None = None

    def declare(self) -> None:
        """Declare the leader topic; a running app subscribes it at once (in a group of its own)."""
        if self.topic is None:
            self.topic = self.app.topic(leader_topic_name(self.app.id), partitions=1, on_error="crash")
            if self.app.started:
                self.subscribe()

    def subscribe(self) -> None:
        """Join the leader topic's group (the app does this on start, with its own group, when declared)."""
        if self.topic is not None:
            self.topic.subscription()

    def holds(self) -> bool:
        """Whether this worker holds the leader topic's partition now (declaring it when first asked)."""
        self.declare()
        assert self.topic is not None
        partition = TopicPartition(self.topic.name, 0)
        for conductor in self.app.conductors():
            consumer = conductor.consumer
            if consumer is not None and partition in consumer.assignment():
                return True
        return False
