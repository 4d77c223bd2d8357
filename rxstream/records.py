"""Typed records: dataclass-like values that validate and coerce decoded data, the values topics carry.

    class Order(rxstream.Record):
        id: str
        amount: float = 0.0

    Order.from_data({"id": "a1", "amount": 2})      # Order(id='a1', amount=2.0)
    Order(id="a1").to_representation()             # {'id': 'a1', 'amount': 0.0}

Decoding (`from_data`) checks every field against its annotation and coerces what JSON cannot carry: an int
for a float, ISO 8601 text for a datetime/date/time, text (or a number) for a Decimal, base64 text for bytes,
a value for an Enum, a mapping for a nested Record. A bool is never accepted as an int or float. Fields the
record does not declare are ignored, so producers may add fields before consumers know them. A field whose
default is None also takes None (`date: datetime = None`, as Faust's records write it). A missing
required field or a wrong type raises `ValidationError` naming the class, the field path and the problem.
Construction does not validate unless the class asks for it: `class Order(Record, validation=True)`
(or `coerce=True`). `serializer="json"` names the codec topics of the record use unless they name one;
`isodates=True` and `include_metadata=False` are accepted as what records always do.
`class Point(Record, frozen=True)` makes instances immutable and hashable. Use `dataclasses.field` for
defaults such as `field(default_factory=list)`. `order.dumps()` and `Order.loads(data)` go through the
class's serializer, `asdict()` gives the fields as they are. At class level a field is a `FieldDescriptor`
(`Order.amount`), accepted wherever a key function or field is (`group_by`, `relative_to_field`); its
default is `Order.amount.default`.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import itertools
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import Enum
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, Union, get_args, get_origin

from typing_extensions import dataclass_transform

from .errors import ConfigurationError, EncodeError, ValidationError
from .record_fields import install_descriptors, keep_inherited_defaults

if typing.TYPE_CHECKING:
    from .codecs import CodecArg

__all__ = ["Record", "decoder_for", "represent"]

_Decoder = Callable[[Any], Any]
_R = TypeVar("_R", bound="Record")
_MISSING: Any = object()
_REPR_LIMIT = 80


class _Invalid(Exception):
    """A value does not fit its declared type; `path` collects where, innermost segment first."""

    def __init__(self, problem: str, *segments: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = list(segments)

    def describe(self, root: str) -> str:
        """The message for a `ValidationError`: `Order.lines[2].amount: expected float, got str 'x'`."""
        where = root + "".join(reversed(self.path))
        return f"{where}: {self.problem}" if where else self.problem


def _short_repr(value: Any) -> str:
    """`repr(value)` cut to a length that keeps error messages readable."""
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def _got(value: Any) -> str:
    """The `got str 'abc'` half of an error message."""
    return "got None" if value is None else f"got {type(value).__name__} {_short_repr(value)}"


def _type_name(tp: Any) -> str:
    """A type expression as a user wrote it: `list[Order]`, `int | None`, `Literal['a', 'b']`."""
    if tp is None or tp is NoneType:
        return "None"
    if tp is Any:
        return "Any"
    origin = get_origin(tp)
    if origin is None:
        return str(getattr(tp, "__name__", tp))
    args = get_args(tp)
    if origin is Union or origin is UnionType:
        return " | ".join(_type_name(arg) for arg in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is Annotated:
        return _type_name(args[0])
    inner = ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args)
    return f"{_type_name(origin)}[{inner}]"


# Scalar decoders: return the (possibly coerced) value or raise _Invalid.


def _identity(value: Any) -> Any:
    """Any / object: every value is accepted as it is."""
    return value


def _decode_none(value: Any) -> Any:
    """A field annotated `None` holds only None."""
    if value is None:
        return None
    raise _Invalid(f"expected None, {_got(value)}")


def _decode_str(value: Any) -> Any:
    """str, exactly: numbers are not turned into text."""
    if isinstance(value, str):
        return value
    raise _Invalid(f"expected str, {_got(value)}")


def _decode_int(value: Any) -> Any:
    """int, but not bool and not float (that would lose data)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Invalid(f"expected int, {_got(value)}")


def _decode_float(value: Any) -> Any:
    """float; an int is widened to float, a bool is refused."""
    if type(value) is float:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _Invalid(f"expected float, {_got(value)}")


def _decode_bool(value: Any) -> Any:
    """bool, exactly: 0 and 1 are not booleans."""
    if value is True or value is False:
        return value
    raise _Invalid(f"expected bool, {_got(value)}")


def _decode_bytes(value: Any) -> Any:
    """bytes; in JSON they travel as base64 text, which `represent` writes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise _Invalid(f"expected bytes as base64 text, {_got(value)}") from None
    raise _Invalid(f"expected bytes, {_got(value)}")


def _decode_decimal(value: Any) -> Any:
    """Decimal from a Decimal, text (how `represent` writes it), an int, or a float (via its repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise _Invalid(f"expected Decimal, {_got(value)}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    raise _Invalid(f"expected Decimal, {_got(value)}")


def _from_text(decode: _Decoder, parse: Callable[[str], Any], name: str) -> _Decoder:
    """`decode`, also accepting the value written as text (JSON object keys, raw payloads)."""

    def decode_text(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse(value)
            except (ValueError, KeyError):
                raise _Invalid(f"expected {name}, {_got(value)}") from None
        return decode(value)

    return decode_text


_BOOL_TEXT = {"true": True, "false": False}

_SCALARS: dict[Any, _Decoder] = {
    str: _decode_str,
    int: _decode_int,
    float: _decode_float,
    bool: _decode_bool,
    bytes: _decode_bytes,
    Decimal: _decode_decimal,
}
_TEXT_SCALARS: dict[Any, _Decoder] = {
    **_SCALARS,
    int: _from_text(_decode_int, int, "int"),
    float: _from_text(_decode_float, float, "float"),
    bool: _from_text(_decode_bool, _BOOL_TEXT.__getitem__, "bool"),
}
_ISO_TYPES = (datetime, date, time)
_BARE_CONTAINERS: dict[Any, Any] = {
    list: list[Any],
    tuple: tuple[Any, ...],
    set: set[Any],
    frozenset: frozenset[Any],
    dict: dict[Any, Any],
}
_BARE_ORIGINS: dict[Any, Any] = {**_BARE_CONTAINERS, Sequence: list[Any], Mapping: dict[Any, Any]}


def _iso_decoder(tp: type[datetime] | type[date] | type[time]) -> _Decoder:
    """datetime, date or time, from an instance or ISO 8601 text."""
    name = tp.__name__

    def decode(value: Any) -> Any:
        if isinstance(value, tp):
            return value
        if isinstance(value, str):
            try:
                return tp.fromisoformat(value)
            except ValueError:
                raise _Invalid(f"expected {name} as ISO 8601 text, {_got(value)}") from None
        raise _Invalid(f"expected {name}, {_got(value)}")

    return decode


def _enum_decoder(tp: type[Enum], text: bool) -> _Decoder:
    """An Enum member from a member or a member's value (with `text`, also the value written as text)."""
    choices = _short_repr(tuple(member.value for member in tp))
    by_text = {str(member.value): member for member in tp} if text else {}

    def decode(value: Any) -> Any:
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except (ValueError, TypeError):
            if isinstance(value, str) and value in by_text:
                return by_text[value]
            raise _Invalid(f"expected {tp.__name__}, one of {choices}, {_got(value)}") from None

    return decode


def _instance_decoder(tp: type) -> _Decoder:
    """Any other class: instances are accepted as they are, nothing is coerced."""

    def decode(value: Any) -> Any:
        if isinstance(value, tp):
            return value
        raise _Invalid(f"expected {tp.__name__}, {_got(value)}")

    return decode


def _record_decoder(tp: type[Record]) -> _Decoder:
    """A nested Record from an instance or a mapping of its fields."""

    def decode(value: Any) -> Any:
        if isinstance(value, tp):
            return value
        return _decode_record(tp, value)

    return decode


def _decode_elements(pairs: Iterable[tuple[_Decoder, Any]]) -> list[Any]:
    """Decode each (decoder, element) pair, adding the failing index to the error path."""
    out: list[Any] = []
    try:
        for decode, element in pairs:
            out.append(decode(element))
    except _Invalid as exc:
        exc.path.append(f"[{len(out)}]")  # the failing element's index
        raise
    return out


def _sequence_decoder(
    name: str, item: _Decoder, accepts: tuple[type[Iterable[Any]], ...], make: Callable[[list[Any]], Any]
) -> _Decoder:
    """list[X], tuple[X, ...], set[X] or frozenset[X] from a JSON array (or a Python collection)."""

    def decode(value: Any) -> Any:
        if not isinstance(value, accepts):
            raise _Invalid(f"expected {name}, {_got(value)}")
        items = (
            list(value)
            if item is _identity
            else _decode_elements(zip(itertools.repeat(item), value, strict=False))
        )
        try:
            return make(items)
        except TypeError:
            raise _Invalid(f"expected {name}, but its items are not hashable") from None

    return decode


def _fixed_tuple_decoder(name: str, items: tuple[_Decoder, ...]) -> _Decoder:
    """tuple[X, Y, ...] of a fixed length from a JSON array."""

    def decode(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise _Invalid(f"expected {name}, {_got(value)}")
        if len(value) != len(items):
            raise _Invalid(f"expected {name} of {len(items)} items, got {len(value)} items")
        return tuple(_decode_elements(zip(items, value, strict=True)))

    return decode


def _mapping_decoder(name: str, key: _Decoder, item: _Decoder) -> _Decoder:
    """dict[K, V] from a JSON object; keys are decoded from text, as JSON writes every key as text."""

    def decode(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _Invalid(f"expected {name}, {_got(value)}")
        if key is _identity and item is _identity:
            return dict(value)
        out = {}
        for raw_key, raw_item in value.items():
            try:
                decoded_key = key(raw_key)
            except _Invalid as exc:
                raise _Invalid(f"bad key {_short_repr(raw_key)}: {exc.problem}") from None
            try:
                out[decoded_key] = item(raw_item)
            except _Invalid as exc:
                exc.path.append(f"[{_short_repr(raw_key)}]")
                raise
        return out

    return decode


def _union_decoder(name: str, members: tuple[Any, ...]) -> _Decoder:
    """X | None, or X | Y: a member of the value's exact type first, then each member in order."""
    optional = NoneType in members
    rest = [member for member in members if member is not NoneType]
    if len(rest) == 1:
        inner = _build(rest[0])

        def decode_optional(value: Any) -> Any:
            return None if value is None else inner(value)

        return decode_optional
    decoders = [(member, _build(member)) for member in rest]

    def decode(value: Any) -> Any:
        if value is None and optional:
            return None
        kind = type(value)
        for member, decode_member in decoders:
            if member is kind:
                return decode_member(value)
        for _, decode_member in decoders:
            try:
                return decode_member(value)
            except _Invalid:
                continue  # try the next member; the error below names them all
        raise _Invalid(f"expected {name}, {_got(value)}")

    return decode


def _literal_decoder(name: str, allowed: tuple[Any, ...]) -> _Decoder:
    """Literal['a', 'b']: one of the listed values, of the same type (True is not 1)."""

    def decode(value: Any) -> Any:
        for choice in allowed:
            if value == choice and type(value) is type(choice):
                return choice
        raise _Invalid(f"expected {name}, {_got(value)}")

    return decode


def _build(tp: Any, text: bool = False) -> _Decoder:
    """The decoder for type expression `tp`; `text` also accepts scalars and enum values written as text."""
    if tp is Any or tp is object:
        return _identity
    if tp is None or tp is NoneType:
        return _decode_none
    if isinstance(tp, type):
        if issubclass(tp, Record):
            return _record_decoder(tp)
        if issubclass(tp, Enum):
            return _enum_decoder(tp, text)
        scalar = (_TEXT_SCALARS if text else _SCALARS).get(tp)
        if scalar is not None:
            return scalar
        if tp in _ISO_TYPES:
            return _iso_decoder(tp)
        if tp in _BARE_CONTAINERS:
            return _build(_BARE_CONTAINERS[tp])
        if get_origin(tp) is None:
            return _instance_decoder(tp)
    name = _type_name(tp)
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        return _build(args[0], text)
    if origin is Union or origin is UnionType:
        return _union_decoder(name, args)
    if origin is Literal:
        return _literal_decoder(name, args)
    if not args and origin in _BARE_ORIGINS:
        return _build(_BARE_ORIGINS[origin])  # typing.List, typing.Sequence ... without parameters
    if origin in (list, Sequence):
        return _sequence_decoder(name, _build(args[0]), (list, tuple), list)
    if origin in (set, frozenset):
        return _sequence_decoder(name, _build(args[0]), (list, tuple, set, frozenset), origin)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence_decoder(name, _build(args[0]), (list, tuple), tuple)
        return _fixed_tuple_decoder(name, tuple(_build(arg) for arg in args))
    if origin in (dict, Mapping):
        return _mapping_decoder(name, _build(args[0], text=True), _build(args[1]))
    raise ConfigurationError(
        f"unsupported type {name}: use str, int, float, bool, bytes, Decimal, datetime, date, time, an Enum, "
        "a Record, Any, X | None, a union, Literal, list, tuple, set, frozenset or dict of those"
    )


def _check_hashable(tp: Any) -> bool:
    """Whether `tp` can key the decoder cache (an Annotated with unhashable metadata cannot)."""
    try:
        hash(tp)
    except TypeError:
        return False
    return True


def _public_decoder(tp: Any, text: bool) -> _Decoder:
    """Wrap the internal decoder so failures raise `ValidationError` with a readable path."""
    inner = _build(tp, text)
    is_record = isinstance(tp, type) and issubclass(tp, Record)
    name = tp.__name__ if is_record else _type_name(tp)

    def decode(value: Any) -> Any:
        try:
            return inner(value)
        except _Invalid as exc:
            raise ValidationError(exc.describe(name if exc.path or is_record else "")) from exc.__cause__

    return decode


_cached_decoder = functools.lru_cache(maxsize=512)(_public_decoder)


def decoder_for(tp: Any, *, text: bool = False) -> Callable[[Any], Any]:
    """A function that validates and coerces a value to type `tp`, raising `ValidationError`; cached per type.

    With `text=True`, int, float, bool and enum values may also be given as text (JSON keys, raw payloads).
    An unsupported type raises `ConfigurationError` here, before any data is seen.
    """
    if _check_hashable(tp):
        return _cached_decoder(tp, text)
    return _public_decoder(tp, text)


class _Field(typing.NamedTuple):
    """What decoding needs to know about one field, computed once per class."""

    name: str
    decode: _Decoder
    required: bool
    segment: str


class _RecordSpec:
    """Per-class decoding plan: field decoders (built once, on definition or first use) and the raw init."""

    __slots__ = ("cls", "dataclass_fields", "decoders", "frozen", "init", "names", "validation")

    def __init__(self, cls: type[Record], validation: bool, frozen: bool) -> None:
        self.cls = cls
        self.validation = validation
        self.frozen = frozen
        self.init: Callable[..., None] = cls.__init__
        generated: Any = cls  # a dataclass by now, which the type checker cannot see
        self.dataclass_fields: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(generated)
        self.names = tuple(field.name for field in self.dataclass_fields)
        self.decoders: tuple[_Field, ...] | None = None

    def build(self, *, eager: bool) -> tuple[_Field, ...] | None:
        """Resolve the annotations and build a decoder per field; when `eager`, defer unresolved names."""
        cls = self.cls
        try:
            hints = typing.get_type_hints(cls, localns={cls.__name__: cls})
        except NameError as exc:
            if eager:
                return None  # a forward reference to a class defined later: resolved on first use
            raise ConfigurationError(
                f"{cls.__name__}: cannot resolve its field types ({exc}); define the classes its "
                "annotations name at module level, before decoding"
            ) from exc
        fields = []
        for field in self.dataclass_fields:
            if not field.init:
                continue
            try:
                hint = hints[field.name]
                decode = _build(hint if field.default is not None else hint | None)  # `x: T = None`
            except ConfigurationError as exc:
                raise ConfigurationError(f"{cls.__name__}.{field.name}: {exc}") from exc
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            fields.append(_Field(field.name, decode, required, f".{field.name}"))
        self.decoders = tuple(fields)
        return self.decoders

    def fields(self) -> tuple[_Field, ...]:
        """The field decoders, building them now if the class was defined before its annotations resolved."""
        decoders = self.decoders
        if decoders is None:
            decoders = self.build(eager=False)
            assert decoders is not None
        return decoders

    def validate(self, record: Record) -> None:
        """Check and coerce every field of a constructed record, for `validation=True` classes."""
        for field in self.fields():
            try:
                value = field.decode(getattr(record, field.name))
            except _Invalid as exc:
                exc.path.append(field.segment)
                raise ValidationError(exc.describe(self.cls.__name__)) from exc.__cause__
            object.__setattr__(record, field.name, value)


def _decode_record(cls: type[_R], data: Any) -> _R:
    """Build a `cls` from a mapping of its fields, validating and coercing each one."""
    spec = cls._rx_spec
    fields = spec.decoders if spec.decoders is not None else spec.fields()
    if type(data) is not dict and not isinstance(data, Mapping):
        raise _Invalid(f"expected a mapping of {cls.__name__} fields, {_got(data)}")
    values = {}
    get = data.get
    for name, decode, required, segment in fields:
        raw = get(name, _MISSING)
        if raw is _MISSING:
            if required:
                raise _Invalid("missing required field", segment)
            continue
        try:
            values[name] = decode(raw)
        except _Invalid as exc:
            exc.path.append(segment)
            raise
    record = cls.__new__(cls)
    try:
        spec.init(record, **values)
    except ValidationError:
        raise
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"rejected by {cls.__name__}(): {exc}") from exc
    return record


_CLASS_OPTIONS = "validation, frozen, coerce, serializer, isodates=True, include_metadata=False"


def _check_class_options(
    cls: type, unknown: Mapping[str, Any], isodates: bool | None, include_metadata: bool | None
) -> None:
    """Refuse class keywords Record does not know, or known ones asking for what Record does not do."""
    if unknown:
        raise ConfigurationError(
            f"class {cls.__name__}: Record takes no class keyword {', '.join(map(repr, unknown))}; "
            f"it knows {_CLASS_OPTIONS}"
        )
    if isodates is not None and isodates is not True:
        raise ConfigurationError(
            f"class {cls.__name__}: isodates={isodates!r} is not supported: ISO 8601 text is always "
            "decoded for datetime, date and time fields (isodates=True)"
        )
    if include_metadata is not None and include_metadata is not False:
        raise ConfigurationError(
            f"class {cls.__name__}: include_metadata={include_metadata!r} is not supported: records are "
            "written as their fields only (include_metadata=False)"
        )


def _validating_init(spec: _RecordSpec) -> Callable[..., None]:
    """Wrap the generated `__init__` so construction validates, for `validation=True` classes."""
    init = spec.init

    @functools.wraps(init)
    def __init__(self: Record, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        spec.validate(self)

    return __init__


@dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))
class Record:
    """Base class of typed records; subclasses are dataclasses that `from_data` validates (see module doc)."""

    _rx_spec: ClassVar[_RecordSpec]
    _rx_serializer: ClassVar[Any] = None
    """The codec topics of this record use unless they name one (`class M(Record, serializer="json")`)."""

    def __init_subclass__(
        cls,
        *,
        validation: bool | None = None,
        frozen: bool | None = None,
        coerce: bool | None = None,
        serializer: CodecArg | None = None,
        isodates: bool | None = None,
        include_metadata: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Make the subclass a dataclass and precompute its decoders; options default to the parent's."""
        _check_class_options(cls, kwargs, isodates, include_metadata)
        if coerce is not None:
            if validation is not None and validation != coerce:
                raise ConfigurationError(
                    f"class {cls.__name__}: coerce={coerce!r} and validation={validation!r} disagree; "
                    "they mean the same (check and coerce fields on construction), give one"
                )
            validation = coerce
        if serializer is not None:
            from .codecs import get_codec

            get_codec(serializer)
            cls._rx_serializer = serializer
        super().__init_subclass__()
        parent: _RecordSpec | None = getattr(cls, "_rx_spec", None)
        if validation is None:
            validation = parent.validation if parent is not None else False
        if frozen is None:
            frozen = parent.frozen if parent is not None else False
        keep_inherited_defaults(cls)
        dataclasses.dataclass(cls, frozen=frozen)
        spec = _RecordSpec(cls, validation, frozen)
        install_descriptors(cls)
        cls._rx_spec = spec
        spec.build(eager=True)
        if validation:
            type.__setattr__(cls, "__init__", _validating_init(spec))

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Self:
        """Build a record from decoded data (e.g. parsed JSON), validating and coercing every field.

        Raises `ValidationError` naming the class, field and problem; fields not declared are ignored.
        """
        try:
            return _decode_record(cls, data)
        except _Invalid as exc:
            raise ValidationError(exc.describe(cls.__name__)) from exc.__cause__

    @classmethod
    def loads(
        cls, data: bytes, *, serializer: CodecArg | None = None, default_serializer: CodecArg | None = None
    ) -> Self:
        """A record from bytes written by `dumps`, validated: through ``serializer``, else the class's,
        else ``default_serializer``, else JSON."""
        from .codecs import decode_value

        codec = serializer or cls._rx_serializer or default_serializer or "json"
        record: Self = decode_value(data, codec, cls)
        return record

    def dumps(self, *, serializer: CodecArg | None = None) -> bytes:
        """The record as bytes through ``serializer``, else the class's, else JSON (what a topic sends)."""
        from .codecs import encode_value

        data = encode_value(self, serializer or self._rx_serializer or "json")
        assert data is not None
        return data

    def asdict(self) -> dict[str, Any]:
        """The fields and their values as they are (nested records stay records; see to_representation)."""
        return {name: getattr(self, name) for name in self._rx_spec.names}

    def to_representation(self) -> dict[str, Any]:
        """The record as a JSON-ready dict: nested records, enums, datetimes, Decimals and bytes converted."""
        out = {}
        for name in self._rx_spec.names:
            try:
                out[name] = represent(getattr(self, name))
            except EncodeError as exc:
                raise EncodeError(f"{type(self).__name__}.{name}: {exc}") from exc
        return out

    def _repr_html_(self) -> str:
        from .display import record_html

        return record_html(self)


_JSON_SCALARS = frozenset({str, int, float, bool, NoneType})


def _represent_key(key: Any) -> Any:
    """A dict key as JSON can hold it: str, int, float, bool or None."""
    converted = represent(key)
    if type(converted) in _JSON_SCALARS:
        return converted
    raise EncodeError(f"cannot use {type(key).__name__} {_short_repr(key)} as a JSON object key")


def represent(value: Any) -> Any:
    """`value` as JSON-ready data, so any codec can write it: Records become dicts, enums their values.

    datetime/date/time become ISO 8601 text, Decimal text (no precision lost), bytes base64 text, tuples and
    sets lists. Anything else raises `EncodeError`.
    """
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value
    if isinstance(value, Record):
        return value.to_representation()
    if kind is list or kind is tuple:
        return [represent(item) for item in value]
    if kind is dict:
        return {_represent_key(key): represent(item) for key, item in value.items()}
    if isinstance(value, Enum):
        return represent(value.value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (list, tuple, set, frozenset)):
        return [represent(item) for item in value]
    if isinstance(value, Mapping):
        return {_represent_key(key): represent(item) for key, item in value.items()}
    if isinstance(value, (str, int, float)):
        return value
    raise EncodeError(
        f"cannot represent {kind.__name__} {_short_repr(value)} as JSON: use a Record, a JSON type, "
        "datetime, date, time, Decimal, an Enum or bytes"
    )
