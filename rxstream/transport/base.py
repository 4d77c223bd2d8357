"""The transport protocol: the few operations rxstream needs from a partitioned log (memory or Kafka).

A transport delivers records as `Row` tuples (`Message` fields in order; `Message.of` names one).
``memory://`` keeps keys and values as the Python objects that were sent; ``kafka://`` needs bytes, so the
channel layer encodes before `send` when ``needs_bytes`` is true and decodes what a consumer returns.
Everything about acknowledgment, redelivery and error policies lives
above this protocol; a transport only stores, fetches, assigns and commits.

Exactly-once processing needs one optional capability: a consumer created with ``transactional=True`` is
`Transactional`, it commits a source partition's outputs and offset together (`commit_transaction`). Its
readers, and every reader of a transport that serves one, see only committed records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..events import Headers, Row

__all__ = [
    "Consumer",
    "OutputRecord",
    "RebalanceListener",
    "RecordMetadata",
    "TopicPartition",
    "TopicSpec",
    "Transactional",
    "Transport",
    "transactional_id",
]


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int


class TopicSpec(NamedTuple):
    """What a topic should look like when it is created on start."""

    name: str
    partitions: int
    replicas: int = 1
    retention: float | None = None
    compacting: bool = False
    config: Mapping[str, str] = {}


class RecordMetadata(NamedTuple):
    """Where a sent message was stored."""

    topic: str
    partition: int
    offset: int
    timestamp: float


OutputRecord = tuple[Any, Any, int | None, Headers | None]
"""A record to send: (key, value, partition or None for the key's hash, headers or None)."""


class RebalanceListener(Protocol):
    """Told when a consumer gains or loses partitions; revocation is awaited before partitions move."""

    def __call__(
        self, revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]
    ) -> Awaitable[None]: ...


@runtime_checkable
class Consumer(Protocol):
    """One member of a consumer group: fetches batches of its assigned partitions and commits offsets."""

    async def start(self) -> None:
        """Join the group; the rebalance listener hears of the first assignment before a fetch returns."""

    async def stop(self) -> None:
        """Leave the group (partitions go to the other members)."""

    async def getmany(self, timeout: float, max_records: int) -> dict[TopicPartition, Sequence[Row]]:
        """Rows of assigned, unpaused partitions in offset order; waits up to ``timeout`` s for some."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store, per partition, the offset of the next message to read."""

    async def committed(self, tp: TopicPartition) -> int | None:
        """The offset last committed for ``tp`` by this group, or None."""

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member owns now."""

    def pause(self, tps: Sequence[TopicPartition]) -> None:
        """Stop fetching these partitions until resumed (backpressure, rebalance)."""

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        """Fetch these partitions again."""

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next."""


@runtime_checkable
class Transactional(Protocol):
    """A consumer that commits what a source partition's events produced together with their offset."""

    async def commit_transaction(
        self, source: TopicPartition, records: Mapping[str, Sequence[OutputRecord]], offset: int
    ) -> None:
        """Append ``records`` (per topic) and commit ``offset`` for ``source``: all become visible, or none.

        Raises `rxstream.errors.TransactionFencedError` when ``source`` is no longer this member's (another
        member took it over); `rxstream.errors.EncodeError` or `rxstream.errors.ConfigurationError` for a
        record that can never be stored (over the size limit, a partition its topic lacks); any other
        failure (a timeout, the broker away) raises `rxstream.errors.TransportError`. In every case nothing
        of the transaction is visible, except that one whose outcome the transport could not learn (a
        commit that timed out) may have committed: the consumer's `committed` then settles it first and
        returns the offset it left.
        """


def transactional_id(group_id: str, source: TopicPartition) -> str:
    """The stable transactional id of a group's source partition: whoever owns it next fences the last."""
    return f"{group_id}-{source.topic}-{source.partition}"


@runtime_checkable
class Transport(Protocol):
    """A partitioned log shared by every worker of an app."""

    url: str
    needs_bytes: bool
    """Whether keys and values must be bytes (then the channel layer encodes and decodes them)."""

    async def start(self) -> None:
        """Connect; fails within a bounded time with an error naming the URL if the broker is unreachable."""

    async def stop(self) -> None:
        """Flush pending sends and disconnect."""

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics; existing ones are left as they are."""

    async def partitions_for(self, topic: str) -> int:
        """How many partitions ``topic`` has (creating it with the default count if missing)."""

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """Per partition of ``topic``, the offset the next message will get (what "caught up" means)."""

    async def first_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """Per partition of ``topic``, the first offset still retained (where "from the earliest" starts)."""

    async def group_members(self, group_id: str) -> int:
        """How many members consumer group ``group_id`` has now (offsets are reset only with none)."""

    async def send(
        self,
        topic: str,
        key: Any,
        value: Any,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> RecordMetadata:
        """Append one message; ``partition`` None means key-hash partitioning (round-robin with no key).

        Waits while the partition is full (backpressure), never drops.
        """

    async def send_many(
        self, topic: str, records: Sequence[tuple[Any, Any, int | None, Headers | None]]
    ) -> None:
        """Append (key, value, partition, headers) records in order, batched; waits on backpressure."""

    async def send_values(self, topic: str, values: Sequence[Any]) -> None:
        """Append values without key or headers in order (round-robin over partitions), batched."""

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        on_rebalance: RebalanceListener,
        *,
        auto_offset_reset: str = "earliest",
        transactional: bool = False,
    ) -> Consumer:
        """A consumer-group member subscribed to ``topics`` (not started); `Transactional` if asked."""


TransportFactory = Callable[[str], Transport]
