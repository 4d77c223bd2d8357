"""References and their acknowledgers, sans I/O: runs of pairs, groups, inner-stream items, descriptions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import pytest

from rxstream._core.refs import (
    EVENT_ACKER,
    GROUP_ACKER,
    ITEM_ACKER,
    Expanded,
    Group,
    Item,
    Pair,
    Ref,
    SharedRefs,
    ack_pairs,
    describe_ref,
    last_source,
    sources_of,
)
from rxstream.events import Event, Message


def row(offset: int, partition: int = 0, topic: str = "orders") -> Message:
    return Message(topic, partition, offset, 0.0, f"k{offset}", offset)


def label(ref: Ref) -> object:
    """How a recorded reference reads in the tables: ``(partition, offset)`` for a row."""
    return (ref[1], ref[2]) if isinstance(ref, tuple) else ref


class Recorder:
    """An acknowledger that records each call."""

    def __init__(self) -> None:
        self.acks: list[list[object]] = []
        self.rejects: list[object] = []

    def ack(self, refs: Sequence[Ref]) -> None:
        self.acks.append([label(ref) for ref in refs])

    def reject(self, ref: Ref) -> None:
        self.rejects.append(label(ref))


@pytest.mark.parametrize(
    ("pairs", "runs"),
    [
        pytest.param(
            [("a", 0, 0), ("a", 0, 1), ("a", 0, 2)], {"a": [[(0, 0), (0, 1), (0, 2)]]}, id="one run"
        ),
        pytest.param(
            [("a", 0, 0), ("a", 1, 0), ("a", 0, 1)], {"a": [[(0, 0)], [(1, 0)], [(0, 1)]]}, id="partitions"
        ),
        pytest.param(
            [("a", 0, 0), ("b", 0, 1), ("a", 0, 2)], {"a": [[(0, 0)], [(0, 2)]], "b": [[(0, 1)]]}, id="ackers"
        ),
        pytest.param(
            [("a", 0, 5), ("a", 0, 4), ("a", 0, 7), ("a", 0, 7), ("a", 0, 2), ("a", 0, 3)],
            {"a": [[(0, 5)], [(0, 4), (0, 7)], [(0, 7)], [(0, 2), (0, 3)]]},
            id="falls back",
        ),
        pytest.param([("a", 0, 3), (None, 0, 4), ("a", 0, 5)], {"a": [[(0, 3)], [(0, 5)]]}, id="no acker"),
        pytest.param([("a", 0, 1), ("a", 0, 3)], {"a": [[(0, 1), (0, 3)]]}, id="gap stays one run"),
        pytest.param([], {}, id="nothing"),
    ],
)
def test_pairs_are_acked_in_increasing_runs_of_one_acker_and_partition(
    pairs: list[tuple[str | None, int, int]], runs: dict[str, list[list[object]]]
) -> None:
    ackers = {"a": Recorder(), "b": Recorder()}
    ack_pairs([(ackers[name] if name else None, row(offset, partition)) for name, partition, offset in pairs])
    assert {name: acker.acks for name, acker in ackers.items() if acker.acks} == runs


def test_pairs_of_references_without_offsets_form_one_run_per_acker() -> None:
    acker = Recorder()
    first, second = Event(value="x"), Event(value="y")
    ack_pairs([(acker, first), (acker, second), (acker, None)])
    assert acker.acks == [[first, second, None]]


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param([[(0, 0), (0, 1)], [(0, 2)]], id="consecutive"),
        pytest.param([[(0, 3), (0, 1)], [(0, 2), (0, 0)]], id="join order"),
        pytest.param([[(0, 0), (1, 0), (0, 1)], [(1, 1)]], id="two partitions"),
        pytest.param([[(0, 4), (0, 4)], [], [(0, 4)]], id="one message paired thrice"),
    ],
)
def test_group_acks_fan_out_to_inner_refs_in_partition_runs_that_never_fall_back(
    groups: list[list[tuple[int, int]]],
) -> None:
    acker = Recorder()
    refs: list[Group | None] = [Group([(acker, row(o, p)) for p, o in group]) for group in groups]
    GROUP_ACKER.ack([*refs, None])
    runs = [[ref for ref in run if isinstance(ref, tuple)] for run in acker.acks]
    for run in runs:
        assert len({partition for partition, _ in run}) == 1
        assert all(a[1] < b[1] for a, b in pairwise(run))
    assert sorted(ref for run in runs for ref in run) == sorted(ref for group in groups for ref in group)


# Steps on one input expanded into an inner stream: emit n items, ack item i, complete, reject item i.
@pytest.mark.parametrize(
    ("steps", "acks", "rejects"),
    [
        pytest.param([("emit", 2), ("ack", 0), ("ack", 1), ("complete", 0)], 1, 0, id="acked then completed"),
        pytest.param([("emit", 2), ("ack", 0), ("complete", 0), ("ack", 1)], 1, 0, id="completed then acked"),
        pytest.param([("emit", 2), ("ack", 0), ("ack", 0), ("complete", 0)], 0, 0, id="an item counts once"),
        pytest.param([("emit", 1), ("ack", 0)], 0, 0, id="not completed"),
        pytest.param([("complete", 0)], 1, 0, id="empty inner stream"),
        pytest.param([("emit", 2), ("reject", 0), ("ack", 1), ("complete", 0)], 0, 1, id="rejected"),
        pytest.param([("emit", 2), ("reject", 0), ("reject", 1)], 0, 1, id="rejected once"),
        pytest.param([("emit", 1), ("ack", 0), ("complete", 0), ("reject", 0)], 1, 0, id="settled first"),
    ],
)
def test_items_settle_their_input_once_completed_and_all_acked(
    steps: list[tuple[str, int]], acks: int, rejects: int
) -> None:
    acker = Recorder()
    origin = Expanded(acker, row(7))
    items: list[Item] = []
    for step, n in steps:
        if step == "emit":
            origin.emit(n)
            items.extend(Item(origin) for _ in range(n))
        elif step == "ack":
            ITEM_ACKER.ack([items[n]])
        elif step == "reject":
            ITEM_ACKER.reject(items[n])
        else:
            origin.complete()
    assert acker.acks == [[(0, 7)]] * acks
    assert acker.rejects == [(0, 7)] * rejects


def test_an_expanded_input_can_start_counted_and_completed() -> None:
    acker = Recorder()
    origin = Expanded(acker, row(3), emitted=2, completed=True)
    first, second = Item(origin), Item(origin)
    ITEM_ACKER.ack([first])
    assert acker.acks == []
    ITEM_ACKER.ack([second])
    assert acker.acks == [[(0, 3)]]


def _grouped_reject(acker: Recorder) -> None:
    other = Recorder()
    GROUP_ACKER.reject(Group([(acker, row(1)), (None, row(2)), (other, row(3))]))
    assert other.rejects == [(0, 3)]


def _item_in_group_reject(acker: Recorder) -> None:
    origin = Expanded(acker, row(1))
    origin.emit(1)
    GROUP_ACKER.reject(Group([(ITEM_ACKER, Item(origin))]))


@pytest.mark.parametrize(
    ("reject", "rejected"),
    [
        pytest.param(lambda acker: SharedRefs(acker).reject(row(1)), [(0, 1)], id="shared refs"),
        pytest.param(_grouped_reject, [(0, 1)], id="group"),
        pytest.param(_item_in_group_reject, [(0, 1)], id="item in a group"),
    ],
)
def test_rejects_reach_the_origin(reject: Callable[[Recorder], None], rejected: list[object]) -> None:
    acker = Recorder()
    reject(acker)
    assert acker.rejects == rejected
    assert acker.acks == []


def test_events_are_acked_and_rejected_through_their_own_acknowledger() -> None:
    acker = Recorder()
    first, second = (Event(value=i, acker=acker, ref=row(i)) for i in range(2))
    EVENT_ACKER.ack([first, None])
    EVENT_ACKER.reject(second)
    assert acker.acks == [[(0, 0)]]
    assert acker.rejects == [(0, 1)]


@pytest.mark.parametrize(
    ("refs", "owned"),
    [
        pytest.param([None, None, row(2)], [[(0, 2)]], id="items of one input"),
        pytest.param([None, None], [], id="no input done"),
        pytest.param([row(0), None, row(2)], [[(0, 0), (0, 2)]], id="two inputs"),
    ],
)
def test_shared_refs_ack_only_the_items_that_carry_their_input(refs: list[Ref], owned: list[object]) -> None:
    acker = Recorder()
    SharedRefs(acker).ack(refs)
    assert acker.acks == owned


_item = Item(Expanded(Recorder(), row(9)))
_event = Event(value=1, message=row(4))
_bare_event = Event(value=1)


@pytest.mark.parametrize(
    ("ref", "sources", "described"),
    [
        pytest.param(None, [], "None", id="none"),
        pytest.param(row(1), [row(1)], "topic 'orders' partition 0 offset 1 key 'k1'", id="row"),
        pytest.param(_event, [_event], "topic 'orders' partition 0 offset 4 key 'k4'", id="event"),
        pytest.param(_bare_event, [_bare_event], repr(_bare_event), id="event without message"),
        pytest.param(_item, [row(9)], "topic 'orders' partition 0 offset 9 key 'k9'", id="item"),
        pytest.param(
            Group([(None, row(1)), (None, None), (ITEM_ACKER, _item)]),
            [row(1), row(9)],
            "topic 'orders' partition 0 offset 1 key 'k1', topic 'orders' partition 0 offset 9 key 'k9'",
            id="group",
        ),
        pytest.param(Group([]), [], "a derived value", id="empty group"),
    ],
)
def test_sources_and_descriptions_see_through_groups_and_items(
    ref: Ref, sources: list[object], described: str
) -> None:
    assert sources_of(ref) == sources
    assert last_source(ref) == (sources[-1] if sources else None)
    assert describe_ref(ref) == described


def test_a_pair_is_an_acknowledger_and_a_reference() -> None:
    acker = Recorder()
    pair: Pair = (acker, row(0))
    ack_pairs([pair, (acker, row(1, partition=2))])
    assert acker.acks == [[(0, 0)], [(2, 1)]]
