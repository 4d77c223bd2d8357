"""Signals: lists of receivers an app calls at points of its life (configured, started, rebalanced ...).

>>> @app.on_partitions_assigned.connect
... async def assigned(app, assigned, **kwargs):
...     print("now reading", sorted(assigned))

Receivers may be plain or ``async`` functions; each gets the app first. Connected on the class
(``@rxstream.App.on_partitions_revoked.connect``) a receiver hears every app.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from .app import App

__all__ = ["AppSignals", "Signal", "SignalSlot", "configured"]

F = TypeVar("F", bound=Callable[..., Any])


class Signal:
    """Receivers called in the order they connected; a receiver's error propagates to the sender."""

    def __init__(self, name: str, parent: Signal | None = None) -> None:
        self.name = name
        self.parent = parent
        self.receivers: list[Callable[..., Any]] = []

    @overload
    def connect(self, fun: F) -> F: ...
    @overload
    def connect(self, fun: None = None) -> Callable[[F], F]: ...
    def connect(self, fun: Any = None) -> Any:
        """Connect ``fun`` (usable as ``@signal.connect`` and ``@signal.connect()``)."""
        if fun is None:
            return self.connect
        self.receivers.append(fun)
        return fun

    def disconnect(self, fun: Callable[..., Any]) -> None:
        """Stop calling ``fun``."""
        self.receivers.remove(fun)

    async def send(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Call the class's receivers, then this app's, with ``sender`` first."""
        inherited = self.parent.receivers if self.parent is not None else []
        for receiver in [*inherited, *self.receivers]:
            result = receiver(sender, *args, **kwargs)
            if inspect.isawaitable(result):
                await result

    def __repr__(self) -> str:
        return f"<Signal {self.name}: {len(self.receivers)} receivers>"


class SignalSlot:
    """An App attribute holding a signal: one per app, and one on the class that every app's also calls."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.shared = Signal(f"{owner.__name__}.{name}")

    @overload
    def __get__(self, instance: None, owner: type) -> Signal: ...
    @overload
    def __get__(self, instance: object, owner: type) -> Signal: ...
    def __get__(self, instance: object | None, owner: type) -> Signal:
        if instance is None:
            return self.shared
        signal = Signal(self.name, parent=self.shared)
        instance.__dict__[self.name] = signal  # found there from now on: this slot defines no __set__
        return signal


class AppSignals:
    """The signals an App sends (a base of App), with Faust's names and receivers' arguments."""

    on_before_configured = SignalSlot()
    """``(app)``, once, as the app first starts."""
    on_configured = SignalSlot()
    """``(app, conf)``, once, as the app first starts (settings are fixed by then)."""
    on_after_configured = SignalSlot()
    """``(app)``, once, as the app first starts."""
    on_worker_init = SignalSlot()
    """``(app)``, once, as the app first starts."""
    on_startup = SignalSlot()
    """``(app)``, every time the app started."""
    on_partitions_assigned = SignalSlot()
    """``(app, assigned=set of TopicPartition)``, after every assignment (tables recovered)."""
    on_partitions_revoked = SignalSlot()
    """``(app, revoked=set of TopicPartition)``, at the start of every revocation."""
    on_rebalance_complete = SignalSlot()
    """``(app)``, after every assignment."""
    on_shutdown = SignalSlot()
    """``(app)``, as the app begins to stop (its agents still run)."""


async def configured(app: App) -> None:
    """Send the signals Faust sends while it configures an app, once, as the app first starts (rxstream's
    settings are fixed when the App is built, so there is nothing to change in between)."""
    await app.on_before_configured.send(app)
    await app.on_configured.send(app, app.conf)
    await app.on_after_configured.send(app)
    await app.on_worker_init.send(app)
