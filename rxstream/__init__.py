"""rxstream: stream processing on ReactiveX: apps, agents, topics, tables and functional streams."""

from .errors import RxStreamError
from .events import Event, Message, current_event
from .streams import Stream

__all__ = sorted(
    [
        "Event",
        "Message",
        "RxStreamError",
        "Stream",
        "current_event",
    ]
)
