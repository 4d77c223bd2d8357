"""Waiting for a condition in a notebook or a test: polled, bounded, failing with what it waited for."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from .durations import Duration, seconds
from .errors import ConfigurationError

__all__ = ["wait_until"]


async def wait_until(
    check: Callable[[], Any | Awaitable[Any]], *, timeout: Duration = 10.0, interval: Duration = 0.01
) -> Any:
    """Wait until ``check()`` (plain or async) returns something true, and return it.

    Raises TimeoutError naming the check when it does not hold within ``timeout`` seconds.

    >>> await wait_until(lambda: len(counts) >= 3, timeout=5)
    """
    limit, every = seconds(timeout), seconds(interval)
    for name, value in (("timeout", limit), ("interval", every)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigurationError(
                f"wait_until: {name} must be a positive number of seconds, got {value!r}"
            )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            what = getattr(check, "__qualname__", repr(check))
            raise TimeoutError(f"wait_until: {what} did not hold within {limit:g} s")
        await asyncio.sleep(every)
