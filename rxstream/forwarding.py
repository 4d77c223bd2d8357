"""Where a stream sends its values: targets of tee/echo, topics named by text, and through's hop."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from . import _rx
from ._rx import Batch, Context, Observable, Operator
from .errors import ConfigurationError

__all__ = ["channel_of", "fan_out", "through_operator"]


def channel_of(target: Any, app: Any, operator: str) -> Any:
    """``target``, or the topic of ``app`` it names when it is text (Faust's ``echo("name")``)."""
    if not isinstance(target, str):
        return target
    if app is None:
        raise ConfigurationError(
            f"Stream.{operator}(): the topic name {target!r} needs the stream's app, and this stream reads "
            f"no app's topic; pass the topic itself, like .{operator}(app.topic({target!r}))"
        )
    return app.topic(target)


def fan_out(targets: tuple[Any, ...], operator: str) -> Callable[[Any], Any]:
    """One function that forwards a value to every target (a channel, topic, agent or callable)."""
    senders = [_sender(target, operator) for target in targets]
    if len(senders) == 1:
        return senders[0]

    async def gather(value: Any) -> None:
        for send in senders:
            result = send(value)
            if inspect.isawaitable(result):
                await result

    return gather


def _sender(target: Any, operator: str) -> Callable[[Any], Any]:
    """A function that forwards a value to ``target`` (anything with ``send(value=...)``, or a callable)."""
    send = getattr(target, "send", None)
    if send is not None and callable(send):
        return lambda value: send(value=value)
    if callable(target):
        return target  # type: ignore[no-any-return]
    raise ConfigurationError(f"Stream.{operator}(): {target!r} is neither a channel, an agent nor a callable")


def through_operator(
    ctx: Context, channel: Any, key_of: Callable[[Any], Any] | None, downstream: Observable[Batch]
) -> Operator:
    """Forward values to ``channel`` (keyed by ``key_of``, else by their event's key), emit ``downstream``."""
    buffered = getattr(channel, "send_buffered", None)

    async def send_keyed(key: Any, value: Any) -> None:
        if buffered is not None:
            await buffered(value, key=key)
        else:
            await channel.send(key=key, value=value)

    if key_of is not None:
        forward = _rx.side_effect(lambda value: send_keyed(key_of(value), value), ctx, "through")
        return _rx.rerouted(forward, downstream)
    paired = _rx.transform(_with_keys)
    send_pair = _rx.side_effect(lambda pair: send_keyed(*pair), ctx, "through")

    def forward_keyed(source: Observable[Batch]) -> Observable[Batch]:
        return send_pair(paired(source))

    return _rx.rerouted(forward_keyed, downstream)


def _with_keys(batch: Batch) -> Batch:
    """The batch's values as (event key, value) pairs."""
    return batch.derive(list(zip(batch.keys(), batch.values, strict=True)))
