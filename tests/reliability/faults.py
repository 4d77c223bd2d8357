"""A deterministic fault plan for the memory transport: fail chosen fetches, sends and commits, make the
"broker" unavailable for a while, and force rebalances, each at a chosen call number."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rxstream.errors import TransportError
from rxstream.events import Row
from rxstream.transport import RecordMetadata, TopicPartition
from rxstream.transport.base import RebalanceListener
from rxstream.transport.memory import MemoryConsumer, MemoryTransport


@dataclass
class FaultPlan:
    """Call numbers (1-based, counted over the whole plan) at which a fault happens."""

    fail_fetch: set[int] = field(default_factory=set)
    fail_send: set[int] = field(default_factory=set)
    fail_commit: set[int] = field(default_factory=set)
    unavailable: Mapping[int, float] = field(default_factory=dict)
    """Fetch number: seconds from then on during which fetches and commits fail and sends wait."""
    rebalance: set[int] = field(default_factory=set)
    """Fetch numbers at which another member joins the group for a moment (taking partitions away)."""
    rebalance_commit: set[int] = field(default_factory=set)
    """Commit numbers at which that happens after the flush (changelog and sink writes), before the commit."""
    kill_commit: set[int] = field(default_factory=set)
    """Commit numbers at which the worker dies after the flush, before the commit: from then on none of its
    fetches, sends or commits reach the broker (a SIGKILL between the changelog write and the commit)."""
    fetches: int = 0
    sends: int = 0
    commits: int = 0
    away_until: float = 0.0
    injected: list[str] = field(default_factory=list)

    def away(self) -> bool:
        return asyncio.get_running_loop().time() < self.away_until

    def end(self) -> None:
        """No faults from now on (the checks of the end state run on a quiet system)."""
        self.fail_fetch, self.fail_send, self.fail_commit = set(), set(), set()
        self.unavailable, self.rebalance, self.rebalance_commit = {}, set(), set()
        self.kill_commit = set()
        self.away_until = 0.0


class FaultyTransport(MemoryTransport):
    """A memory transport that follows a `FaultPlan`; ``on_commit`` checks every commit before it lands."""

    def __init__(
        self,
        url: str,
        plan: FaultPlan,
        on_commit: Callable[[Mapping[TopicPartition, int]], None],
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        self.plan = plan
        self.on_commit = on_commit
        self.extra_members: list[asyncio.Task[None]] = []
        self.killed = False
        """Whether the worker died (`FaultPlan.kill_commit`): nothing of it reaches the broker any more."""

    async def _send_fault(self, topic: str) -> None:
        plan = self.plan
        if self.killed:
            raise TransportError(f"injected: the worker was killed; its send to {topic!r} is lost")
        while plan.away():  # a Kafka producer retries within its request timeout: sends wait
            await asyncio.sleep(0.01)
        plan.sends += 1
        if plan.sends in plan.fail_send:
            plan.injected.append(f"send {plan.sends} to {topic}")
            raise TransportError(f"injected: send {plan.sends} to topic {topic!r} failed")

    async def send(self, topic: str, key: Any, value: Any, **options: Any) -> RecordMetadata:
        await self._send_fault(topic)
        return await super().send(topic, key, value, **options)

    async def send_many(self, topic: str, records: Sequence[tuple[Any, Any, int | None, Any]]) -> None:
        await self._send_fault(topic)
        await super().send_many(topic, records)

    async def send_values(self, topic: str, values: Sequence[Any]) -> None:
        await self._send_fault(topic)
        await super().send_values(topic, values)

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        on_rebalance: RebalanceListener,
        *,
        auto_offset_reset: str = "earliest",
    ) -> MemoryConsumer:
        consumer = FaultyConsumer(self, group_id, topics, on_rebalance, auto_offset_reset)
        self._consumers.append(consumer)
        return consumer

    async def _visit(self, group_id: str, topics: Sequence[str]) -> None:
        """Another member joins the group, holds its share for a moment, and leaves."""

        async def listener(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
            return None

        member = MemoryConsumer(self, group_id, topics, listener, "earliest")
        await member.start()
        await asyncio.sleep(0.05)
        await member.stop()


class FaultyConsumer(MemoryConsumer):
    """A group member whose fetches and commits follow the transport's plan."""

    transport: FaultyTransport

    async def getmany(self, timeout: float, max_records: int) -> dict[TopicPartition, list[Row]]:
        plan = self.transport.plan
        if self.transport.killed:
            raise TransportError(f"injected: the worker of group {self.group_id!r} was killed")
        plan.fetches += 1
        number = plan.fetches
        if number in plan.unavailable:
            plan.away_until = asyncio.get_running_loop().time() + plan.unavailable[number]
            plan.injected.append(f"unavailable at fetch {number}")
        if number in plan.rebalance:
            self._rebalance(f"rebalance at fetch {number}")
        if number in plan.fail_fetch or plan.away():
            plan.injected.append(f"fetch {number} failed")
            raise TransportError(f"injected: fetch {number} of group {self.group_id!r} failed")
        return await super().getmany(timeout, max_records)

    def _rebalance(self, what: str) -> None:
        """Another member of this (the app's main) group joins for a moment, in a task of its own."""
        if self.group_id.endswith("-main"):
            self.transport.plan.injected.append(what)
            visit = self.transport._visit(self.group_id, sorted(self.topics))
            self.transport.extra_members.append(asyncio.get_running_loop().create_task(visit))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        plan = self.transport.plan
        if self.transport.killed:
            raise TransportError(f"injected: the worker of group {self.group_id!r} was killed")
        plan.commits += 1
        if plan.commits in plan.kill_commit and self.group_id.endswith("-main"):
            self.transport.killed = True
            plan.injected.append(f"killed at commit {plan.commits}")
            raise RuntimeError(f"injected: the worker died before commit {plan.commits} of {self.group_id!r}")
        if plan.commits in plan.rebalance_commit:
            self._rebalance(f"rebalance at commit {plan.commits}")
            await asyncio.sleep(0)  # the other member starts joining before this commit lands
        if plan.commits in plan.fail_commit or plan.away():
            plan.injected.append(f"commit {plan.commits} failed")
            raise TransportError(f"injected: commit {plan.commits} of group {self.group_id!r} failed")
        self.transport.on_commit(offsets)
        await super().commit(offsets)
