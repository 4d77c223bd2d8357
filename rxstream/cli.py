"""The ``rxstream`` command line: run a worker, send a message, list what an app declares."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .commands import OPTIONS, argument, call_command, option
from .errors import ConfigurationError, RxStreamError
from .progress import Progress
from .urls import broker_url

if TYPE_CHECKING:
    from .app import App

__all__ = ["argument", "load_app", "main", "option"]

def load_app(spec: str) -> App:
    """The App named by ``module:attribute`` (``module`` alone means ``module:app``)."""
    from .app import App

    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"-A {spec}: cannot import module {module_name!r}: {exc}") from exc
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise ConfigurationError(f"-A {spec}: {module_name}.{attribute or 'app'} is not an rxstream.App")
    return app


def _parser(app: App | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rxstream", description="Stream processing on ReactiveX.")
    # -A and --broker go before the command (Faust's order) or after it
    parser.add_argument("-A", "--app", help="the app, as module:attribute")
    parser.add_argument("-b", "--broker", help="override the app's broker URL")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("-A", "--app", default=argparse.SUPPRESS, help="the app, as module:attribute")
        sub.add_argument(
            "-b",
            "--broker",
            default=argparse.SUPPRESS,
            help="override the app's broker URL (memory:// or kafka://host:port)",
        )
        sub.add_argument("-l", "--loglevel", default="info", help="log level (debug, info, warning, error)")
        return sub

    add("worker", "run the app's agents until SIGINT/SIGTERM")
    send = add("send", "send one message to a topic (VALUE is the serialized payload, e.g. JSON text)")
    send.add_argument("topic")
    send.add_argument("value", nargs="?")
    send.add_argument("--key", help="the message key (UTF-8 text)")
    send.add_argument("--partition", type=int)
    add("agents", "list the app's agents")
    add("topics", "list the app's topics")
    for name, fun in app.commands.items() if app is not None else ():
        sub = add(name, (inspect.getdoc(fun) or "").split("\n")[0])
        for declared in getattr(fun, OPTIONS, []):
            declared.add_to(sub)
    _add_operations(parser, commands, add)
    return parser


def _add_operations(
    parser: argparse.ArgumentParser,
    commands: Any,
    add: Callable[[str, str], argparse.ArgumentParser],
) -> None:
    """The operator's options and commands: version, web endpoints, JSON logs, tables, offset resets."""
    parser.add_argument("--version", action="version", version=f"rxstream {_version()}")
    send = commands.choices["send"]
    send.add_argument("--file", help="send each line of FILE: a JSON value, or key<TAB>value")
    worker = commands.choices["worker"]
    worker.add_argument("--web-port", type=int, help="serve /metrics, /stats, /health and /tables on port N")
    worker.add_argument("--web-host", default="127.0.0.1", help="the address the web endpoints listen on")
    add("tables", "list the app's tables: partitions, changelog topic, store, local size")
    reset = add("reset", "move the app group's committed offsets of a topic (no worker may be running)")
    reset.add_argument("--topic", required=True, help="the topic whose committed offsets move")
    where = reset.add_mutually_exclusive_group()
    where.add_argument("--to-earliest", action="store_true", help="to the first retained offset (default)")
    where.add_argument("--to-latest", action="store_true", help="to the end offset (skip what is there)")
    where.add_argument("--to-offset", type=int, metavar="N", help="to offset N in every partition")
    for sub in commands.choices.values():
        sub.add_argument(
            "--log-format", choices=("text", "json"), default="text", help="log lines as text or JSON objects"
        )


def main(argv: Sequence[str] | None = None, *, app: App | None = None) -> None:
    """Entry point of the ``rxstream`` console script (and of ``app.main()``)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if app is None:
        app = _peek_app(args_list)
    args = _parser(app).parse_args(args_list)
    logging.basicConfig(
        level=getattr(logging, str(args.loglevel).upper(), logging.INFO),
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "log_format", "text") == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    try:
        if app is None and not args.app:
            raise ConfigurationError(f"{args.command}: which app? give -A module:attribute")
        chosen = app if app is not None else load_app(args.app)
        if args.broker:
            chosen.broker = broker_url(args.broker)
        sys.exit(asyncio.run(_run(chosen, args)))
    except ConfigurationError as exc:
        print(f"rxstream: {exc}", file=sys.stderr)
        sys.exit(2)
    except RxStreamError as exc:  # e.g. the broker is unreachable: the message names it, no traceback needed
        print(f"rxstream: {exc}", file=sys.stderr)
        sys.exit(1)


def _peek_app(argv: list[str]) -> App | None:
    """Load the -A app early so its custom commands become subcommands."""
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-A", "--app") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--app="):
            value = arg.split("=", 1)[1]
        if value:
            try:
                return load_app(value)
            except ConfigurationError as exc:
                print(f"rxstream: {exc}", file=sys.stderr)
                sys.exit(2)
    return None


async def _run(app: App, args: argparse.Namespace) -> int:
    command = args.command
    if command == "worker" and args.web_port is not None:
        return await _run_with_web(app, args.web_host, args.web_port)
    if command == "worker":
        return await app.run()
    if command == "agents":
        for agent in app.agents.values():
            print(f"{agent.name}\t{agent.channel!r}\tconcurrency={agent.concurrency}\t{agent.help}")
        return 0
    if command == "topics":
        for name, topic in app.topics.items():
            partitions = topic.partitions or app.topic_partitions
            print(f"{name}\tpartitions={partitions}\tvalue_type={_type_name(topic)}")
        return 0
    if command == "send" and (args.file is None) == (args.value is None):
        raise ConfigurationError("send: give either VALUE or --file FILE")
    if command == "send" and args.file is not None:
        return await _send_file(app, args.topic, args.file, args.partition)
    if command == "tables":
        _print_tables(app)
        return 0
    if command == "reset":
        return await _reset(app, args)
    if command == "send":
        transport = await app.producer()
        try:
            value: Any = args.value.encode("utf-8")
            key: Any = args.key.encode("utf-8") if args.key is not None else None
            metadata = await transport.send(args.topic, key, value, partition=args.partition)
            print(f"sent to {metadata.topic}[{metadata.partition}]@{metadata.offset}")
        finally:
            await transport.stop()
        return 0
    await call_command(app, app.commands[command], args)
    return 0


def _type_name(topic: Any) -> str:
    value_type = topic.value_type
    return getattr(value_type, "__name__", repr(value_type)) if value_type is not None else "-"


# ------------------------------------------------------------ operations


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rxstream")
    except PackageNotFoundError:
        return "unknown (not installed)"


async def _run_with_web(app: App, host: str, port: int) -> int:
    """Run the worker with its web endpoints up from before start (so /health answers 503 while starting)."""
    from .web import WebServer

    server = WebServer(app, host=host, port=port)
    await server.start()
    try:
        return await app.run()
    finally:
        await server.stop()


def _print_tables(app: App) -> None:
    """One line per table: name, partitions, changelog topic, store, local size."""
    for name, table in app.tables.items():
        try:
            size = str(len(table))
        except Exception:  # a store that is not open here (nothing held locally)
            size = "-"
        print(
            f"{name}\tpartitions={table.partitions}\tchangelog={table.changelog_topic}\t"
            f"store={table.store_url}\tlocal_size={size}"
        )


async def _send_file(app: App, topic: str, path: str, partition: int | None) -> int:
    """Send one message per line of ``path`` (JSON text, or ``key<TAB>value``), logging rate and ETA."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = [line.rstrip("\r\n") for line in file]
    except OSError as exc:
        raise ConfigurationError(f"send --file {path}: {exc}") from exc
    records: list[tuple[Any, Any, int | None, None]] = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        key, tab, value = line.partition("\t")
        if not tab:
            key, value = "", line
            try:
                json.loads(value)
            except ValueError as exc:
                raise ConfigurationError(
                    f"send --file {path}: line {number} is neither JSON nor key<TAB>value: {exc}"
                ) from exc
        records.append((key.encode("utf-8") if tab else None, value.encode("utf-8"), partition, None))
    transport = await app.producer()
    progress = Progress(
        f"sending {path} to {topic!r}", len(records), unit="lines", log=logging.getLogger(__name__)
    )
    try:
        for start in range(0, len(records), 1000):
            chunk = records[start : start + 1000]
            await transport.send_many(topic, chunk)
            progress.advance(len(chunk))
    finally:
        progress.close()
        await transport.stop()
    print(f"sent {len(records)} messages from {path} to {topic} in {time.monotonic() - progress.began:.2f} s")
    return 0


async def _reset(app: App, args: argparse.Namespace) -> int:
    """Move the app group's committed offsets of ``--topic``; refuses while members of the group are alive."""
    transport = await app.producer()
    topic, group = args.topic, app.id
    try:
        alive = await transport.group_members(group)
        if alive:
            print(
                f"rxstream: consumer group {group!r} has {alive} live member(s): stop every worker of app "
                f"{app.id!r} before resetting the offsets of topic {topic!r}",
                file=sys.stderr,
            )
            return 1
        ends = await transport.end_offsets(topic)
        if args.to_latest:
            targets = dict(ends)
        elif args.to_offset is not None:
            targets = {tp: min(max(args.to_offset, 0), end) for tp, end in ends.items()}
        else:
            targets = await transport.first_offsets(topic)

        async def no_listener(revoked: Sequence[Any], assigned: Sequence[Any]) -> None:
            return None

        consumer = transport.consumer(group, [topic], no_listener)
        await consumer.start()
        try:
            await consumer.commit(targets)
        finally:
            await consumer.stop()
    finally:
        await transport.stop()
    for tp, offset in sorted(targets.items()):
        print(f"{tp.topic}[{tp.partition}] -> {offset}")
    return 0


_PLACE = re.compile(r"(?P<topic>[\w.\-]+)\[(?P<partition>\d+)\]@(?P<offset>\d+)")
_WHERE = re.compile(r"topic '(?P<topic>[^']+)' partition (?P<partition>\d+)(?: offset (?P<offset>\d+))?")
_AGENT = re.compile(r"\bagent (?P<agent>[\w.\-:]+)")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line; topic, partition, offset and agent become fields where known."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for pattern in (_PLACE, _WHERE, _AGENT):
            found = pattern.search(message)
            if found is not None:
                for field, value in found.groupdict().items():
                    if value is not None:
                        line.setdefault(field, int(value) if field in ("partition", "offset") else value)
        for field in ("topic", "partition", "offset", "agent"):
            value = getattr(record, field, None)  # given with logging's extra=
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


if __name__ == "__main__":
    main()
