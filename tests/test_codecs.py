"""Codecs: the built-in json/raw/binary codecs, the registry, and encode_value/decode_value."""

import json
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest

from rxstream import codecs
from rxstream.codecs import (
    BinaryCodec,
    Codec,
    JSONCodec,
    RawCodec,
    decode_value,
    encode_value,
    get_codec,
    register,
)
from rxstream.errors import ConfigurationError, DecodeError, EncodeError, ValidationError
from rxstream.records import Record


class Color(Enum):
    RED = "red"


class Customer(Record):
    name: str


class Order(Record):
    id: str
    amount: float = 0.0


class Shipment(Record):
    order: Order
    customer: Customer | None = None
    items: list[Order] | None = None
    sent: datetime | None = None
    value: Decimal = Decimal("0")
    color: Color = Color.RED


class Upper:
    """A test codec: text, upper-cased on the way out."""

    def dumps(self, obj: Any) -> bytes:
        return str(obj).upper().encode()

    def loads(self, data: bytes) -> Any:
        return data.decode()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the test its own copy of the codec registry."""
    monkeypatch.setattr(codecs, "_codecs", dict(codecs._codecs))


def test_json_writes_compact_utf8() -> None:
    assert encode_value(Order("x", 1.5), "json") == b'{"id":"x","amount":1.5}'
    assert encode_value({"name": "Zoë"}, "json") == '{"name":"Zoë"}'.encode()


def test_record_round_trips_through_json() -> None:
    shipment = Shipment(
        Order("o1", 9.5),
        Customer("Ada"),
        [Order("o2"), Order("o3", 1.0)],
        datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
        Decimal("19.990"),
    )
    data = encode_value(shipment, "json")
    assert data == (
        b'{"order":{"id":"o1","amount":9.5},"customer":{"name":"Ada"},'
        b'"items":[{"id":"o2","amount":0.0},{"id":"o3","amount":1.0}],'
        b'"sent":"2024-03-01T08:00:00+00:00","value":"19.990","color":"red"}'
    )
    assert decode_value(data, "json", Shipment) == shipment


def test_json_encodes_plain_values_json_lacks() -> None:
    value = [datetime(2024, 1, 2, 3, 4, 5), Decimal("0.1"), Color.RED, b"\x01", (1, 2)]
    assert encode_value(value, "json") == b'["2024-01-02T03:04:05","0.1","red","AQ==",[1,2]]'


def test_decode_value_without_a_type_returns_the_decoded_data() -> None:
    assert decode_value(b'{"a":[1,2.5,null]}', "json") == {"a": [1, 2.5, None]}


def test_decode_value_validates_type_expressions() -> None:
    assert decode_value(b'[{"id":"a"},{"id":"b","amount":2}]', "json", list[Order]) == [
        Order("a"),
        Order("b", 2.0),
    ]
    assert decode_value(b"3", "json", float) == 3.0
    assert decode_value(b'"2024-01-01T00:00:00"', "json", datetime) == datetime(2024, 1, 1)


def test_none_stays_none_both_ways() -> None:
    assert encode_value(None, "json") is None
    assert encode_value(None, "raw") is None
    assert decode_value(None, "json", Order) is None


def test_invalid_json_is_a_decode_error_with_the_reason() -> None:
    with pytest.raises(DecodeError) as info:
        decode_value(b'{"id": "x", ', "json", Order)
    assert info.value.reason.startswith("invalid JSON: Expecting property name")
    with pytest.raises(DecodeError, match="invalid JSON"):
        decode_value(b"\xff\xfe\xfa", "json")


def test_invalid_record_is_a_decode_error_naming_class_and_field() -> None:
    with pytest.raises(DecodeError) as info:
        decode_value(b'{"id":"x","amount":"abc"}', "json", Order)
    assert str(info.value) == "Order.amount: expected float, got str 'abc'"
    assert isinstance(info.value.__cause__, ValidationError)
    with pytest.raises(DecodeError, match=r"^Order\.id: missing required field$"):
        decode_value(b'{"amount":1}', "json", Order)
    with pytest.raises(DecodeError, match=r"^Order: expected a mapping of Order fields, got list \[1\]$"):
        decode_value(b"[1]", "json", Order)


def test_bool_is_not_decoded_as_int() -> None:
    with pytest.raises(DecodeError, match="expected int, got bool True"):
        decode_value(b"true", "json", int)


def test_unknown_codec_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_codec("pickle")
    assert "unknown codec 'pickle'; known codecs: binary, json, raw" in str(info.value)
    with pytest.raises(ConfigurationError, match="unknown codec 'yaml'"):
        encode_value(1, "yaml")


def test_builtin_codecs_are_registered_by_name() -> None:
    assert isinstance(get_codec("json"), JSONCodec)
    assert isinstance(get_codec("raw"), RawCodec)
    assert isinstance(get_codec("binary"), BinaryCodec)
    assert all(isinstance(get_codec(name), Codec) for name in ("json", "raw", "binary"))


@pytest.mark.usefixtures("registry")
def test_registered_codec_is_used_by_name() -> None:
    register("upper", Upper())
    assert encode_value("abc", "upper") == b"ABC"
    assert decode_value(b"XYZ", "upper", str) == "XYZ"
    with pytest.raises(ConfigurationError, match="known codecs: binary, json, raw, upper"):
        get_codec("nope")


@pytest.mark.usefixtures("registry")
def test_register_rejects_what_is_not_a_codec() -> None:
    with pytest.raises(ConfigurationError, match="must have dumps"):
        register("bad", object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="non-empty str"):
        register("", Upper())


def test_a_codec_object_is_used_as_given() -> None:
    codec = Upper()
    assert get_codec(codec) is codec
    assert encode_value("hi", codec) == b"HI"
    with pytest.raises(ConfigurationError, match="expected a codec name"):
        get_codec(42)  # type: ignore[arg-type]


def test_raw_passes_bytes_through_and_encodes_text_as_utf8() -> None:
    assert encode_value(b"\x00\xff", "raw") == b"\x00\xff"
    assert encode_value("Zoë", "raw") == "Zoë".encode()
    assert encode_value(bytearray(b"ab"), "raw") == b"ab"
    assert decode_value(b"\x00\xff", "raw") == b"\x00\xff"
    assert decode_value(b"\x00\xff", "raw", bytes) == b"\x00\xff"
    with pytest.raises(EncodeError, match="raw codec encodes bytes or str, got int"):
        encode_value(5, "raw")


def test_raw_payloads_decode_to_scalar_types_from_text() -> None:
    assert decode_value(b"Zo\xc3\xab", "raw", str) == "Zoë"
    assert decode_value(b"42", "raw", int) == 42
    assert decode_value(b"2.5", "raw", float) == 2.5
    assert decode_value(b"1.10", "raw", Decimal) == Decimal("1.10")
    with pytest.raises(DecodeError, match="expected int, got str 'forty'"):
        decode_value(b"forty", "raw", int)
    with pytest.raises(DecodeError, match="expected UTF-8 text for str"):
        decode_value(b"\xff", "raw", str)


def test_binary_is_base64_of_the_raw_bytes() -> None:
    assert encode_value(b"\x00\xff", "binary") == b"AP8="
    assert encode_value("hi", "binary") == b"aGk="
    assert decode_value(b"AP8=", "binary") == b"\x00\xff"
    with pytest.raises(DecodeError, match="invalid base64"):
        decode_value(b"not base64!", "binary")


@pytest.mark.parametrize(
    "data",
    [
        b'{"id":"o1","amount":0.5}',
        b' {"a": [1, 2.5, null, true]}\n',  # whitespace around the document
        '{"name":"Zoë"}'.encode(),
        '{"a":1}'.encode("utf-16"),  # json.loads detects UTF-16 and UTF-32
        '{"a":1}'.encode("utf-32-le"),
        b'\xef\xbb\xbf{"a":2}',  # a UTF-8 byte-order mark
        b"1",
        b'"\\ud83d\\ude00"',
        b"NaN",
    ],
)
def test_json_decodes_what_the_standard_library_decodes(data: bytes) -> None:
    assert repr(JSONCodec().loads(data)) == repr(json.loads(data))


@pytest.mark.parametrize("data", [b'{"a":', b"[1] 2", b"", b"\xff", b'{"a":1}}', b"[" * 100_000])
def test_json_decode_errors_say_what_the_standard_library_says(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        JSONCodec().loads(data)
    try:
        json.loads(data)
    except RecursionError:
        assert info.value.reason == "invalid JSON: nested too deeply"
    except ValueError as exc:
        assert info.value.reason == f"invalid JSON: {exc}"
    else:
        pytest.fail(f"json.loads accepted {data[:20]!r}")


def test_json_encodes_as_the_standard_library_encodes() -> None:
    value = {"a": [1, 2.5, None, True, "é\n\u2028"], "b": {"c": -0.0, "d": float("inf")}, "e": ()}
    assert JSONCodec().dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_json_encode_errors_name_the_problem() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(EncodeError, match="cannot encode dict: Circular reference detected"):
        encode_value(cyclic, "json")
    with pytest.raises(EncodeError, match="cannot encode str: 'utf-8' codec can't encode"):
        encode_value("\ud800", "json")
    with pytest.raises(EncodeError, match="cannot encode dict: keys must be str"):
        encode_value({(1, 2): 3}, "json")
    assert encode_value({"ok": 1}, "json") == b'{"ok":1}'  # the encoder is sound after each failure


def test_json_names_a_cycle_even_with_a_raised_recursion_limit() -> None:
    script = (
        "import sys; sys.setrecursionlimit(1_000_000)\n"
        "from rxstream.codecs import JSONCodec\n"
        "from rxstream.errors import EncodeError\n"
        "d = {}; d['self'] = d\n"
        "try:\n    JSONCodec().dumps(d)\nexcept EncodeError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "json codec cannot encode dict: Circular reference detected"


def test_json_encodes_once_and_from_several_threads_at_a_time() -> None:
    class FailsOnce(dict[str, int]):
        calls = 0

        def items(self) -> Any:
            FailsOnce.calls += 1
            if FailsOnce.calls == 1:
                raise KeyError("first call")
            return super().items()

    codec = JSONCodec()
    with pytest.raises(KeyError, match="first call"):  # raised as it came, not retried
        codec.dumps({"m": FailsOnce(a=1)})
    assert FailsOnce.calls == 1
    shared = {"n": list(range(100)), "s": {"t": "x"}}
    expected = json.dumps(shared, separators=(",", ":")).encode()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: [codec.dumps(shared) for _ in range(2_000)], range(8)))
    assert all(data == expected for chunk in results for data in chunk)


def test_json_cannot_encode_unknown_objects() -> None:
    with pytest.raises(EncodeError, match="cannot represent object"):
        encode_value({"x": object()}, "json")


def test_failures_of_third_party_codecs_become_codec_errors() -> None:
    class Broken:
        def dumps(self, obj: Any) -> bytes:
            return "text"  # type: ignore[return-value]

        def loads(self, data: bytes) -> Any:
            raise KeyError("boom")

    with pytest.raises(EncodeError, match="Broken codec returned str, not bytes"):
        encode_value(1, Broken())
    with pytest.raises(DecodeError, match="Broken codec cannot decode the payload: KeyError") as info:
        decode_value(b"x", Broken())
    assert isinstance(info.value.__cause__, KeyError)


def test_decode_error_names_the_context_it_is_given() -> None:
    error = DecodeError("invalid JSON", topic="orders", partition=2, offset=17, key=b"k1")
    assert (
        str(error)
        == "cannot decode message (topic 'orders', partition 2, offset 17, key b'k1'): invalid JSON"
    )
    assert (error.reason, error.topic, error.partition, error.offset, error.key) == (
        "invalid JSON",
        "orders",
        2,
        17,
        b"k1",
    )
    assert str(DecodeError("bad")) == "bad"
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.reason, copy.offset) == (str(error), "invalid JSON", 17)


def test_callers_can_add_context_to_a_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        decode_value(b"{", "json", Order)
    located = DecodeError(info.value.reason, topic="orders", partition=0, offset=3)
    assert str(located).startswith(
        "cannot decode message (topic 'orders', partition 0, offset 3): invalid JSON"
    )
