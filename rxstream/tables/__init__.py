"""Tables and windows: changelog-backed state sharded like its source topic, with event-time windows."""

from __future__ import annotations

from .changelog import ChangelogReader, ChangelogTopic, RecoveryStats
from .manager import TableManager
from .stores import MemoryStore, Store
from .table import GlobalTable, SetTable, Table
from .windowed import WindowedTable, WindowSet
from .windows import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    Window,
    WindowRange,
    WindowTracker,
)

__all__ = [
    "ChangelogReader",
    "ChangelogTopic",
    "GlobalTable",
    "HoppingWindow",
    "MemoryStore",
    "RecoveryStats",
    "SessionWindow",
    "SetTable",
    "SlidingWindow",
    "Store",
    "Table",
    "TableManager",
    "TumblingWindow",
    "Window",
    "WindowRange",
    "WindowSet",
    "WindowTracker",
    "WindowedTable",
]
