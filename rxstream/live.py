"""A live view: watch a stream or a table for some seconds, redrawn in place in Jupyter, as text elsewhere.

`watch` consumes a stream (bounded by ``seconds``) and keeps the latest values and a count per key, or reads a
table's items on every refresh. In Jupyter one output is updated in place; in a terminal each refresh prints
a short text block. It returns the final `LiveView`, which shows itself as HTML in a notebook.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections import Counter, deque
from typing import Any, TextIO

from .durations import Duration, seconds
from .errors import ConfigurationError
from .events import Event
from .streams import Stream

__all__ = ["LiveView", "watch"]


class LiveView:
    """What a watch saw: the latest values (with their keys) and how many arrived per key."""

    def __init__(self, title: str, latest: int) -> None:
        self.title = title
        self.latest: deque[tuple[Any, Any]] = deque(maxlen=latest)
        """The newest (key, value) pairs, oldest first (a table's items on its last refresh)."""
        self.counts: Counter[Any] = Counter()
        """Values per key (for a stream)."""
        self.total = 0

    def seen(self, key: Any, value: Any) -> None:
        """Note one value of a stream."""
        self.latest.append((key, value))
        self.counts[key] += 1
        self.total += 1

    def text(self) -> str:
        """The view as plain text (a terminal, a log)."""
        lines = [f"{self.title}: {self.total} {'values' if self.counts else 'keys'}"]
        lines += [f"  {key!r}: {value!r}" for key, value in self.latest]
        if self.counts:
            top = ", ".join(f"{key!r}={n}" for key, n in self.counts.most_common(10))
            lines.append(f"  per key: {top}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .display import live_html

        return live_html(self.title, list(self.latest), dict(self.counts.most_common(20)), self.total)

    def __repr__(self) -> str:
        return self.text()


async def watch(
    source: Any,
    seconds_: Duration = 10.0,
    *,
    every: Duration = 0.5,
    latest: int = 10,
    out: TextIO | None = None,
) -> LiveView:
    """Watch a stream or a table for ``seconds_``, redrawing every ``every`` seconds; returns the last view.

    A stream is consumed (use ``app.tap(topic)`` to watch a topic without taking anything from its readers);
    a table (anything with ``items()``, windowed tables too) is only read. In Jupyter the output updates in
    place; elsewhere (or with ``out``) each refresh is printed as text.

    >>> await watch(app.tap(orders), 5)
    """
    duration, interval = seconds(seconds_), seconds(every)
    for name, value in (("seconds", duration), ("every", interval)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigurationError(f"watch: {name} must be a positive number of seconds, got {value!r}")
    if isinstance(latest, bool) or not isinstance(latest, int) or latest < 1:
        raise ConfigurationError(f"watch: latest must be a positive integer, got {latest!r}")
    if not isinstance(source, Stream) and not callable(getattr(source, "items", None)):
        raise ConfigurationError(f"watch takes a Stream or a table, got {source!r}")
    title = source.label if isinstance(source, Stream) else f"table {getattr(source, 'name', source)!r}"
    view = LiveView(title, latest)
    show = _Output(out)
    loop = asyncio.get_running_loop()
    reader = (
        loop.create_task(_read(source.stop_after(duration), view)) if isinstance(source, Stream) else None
    )
    deadline = loop.time() + duration
    try:
        while loop.time() < deadline and not (reader is not None and reader.done()):
            if reader is None:
                _refresh_table(source, view)
            show.update(view)
            await asyncio.sleep(min(interval, max(deadline - loop.time(), 0.0)))
        if reader is not None:
            await reader
        else:
            _refresh_table(source, view)
    finally:
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    show.update(view, last=True)
    return view


async def _read(stream: Stream[Any], view: LiveView) -> None:
    async for event in stream.events():
        view.seen(event.key if isinstance(event, Event) else None, event.value)


def _refresh_table(table: Any, view: LiveView) -> None:
    items = list(table.items())
    view.latest.clear()
    view.latest.extend(items[-(view.latest.maxlen or len(items)) :])
    view.total = len(items)


class _Output:
    """Where refreshes go: one Jupyter output updated in place, or text lines."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.handle: Any = None
        self.jupyter = out is None and _in_jupyter()

    def update(self, view: LiveView, *, last: bool = False) -> None:
        if self.jupyter:
            ipython: Any = importlib.import_module("IPython.display")
            shown = ipython.HTML(view._repr_html_())
            if self.handle is None:
                self.handle = ipython.display(shown, display_id=True)
            else:
                self.handle.update(shown)
            return
        out = self.out or sys.stdout
        out.write(view.text() + ("\n" if last else "\n---\n"))
        out.flush()


def _in_jupyter() -> bool:
    """Whether this runs in a Jupyter kernel (where display updates in place)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"
