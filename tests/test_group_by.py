"""group_by: (key, substream) pairs, the seed's nested loops, and the functional flat_map form."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest

from rxstream import Stream
from rxstream.errors import StreamError


def interleaved(keys: str, per_key: int) -> list[dict[str, Any]]:
    return [{"user": key, "n": i} for i in range(per_key) for key in keys]


async def test_nested_loops_count_every_key_without_starving() -> None:
    counts: dict[str, int] = {}
    async for user, events in Stream.from_iterable(interleaved("abc", 10)).group_by(
        lambda e: e["user"], name="by-user"
    ):
        count = 0
        async for event in events:
            assert event["user"] == user
            count += 1
        counts[user] = count
    assert counts == {"a": 10, "b": 10, "c": 10}


async def test_substreams_keep_per_key_order() -> None:
    seen: dict[str, list[int]] = {}
    async for user, events in Stream.from_iterable(interleaved("xy", 50)).group_by(lambda e: e["user"]):
        seen[user] = [event["n"] async for event in events]
    assert seen == {"x": list(range(50)), "y": list(range(50))}


async def test_functional_form_merges_substreams() -> None:
    out = await (
        Stream.from_iterable(interleaved("abc", 10))
        .group_by(lambda e: e["user"])
        .flat_map(lambda key, sub: sub.map(lambda e, key=key: (key, e["n"])))
        .to_list()
    )
    assert Counter(key for key, _ in out) == {"a": 10, "b": 10, "c": 10}
    for key in "abc":
        assert [n for k, n in out if k == key] == list(range(10))


async def test_nested_loop_that_would_starve_other_keys_raises_instead_of_hanging() -> None:
    endless = ({"user": "ab"[i % 2], "n": i} for i in itertools.count())
    with pytest.raises(StreamError, match="would starve other keys") as info:
        async for _user, events in Stream.from_iterable(endless).group_by(lambda e: e["user"]):
            async for _event in events:
                pass
    assert "'a'" in str(info.value) and "'b'" in str(info.value)


async def test_group_by_key_errors_name_the_value() -> None:
    with pytest.raises(KeyError) as info:
        await Stream.from_iterable([{"user": "a"}, {}]).group_by(lambda e: e["user"]).to_list()
    assert any("group_by key raised on value {}" in note for note in info.value.__notes__)
