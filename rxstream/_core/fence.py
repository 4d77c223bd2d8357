"""Fencing rebalanced partitions: a lease per partition that batches carry, and the runs consumers are in.

A subscription gives each partition a `Lease` when it first delivers from it and a new one after a
revocation, so batches delivered before a revocation are told apart from those after it by identity. A
lease is live, paused while a rebalance decides where its partition goes (nothing of it is processed, its
acknowledgments still count), or revoked (nothing of it is processed or acknowledged any more). A paused
lease holds what its waiters await (`Settling`, made by the I/O shell, one per rebalance), resolved once
the rebalance resumed or forgot the partition.

Batches are checked once each where they enter the operator chain and where they are consumed, never per
value: a batch's leases are its acknowledger's (`leases_of`). A batch of values made of several inputs
(take, buffer, pipe, flat_map into a stream) is acknowledged by a `GroupLeases`, which knows the leases of
all its inputs. Such a batch waits while any of them is paused; once none is, a value whose inputs' leases
are all revoked is dropped (neither processed nor acknowledged), and a value mixing live and revoked inputs
is still processed: acknowledging it reaches only its live inputs, as revoked leases ignore
acknowledgments (`admit`).

Consumers record the run of values they are going through (`Run`) in the leases of its batch, so a
rebalance can cut a run short after the value being processed and wait for that value to finish; each
lease holds only its own runs, so apps in one process never see each other's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Sequence
from typing import Any, Protocol

from .refs import GROUP_ACKER, Group, Item, Ref

__all__ = [
    "LIVE",
    "PAUSED",
    "REVOKED",
    "GroupLeases",
    "Lease",
    "Run",
    "Settling",
    "admit",
    "cut",
    "in_flight",
    "lease_of",
    "leases_of",
    "state_of",
]

LIVE = 0
PAUSED = 1
REVOKED = 2


class Settling(Protocol):
    """What waiters of a paused lease wait for: an awaitable that calls back once the rebalance decided."""

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...

    def __await__(self) -> Generator[Any, None, Any]: ...


class Lease:
    """A worker's hold on one partition for one subscription, from its assignment to its revocation."""

    __slots__ = ("runs", "settled", "state")

    def __init__(self) -> None:
        self.state = LIVE
        self.settled: Settling | None = None
        """While paused: resolved once the rebalance resumed or forgot the partition."""
        self.runs: set[Run] = set()
        """The runs consumers are going through now from batches of this lease."""


class Run:
    """The values a consumer goes through now, and the leases of the batch they come from."""

    __slots__ = ("leases", "values")

    def __init__(self) -> None:
        self.leases: Collection[Lease] = ()
        self.values: list[Any] = []

    def enter(self, values: list[Any], leases: Collection[Lease]) -> None:
        """Begin going through ``values`` of a batch holding ``leases`` (a rebalance may cut them short)."""
        self.values = values
        self.leases = leases
        for lease in leases:
            lease.runs.add(self)

    def leave(self) -> None:
        """Done with the run: its leases no longer wait for this consumer."""
        for lease in self.leases:
            lease.runs.discard(self)
        self.leases = ()


class GroupLeases:
    """The acknowledger of a batch of groups (as `GROUP_ACKER`) that knows the leases of their inputs."""

    __slots__ = ("leases",)

    def __init__(self, leases: Collection[Lease]) -> None:
        self.leases = leases

    def ack(self, refs: Sequence[Group | None]) -> None:
        GROUP_ACKER.ack(refs)

    def reject(self, ref: Group) -> None:
        GROUP_ACKER.reject(ref)


def lease_of(acker: Any) -> Lease | None:
    """The lease of a batch's acknowledger, through the acknowledgers that wrap another (filtered batches)."""
    while acker is not None:
        if isinstance(acker, Lease):
            return acker
        acker = getattr(acker, "acker", None)
    return None


def leases_of(acker: Any) -> Collection[Lease]:
    """The leases a batch with this acknowledger holds: its partition's, or those of its groups' inputs."""
    while acker is not None:
        if isinstance(acker, Lease):
            return (acker,)
        if isinstance(acker, GroupLeases):
            return acker.leases
        acker = getattr(acker, "acker", None)
    return ()


def _pair_leases(acker: Any, ref: Ref) -> Collection[Lease]:
    if isinstance(ref, Item):
        acker = ref.origin.acker
    return leases_of(acker)


def state_of(leases: Collection[Lease]) -> int:
    """PAUSED if any lease is paused, else REVOKED if any is revoked, else LIVE."""
    state = LIVE
    for lease in leases:
        if lease.state == PAUSED:
            return PAUSED
        state |= lease.state
    return state


def admit(
    values: list[Any], refs: Sequence[Ref] | None, leases: Collection[Lease]
) -> tuple[list[Any], list[Ref]] | None:
    """What of a batch none of whose ``leases`` is paused may still be processed: None for all of it.

    Returns the values and references kept when some are dropped (every input of theirs revoked), or
    ``([], [])`` when nothing is left.
    """
    if state_of(leases) == LIVE:
        return None
    if refs is None or all(lease.state == REVOKED for lease in leases):
        return [], []
    kept_values: list[Any] = []
    kept_refs: list[Ref] = []
    for value, ref in zip(values, refs, strict=False):
        if isinstance(ref, Group):
            held = [lease for acker, inner in ref.pairs for lease in _pair_leases(acker, inner)]
            if held and all(lease.state == REVOKED for lease in held):
                continue
        kept_values.append(value)
        kept_refs.append(ref)
    return kept_values, kept_refs


def cut(leases: Collection[Lease]) -> None:
    """End the runs of batches holding ``leases`` after the value each consumer is processing."""
    for lease in leases:
        for run in lease.runs:
            run.values.clear()


def in_flight(leases: Collection[Lease]) -> int:
    """How many consumers are still processing a value of a batch holding one of ``leases``."""
    return len({run for lease in leases for run in lease.runs})
