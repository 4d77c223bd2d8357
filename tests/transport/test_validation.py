"""check_records: the inline test for records a broker cannot refuse never lets a refusable one through, nor
does the column-wise test of a batch grouped by partition."""

from __future__ import annotations

from typing import Any

import pytest

from rxstream.errors import ConfigurationError, EncodeError
from rxstream.transport.routed import PartitionRecords, Routed
from rxstream.transport.validation import check_records

LIMIT = 100


def _routed(records: list[Any]) -> Routed:
    """``records`` grouped by partition (None: 0), in order, as a changelog hands its batch over."""
    parts: dict[Any, PartitionRecords] = {}
    for key, value, partition, headers in records:
        where = 0 if partition is None else partition
        part = parts.setdefault(where, PartitionRecords(where, [], [], {}))
        if headers is not None:
            part.headers[len(part.keys)] = headers
        part.keys.append(key)
        part.values.append(value)
    return Routed(parts.values())


def _check(records: list[Any], grouped: bool) -> None:
    check_records("orders", _routed(records) if grouped else records, LIMIT)


@pytest.mark.parametrize(
    ("key", "value", "partition", "headers"),
    [
        (None, {"an": "object"}, None, None),
        ("k", 1, 3, None),
        (b"k" * 25, b"v" * 25, None, None),
        ("k" * 25, "v" * 25, 0, None),
        ("ключ", "значение", None, None),  # not ASCII: measured as UTF-8, still small
        (b"k" * 50, b"v" * 50, None, None),  # exactly the limit
        ("k", "v", None, {"trace": b"1"}),
    ],
)
@pytest.mark.parametrize("around", [0, 12], ids=["alone", "in a batch"])  # a batch is tested column-wise
@pytest.mark.parametrize("grouped", [False, True], ids=["records", "grouped by partition"])
def test_records_a_broker_accepts_pass(
    key: Any, value: Any, partition: Any, headers: Any, around: int, grouped: bool
) -> None:
    record = (key, value, partition, headers)
    _check([record] * (around + 1), grouped)
    _check([("k", 1, None, None)] * around + [record] + [(None, b"v", 2, None)] * around, grouped)


@pytest.mark.parametrize(
    ("key", "value", "partition", "headers", "error", "names"),
    [
        (None, b"v" * 101, None, None, EncodeError, "max_message_bytes=100"),
        ("k" * 60, "v" * 41, 1, None, EncodeError, "max_message_bytes=100"),
        (None, "é" * 51, None, None, EncodeError, "102 bytes"),  # 51 characters, 102 UTF-8 bytes
        ("€" * 25, "€" * 10, None, None, EncodeError, "105 bytes"),  # short text, long in UTF-8
        ("k" * 30, "v" * 60, None, {"h": "x" * 20}, EncodeError, "111 bytes"),  # headers count too
        ("\ud800", 1, None, None, EncodeError, "key"),  # a lone surrogate is not UTF-8
        ("k", "\udfff", None, None, EncodeError, "value"),
        ("k", 1, True, None, ConfigurationError, "partition"),
        ("k", 1, "1", None, ConfigurationError, "partition"),
        ("k", 1, None, {b"name": b"v"}, EncodeError, "header name"),
        ("k", 1, None, {"n": 7}, EncodeError, "header 'n'"),
    ],
)
@pytest.mark.parametrize("around", [1, 12], ids=["after one", "in a batch"])
@pytest.mark.parametrize("grouped", [False, True], ids=["records", "grouped by partition"])
def test_records_a_broker_refuses_are_refused_naming_what_is_wrong(
    key: Any,
    value: Any,
    partition: Any,
    headers: Any,
    error: type[Exception],
    names: str,
    around: int,
    grouped: bool,
) -> None:
    good = ("k", "v", 0, {"trace": "1"})
    with pytest.raises(error, match=names):
        _check([good] * around + [(key, value, partition, headers)] + [good] * around, grouped)
