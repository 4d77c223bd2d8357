"""KeyValue: what an agent yields to give a value another key than the event it came from."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["KeyValue"]


class KeyValue(NamedTuple):
    """A value with the key it is sent under: ``yield KeyValue(order.customer, total)`` re-keys a result.

    A plain yielded value keeps the key of the event it came from, so sinks stay co-partitioned with the
    source; a ``KeyValue`` replaces that key (``None`` sends the value without one).
    """

    key: Any
    value: Any
