"""Kafka transactions for exactly-once processing: one transactional producer per assigned source partition.

aiokafka speaks version 0 of the transaction requests, so `send_offsets_to_transaction` carries no consumer
group metadata and the broker cannot fence a zombie by its group generation (KIP-447). Fencing comes from
the transactional id instead, stable per group and source partition (`base.transactional_id`): a
transactional consumer opens the producers of the partitions it is assigned before its rebalance
listener hears of them, and a producer's start (``init_transactions``) bumps the id's epoch, which aborts
the previous owner's open transaction and refuses its later ones, so the changelogs are stable before the
tables recover from them. Producers of partitions that come back in the next assignment are kept (Kafka's
eager rebalance revokes everything first); the others are closed once the revocation committed them.

A commit is one transaction per source partition: begin, the held records in producer batches (one per
topic partition), the source offset, commit. Any failure aborts it; a fenced producer is closed (it can do
nothing more) and the failure is a TransactionFencedError. A producer closed for another reason (its abort
failed, or it could not start on assignment) is started again while its partition stays assigned here: by
the next transaction, or before the partition's committed offset is read (`settle`), since starting it
completes or aborts on the broker a transaction left in doubt (a commit that timed out may have succeeded).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import (  # type: ignore[import-untyped,unused-ignore]
    InvalidProducerEpoch,
    ProducerFenced,
)
from aiokafka.structs import OffsetAndMetadata  # type: ignore[import-untyped,unused-ignore]

from ..errors import TransactionFencedError, TransportError
from .base import OutputRecord, TopicPartition, transactional_id
from .kafka_records import to_kafka_tp
from .validation import check_records

if TYPE_CHECKING:
    from .kafka import KafkaTransport

__all__ = ["PartitionProducers"]

log = logging.getLogger(__name__)

_FENCED = (ProducerFenced, InvalidProducerEpoch)


class PartitionProducers:
    """The transactional producers of one consumer group member, one per source partition it owns."""

    def __init__(
        self, transport: KafkaTransport, group_id: str, owned: Callable[[], frozenset[TopicPartition]]
    ) -> None:
        self.transport = transport
        self.group_id = group_id
        self._owned = owned
        """The partitions assigned to the member now."""
        self._producers: dict[TopicPartition, Any] = {}
        self._closed: dict[TopicPartition, str] = {}
        """Why the producer of an assigned partition is missing (started again when needed)."""
        self._fenced: set[TopicPartition] = set()
        """Assigned partitions whose producer was fenced: another member owns them, never started again."""
        self._in_doubt: set[TopicPartition] = set()
        """Assigned partitions whose producer was closed when its transaction could not be aborted."""
        self._reopening: dict[TopicPartition, asyncio.Task[Any]] = {}

    def __repr__(self) -> str:
        return f"<PartitionProducers group={self.group_id!r} partitions={sorted(self._producers)}>"

    async def assign(self, assigned: Iterable[TopicPartition], client: Any) -> None:
        """Close the producers of partitions not in ``assigned``, open those of new ones (concurrently), then
        make ``client`` (the aiokafka consumer) read each new one from its committed offset fetched again:
        the previous owner's last transaction is complete once its producer is fenced."""
        if self._reopening:  # two producers of one id starting together would fence each other
            await asyncio.gather(*self._reopening.values(), return_exceptions=True)
        wanted = set(assigned)
        await self.close([tp for tp in self._producers if tp not in wanted])
        new = sorted(tp for tp in wanted if tp not in self._producers)
        self._fenced.clear()
        self._closed.clear()
        self._in_doubt.clear()
        opened = await asyncio.gather(*(self._open(tp) for tp in new), return_exceptions=True)
        failure: BaseException | None = None
        for tp, producer in zip(new, opened, strict=True):
            if isinstance(producer, BaseException):
                failure = failure or producer
                self._closed[tp] = f"starting it on assignment failed: {producer!r}"
            else:
                self._producers[tp] = producer
        if failure is not None:
            raise failure
        for tp in new:
            offset = await self.transport._bounded(
                client.committed(to_kafka_tp(tp)), f"reading the committed offset of {tp}"
            )
            if offset is not None:
                client.seek(to_kafka_tp(tp), offset)

    async def settle(self, source: TopicPartition) -> None:
        """Start the producer of ``source`` again if it was closed with a transaction it could not abort:
        that transaction is then committed or aborted on the broker, so the committed offset is final."""
        if source in self._in_doubt and source not in self._producers and source in self._owned():
            await self._reopen(source)

    async def _reopen(self, source: TopicPartition) -> Any:
        """Start the producer of assigned ``source`` again, once for concurrent callers."""
        task = self._reopening.get(source)
        if task is None:
            task = self._reopening[source] = asyncio.ensure_future(self._start_again(source))
            task.add_done_callback(lambda _: self._reopened(source, task))
        return await asyncio.shield(task)

    def _reopened(self, source: TopicPartition, task: asyncio.Task[Any]) -> None:
        self._reopening.pop(source, None)
        if not task.cancelled():
            task.exception()  # raised to its callers; none may be left if they were cancelled

    async def _start_again(self, source: TopicPartition) -> Any:
        """Start the producer of ``source`` again; TransportError naming why it was closed."""
        why = self._closed.get(source, "it was closed")
        try:
            producer = await self._open(source)
        except Exception as exc:
            raise TransportError(
                f"Kafka {self.transport.url}: cannot start the transactional producer of {source} for "
                f"consumer group {self.group_id!r} again ({why}): {exc}"
            ) from exc
        if source not in self._owned():  # revoked meanwhile: the next owner fences it anyway
            await producer.stop()
            raise TransactionFencedError(
                f"Kafka {self.transport.url}: {source} was revoked from consumer group {self.group_id!r} "
                "while its transactional producer started again"
            )
        self._closed.pop(source, None)
        self._in_doubt.discard(source)
        self._producers[source] = producer
        log.info("%s: started the transactional producer of %s again (%s)", self.group_id, source, why)
        return producer

    async def _open(self, tp: TopicPartition) -> Any:
        """A started producer of ``tp``'s transactional id (starting it fences the previous holder)."""
        transport = self.transport
        txn_id = transactional_id(self.group_id, tp)
        config = {**transport.producer_config, "enable_idempotence": True, "acks": "all"}
        producer = AIOKafkaProducer(**transport.client_kwargs(), **config, transactional_id=txn_id)
        try:
            await transport._bounded(producer.start(), f"starting the transactional producer {txn_id!r}")
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def close(self, tps: Iterable[TopicPartition] | None = None) -> None:
        """Stop the producers of ``tps`` (default: all); none has a transaction open between commits."""
        gone = list(self._producers) if tps is None else [tp for tp in tps if tp in self._producers]
        producers = [self._producers.pop(tp) for tp in gone]
        results = await asyncio.gather(*(p.stop() for p in producers), return_exceptions=True)
        for tp, result in zip(gone, results, strict=True):
            if isinstance(result, Exception):
                log.warning("%s: stopping the producer of %s failed: %r", self.group_id, tp, result)

    async def commit(
        self, source: TopicPartition, records: Mapping[str, Sequence[OutputRecord]], offset: int
    ) -> None:
        """Send ``records`` and commit ``offset`` of ``source`` in one transaction; on failure, abort it."""
        transport = self.transport
        for topic, batch in records.items():
            check_records(topic, batch, transport.max_message_bytes)
        producer = self._producers.get(source)
        if producer is None:
            if source in self._fenced or source not in self._owned():
                raise TransactionFencedError(
                    f"Kafka {transport.url}: cannot commit a transaction of {source} for consumer group "
                    f"{self.group_id!r}: the partition is not assigned to this member"
                )
            producer = await self._reopen(source)
        what = f"the transaction of {source} (offset {offset}) for consumer group {self.group_id!r}"
        try:
            await transport._bounded(producer.begin_transaction(), f"beginning {what}")
            for topic, batch in records.items():
                await transport.send_batches(producer, topic, batch)
            await transport._bounded(
                producer.send_offsets_to_transaction(
                    {to_kafka_tp(source): OffsetAndMetadata(offset, "")}, self.group_id
                ),
                f"adding the offset to {what}",
                timeout=transport.availability_timeout,
            )
            await transport._bounded(
                producer.commit_transaction(), f"committing {what}", timeout=transport.availability_timeout
            )
        except BaseException as exc:
            fenced = _fenced(exc)
            await self._abort(source, producer, fenced)
            if fenced:
                raise TransactionFencedError(
                    f"Kafka {transport.url}: {what} was fenced: another member took the partition over"
                ) from exc
            if isinstance(exc, Exception) and not isinstance(exc, TransportError):
                raise transport._error(what, exc) from exc
            raise

    async def _abort(self, source: TopicPartition, producer: Any, fenced: bool) -> None:
        """Abort the transaction of ``source``; a fenced producer, or one that cannot abort, is closed."""
        if not fenced:
            try:
                await asyncio.shield(self.transport._bounded(producer.abort_transaction(), "aborting"))
                return
            except Exception as exc:
                log.warning("%s: aborting the transaction of %s failed: %r", self.group_id, source, exc)
                self._closed[source] = f"aborting its transaction failed: {exc!r}"
                self._in_doubt.add(source)
        if self._producers.get(source) is producer:
            del self._producers[source]
            if fenced:
                self._fenced.add(source)
        try:
            await producer.stop()
        except Exception as exc:
            log.debug("%s: stopping the producer of %s: %r", self.group_id, source, exc)


def _fenced(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says another producer took the transactional id over."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _FENCED):
            return True
        seen = seen.__cause__
    return False
