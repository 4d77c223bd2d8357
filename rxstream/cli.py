"""The ``rxstream`` command line: run a worker, send a message, list what an app declares."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, RxStreamError

if TYPE_CHECKING:
    from .app import App

__all__ = ["load_app", "main"]


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
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("-A", "--app", required=app is None, help="the app, as module:attribute")
        sub.add_argument("--broker", help="override the app's broker URL (memory:// or kafka://host:port)")
        sub.add_argument("-l", "--loglevel", default="info", help="log level (debug, info, warning, error)")
        return sub

    add("worker", "run the app's agents until SIGINT/SIGTERM")
    send = add("send", "send one message to a topic (VALUE is the serialized payload, e.g. JSON text)")
    send.add_argument("topic")
    send.add_argument("value")
    send.add_argument("--key", help="the message key (UTF-8 text)")
    send.add_argument("--partition", type=int)
    add("agents", "list the app's agents")
    add("topics", "list the app's topics")
    for name, fun in app.commands.items() if app is not None else ():
        add(name, (inspect.getdoc(fun) or "").split("\n")[0])
    return parser


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
    try:
        chosen = app if app is not None else load_app(args.app)
        if args.broker:
            chosen.broker = args.broker
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
    fun = app.commands[command]
    result = fun()
    if inspect.isawaitable(result):
        await result
    return 0


def _type_name(topic: Any) -> str:
    value_type = topic.value_type
    return getattr(value_type, "__name__", repr(value_type)) if value_type is not None else "-"


if __name__ == "__main__":
    main()
