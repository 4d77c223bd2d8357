"""Records: dataclass construction, JSON-ready representation, validated decoding and its error messages."""

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any, Literal, Optional

import pytest

from rxstream.errors import ConfigurationError, EncodeError, ValidationError
from rxstream.records import Record, decoder_for, represent


class Status(Enum):
    OPEN = "open"
    PAID = "paid"


class Priority(IntEnum):
    LOW = 1
    HIGH = 2


class Customer(Record):
    name: str
    email: str | None = None


class Line(Record):
    sku: str
    amount: float


class Order(Record):
    id: str
    amount: float = 0.0


class Invoice(Record):
    id: str
    customer: Customer
    lines: list[Line] = dataclasses.field(default_factory=list)
    by_sku: dict[str, Line] = dataclasses.field(default_factory=dict)
    issued: datetime | None = None
    due: date | None = None
    total: Decimal = Decimal("0")
    status: Status = Status.OPEN
    priority: Priority = Priority.LOW
    note: Optional[str] = None  # noqa: UP045 - the typing.Optional spelling must work too
    attachment: bytes = b""
    point: tuple[int, int] = (0, 0)
    counts: dict[int, int] = dataclasses.field(default_factory=dict)


class Node(Record):
    value: int
    children: "list[Node]" = dataclasses.field(default_factory=list)


class Early(Record):
    later: "Later | None" = None


class Later(Record):
    n: int


def _reason(call: Callable[[], object]) -> str:
    """The message of the ValidationError that `call` raises."""
    with pytest.raises(ValidationError) as info:
        call()
    return str(info.value)


def _full_invoice() -> Invoice:
    return Invoice(
        id="inv-1",
        customer=Customer("Ada", "ada@example.org"),
        lines=[Line("apple", 1.25), Line("pear", 2.0)],
        by_sku={"apple": Line("apple", 1.25)},
        issued=datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
        due=date(2024, 6, 1),
        total=Decimal("3.250"),
        status=Status.PAID,
        priority=Priority.HIGH,
        note="thanks",
        attachment=b"\x00\xffbin",
        point=(3, 4),
        counts={1: 10, 2: 20},
    )


def test_construction_by_keyword_and_position_fills_defaults() -> None:
    assert Order(id="a").amount == 0.0
    by_position = Order("a", 2.5)
    assert (by_position.id, by_position.amount) == ("a", 2.5)
    with pytest.raises(TypeError):
        Order()  # type: ignore[call-arg]


def test_equality_and_repr_come_from_dataclasses() -> None:
    assert Order("a", 1.5) == Order(id="a", amount=1.5)
    assert Order("a", 1.5) != Order("a", 2.5)
    assert repr(Order("a", 1.5)) == "Order(id='a', amount=1.5)"
    assert dataclasses.is_dataclass(Order)


def test_records_of_different_classes_with_the_same_fields_are_not_equal() -> None:
    class Other(Record):
        id: str
        amount: float = 0.0

    other: object = Other("a", 1.0)
    assert other != Order("a", 1.0)


def test_default_factory_gives_each_record_its_own_list() -> None:
    first, second = Invoice("1", Customer("a")), Invoice("2", Customer("b"))
    first.lines.append(Line("x", 1.0))
    assert second.lines == []


def test_to_representation_is_json_ready() -> None:
    assert _full_invoice().to_representation() == {
        "id": "inv-1",
        "customer": {"name": "Ada", "email": "ada@example.org"},
        "lines": [{"sku": "apple", "amount": 1.25}, {"sku": "pear", "amount": 2.0}],
        "by_sku": {"apple": {"sku": "apple", "amount": 1.25}},
        "issued": "2024-05-01T12:30:00+02:00",
        "due": "2024-06-01",
        "total": "3.250",
        "status": "paid",
        "priority": 2,
        "note": "thanks",
        "attachment": "AP9iaW4=",
        "point": [3, 4],
        "counts": {1: 10, 2: 20},
    }


def test_record_round_trips_through_json_text() -> None:
    invoice = _full_invoice()
    decoded = Invoice.from_data(json.loads(json.dumps(invoice.to_representation())))
    assert decoded == invoice
    assert type(decoded.total) is Decimal and str(decoded.total) == "3.250"
    assert decoded.issued is not None and decoded.issued.utcoffset() == timedelta(hours=2)
    assert decoded.status is Status.PAID and decoded.priority is Priority.HIGH
    assert decoded.point == (3, 4) and decoded.counts == {1: 10, 2: 20}


def test_from_data_fills_defaults_for_missing_optional_fields() -> None:
    invoice = Invoice.from_data({"id": "1", "customer": {"name": "Ada"}})
    assert invoice == Invoice("1", Customer("Ada"))
    assert invoice.customer.email is None


def test_optional_fields_accept_none_and_a_value() -> None:
    assert Invoice.from_data({"id": "1", "customer": {"name": "a"}, "note": None}).note is None
    assert Invoice.from_data({"id": "1", "customer": {"name": "a"}, "note": "hi"}).note == "hi"
    assert Customer.from_data({"name": "a", "email": None}).email is None
    assert _reason(lambda: Customer.from_data({"name": "a", "email": 3})) == (
        "Customer.email: expected str, got int 3"
    )


def test_unknown_fields_are_ignored() -> None:
    assert Order.from_data({"id": "a", "amount": 1.0, "added_later": [1, 2]}) == Order("a", 1.0)


def test_int_is_widened_to_float() -> None:
    order = Order.from_data({"id": "a", "amount": 3})
    assert order.amount == 3.0 and type(order.amount) is float


def test_bool_is_neither_int_nor_float() -> None:
    assert _reason(lambda: Order.from_data({"id": "a", "amount": True})) == (
        "Order.amount: expected float, got bool True"
    )
    assert _reason(lambda: Node.from_data({"value": False})) == "Node.value: expected int, got bool False"


def test_float_is_not_narrowed_to_int() -> None:
    assert _reason(lambda: Node.from_data({"value": 1.0})) == "Node.value: expected int, got float 1.0"


def test_wrong_type_names_class_field_and_value() -> None:
    assert _reason(lambda: Order.from_data({"id": "a", "amount": "abc"})) == (
        "Order.amount: expected float, got str 'abc'"
    )
    assert _reason(lambda: Order.from_data({"id": 7})) == "Order.id: expected str, got int 7"


def test_missing_required_field_names_class_and_field() -> None:
    assert _reason(lambda: Order.from_data({"amount": 1.0})) == "Order.id: missing required field"


def test_null_for_a_non_optional_field_is_an_error() -> None:
    assert _reason(lambda: Order.from_data({"id": None})) == "Order.id: expected str, got None"


def test_data_that_is_not_a_mapping_is_an_error() -> None:
    assert _reason(lambda: Order.from_data([1, 2])) == (  # type: ignore[arg-type]
        "Order: expected a mapping of Order fields, got list [1, 2]"
    )


def test_errors_in_nested_records_name_the_path() -> None:
    customer_missing = {"id": "1", "customer": {"email": "x"}}
    assert (
        _reason(lambda: Invoice.from_data(customer_missing))
        == "Invoice.customer.name: missing required field"
    )
    bad_line = {
        "id": "1",
        "customer": {"name": "a"},
        "lines": [{"sku": "a", "amount": 1}, {"sku": "b", "amount": "x"}],
    }
    assert _reason(lambda: Invoice.from_data(bad_line)) == (
        "Invoice.lines[1].amount: expected float, got str 'x'"
    )
    bad_entry = {"id": "1", "customer": {"name": "a"}, "by_sku": {"pear": {"sku": 5, "amount": 1.0}}}
    assert (
        _reason(lambda: Invoice.from_data(bad_entry)) == "Invoice.by_sku['pear'].sku: expected str, got int 5"
    )
    not_a_customer = {"id": "1", "customer": "Ada"}
    assert _reason(lambda: Invoice.from_data(not_a_customer)) == (
        "Invoice.customer: expected a mapping of Customer fields, got str 'Ada'"
    )


def test_lists_and_dicts_of_records_decode_each_item() -> None:
    invoice = Invoice.from_data(
        {
            "id": "1",
            "customer": {"name": "a"},
            "lines": [{"sku": "a", "amount": 1}, {"sku": "b", "amount": 2.5}],
            "by_sku": {"a": {"sku": "a", "amount": 1}},
        }
    )
    assert invoice.lines == [Line("a", 1.0), Line("b", 2.5)]
    assert invoice.by_sku == {"a": Line("a", 1.0)}
    assert _reason(lambda: Invoice.from_data({"id": "1", "customer": {"name": "a"}, "lines": {"a": 1}})) == (
        "Invoice.lines: expected list[Line], got dict {'a': 1}"
    )


def test_dict_keys_are_decoded_from_json_text() -> None:
    data = {"id": "1", "customer": {"name": "a"}, "counts": {"1": 5, "2": 6}}
    assert Invoice.from_data(data).counts == {1: 5, 2: 6}
    bad_key = {"id": "1", "customer": {"name": "a"}, "counts": {"one": 5}}
    assert _reason(lambda: Invoice.from_data(bad_key)) == (
        "Invoice.counts: bad key 'one': expected int, got str 'one'"
    )


def test_datetime_is_decoded_from_iso_8601_text() -> None:
    class Event(Record):
        at: datetime

    assert Event.from_data({"at": "2024-05-01T10:00:00Z"}).at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert Event.from_data({"at": "2024-05-01T10:00:00"}).at.tzinfo is None
    assert _reason(lambda: Event.from_data({"at": "yesterday"})) == (
        "Event.at: expected datetime as ISO 8601 text, got str 'yesterday'"
    )
    assert (
        _reason(lambda: Event.from_data({"at": 1714557600}))
        == "Event.at: expected datetime, got int 1714557600"
    )


def test_decimal_keeps_its_precision() -> None:
    class Price(Record):
        value: Decimal

    assert Price.from_data({"value": "0.10"}).value.as_tuple() == Decimal("0.10").as_tuple()
    assert Price.from_data({"value": 0.1}).value == Decimal("0.1")
    assert Price.from_data({"value": 3}).value == Decimal(3)
    assert Price(Decimal("1.000")).to_representation() == {"value": "1.000"}
    assert (
        _reason(lambda: Price.from_data({"value": "ten"})) == "Price.value: expected Decimal, got str 'ten'"
    )


def test_enums_decode_by_value() -> None:
    class Ticket(Record):
        status: Status
        priority: Priority

    assert Ticket.from_data({"status": "paid", "priority": 2}) == Ticket(Status.PAID, Priority.HIGH)
    assert _reason(lambda: Ticket.from_data({"status": "lost", "priority": 1})) == (
        "Ticket.status: expected Status, one of ('open', 'paid'), got str 'lost'"
    )


def test_bytes_travel_as_base64_text() -> None:
    class Blob(Record):
        data: bytes

    assert Blob(b"\x00\x01").to_representation() == {"data": "AAE="}
    assert Blob.from_data({"data": "AAE="}).data == b"\x00\x01"
    assert _reason(lambda: Blob.from_data({"data": "not base64!"})) == (
        "Blob.data: expected bytes as base64 text, got str 'not base64!'"
    )


def test_tuples_sets_literals_unions_and_any() -> None:
    class Shape(Record):
        size: tuple[int, int]
        tags: tuple[str, ...]
        flags: frozenset[str]
        kind: Literal["circle", "square"]
        ref: int | str
        extra: Any = None

    shape = Shape.from_data(
        {
            "size": [1, 2],
            "tags": ["a", "b"],
            "flags": ["x", "x"],
            "kind": "circle",
            "ref": "r1",
            "extra": {"k": [1]},
        }
    )
    assert shape == Shape((1, 2), ("a", "b"), frozenset({"x"}), "circle", "r1", {"k": [1]})
    assert Shape.from_data({**shape.to_representation(), "ref": 7}).ref == 7
    base = shape.to_representation()
    assert _reason(lambda: Shape.from_data({**base, "size": [1, 2, 3]})) == (
        "Shape.size: expected tuple[int, int] of 2 items, got 3 items"
    )
    assert _reason(lambda: Shape.from_data({**base, "kind": "hexagon"})) == (
        "Shape.kind: expected Literal['circle', 'square'], got str 'hexagon'"
    )
    assert (
        _reason(lambda: Shape.from_data({**base, "ref": 1.5}))
        == "Shape.ref: expected int | str, got float 1.5"
    )


def test_validation_is_off_by_default_for_speed() -> None:
    order = Order(id=5, amount="abc")  # type: ignore[arg-type]
    assert dataclasses.astuple(order) == (5, "abc")


def test_validation_true_checks_and_coerces_on_construction() -> None:
    class Checked(Record, validation=True):
        id: str
        amount: float = 0.0
        at: datetime | None = None

    assert Checked("a", 2).amount == 2.0 and type(Checked("a", 2).amount) is float
    assert Checked("a", at="2024-01-01T00:00:00").at == datetime(2024, 1, 1)  # type: ignore[arg-type]
    assert _reason(lambda: Checked("a", "abc")) == "Checked.amount: expected float, got str 'abc'"  # type: ignore[arg-type]
    assert Checked.from_data({"id": "b", "amount": 1}) == Checked("b", 1.0)


def test_validation_is_inherited_by_subclasses() -> None:
    class Checked(Record, validation=True):
        id: str

    class Child(Checked):
        extra: int = 0

    assert _reason(lambda: Child("a", "x")) == "Child.extra: expected int, got str 'x'"  # type: ignore[arg-type]


def test_frozen_records_are_immutable_and_hashable() -> None:
    class Point(Record, frozen=True):
        x: int
        y: int

    assert {Point(1, 2): "a"}[Point(1, 2)] == "a"
    with pytest.raises(dataclasses.FrozenInstanceError):
        Point(1, 2).x = 3  # type: ignore[misc]
    assert Point.from_data({"x": 1, "y": 2}) == Point(1, 2)


def test_self_referencing_record_decodes_recursively() -> None:
    tree = Node.from_data({"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]})
    assert tree == Node(1, [Node(2, [Node(3)])])


def test_forward_reference_to_a_later_class_resolves_on_first_use() -> None:
    assert Early.from_data({"later": {"n": 1}}) == Early(Later(1))


def test_unresolvable_annotation_is_a_configuration_error_on_first_decode() -> None:
    class Broken(Record):
        missing: "NoSuchType"  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(ConfigurationError, match="Broken: cannot resolve its field types"):
        Broken.from_data({})


def test_unsupported_field_type_is_rejected_when_the_class_is_defined() -> None:
    with pytest.raises(ConfigurationError, match=r"Bad\.callback: unsupported type"):

        class Bad(Record):
            callback: Callable[[], int]


def test_post_init_rejection_becomes_a_validation_error() -> None:
    class Positive(Record):
        amount: float

        def __post_init__(self) -> None:
            if self.amount <= 0:
                raise ValueError("amount must be positive")

    assert _reason(lambda: Positive.from_data({"amount": -1})) == (
        "Positive: rejected by Positive(): amount must be positive"
    )


def test_to_representation_names_the_field_it_cannot_represent() -> None:
    class Holder(Record):
        thing: Any

    with pytest.raises(EncodeError, match=r"Holder\.thing: cannot represent object"):
        Holder(object()).to_representation()


def test_represent_converts_values_outside_records() -> None:
    assert represent({Status.OPEN: (Decimal("1.5"), date(2024, 1, 2))}) == {"open": ["1.5", "2024-01-02"]}


def test_decoder_for_validates_any_type_expression() -> None:
    assert decoder_for(list[Order])([{"id": "a"}]) == [Order("a")]
    assert _reason(lambda: decoder_for(int)("7")) == "expected int, got str '7'"
    assert decoder_for(int, text=True)("7") == 7
    assert decoder_for(bool, text=True)("false") is False
    assert decoder_for(Priority, text=True)("2") is Priority.HIGH
    assert _reason(lambda: decoder_for(list[Order])([{"id": "a"}, {"id": 1}])) == (
        "list[Order][1].id: expected str, got int 1"
    )
    assert decoder_for(dict[str, int]) is decoder_for(dict[str, int])
