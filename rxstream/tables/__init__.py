"""Tables and windows: changelog-backed state sharded like its source topic, with event-time windows.

State after a crash equals the state after processing exactly the committed input, in at-least-once mode
too: every change made by an event names that event's record (`provenance`), and recovery, standby
take-over and RocksDB checkpoints leave out changes whose events the consumer group had not committed (they
are processed again). A compacted changelog keeps the records recovery needs for `COMPACTION_LAG` (an hour,
``min.compaction.lag.ms``): Kafka drops a record only for a newer one of its key that is older than that, so a
partition recovered within the hour after its worker died finds both the uncommitted changes and the
committed ones before them. Recovered later, a key whose committed record was compacted behind uncommitted
ones loses its value (only if the broker's cleaner ran on those segments meanwhile). memory:// never
compacts. Changes with no source (``use_partitioner=True`` tables, whose writers do not own the partition)
and global tables are applied as read.
"""

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
