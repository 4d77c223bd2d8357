"""The worker loop: an app runs until SIGINT or SIGTERM arrives or it crashes, then stops cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import App

__all__ = ["run"]


async def run(app: App, stopped: Callable[[], Awaitable[object]], *, install_signal_handlers: bool) -> int:
    """`App.run`: start, wait for a signal or ``stopped()`` (a crash stops the app), stop; the exit code."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    if install_signal_handlers:  # before start: a signal during start-up stops the app once it is up
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, signalled.set)
    try:
        await app.start()
        waits = [loop.create_task(signalled.wait()), asyncio.ensure_future(stopped())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
    finally:
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        await app.stop()
    return 1 if app.crashed is not None else 0
