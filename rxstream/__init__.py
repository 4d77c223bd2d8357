"""rxstream: stream processing on ReactiveX: apps, agents, topics, tables and functional streams."""

from importlib.metadata import PackageNotFoundError, version

from .agents import Agent
from .app import App
from .auth import SASLCredentials, SSLCredentials
from .channels import Channel, Topic
from .errors import RxStreamError
from .events import Event, Message, current_event
from .keyvalue import KeyValue
from .record_fields import FieldDescriptor
from .records import Record
from .streams import Stream
from .tables import GlobalTable, SetTable, Table, WindowedTable, WindowSet
from .types import AgentT, ChannelT, EventT, StreamT

__all__ = [
    "Agent",
    "AgentT",
    "App",
    "Channel",
    "ChannelT",
    "Event",
    "EventT",
    "FieldDescriptor",
    "GlobalTable",
    "KeyValue",
    "Message",
    "Record",
    "RxStreamError",
    "SASLCredentials",
    "SSLCredentials",
    "SetTable",
    "Stream",
    "StreamT",
    "Table",
    "Topic",
    "WindowSet",
    "WindowedTable",
    "__version__",
    "current_event",
]

try:
    __version__ = version("rxstream")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
