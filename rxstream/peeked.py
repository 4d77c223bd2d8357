"""What a peek reads again, and what it returns: a list that shows as a table in a notebook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from ._rx import Batch, Context, Observable
from .errors import StreamError

__all__ = ["PeekSource", "Peeked", "reread"]

PeekSource = Callable[[Context, int, float | None, bool], AbstractAsyncContextManager[Observable[Batch]]]
"""How to read a source again for a peek: (context, n, fetch timeout, latest) -> its batches."""


class Peeked(list[Any]):
    """What a peek read: a list that shows as a table in a notebook."""

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of the values or events (as `Stream.to_dataframe`)."""
        from . import display

        return display.dataframe(self)

    def _repr_html_(self) -> str:
        from .display import peeked_html

        return peeked_html(self)


def reread(build: Callable[[Context], Observable[Batch]], label: str, *, once: bool) -> PeekSource:
    """How to peek a source of values: build it again, unless it is an iterator peeking would eat."""

    @asynccontextmanager
    async def peek(
        ctx: Context, n: int, timeout: float | None, latest: bool
    ) -> AsyncIterator[Observable[Batch]]:
        if once:
            raise StreamError(
                f"cannot peek {label}: it reads an iterator, which can be read only once, so peeking would "
                f"eat its values; pass a list, tuple or range (or collect it with to_list())"
            )
        yield build(ctx)

    return peek
