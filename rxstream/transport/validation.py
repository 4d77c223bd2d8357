"""What a send must satisfy on every transport, so memory:// refuses exactly what a Kafka broker would.

Kafka's rules: topic names of `[a-zA-Z0-9._-]`, at most 249 characters and not `.` or `..`; a partition is
an int; header names are text and header values bytes or text; text is UTF-8; a message (key plus
value) is at most ``max_message_bytes``, by default Kafka's 1 MiB (``max.request.size``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..codecs import CodecArg, encode_value
from ..errors import ConfigurationError, EncodeError
from .routed import Routed

__all__ = [
    "MAX_MESSAGE_BYTES",
    "check_encodable",
    "check_max_message_bytes",
    "check_record",
    "check_records",
    "check_size",
    "check_topic_name",
    "check_values",
    "encode_message",
]

MAX_MESSAGE_BYTES: Final = 1_048_576
"""The largest message (key plus value bytes) a transport sends by default: Kafka's ``max.request.size``."""

_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_valid_names: set[str] = set()
_BYTES = (bytes, bytearray, memoryview)
_SIZED = frozenset({str, *_BYTES})


def check_topic_name(topic: Any) -> None:
    """Refuse a topic name Kafka would refuse; a name seen valid before costs one set lookup."""
    if topic in _valid_names:
        return
    if not isinstance(topic, str) or _TOPIC_NAME.fullmatch(topic) is None or topic in (".", ".."):
        raise ConfigurationError(
            f"invalid topic name {topic!r}: use 1 to 249 of the characters a-z A-Z 0-9 . _ - "
            "(and not '.' or '..')"
        )
    if len(_valid_names) < 65_536:
        _valid_names.add(topic)


def check_max_message_bytes(limit: Any) -> int:
    """The ``max_message_bytes`` setting, checked to be a positive int."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(
            f"max_message_bytes must be a positive int (Kafka's default is 1048576), got {limit!r}"
        )
    return limit


def _size(data: Any, what: str, topic: str) -> int:
    """How many bytes a key or value takes on the wire (text as UTF-8); 0 for objects sent as they are."""
    if isinstance(data, str):
        try:
            return len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise EncodeError(f"the {what} for topic {topic!r} is not valid UTF-8 text: {exc}") from None
    if isinstance(data, _BYTES):
        return len(data)
    return 0


def _check_partition(partition: Any, topic: str) -> None:
    """A partition is None (route by key) or an int (the transport checks its range); True and "1" are not."""
    if partition is None or type(partition) is int:
        return
    raise ConfigurationError(
        f"partition for topic {topic!r} must be an int or None, got {type(partition).__name__} {partition!r}"
    )


def _check_headers(headers: Any, topic: str) -> int:
    """Headers map text names to bytes or text values, as Kafka carries them; how many bytes they take."""
    if not isinstance(headers, Mapping):
        raise EncodeError(
            f"headers for topic {topic!r} must be a mapping of str to bytes or str, "
            f"got {type(headers).__name__}"
        )
    size = 0
    for name, value in headers.items():
        if not isinstance(name, str):
            raise EncodeError(
                f"header name {name!r} for topic {topic!r} is a {type(name).__name__}: "
                "header names must be str"
            )
        size += _size(name, f"header name {name!r}", topic)
        if not isinstance(value, (str, *_BYTES)):
            raise EncodeError(
                f"header {name!r} for topic {topic!r} is a {type(value).__name__}: "
                "header values must be bytes or str"
            )
        size += _size(value, f"header {name!r}", topic)
    return size


def _check_size(topic: str, size: int, max_message_bytes: int) -> None:
    """Refuse a message over the size limit, naming the setting that raises it."""
    if size > max_message_bytes:
        raise EncodeError(
            f"the message for topic {topic!r} is {size} bytes, over max_message_bytes={max_message_bytes}: "
            "send less, or raise the transport's max_message_bytes (and the broker's message.max.bytes)"
        )


def check_size(topic: str, key: Any, value: Any, max_message_bytes: int) -> None:
    """Refuse a key and value (text or bytes are sized, objects are not) over the message size limit."""
    quarter = max_message_bytes // 4
    small_key = type(key) not in _SIZED or len(key) <= quarter
    if small_key and (type(value) not in _SIZED or len(value) <= quarter):
        return
    _check_size(topic, _size(key, "key", topic) + _size(value, "value", topic), max_message_bytes)


def check_record(
    topic: str, key: Any, value: Any, partition: Any, headers: Any, max_message_bytes: int
) -> None:
    """Refuse one message (after its topic name was checked) that a Kafka broker would refuse."""
    if partition is not None:
        _check_partition(partition, topic)
    size = _check_headers(headers, topic) if headers else 0
    _check_size(topic, size + _size(key, "key", topic) + _size(value, "value", topic), max_message_bytes)


def _plain_headers(headers: Any) -> bool:
    """Whether ``headers`` are a dict of ASCII text names and values (which no broker refuses)."""
    if type(headers) is not dict:
        return False
    for name, value in headers.items():
        if type(name) is not str or type(value) is not str or not name.isascii() or not value.isascii():
            return False
    return True


def check_records(topic: str, records: Sequence[Any], max_message_bytes: int) -> None:
    """Check the topic name once, then each (key, value, partition, headers) record.

    Records a broker cannot refuse take one inline test each: an int or no partition, no headers (or a dict of
    ASCII text), and a key and value that are objects (memory://), or ASCII text or bytes of at most a quarter
    of the limit. A batch grouped by partition (`Routed`) is checked a column at a time.
    """
    if type(records) is Routed:
        _check_routed(topic, records, max_message_bytes)
        return
    check_topic_name(topic)
    quarter = max_message_bytes // 4
    for key, value, partition, headers in records:
        if (not headers or _plain_headers(headers)) and (partition is None or type(partition) is int):
            kind = type(key)
            if (
                kind not in _SIZED
                or (kind is str and len(key) <= quarter and key.isascii())
                or (kind is bytes and len(key) <= quarter)
            ):
                kind = type(value)
                if (
                    kind not in _SIZED
                    or (kind is bytes and len(value) <= quarter)
                    or (kind is str and len(value) <= quarter and value.isascii())
                ):
                    continue
        check_record(topic, key, value, partition, headers, max_message_bytes)


def check_values(topic: str, values: Sequence[Any], max_message_bytes: int) -> None:
    """`check_records` for values without key, partition or headers: the values as one column, one by one
    only where some value needs it."""
    check_topic_name(topic)
    if not _plain_column(values, max_message_bytes // 4):
        for value in values:
            check_record(topic, None, value, None, None, max_message_bytes)


def _plain_column(items: Sequence[Any], quarter: int) -> bool:
    """Whether every one of ``items`` (keys, or values) is an object, or ASCII text or bytes of at most
    ``quarter`` (a few C-level passes, cheaper than a test per item)."""
    kinds = set(map(type, items))
    if kinds.isdisjoint(_SIZED):
        return True
    if kinds == {str}:
        joined = "".join(items)
        return joined.isascii() and (len(joined) <= quarter or max(map(len, items)) <= quarter)
    if kinds == {bytes}:
        return max(map(len, items)) <= quarter
    return False


def _check_routed(topic: str, records: Routed, max_message_bytes: int) -> None:
    """`check_records` for a batch grouped by partition: a partition's keys, values and headers at a time,
    its records checked one by one only where some key or value needs it."""
    check_topic_name(topic)
    quarter = max_message_bytes // 4
    for part in records.parts:
        if (
            type(part.partition) is int
            and all(map(_plain_headers, part.headers.values()))
            and _plain_column(part.keys, quarter)
            and _plain_column(part.values, quarter)
        ):
            continue
        for key, value, partition, headers in part:
            check_record(topic, key, value, partition, headers, max_message_bytes)


def _encode(topic: str, what: str, data: Any, codec: CodecArg) -> bytes | None:
    """`data` through `codec`; an EncodeError names the topic and whether the key or the value failed."""
    try:
        return encode_value(data, codec)
    except EncodeError as exc:
        raise EncodeError(f"cannot encode the {what} for topic {topic!r}: {exc}") from exc


def encode_message(
    topic: str, key: Any, value: Any, key_codec: CodecArg, value_codec: CodecArg
) -> tuple[Any, Any]:
    """Key and value as bytes through their codecs, as a byte transport sends them."""
    return _encode(topic, "key", key, key_codec), _encode(topic, "value", value, value_codec)


def check_encodable(
    topic: str, key: Any, value: Any, key_codec: CodecArg, value_codec: CodecArg, max_message_bytes: int
) -> None:
    """Encode key and value as a byte transport would and check the size, for transports that keep objects."""
    raw_key, raw_value = encode_message(topic, key, value, key_codec, value_codec)
    _check_size(topic, _size(raw_key, "key", topic) + _size(raw_value, "value", topic), max_message_bytes)
