"""Durations: every time span in the public API is seconds (int or float) or a `datetime.timedelta`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeAlias, overload

__all__ = ["Duration", "seconds"]

Duration: TypeAlias = float | timedelta
"""A time span: seconds, or a `datetime.timedelta`."""


@overload
def seconds(value: Duration) -> float: ...


@overload
def seconds(value: Duration | None) -> float | None: ...


def seconds(value: Any) -> Any:
    """A timedelta as seconds; anything else is returned as it is, for the caller's own checks."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value
