"""Filtered batches, sans I/O: which references of dropped values are acknowledged, and when."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from rxstream._core.refs import Ref, SharedRefs
from rxstream._core.sift import Sifted, move_shared_refs, shares_refs, sift
from rxstream.events import Acknowledger, Message


def rows(n: int) -> list[Ref]:
    return [Message("orders", 0, offset, 0.0, None, offset) for offset in range(n)]


def offset(ref: Ref) -> int | None:
    return ref[2] if isinstance(ref, tuple) else None


def bits(mask: str) -> list[bool]:
    return [c == "1" for c in mask]


class Recorder:
    """An acknowledger that records each call, by offset."""

    def __init__(self) -> None:
        self.acks: list[list[int | None]] = []
        self.rejects: list[int | None] = []

    def ack(self, refs: Sequence[Ref]) -> None:
        self.acks.append([offset(ref) for ref in refs])

    def reject(self, ref: Ref) -> None:
        self.rejects.append(offset(ref))


@pytest.mark.parametrize(
    ("mask", "at_once", "kept", "sifted"),
    [
        pytest.param("1111", [], [0, 1, 2, 3], False, id="all kept"),
        pytest.param("0000", [[0, 1, 2, 3]], [], False, id="all dropped"),
        pytest.param("0110", [[0], [3]], [1, 2], False, id="dropped around one run"),
        pytest.param("1001", [], [0, 3], True, id="dropped inside"),
        pytest.param("0101", [[0]], [1, 3], True, id="dropped first and inside"),
        pytest.param("1010", [[3]], [0, 2], True, id="dropped inside and last"),
    ],
)
def test_dropped_refs_before_any_kept_value_or_after_the_last_are_acked_at_once(
    mask: str, at_once: list[list[int]], kept: list[int], sifted: bool
) -> None:
    acker = Recorder()
    kept_refs, kept_acker = sift(rows(len(mask)), bits(mask), acker)
    assert acker.acks == at_once
    assert [offset(ref) for ref in kept_refs] == kept
    assert isinstance(kept_acker, Sifted) is sifted
    assert kept_acker is acker or sifted


# Runs of the kept values are slices of the filtered batch's refs, acknowledged one after another.
@pytest.mark.parametrize(
    ("mask", "runs", "acks"),
    [
        pytest.param("10101", [(0, 1), (1, 3)], [[0, 1], [2, 3, 4]], id="run by run"),
        pytest.param("10101", [(0, 3)], [[0, 1, 2, 3, 4]], id="all at once"),
        pytest.param("10101", [(0, 2), (2, 3)], [[0, 1, 2, 3], [4]], id="two runs"),
        pytest.param("10101", [(0, 2), (0, 3)], [[0, 1, 2, 3], [4]], id="growing prefixes"),
        pytest.param("10101", [(0, 2), (0, 1)], [[0, 1, 2, 3]], id="a shorter prefix again"),
        pytest.param("011001", [(0, 1), (1, 3)], [[0], [1], [2, 3, 4, 5]], id="dropped first"),
        pytest.param("10100", [(0, 2)], [[3, 4], [0, 1, 2, 3, 4]], id="dropped tail acked again in the run"),
        pytest.param("10101", [(2, 3)], [[1, 3], [4]], id="out of order releases the dropped"),
        pytest.param("10101", [(1, 2), (2, 3)], [[1, 3], [2], [4]], id="released once"),
    ],
)
def test_a_run_of_kept_values_acks_the_dropped_refs_after_it(
    mask: str, runs: list[tuple[int, int]], acks: list[list[int]]
) -> None:
    acker = Recorder()
    kept, kept_acker = sift(rows(len(mask)), bits(mask), acker)
    for start, stop in runs:
        kept_acker.ack(kept[start:stop])
    assert acker.acks == acks


# A flat_map's items carry None but the last item of each input, which carries the input's reference.
@pytest.mark.parametrize(
    ("refs", "mask", "kept", "moved"),
    [
        pytest.param([None, None, 2], "110", [None, 2], {2}, id="last item dropped"),
        pytest.param([None, None, 2], "101", [None, 2], set(), id="last item kept"),
        pytest.param([None, None, 2], "100", [2], {2}, id="only the first kept"),
        pytest.param([None, None, 2], "001", [2], set(), id="only the last kept"),
        pytest.param([None, 1, None, 3], "1010", [1, 3], {1, 3}, id="two inputs"),
        pytest.param([None, 1, None, 3], "0110", [1, 3], {3}, id="last of the second input dropped"),
        pytest.param([0, None, 2], "010", [2], {2}, id="a dropped input before"),
    ],
)
def test_shared_refs_move_to_the_last_kept_item_of_their_input(
    refs: list[int | None], mask: str, kept: list[int | None], moved: set[int]
) -> None:
    shared: list[Ref] = [None if r is None else rows(r + 1)[r] for r in refs]
    kept_refs: list[Ref] = [ref for ref, keep in zip(shared, bits(mask), strict=True) if keep]
    assert move_shared_refs(shared, bits(mask), kept_refs) == moved
    assert [offset(ref) for ref in kept_refs] == kept


def test_a_filtered_flat_map_acks_an_input_with_its_last_kept_item() -> None:
    acker = Recorder()
    refs: list[Ref] = [None, None, *rows(3)[2:], None, *rows(5)[4:]]  # inputs 2 (three items) and 4 (two)
    kept, kept_acker = sift(refs, bits("10010"), SharedRefs(acker))
    assert [offset(ref) for ref in kept] == [2, 4]  # each input's reference moved to its kept item
    assert acker.acks == []
    kept_acker.ack(kept[:1])
    assert acker.acks == [[2]]
    kept_acker.ack(kept)
    assert acker.acks == [[2], [4]]


@pytest.mark.parametrize(
    ("acker", "shares"),
    [
        pytest.param(lambda: Recorder(), False, id="plain"),
        pytest.param(lambda: SharedRefs(Recorder()), True, id="flat_map output"),
        pytest.param(lambda: sift(rows(3), bits("101"), Recorder())[1], False, id="filtered"),
        pytest.param(
            lambda: sift([None, *rows(2)[1:], None, None], bits("1001"), SharedRefs(Recorder()))[1],
            True,
            id="filtered flat_map output",
        ),
    ],
)
def test_only_flat_map_outputs_share_refs(acker: Callable[[], Acknowledger], shares: bool) -> None:
    assert shares_refs(acker()) is shares


@pytest.mark.parametrize(
    ("mask", "rejected"),
    [
        pytest.param("1001", 3, id="sifted"),
        pytest.param("0110", 2, id="unsifted"),
    ],
)
def test_rejects_of_kept_values_reach_the_origin(mask: str, rejected: int) -> None:
    acker = Recorder()
    kept, kept_acker = sift(rows(len(mask)), bits(mask), acker)
    kept_acker.reject(kept[-1])
    assert acker.rejects == [rejected]
