"""Fencing rebalanced partitions: a lease per partition that batches carry, and the runs consumers are in.

A subscription gives each partition a `Lease` when it first delivers from it and a new one after a
revocation, so batches delivered before a revocation are told apart from those after it by identity. A
lease is live, paused while a rebalance decides where its partition goes (nothing of it is processed, its
acknowledgments still count), or revoked (nothing of it is processed or acknowledged any more). Consumers
record the run of values they are going through (`Run`), so a rebalance can cut a run short after the value
being processed and wait for that value to finish.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LIVE", "PAUSED", "REVOKED", "Lease", "Run", "cut", "in_flight", "lease_of"]

LIVE = 0
PAUSED = 1
REVOKED = 2


class Lease:
    """A worker's hold on one partition for one subscription, from its assignment to its revocation."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = LIVE


class Run:
    """The values a consumer goes through now, and the lease of the batch they come from (None: none)."""

    __slots__ = ("lease", "values")

    def __init__(self) -> None:
        self.lease: Lease | None = None
        self.values: list[Any] = []


RUNS: set[Run] = set()
"""Every consumer's current run (one entry per iterating consumer, not per value)."""


def lease_of(acker: Any) -> Lease | None:
    """The lease of a batch's acknowledger, through the acknowledgers that wrap another (filtered batches)."""
    while acker is not None:
        if isinstance(acker, Lease):
            return acker
        acker = getattr(acker, "acker", None)
    return None


def cut(leases: set[Lease]) -> None:
    """End the runs of batches holding ``leases`` after the value each consumer is processing."""
    for run in RUNS:
        if run.lease in leases:
            run.values.clear()


def in_flight(leases: set[Lease]) -> int:
    """How many consumers are still processing a value of a batch holding one of ``leases``."""
    return sum(1 for run in RUNS if run.lease in leases)
