"""Records as Faust's users write them: class options, dumps/loads/asdict, and field descriptors."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from rxstream import App, Record, Stream
from rxstream.errors import ConfigurationError, DecodeError
from rxstream.record_fields import FieldDescriptor
from tests.test_app import eventually, memory_url


class Account(Record, serializer="json", isodates=True, include_metadata=False):
    id: str
    balance: float = 0.0
    tags: list[str] = dataclasses.field(default_factory=list)


class Transfer(Record, coerce=True):
    account: Account
    amount: float
    at: datetime | None = None


def test_class_level_fields_are_descriptors_and_instances_keep_their_values() -> None:
    assert isinstance(Account.id, FieldDescriptor)
    assert Account.balance.field == "balance" and Account.balance.__name__ == "Account.balance"
    assert Account.balance.default == 0.0 and Account.tags.default == [] and Account.id.required
    account = Account("a1")
    assert account.balance == 0.0 and account.tags == [] and Account.balance(account) == 0.0
    assert Account("a2", 5.0).balance == 5.0
    assert repr(Account.balance) == "<FieldDescriptor Account.balance>"


def test_defaults_survive_subclasses_that_declare_a_field_again() -> None:
    class Savings(Account):
        balance: float  # declared again without a value: keeps the parent's default, as a dataclass does
        rate: float = 0.01

    assert Savings("s1").balance == 0.0 and Savings("s1").rate == 0.01
    assert isinstance(Savings.balance, FieldDescriptor) and Savings.balance.model is Savings

    class Frozen(Record, frozen=True):
        x: int = 1

    assert Frozen().x == 1 and hash(Frozen()) == hash(Frozen()) and isinstance(Frozen.x, FieldDescriptor)


class Upper:
    """A codec of its own: JSON in capitals."""

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj.to_representation(), separators=(",", ":")).upper().encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


def test_dumps_loads_and_asdict() -> None:
    transfer = Transfer(Account("a1", 2.0, ["vip"]), 10, datetime(2024, 5, 1, tzinfo=UTC))
    assert transfer.amount == 10.0  # coerce=True
    data = transfer.dumps()
    assert isinstance(data, bytes) and b'"2024-05-01T00:00:00+00:00"' in data
    assert Transfer.loads(data) == transfer
    assert Account.loads(b'{"id": "x"}', default_serializer="json") == Account("x")
    assert transfer.asdict() == {"account": transfer.account, "amount": 10.0, "at": transfer.at}
    assert transfer.to_representation()["account"] == {"id": "a1", "balance": 2.0, "tags": ["vip"]}
    upper = Upper()
    assert Account("r").dumps(serializer=upper) == b'{"ID":"R","BALANCE":0.0,"TAGS":[]}'
    assert Account.loads(b'{"id":"r"}', serializer=upper) == Account("r")
    with pytest.raises(DecodeError, match="missing required field"):
        Account.loads(b"{}")


def test_class_options_refuse_what_records_do_not_do_by_name() -> None:
    with pytest.raises(ConfigurationError, match="include_metadata=True is not supported"):

        class Meta(Record, include_metadata=True):
            x: int


async def test_group_by_takes_a_field_descriptor_and_names_the_repartition_topic_after_it() -> None:
    app = App("faust-records", broker=memory_url())
    accounts = app.topic("accounts", value_type=Account, partitions=2)
    groups: list[Any] = []

    @app.agent(accounts)
    async def by_id(stream: Stream[Account]) -> None:
        async for key, values in stream.group_by(Account.id):
            async for account in values:
                groups.append((key, account.balance))

    async with app:
        await accounts.send(value=Account("a", 1.0))
        await accounts.send(value=Account("b", 2.0))
        await eventually(lambda: len(groups) == 2)
    assert sorted(groups) == [("a", 1.0), ("b", 2.0)]
    assert "faust-records-Account.id-repartition" in app.topics


async def test_a_field_descriptor_works_as_a_key_function_anywhere() -> None:
    accounts = [Account("a", 1.0), Account("b", 2.0), Account("a", 3.0)]
    pairs = (
        await Stream.from_iterable(accounts)
        .group_by(Account.id)
        .flat_map(lambda key, sub: sub.map(lambda account: (key, account.balance)))
        .to_list()
    )
    assert sorted(pairs) == [("a", 1.0), ("a", 3.0), ("b", 2.0)]
    assert await Stream.from_iterable(accounts).map(Account.balance).to_list() == [1.0, 2.0, 3.0]


def test_a_field_whose_default_is_none_takes_none_as_faust_records_do() -> None:
    class Withdrawal(Record, isodates=True, serializer="json"):
        user: str
        date: datetime = None  # type: ignore[assignment]

    assert Withdrawal.from_data({"user": "a", "date": None}) == Withdrawal("a")
    assert Withdrawal.loads(Withdrawal("a").dumps()) == Withdrawal("a")
    assert Withdrawal.from_data({"user": "a", "date": "2024-01-01T00:00:00"}).date == datetime(2024, 1, 1)
