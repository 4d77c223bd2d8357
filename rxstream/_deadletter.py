"""A message that could not be processed, as the record its dead-letter topic gets: why, in its headers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import TransportError
from .events import Headers, Message

if TYPE_CHECKING:
    from .channels import Topic

__all__ = ["dead_letter_record"]


def dead_letter_record(
    message: Message, exc: BaseException, what: str, topic: Topic[Any, Any] | None, *, needs_bytes: bool
) -> tuple[Any, Any, Headers]:
    """Key, value and headers of ``message``'s dead letter: the bytes it came with where it has them
    (re-encoded by ``topic`` on a byte transport otherwise), the error, the reason and where it was read."""
    headers = {
        **dict(message.headers or {}),
        "rxstream-error": repr(exc)[:1000],
        "rxstream-reason": what,
        "rxstream-topic": message.topic,
        "rxstream-partition": str(message.partition),
        "rxstream-offset": str(message.offset),
    }
    key = message.raw_key if message.raw_key is not None else message.key
    value = message.raw_value if message.raw_value is not None else message.value
    raw = (bytes, type(None))
    if needs_bytes and (not isinstance(key, raw) or not isinstance(value, raw)):
        if topic is None:
            raise TransportError(f"cannot dead-letter {message!r}: its key and value are not bytes")
        key, value = topic.encode(key, value)
    return key, value, headers
