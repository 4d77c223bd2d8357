"""Notebook displays: the HTML that rich reprs show, DataFrames of events, and a plot of counts.

Every ``_repr_html_`` in rxstream calls one builder here, so the look lives in one module and every piece
of user content (names, keys, values, headers, help texts) goes through `html.escape` in one place. The
plain ``__repr__`` of each class stays the fallback for terminals and logs.

pandas and matplotlib are optional (``pip install 'rxstream[notebook]'``); `require` imports them with an
error naming the extra when they are missing.

Tables (``rxstream.tables``) show themselves with `table_html` and windowed tables with
`windowed_table_html`, which take plain rows so they need nothing from the table classes.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import MissingDependencyError
from .urls import redact

if TYPE_CHECKING:
    from .app import App
    from .events import Event
    from .records import Record

__all__ = [
    "app_html",
    "dataframe",
    "event_html",
    "live_html",
    "peeked_html",
    "plot_counts",
    "record_html",
    "require",
    "stream_html",
    "table_html",
    "windowed_dataframe",
    "windowed_table_html",
]

EXTRA = "notebook"
"""The extra that installs the optional dependencies of this module."""

METADATA = ("key", "topic", "partition", "offset", "timestamp")
"""The metadata columns of `dataframe`, after the value columns."""

_REPR_LIMIT = 160
_NESTING_LIMIT = 3


def require(module: str, what: str) -> Any:
    """Import an optional dependency, or fail naming ``what`` needs it and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} needs {module.split('.')[0]}, which is not installed: pip install 'rxstream[{EXTRA}]'"
        ) from exc


# ---------------------------------------------------------------- HTML building blocks


def _short(value: Any, limit: int = _REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters, escaped."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the display of everything around it
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text)


def _code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def _value(value: Any, depth: int = 0) -> str:
    """A value as HTML: a record as its field table, anything else as its escaped, shortened repr."""
    from .records import Record

    if isinstance(value, Record) and depth < _NESTING_LIMIT:
        return _record_table(value, depth + 1)
    return f"<code>{_short(value)}</code>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, more: int = 0) -> str:
    """A table of already-escaped cells; ``more`` adds a last row saying how many rows were left out."""
    head = "".join(f'<th style="text-align:left">{html.escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:left">{cell}</td>' for cell in row) + "</tr>" for row in rows
    )
    if more:
        body += f'<tr><td colspan="{len(headers)}">… and {more} more</td></tr>'
    return f'<table class="rxstream">{f"<tr>{head}</tr>" if head else ""}{body}</table>'


def _fields(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column table of name and (escaped) value."""
    return _table((), ([f"<b>{html.escape(name)}</b>", cell] for name, cell in pairs))


def _type_name(tp: Any) -> str:
    """A declared type as a user wrote it (``Order``, ``int``, ``list[int]``); ``any`` when undeclared."""
    if tp is None:
        return "any"
    if isinstance(tp, str):
        return tp
    if isinstance(tp, type) and not getattr(tp, "__args__", None):
        return tp.__qualname__
    return str(tp).replace("typing.", "")


def _time(timestamp: Any) -> str:
    """A timestamp in seconds as ISO 8601 UTC text (escaped), or its repr when it is not one."""
    try:
        moment = datetime.fromtimestamp(float(timestamp), tz=UTC)
        return html.escape(moment.isoformat(timespec="milliseconds"))
    except (TypeError, ValueError, OverflowError, OSError):
        return _short(timestamp)


def _box(kind: str, title: str, body: str) -> str:
    return f'<div class="rxstream-{kind}"><b>{html.escape(kind.capitalize())}</b> {title}{body}</div>'


# ---------------------------------------------------------------- reprs


def stream_html(
    source: str, steps: Sequence[str], *, consumed_by: str | None, noack: bool, peekable: bool
) -> str:
    """A stream: its source, its operator chain in order, and whether it was consumed or can be peeked."""
    chain = "".join(f"<li>{_code(step)}</li>" for step in steps)
    chain = f"<ol>{chain}</ol>" if chain else "<div><i>no operators</i></div>"
    status = [f"consumed {html.escape(consumed_by)}" if consumed_by else "not consumed yet"]
    if noack:
        status.append("noack: the consumer acknowledges each event")
    status.append("<code>await stream.peek(n)</code> reads it again" if peekable else "not peekable")
    return _box("stream", f"from {_code(source)}", chain + f"<div><small>{'; '.join(status)}</small></div>")


def event_html(event: Event) -> str:
    """An event: key, value, headers, and where its message lives (topic, partition, offset, timestamp)."""
    message = event.message
    where = _code(f"{message.topic}[{message.partition}]@{message.offset}") if message is not None else ""
    headers = "<br>".join(f"{_code(str(name))}: {_short(value)}" for name, value in event.headers.items())
    rows = [("key", _value(event.key)), ("value", _value(event.value)), ("headers", headers or "<i>none</i>")]
    if message is not None:
        rows += [
            ("topic", _code(message.topic)),
            ("partition", str(message.partition)),
            ("offset", str(message.offset)),
        ]
    if event.timestamp is not None:
        rows.append(("timestamp", _time(event.timestamp)))
    if message is not None:
        rows.append(("acked", "yes" if event.acked else "no"))
        if event.rejected:
            rows.append(("rejected", "yes"))
    return _box("event", where, _fields(rows))


def record_html(record: Record) -> str:
    """A record: its class and a table of its fields (name, type, value)."""
    return _box("record", _code(type(record).__qualname__), _record_table(record, 1))


def _record_table(record: Any, depth: int) -> str:
    rows = [
        (_code(field.name), _code(_type_name(field.type)), _value(getattr(record, field.name), depth))
        for field in dataclasses.fields(record)
    ]
    return _table(("field", "type", "value"), rows)


def app_html(app: App) -> str:
    """An app: its broker, topics (partitions, types, error policy), agents, channels and tables."""
    topics = {id(topic): topic for topic in app.topics.values()}.values()
    topic_rows = [
        (
            _code(", ".join(topic.names)),
            str(topic.partitions) if topic.partitions else f"{app.topic_partitions} (default)",
            _code(_type_name(topic.key_type)),
            _code(_type_name(topic.value_type)),
            _code(str(topic.value_serializer)),
            html.escape(_policy(topic.policy.on_error, topic.policy.dead_letter))
            + (" <i>(internal)</i>" if topic.internal else ""),
        )
        for topic in topics
    ]
    agent_rows = [
        (
            _code(agent.name.removeprefix("__main__.")),
            _code(agent.channel.name),
            str(agent.concurrency),
            html.escape(agent.help) if agent.help else "<i>none</i>",
            ("running" if agent.running else "stopped")
            + (f": last error {_short(agent.last_error)}" if agent.last_error is not None else ""),
        )
        for agent in app.agents.values()
    ]
    channel_rows = [
        (_code(channel.name), _code(_type_name(channel.value_type)), str(channel.maxsize))
        for channel in app.channels
    ]
    table_rows = [
        (
            _code(table.name),
            html.escape(type(table).__name__),
            str(len(table)),
            str(table.partitions),
            _code(table.changelog_topic),
            html.escape(table.help) if table.help else "<i>none</i>",
        )
        for table in app.tables.values()
    ]
    monitor = app.monitor
    committable = app.committed_offsets()
    partition_rows = [
        (
            _code(tp.topic),
            str(tp.partition),
            str(stats.received),
            _or_dash(committable.get(tp)),
            _or_dash(stats.committed),
            _or_dash(stats.end),
            _or_dash(stats.lag),
        )
        for tp, stats in sorted(monitor.partitions.items())
    ]
    state = monitor.state if app.started else "stopped"
    parts = [
        f"<div><b>{html.escape(state)}</b>: {len(topic_rows)} topics, {len(agent_rows)} agents, "
        f"{len(channel_rows)} channels, {len(table_rows)} tables</div>",
        _section("topics", ("name", "partitions", "key", "value", "serializer", "on error"), topic_rows),
        _section("agents", ("name", "reads", "concurrency", "help", "state"), agent_rows),
        _section("channels", ("name", "value type", "maxsize"), channel_rows),
        _section("tables", ("name", "kind", "keys", "partitions", "changelog", "help"), table_rows),
        _section(
            "partitions read (end offset and lag as of the last app.monitor.refresh())",
            ("topic", "partition", "received", "acknowledged to", "committed", "end offset", "lag"),
            partition_rows,
        ),
    ]
    return _box("app", f"{_code(app.id)} on {_code(redact(app.broker))}", "".join(parts))


def _or_dash(value: int | None) -> str:
    return "—" if value is None else str(value)


def _policy(on_error: str, dead_letter: str | None) -> str:
    return f"dead letter to {dead_letter}" if on_error == "dead_letter" and dead_letter else on_error


def _section(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    return f"<div><i>{html.escape(title)}</i></div>" + _table(headers, rows)


def table_html(name: str, items: Iterable[tuple[Any, Any]], size: int, *, limit: int = 10) -> str:
    """A table (``rxstream.tables``): its name, size, and its first ``limit`` (key, value) rows."""
    rows = [(_value(key), _value(value)) for key, value in _first(items, limit)]
    body = f"<div>{size} keys</div>" + _table(("key", "value"), rows, more=max(0, size - len(rows)))
    return _box("table", _code(name), body)


def windowed_table_html(
    name: str,
    rows: Iterable[tuple[Any, ...]],
    size: int,
    *,
    limit: int = 10,
    spec: str | None = None,
) -> str:
    """A windowed table: its first ``limit`` (key, window, value[, closed]) rows; a window is (start, end).

    A window may also be any object with ``start`` and ``end`` attributes; ``spec`` says how it windows.
    """
    cells: list[tuple[str, ...]] = []
    with_closed = False
    for key, window, value, *closed in _first(rows, limit):
        start, end = (window.start, window.end) if hasattr(window, "start") else window
        state = ("closed" if closed[0] else "open") if closed else ""
        with_closed = with_closed or bool(closed)
        cells.append((_value(key), _time(start), _time(end), _value(value), state))
    header: tuple[str, ...] = ("key", "window start", "window end", "value")
    if with_closed:
        header = (*header, "window")
    else:
        cells = [cell[:4] for cell in cells]
    described = f"<div>{html.escape(spec)}</div>" if spec else ""
    body = described + f"<div>{size} windows</div>" + _table(header, cells, more=max(0, size - len(cells)))
    return _box("table", f"{_code(name)} <i>(windowed)</i>", body)


def windowed_dataframe(rows: Iterable[tuple[Any, ...]]) -> Any:
    """A wide DataFrame of (key, window, value, ...) rows: index key, a column per window start (UTC)."""
    pd = require("pandas", "WindowedTable.to_dataframe()")
    cells: dict[Any, dict[Any, Any]] = {}
    starts: dict[Any, None] = {}
    for key, window, value, *_ in rows:
        start = pd.Timestamp(window.start, unit="s", tz="UTC")
        starts[start] = None
        cells.setdefault(key, {})[start] = value
    frame = pd.DataFrame.from_dict(cells, orient="index", columns=sorted(starts))
    frame.index.name = "key"
    frame.columns.name = "window start"
    return frame


def peeked_html(items: Sequence[Any], *, limit: int = 50) -> str:
    """What a peek read, as a table: values (a record's fields as columns), with metadata for events."""
    from .events import Event

    shown = list(items[:limit])
    metadata = ("key", "topic", "partition", "offset", "timestamp")
    with_events = any(isinstance(item, Event) for item in shown)
    columns: dict[str, None] = {}
    rows: list[dict[str, Any]] = []
    for item in shown:
        value = item.value if isinstance(item, Event) else item
        row = _value_columns(value)
        columns.update(dict.fromkeys(row))
        if isinstance(item, Event):
            message = item.message
            row.update(key=item.key, timestamp=item.timestamp)
            if message is not None:
                row.update(topic=message.topic, partition=message.partition, offset=message.offset)
        rows.append(row)
    headers = [*columns, *(metadata if with_events else ())]
    cells = [
        [
            _time(row[h]) if h == "timestamp" and h in row else _value(row[h]) if h in row else ""
            for h in headers
        ]
        for row in rows
    ]
    body = f"<div>{len(items)} values</div>" + _table(headers, cells, more=max(0, len(items) - len(shown)))
    return _box("peek", "", body)


def live_html(title: str, latest: Sequence[tuple[Any, Any]], counts: Mapping[Any, int], total: int) -> str:
    """A live view: the newest (key, value) pairs, and the count per key when there are counts."""
    body = f"<div>{total} {'values' if counts else 'keys'}</div>"
    body += _table(("key", "value"), [(_value(key), _value(value)) for key, value in latest])
    if counts:
        body += "<div><i>per key</i></div>" + _table(
            ("key", "count"), [(_value(key), str(n)) for key, n in counts.items()]
        )
    return _box("live", _code(title), body)


def _first(items: Iterable[Any], limit: int) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if len(out) >= limit:
            break
        out.append(item)
    return out


# ---------------------------------------------------------------- data frames and plots


def dataframe(items: Iterable[Any]) -> Any:
    """A pandas DataFrame of values or events: value columns, then the metadata columns that are known.

    A record's fields become columns (nested records as ``outer.inner``; a field named like a metadata
    column as ``value.<name>``); any other value is the ``value`` column. ``timestamp`` is a UTC datetime.
    """
    from .events import Event

    pd = require("pandas", "rxstream.display.dataframe()")
    rows: list[dict[str, Any]] = []
    for item in items:
        event = item if isinstance(item, Event) else None
        row = _value_columns(event.value if event is not None else item)
        if event is not None:
            message = event.message
            row["key"] = event.key
            row["topic"] = message.topic if message is not None else None
            row["partition"] = message.partition if message is not None else None
            row["offset"] = message.offset if message is not None else None
            row["timestamp"] = event.timestamp
        rows.append(row)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(c for c in row if c not in METADATA))
    known = [c for c in METADATA if any(row.get(c) is not None for row in rows)]
    frame = pd.DataFrame(rows, columns=[*columns, *known])
    if "timestamp" in known:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return frame


def _value_columns(value: Any) -> dict[str, Any]:
    """A value as columns: a record's fields flattened, anything else as ``value``."""
    from .records import Record

    if not isinstance(value, Record):
        return {"value": value}
    out: dict[str, Any] = {}
    for name, field_value in _flatten(value, ""):
        out[f"value.{name}" if name in METADATA else name] = field_value
    return out


def _flatten(record: Any, prefix: str) -> Iterable[tuple[str, Any]]:
    from .records import Record

    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, Record):
            yield from _flatten(value, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", value


def plot_counts(
    counts: Mapping[Any, Any] | Iterable[tuple[Any, Any]],
    *,
    ax: Any = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str = "count",
) -> Any:
    """Plot counts with matplotlib and return the Axes: one mapping as bars, a mapping of mappings as lines.

    ``{"ada": 3, "bob": 5}`` draws a bar per key; ``{"ada": {0: 1, 1: 2}, "bob": {0: 4}}`` (e.g. counts per
    key per window) draws a line per key over the windows. Pass ``ax`` to redraw a live figure.
    """
    pairs = _pairs(counts)
    if ax is None:
        plt = require("matplotlib.pyplot", "rxstream.display.plot_counts()")
        _, ax = plt.subplots(figsize=(7, 3))
    else:
        ax.clear()
    if pairs and all(hasattr(series, "items") for _, series in pairs):
        lines = [(name, dict(_pairs(series))) for name, series in pairs]
        xs = sorted({x for _, series in lines for x in series}, key=_sort_key)
        for name, series in lines:
            ax.plot([str(x) for x in xs], [series.get(x, 0) for x in xs], marker="o", label=str(name))
        ax.legend(loc="best", fontsize="small")
    else:
        ax.bar([str(x) for x, _ in pairs], [y for _, y in pairs])
    if title is not None:
        ax.set_title(title)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def _pairs(counts: Any) -> list[tuple[Any, Any]]:
    """(x, y) pairs of a mapping (or pandas Series) or of an iterable of pairs."""
    return list(counts.items()) if hasattr(counts, "items") else list(counts)


def _sort_key(x: Any) -> tuple[int, Any]:
    """Numbers in order, then everything else by its text (so mixed keys still sort)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return (0, x)
    return (1, str(x))
