"""The app's monitor: what its consumer, agents, commits, rebalances and recoveries did, counted per batch.

>>> app.monitor.partitions[TopicPartition("orders", 0)].received     # messages fetched from orders[0]
>>> app.monitor.snapshot()                                            # everything, as plain JSON data

Every hook is called once per fetched batch, commit, rebalance or recovery step, never per event.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .events import OFFSET, PARTITION, TOPIC, Row
from .transport.base import TopicPartition

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "AgentStats",
    "Histogram",
    "Monitor",
    "PartitionStats",
    "Rebalance",
    "RecoveryProgress",
]

BUCKETS: tuple[float, ...] = (
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Upper bounds in seconds of the histograms' buckets (the last bucket, +Inf, is implied)."""

STATES: tuple[str, ...] = ("starting", "recovering", "running", "stopping")


class Histogram:
    """Durations in seconds counted into fixed buckets, with their sum (Prometheus' histogram model)."""

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, how many durations were at most that) per bucket, ending with (inf, count)."""
        total = 0
        out: list[tuple[float, int]] = []
        for bound, n in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out

    def as_dict(self) -> dict[str, Any]:
        """Count, sum and cumulative buckets as JSON data."""
        return {
            "count": self.count,
            "sum": self.sum,
            "buckets": {("+Inf" if b == float("inf") else str(b)): n for b, n in self.cumulative()},
        }


class PartitionStats:
    """What happened to one partition of a consumed topic in this worker."""

    __slots__ = ("committed", "dead_lettered", "end", "errors", "first", "received")

    def __init__(self) -> None:
        self.received = 0
        """Messages fetched and handed to the topic's readers."""
        self.errors = 0
        """Messages an agent raised on."""
        self.dead_lettered = 0
        """Messages sent to the dead-letter topic."""
        self.first: int | None = None
        """The offset of the first message fetched (acknowledged counts from there)."""
        self.committed: int | None = None
        """The offset last committed (the next one to read)."""
        self.end: int | None = None
        """The partition's end offset when last refreshed."""

    @property
    def lag(self) -> int | None:
        """End offset minus committed offset (messages the group has yet to commit), once both are known."""
        if self.end is None:
            return None
        return max(self.end - (self.committed or 0), 0)


class AgentStats:
    """What one agent did: batches and events it went through, values it yielded, errors, time per batch."""

    __slots__ = ("batches", "errors", "events", "processing", "yielded")

    def __init__(self) -> None:
        self.batches = 0
        self.events = 0
        self.yielded = 0
        self.errors = 0
        self.processing = Histogram()
        """Seconds an agent spent on each batch: from its first value to the request after its last."""

    def processed(self, events: int, seconds: float) -> None:
        """The agent went through a batch of ``events`` in ``seconds`` (called once per batch)."""
        self.batches += 1
        self.events += events
        self.processing.observe(seconds)


class _PartitionRecovery:
    __slots__ = ("done", "ended", "started", "total")

    def __init__(self, total: int, started: float) -> None:
        self.total = total
        self.done = 0
        self.started = started
        self.ended: float | None = None


class RecoveryProgress:
    """How far one table's changelog replay is, per partition: records done and total, rate, ETA."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.partitions: dict[int, _PartitionRecovery] = {}

    def begin(self, totals: Mapping[int, int]) -> None:
        """A replay of ``totals`` (partition -> records to apply) starts now."""
        now = time.monotonic()
        for partition, total in totals.items():
            self.partitions[partition] = _PartitionRecovery(total, now)

    def advance(self, partition: int, records: int) -> None:
        """``records`` more records of ``partition`` were applied."""
        progress = self.partitions.get(partition)
        if progress is not None:
            progress.done += records

    def end(self) -> None:
        """The replay finished (or failed): nothing of it is in progress any more."""
        now = time.monotonic()
        for progress in self.partitions.values():
            if progress.ended is None:
                progress.ended = now

    @property
    def active(self) -> bool:
        """Whether a replay is under way."""
        return any(p.ended is None for p in self.partitions.values())

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Per partition: done, total, rate (records/s), ETA (s, None when unknown), whether it finished."""
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for partition, p in sorted(self.partitions.items()):
            elapsed = (p.ended if p.ended is not None else now) - p.started
            rate = p.done / elapsed if elapsed > 0 else 0.0
            left = max(p.total - p.done, 0)
            eta = 0.0 if p.ended is not None or not left else (left / rate if rate > 0 else None)
            out[str(partition)] = {
                "done": p.done,
                "total": p.total,
                "rate": rate,
                "eta": eta,
                "finished": p.ended is not None,
            }
        return out


class Rebalance(NamedTuple):
    """One rebalance this worker took part in: when, how long its handling took, what moved."""

    at: float
    seconds: float
    revoked: tuple[TopicPartition, ...]
    assigned: tuple[TopicPartition, ...]


class Monitor:
    """Counters of one app (``app.monitor``), read from code, by ``/metrics`` and ``/stats``.

    ``enabled = False`` turns every hook into a no-op (to measure what counting costs).
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.enabled = True
        self.partitions: dict[TopicPartition, PartitionStats] = {}
        self.agents: dict[str, AgentStats] = {}
        self.sent: dict[str, int] = {}
        """Values stored per topic through its send buffer (agent sinks, table changelogs)."""
        self.recoveries: dict[str, RecoveryProgress] = {}
        self.commits = 0
        self.commit_failures = 0
        self.commit_latency = Histogram()
        self.rebalance_count = 0
        self.rebalance_latency = Histogram()
        self.rebalances: deque[Rebalance] = deque(maxlen=100)
        """The latest rebalances, oldest first."""
        self.joined = False
        """Whether the app's consumer took part in a rebalance (it joined its group)."""
        self._ran = False

    # ------------------------------------------------------------ hooks, one call per batch

    def _partition(self, tp: TopicPartition) -> PartitionStats:
        stats = self.partitions.get(tp)
        if stats is None:
            stats = self.partitions[tp] = PartitionStats()
        return stats

    def received(self, tp: TopicPartition, messages: Sequence[Row]) -> None:
        """A fetched batch of ``tp`` was handed to its readers."""
        if self.enabled:
            stats = self._partition(tp)
            stats.received += len(messages)
            if stats.first is None:
                stats.first = messages[0][OFFSET]

    def committed(self, offsets: Mapping[TopicPartition, int], seconds: float) -> None:
        """A commit of ``offsets`` succeeded after ``seconds``."""
        if self.enabled:
            self.commits += 1
            self.commit_latency.observe(seconds)
            for tp, offset in offsets.items():
                self._partition(tp).committed = offset

    def commit_failed(self) -> None:
        """A commit failed (it is retried)."""
        if self.enabled:
            self.commit_failures += 1

    def rebalanced(
        self, revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition], seconds: float
    ) -> None:
        """A rebalance was handled (tables recovered included) in ``seconds``."""
        self.joined = True
        for tp in revoked:  # no lag is reported for what another member owns now
            if tp in self.partitions:
                self.partitions[tp].end = None
        if self.enabled:
            self.rebalance_count += 1
            self.rebalance_latency.observe(seconds)
            self.rebalances.append(Rebalance(time.time(), seconds, tuple(revoked), tuple(assigned)))

    def agent(self, name: str) -> AgentStats:
        """The stats of agent ``name``: its stream reports each batch, its loop the values it yielded."""
        stats = self.agents.get(name)
        if stats is None:
            stats = self.agents[name] = AgentStats()
        if not self.enabled:
            return _IGNORED
        return stats

    def agent_failed(self, name: str, messages: Iterable[Row]) -> None:
        """Agent ``name`` raised while processing ``messages``."""
        if self.enabled:
            self.agent(name).errors += 1
            for m in messages:
                self._partition(TopicPartition(m[TOPIC], m[PARTITION])).errors += 1

    def dead_lettered(self, topic: str, partition: int) -> None:
        """A message of ``topic`` ``partition`` went to its dead-letter topic."""
        if self.enabled:
            self._partition(TopicPartition(topic, partition)).dead_lettered += 1

    def sent_values(self, topic: str, count: int) -> None:
        """A batch of ``count`` values was stored in ``topic``."""
        if self.enabled:
            self.sent[topic] = self.sent.get(topic, 0) + count

    def recovery(self, table: str) -> RecoveryProgress:
        """The recovery progress of ``table`` (its changelog reader reports into it)."""
        progress = self.recoveries.get(table)
        if progress is None:
            progress = self.recoveries[table] = RecoveryProgress(table)
        return progress

    # ------------------------------------------------------------ reading

    @property
    def state(self) -> str:
        """starting, recovering, running (joined its group and recovered its tables) or stopping."""
        app = self.app
        if not app.started:
            return "stopping" if self._ran else "starting"
        if not app.consuming:  # set once the consumer heard its first assignment and recovered tables
            return "starting"
        if any(progress.active for progress in self.recoveries.values()):
            return "recovering"
        self._ran = True
        return "running"

    def redeliveries(self) -> dict[TopicPartition, int]:
        """Messages redelivered after a reject, per partition (kept by the app's subscriptions)."""
        out: dict[TopicPartition, int] = {}
        for subscription in self.app.subscriptions():
            for (topic, partition), n in subscription.redelivered.items():
                tp = TopicPartition(topic, partition)
                out[tp] = out.get(tp, 0) + n
        return out

    def acknowledged(self) -> dict[TopicPartition, int]:
        """Messages acknowledged per partition since this worker first fetched it (every reader done)."""
        out: dict[TopicPartition, int] = {}
        for conductor in self.app.conductors():
            for tp, offset in conductor.committable().items():
                stats = self.partitions.get(tp)
                if stats is not None and stats.first is not None:
                    out[tp] = max(offset - stats.first, 0)
        return out

    def tables(self) -> dict[str, dict[str, Any]]:
        """Per table: keys held here, and late events (after their window closed) of windowed ones."""
        out: dict[str, dict[str, Any]] = {}
        for name, table in list(self.app.tables.items()):
            late = {str(partition): n for partition, n in sorted(table.late_by_partition.items())}
            out[name] = {"keys": len(table), "late_events": table.late_count, "late_by_partition": late}
        return out

    async def refresh(self) -> None:
        """Read the end offsets and committed offsets of the owned partitions (for lag)."""
        for conductor in self.app.conductors():
            consumer = conductor.consumer
            if consumer is None:
                continue
            owned = consumer.assignment()
            for topic in sorted({tp.topic for tp in owned}):
                ends = await conductor.transport.end_offsets(topic)
                for tp, end in ends.items():
                    if tp in owned:
                        stats = self._partition(tp)
                        stats.end = end
                        if stats.committed is None:
                            stats.committed = await consumer.committed(tp)

    def snapshot(self) -> dict[str, Any]:
        """Everything the monitor knows, as JSON data (what ``/stats`` serves)."""
        group = self.app.id
        redelivered = self.redeliveries()
        acknowledged = self.acknowledged()
        partitions = []
        for tp in sorted(set(self.partitions) | set(redelivered)):
            stats = self._partition(tp)
            partitions.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "group": group,
                    "received": stats.received,
                    "acknowledged": acknowledged.get(tp, 0),
                    "errors": stats.errors,
                    "redelivered": redelivered.get(tp, 0),
                    "dead_lettered": stats.dead_lettered,
                    "committed_offset": stats.committed,
                    "end_offset": stats.end,
                    "lag": stats.lag,
                }
            )
        return {
            "app": self.app.id,
            "state": self.state,
            "partitions": partitions,
            "agents": {
                name: {
                    "batches": stats.batches,
                    "events": stats.events,
                    "yielded": stats.yielded,
                    "errors": stats.errors,
                    "processing_seconds": stats.processing.as_dict(),
                }
                for name, stats in sorted(self.agents.items())
            },
            "sent": dict(sorted(self.sent.items())),
            "commits": {
                "count": self.commits,
                "failures": self.commit_failures,
                "seconds": self.commit_latency.as_dict(),
            },
            "rebalances": {
                "count": self.rebalance_count,
                "seconds": self.rebalance_latency.as_dict(),
                "latest": [
                    {
                        "at": r.at,
                        "seconds": r.seconds,
                        "revoked": [list(tp) for tp in r.revoked],
                        "assigned": [list(tp) for tp in r.assigned],
                    }
                    for r in self.rebalances
                ],
            },
            "recovery": {name: p.as_dict() for name, p in sorted(self.recoveries.items())},
            "tables": self.tables(),
        }

    def __repr__(self) -> str:
        received = sum(s.received for s in self.partitions.values())
        return f"<Monitor {self.app.id} {self.state} received={received} commits={self.commits}>"


_IGNORED = AgentStats()
"""What a disabled monitor hands out: counts nobody reads."""
