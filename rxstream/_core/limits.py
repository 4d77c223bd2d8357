"""Limits in time, sans I/O: a token bucket, a join window and group expiry, fed a clock in seconds."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any, TypeAlias

from ..events import Acknowledger
from .refs import Pair, Ref

_Entry: TypeAlias = tuple[float, Any, Acknowledger | None, Ref]
"""A value in the join window: arrival time, value, acknowledger, reference."""

__all__ = ["GroupExpiry", "JoinWindow", "TokenBucket"]


class TokenBucket:
    """Tokens refill at ``rate`` per second up to ``capacity``; a value passes by taking a whole token.

    The bucket starts full, so a burst of ``capacity`` values passes at once.
    """

    __slots__ = ("_at", "_tokens", "capacity", "rate")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self._tokens = capacity
        self._at = now

    @property
    def tokens(self) -> float:
        """The tokens left at the last refill (fractions count towards the next whole token)."""
        return self._tokens

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def available(self, now: float) -> int:
        """How many values may pass at ``now``."""
        self._refill(now)
        return int(self._tokens)

    def take(self, n: int, now: float) -> int:
        """Let up to ``n`` values pass at ``now``; returns how many did."""
        self._refill(now)
        granted = min(n, int(self._tokens))
        self._tokens -= granted
        return granted

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until the next whole token."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate)


class JoinWindow:
    """The values of several sources by key, each kept ``within`` seconds after its arrival.

    A value arriving from one source joins every combination of the values its key holds in all other
    sources. Entries carry an (acknowledger, reference) pair handed back when they leave the window.
    """

    __slots__ = ("_arrivals", "_keys", "within")

    def __init__(self, sources: int, within: float) -> None:
        self.within = within
        # per source: key -> entries (arrival, value, acknowledger, reference) in arrival order
        self._keys: list[dict[Hashable, deque[_Entry]]] = [{} for _ in range(sources)]
        self._arrivals: deque[tuple[float, int, Hashable]] = deque()

    def __len__(self) -> int:
        """How many values the window holds."""
        return len(self._arrivals)

    def add(
        self, index: int, key: Hashable, value: Any, acker: Acknowledger | None, ref: Ref, now: float
    ) -> list[tuple[Any, ...]]:
        """Hold ``value`` of source ``index``; returns the tuples it joins, one value per source."""
        keys = self._keys
        combos: list[tuple[Any, ...]] = []
        if all(key in other for j, other in enumerate(keys) if j != index):
            combos.append(())
            for j, other in enumerate(keys):
                if j == index:
                    combos = [(*combo, value) for combo in combos]
                else:
                    combos = [(*combo, entry[1]) for combo in combos for entry in other[key]]
        entries = keys[index].get(key)
        if entries is None:
            entries = keys[index][key] = deque()
        entries.append((now, value, acker, ref))
        self._arrivals.append((now, index, key))
        return combos

    def expire(self, now: float) -> list[tuple[Acknowledger, Ref]]:
        """Drop the values that arrived more than ``within`` seconds before ``now``.

        Returns their (acknowledger, reference) pairs, oldest first, leaving out those without either.
        """
        arrivals = self._arrivals
        cutoff = now - self.within
        left: list[tuple[Acknowledger, Ref]] = []
        while arrivals and arrivals[0][0] < cutoff:
            _, index, key = arrivals.popleft()
            window = self._keys[index]
            entries = window.get(key)
            if entries:
                _, _, acker, ref = entries.popleft()
                if acker is not None and ref is not None:
                    left.append((acker, ref))
                if not entries:
                    del window[key]
        return left

    def due(self) -> float | None:
        """When the oldest value leaves the window (it must be older than this), or None when empty."""
        return self._arrivals[0][0] + self.within if self._arrivals else None

    def drain(self) -> list[list[Pair]]:
        """Empty the window; returns per source the (acknowledger, reference) pairs that have a reference."""
        drained: list[list[Pair]] = []
        for window in self._keys:
            drained.append(
                [
                    (acker, ref)
                    for entries in window.values()
                    for _, _, acker, ref in entries
                    if ref is not None
                ]
            )
            window.clear()
        self._arrivals.clear()
        return drained


class GroupExpiry:
    """When each group key was last seen; a key idle for ``timeout`` seconds has expired.

    Expiry is checked every ``timeout`` seconds while any key is tracked, so a key closes between
    ``timeout`` and twice ``timeout`` after its last value.
    """

    __slots__ = ("_seen", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._seen: dict[Hashable, float] = {}

    def __len__(self) -> int:
        """How many keys are tracked."""
        return len(self._seen)

    def touch(self, key: Hashable, now: float) -> None:
        """Record that ``key`` had a value at ``now``."""
        self._seen[key] = now

    def expired(self, now: float) -> list[Hashable]:
        """Forget and return the keys idle for at least ``timeout`` at ``now``, in the order first seen."""
        cutoff = now - self.timeout
        seen = self._seen
        gone = [key for key, at in seen.items() if at <= cutoff]
        for key in gone:
            del seen[key]
        return gone

    def next_check(self) -> float | None:
        """Seconds until keys are checked for expiry again, or None when no key is tracked."""
        return self.timeout if self._seen else None
