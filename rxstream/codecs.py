"""Codecs turn keys and values into bytes and back; `json` is the default and pickle is never offered.

    data = encode_value(Order(id="a1", amount=2.5), "json")    # b'{"id":"a1","amount":2.5}'
    order = decode_value(data, "json", Order)                  # validated by Order.from_data

Built in: `json` (compact UTF-8 JSON; records, datetimes, Decimals, enums and bytes via `represent`), `raw`
(bytes as they are, str as UTF-8) and `binary` (base64 of the raw bytes). Add your own with `register`.
A None key or value is not encoded: it stays None both ways (no key, or a tombstone on a compacted topic).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

from .errors import ConfigurationError, DecodeError, EncodeError, ValidationError
from .records import decoder_for, represent

__all__ = [
    "BinaryCodec",
    "Codec",
    "CodecArg",
    "JSONCodec",
    "RawCodec",
    "decode_value",
    "encode_value",
    "get_codec",
    "register",
]


@runtime_checkable
class Codec(Protocol):
    """Turns a value into bytes and back; give one to a topic directly or `register` it under a name."""

    def dumps(self, obj: Any) -> bytes:
        """Encode `obj`, raising `EncodeError` when it cannot be."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode `data`, raising `DecodeError` with the reason when it cannot be."""
        ...


CodecArg: TypeAlias = str | Codec


class JSONCodec:
    """Compact UTF-8 JSON from the standard library; values JSON lacks are written by `represent`.

    The standard library's per-call Python layers are skipped: the C encoder `json.JSONEncoder.encode`
    builds for every call is kept for the next (each with its own circular-reference bookkeeping, used by one
    call at a time, and dropped after a failure, which may leave that bookkeeping dirty), and UTF-8 bytes are
    parsed by the C scanner in one step. Other input (other encodings, whitespace around the document, a
    parse error) is decoded the standard way, so results and errors are those of `json`.
    """

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=represent)
        self._make_encoder = _c_encoder_factory(self._encoder)
        self._spares: list[Callable[[Any, int], Any]] = []
        """C encoders no call is using: a call takes one, and puts it back once it succeeded."""
        self._decoder = json.JSONDecoder()

    def dumps(self, obj: Any) -> bytes:
        """`obj` as JSON bytes."""
        make = self._make_encoder
        try:
            if make is None:
                return self._encoder.encode(obj).encode("utf-8")
            try:
                encode = self._spares.pop()
            except IndexError:  # the first call, or others are encoding (other threads, or within this call)
                encode = make()
            text = "".join(encode(obj, 0))
            self._spares.append(encode)
            return text.encode("utf-8")
        except EncodeError:
            raise
        except (TypeError, ValueError, RecursionError) as exc:
            raise EncodeError(f"json codec cannot encode {type(obj).__name__}: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        """The value in JSON bytes."""
        if type(data) is bytes:
            try:
                text = data.decode("utf-8")
                value, end = self._decoder.raw_decode(text)
                if end == len(text):
                    return value
            except (ValueError, RecursionError):  # the standard path below says what is wrong
                pass
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise DecodeError("invalid JSON: nested too deeply") from exc
        except ValueError as exc:
            raise DecodeError(f"invalid JSON: {exc}") from exc


def _c_encoder_factory(encoder: json.JSONEncoder) -> Callable[[], Callable[[Any, int], Any]] | None:
    """What builds the C encoder ``encoder.encode`` builds for each call; None where there is none, or
    where it does not write what ``encoder`` writes."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None

    def build() -> Callable[[Any, int], Any]:
        return cast(
            "Callable[[Any, int], Any]",
            make(
                {},
                encoder.default,
                json.encoder.encode_basestring,
                None,
                encoder.key_separator,
                encoder.item_separator,
                encoder.sort_keys,
                encoder.skipkeys,
                encoder.allow_nan,
            ),
        )

    probe = {"a": [1, 2.5, None, True, "\u00e9"], "b": {}}
    try:
        if "".join(build()(probe, 0)) != encoder.encode(probe):
            return None
    except Exception:
        return None
    return build


def _as_bytes(codec: str, obj: Any) -> bytes:
    """The bytes of a bytes-like value or UTF-8 of a str, for the raw and binary codecs."""
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        try:
            return obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"{codec} codec cannot encode str as UTF-8: {exc}") from exc
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise EncodeError(
        f"{codec} codec encodes bytes or str, got {type(obj).__name__}; use the json codec for other values"
    )


class RawCodec:
    """Bytes as they are (str as UTF-8): for payloads another system already serialized."""

    def dumps(self, obj: Any) -> bytes:
        """`obj` as bytes."""
        return _as_bytes("raw", obj)

    def loads(self, data: bytes) -> Any:
        """`data`, unchanged."""
        return data if isinstance(data, bytes) else bytes(data)


class BinaryCodec:
    """Base64 of the raw bytes: binary payloads through channels that only carry text."""

    def dumps(self, obj: Any) -> bytes:
        """`obj`'s bytes, base64-encoded."""
        return base64.b64encode(_as_bytes("binary", obj))

    def loads(self, data: bytes) -> Any:
        """The bytes that base64 `data` encodes."""
        try:
            return base64.b64decode(data, validate=True)
        except ValueError as exc:
            raise DecodeError(f"invalid base64: {exc}") from exc


_codecs: dict[str, Codec] = {"json": JSONCodec(), "raw": RawCodec(), "binary": BinaryCodec()}


def _is_codec(obj: object) -> bool:
    """Whether `obj` has callable `dumps` and `loads` (cheaper than a runtime Protocol check)."""
    return callable(getattr(obj, "dumps", None)) and callable(getattr(obj, "loads", None))


def register(name: str, codec: Codec) -> None:
    """Make `codec` available by `name` to topics, channels and `get_codec`; replaces a codec of that name."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a codec name must be a non-empty str, got {name!r}")
    if not _is_codec(codec):
        raise ConfigurationError(
            f"codec {name!r} must have dumps(obj) -> bytes and loads(data) methods, "
            f"got {type(codec).__name__}"
        )
    _codecs[name] = codec


def get_codec(codec: CodecArg) -> Codec:
    """The codec registered under a name, or the codec object itself when given one."""
    if isinstance(codec, str):
        found = _codecs.get(codec)
        if found is None:
            raise ConfigurationError(
                f"unknown codec {codec!r}; known codecs: {', '.join(sorted(_codecs))}. "
                "Add one with rxstream.codecs.register(name, codec)"
            )
        return found
    if _is_codec(codec):
        return codec
    raise ConfigurationError(
        f"expected a codec name or an object with dumps() and loads(), got {type(codec).__name__}"
    )


def _codec_name(codec: CodecArg) -> str:
    """How an error message names a codec."""
    return codec if isinstance(codec, str) else type(codec).__name__


def encode_value(value: Any, codec: CodecArg) -> bytes | None:
    """`value` as bytes through `codec`; None stays None (no key, or a tombstone), never `b"null"`."""
    if value is None:
        return None
    chosen = get_codec(codec)
    try:
        data = chosen.dumps(value)
    except EncodeError:
        raise
    except Exception as exc:
        raise EncodeError(
            f"{_codec_name(codec)} codec cannot encode {type(value).__name__}: {exc!r}"
        ) from exc
    if not isinstance(data, bytes):
        raise EncodeError(f"{_codec_name(codec)} codec returned {type(data).__name__}, not bytes")
    return data


_TEXT_TYPES = frozenset({str, int, float, bool, Decimal})


def decode_value(data: bytes | None, codec: CodecArg, value_type: Any = None) -> Any:
    """Decode `data` with `codec`, then validate it as `value_type`; every failure is a `DecodeError`.

    `value_type` None returns what the codec decoded; a Record subclass goes through `from_data`; any other
    type expression (`int`, `list[Order]`, `datetime | None`, ...) is validated and coerced like a record
    field. str, int, float, bool and Decimal also accept text, so `raw` payloads like b"42" decode to 42.
    None data stays None. Callers add where it happened: `DecodeError(exc.reason, topic=..., offset=...)`.
    """
    if data is None:
        return None
    chosen = get_codec(codec)
    try:
        obj = chosen.loads(data)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"{_codec_name(codec)} codec cannot decode the payload: {exc!r}") from exc
    if value_type is None:
        return obj
    if isinstance(obj, (bytes, bytearray)) and type(value_type) is type and value_type in _TEXT_TYPES:
        try:
            obj = bytes(obj).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"expected UTF-8 text for {value_type.__name__}: {exc}") from exc
    try:
        return decoder_for(value_type, text=True)(obj)
    except ValidationError as exc:
        raise DecodeError(str(exc)) from exc
