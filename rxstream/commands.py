"""Custom commands of an app's command line: ``@app.command`` with its arguments and options.

>>> @app.command(argument("location"), option("--times", type=int, default=1))
... async def shout(self, location, times):
...     self.say(location.upper() * times)

Run as ``rxstream -A proj:app shout oslo --times 2``; ``argument`` and ``option`` are also importable from
`rxstream.cli`, where Faust's code imports them from.
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App

__all__ = ["OPTIONS", "CommandContext", "CommandOption", "argument", "call_command", "command", "option"]

OPTIONS = "__rxstream_cli_options__"
"""The attribute of a command function holding its declared arguments and options."""


class CommandOption:
    """A command's argument or option, declared with `argument` or `option` (click's keywords taken)."""

    def __init__(self, names: tuple[str, ...], options: dict[str, Any]) -> None:
        self.names = names
        self.options = options

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add it to the command's parser (click's ``is_flag``, ``multiple`` and ``envvar`` translated)."""
        options = dict(self.options)
        envvar = options.pop("envvar", None)
        if envvar is not None and os.environ.get(envvar) is not None:
            options["default"] = os.environ[envvar]
        if options.pop("is_flag", False):
            options["action"] = "store_true"
            options.pop("type", None)
        if options.pop("multiple", False):
            options["action"] = "append"
        for ignored in ("show_default", "metavar_help", "callback", "hidden", "prompt"):
            options.pop(ignored, None)
        parser.add_argument(*self.names, **options)

    @property
    def dest(self) -> str:
        """The keyword argument the command function gets it as."""
        if "dest" in self.options:
            return str(self.options["dest"])
        long = next((n for n in self.names if n.startswith("--")), self.names[0])
        return long.lstrip("-").replace("-", "_")


def argument(*names: str, **options: Any) -> CommandOption:
    """A positional argument of a custom command: ``@app.command(argument("x"))``."""
    return CommandOption(names, options)


def option(*names: str, **options: Any) -> CommandOption:
    """An option of a custom command: ``@app.command(option("--n", type=int, default=1))``."""
    return CommandOption(names, options)


class CommandContext:
    """What a custom command whose first parameter is ``self`` gets: its app and a way to print."""

    def __init__(self, app: App) -> None:
        self.app = app

    def say(self, message: Any) -> None:
        """Print a line for the person running the command."""
        print(message)


def command(app: App, *options: Any, name: str | None = None) -> Any:
    """``@app.command``: add a custom CLI command (``rxstream NAME -A module:app``) running the decorated
    function; ``@app.command(argument("x"), option("--n", type=int))`` declares its arguments."""

    def register(fun: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fun, OPTIONS, [o for o in options if isinstance(o, CommandOption)])
        app.commands[name or fun.__name__.replace("_", "-")] = fun
        return fun

    if len(options) == 1 and callable(options[0]) and not isinstance(options[0], CommandOption):
        fun, options = options[0], ()
        return register(fun)
    return register


async def call_command(app: App, fun: Callable[..., Any], args: argparse.Namespace) -> None:
    """Call a custom command with its parsed arguments (and ``self`` when its first parameter is named so)."""
    kwargs = {o.dest: getattr(args, o.dest) for o in getattr(fun, OPTIONS, [])}
    parameters = list(inspect.signature(fun).parameters)
    result = fun(CommandContext(app), **kwargs) if parameters[:1] == ["self"] else fun(**kwargs)
    if inspect.isawaitable(result):
        await result
