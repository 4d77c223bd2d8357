"""Checks of the arguments stream operators take, and how errors and labels name what was passed."""

from __future__ import annotations

from typing import Any

from .errors import ConfigurationError

__all__ = ["check_callable", "check_positive", "name_of", "short"]


def check_callable(fun: Any, operator: str) -> None:
    """Refuse a ``fun`` that cannot be called, naming the operator."""
    if not callable(fun):
        raise ConfigurationError(f"Stream.{operator}() takes a function, got {type(fun).__name__} {fun!r}")


def check_positive(value: Any, name: str, operator: str, *, integer: bool = False) -> None:
    """Refuse a ``value`` that is not a positive number (``integer``: a positive int), naming it."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigurationError(f"Stream.{operator}(): {name} must be {kind}, got {value!r}")


def name_of(thing: Any) -> str:
    """How a label names a function, channel or table."""
    name = getattr(thing, "__qualname__", None) or getattr(thing, "name", None) or type(thing).__name__
    return str(name)


def short(thing: Any) -> str:
    """``repr(thing)``, cut to fit a label."""
    text = repr(thing)
    return text if len(text) <= 40 else text[:37] + "..."
