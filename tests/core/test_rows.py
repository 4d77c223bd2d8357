"""Fetched messages held as columns: rows built on first read, once, and the hot paths' reads without them."""

from __future__ import annotations

from collections.abc import Sequence

from rxstream._core.acks import Acknowledgments, ack_run
from rxstream._core.redelivery import Redeliveries
from rxstream._core.refs import Ref
from rxstream._core.rows import Columns, Rows
from rxstream._core.sift import Sifted, sift, sift_at
from rxstream.offsets import OffsetTracker


def fetched(n: int = 8, start: int = 100, keys: bool = False, headers: bool = False) -> Rows:
    """``n`` messages of orders[3] from offset ``start``: value ``10 * i``, the last with a key and headers
    if asked; sent at 1.5 s, from the fifth on at 2.5 s."""
    columns = Columns(
        "orders",
        3,
        start,
        [10 * i for i in range(n)],
        [f"k{i}" if i == n - 1 else None for i in range(n)] if keys else None,
        [{"reply-to": "r"} if i == n - 1 else None for i in range(n)] if headers else None,
        [start - 10, start + 4],
        [1.5, 2.5],
    )
    return Rows(columns, range(n))


class Recorder:
    """An acknowledger that records each call, by offset."""

    def __init__(self) -> None:
        self.acks: list[list[int]] = []

    def ack(self, refs: Sequence[Ref]) -> None:
        assert isinstance(refs, Rows), "a fetch's messages stay columns through a filter"
        self.acks.append(list(refs.offsets()))

    def reject(self, ref: Ref) -> None:
        raise AssertionError(f"nothing is rejected here: {ref!r}")


def test_a_row_is_built_on_first_read_with_every_field_and_is_the_same_object_after() -> None:
    rows = fetched(keys=True, headers=True)
    assert not rows.columns.built
    last = rows[-1]
    assert last == ("orders", 3, 107, 2.5, "k7", 70, {"reply-to": "r"}, None, None)
    assert rows[7] is last and rows[1:][-1] is last
    assert rows[0] == ("orders", 3, 100, 1.5, None, 0, None, None, None)
    assert (rows[3][3], rows[4][3]) == (1.5, 2.5)
    assert len(rows.columns.built) == 4
    assert list(rows)[-1] is last and len(rows.columns.built) == 8


def test_slices_and_takes_read_the_columns_of_their_own_messages() -> None:
    rows = fetched()
    part = rows[2:6]
    kept = part.take([0, 3])
    assert isinstance(part, Rows) and isinstance(kept, Rows)
    assert (len(part), part.values(), list(part.offsets())) == (4, [20, 30, 40, 50], [102, 103, 104, 105])
    assert (kept.values(), list(kept.offsets())) == ([20, 50], [102, 105])
    assert (kept[1:].values(), kept[-1][2], kept.take([1]).values()) == ([50], 105, [50])
    assert kept[0] is rows[2] and kept[1] is part[3]  # one row per message, whichever view read it
    assert rows == list(rows) and kept == [rows[2], rows[5]] and kept != rows


def test_listing_builds_the_rest_at_once_and_keeps_the_rows_handed_out_before() -> None:
    for runs in ([90], [90, 104]):  # one send call, or two (then each row is built on its own)
        columns = Columns(
            "orders", 3, 100, [10 * i for i in range(8)], None, None, runs, [1.5, 2.5][: len(runs)]
        )
        rows = Rows(columns, range(8))
        early = rows[3]
        listed = rows[2:6].listed()
        assert [row[2] for row in listed] == [102, 103, 104, 105]
        assert listed[1] is early and listed[2] is rows[4] and rows[5] is listed[3]
        assert listed[0] == ("orders", 3, 102, 1.5, None, 20, None, None, None)
        assert listed[3][3] == (2.5 if len(runs) == 2 else 1.5)
        assert sorted(columns.built) == [2, 3, 4, 5]


def test_keys_and_offsets_are_read_from_the_columns_of_each_view() -> None:
    marked = fetched(keys=True)
    kept = marked[4:].take([0, 3])
    assert (kept.keys(), kept.key_at(1)) == ([None, "k7"], "k7")
    assert (kept.offset_at(0), kept.offset_at(-1)) == (104, 107)
    plain = fetched()[2:5]
    assert (plain.keys(), plain.key_at(0), plain.offset_at(2)) == ([None, None, None], None, 104)
    assert not marked.columns.built and not plain.columns.built


def test_keys_and_headers_are_found_only_among_the_views_own_messages() -> None:
    plain = fetched()
    assert not plain.keyed() and not plain.with_headers()
    marked = fetched(keys=True, headers=True)
    assert marked.keyed() and marked.with_headers()
    assert not marked[:7].keyed() and not marked[:7].with_headers()
    assert marked.take([0, 7]).keyed() and not marked.take([0, 6]).with_headers()
    assert not marked.columns.built  # answered from the columns


def test_a_filtered_batch_is_sifted_and_acknowledged_without_building_rows() -> None:
    rows = fetched()
    acker = Recorder()
    kept, kept_acker = sift_at(rows, [1, 2, 5], acker)
    assert isinstance(kept, Rows) and kept.values() == [10, 20, 50]
    assert acker.acks == [[100], [106, 107]]  # dropped before the first kept value and after the last
    assert isinstance(kept_acker, Sifted)
    kept_acker.ack(kept[:2])
    assert acker.acks[-1] == [101, 102, 103, 104]  # a run of kept values, with the dropped ones after it
    kept_acker.ack(kept[2:])
    assert acker.acks[-1] == [105, 106, 107]  # the rest of the batch
    masked, _ = sift(rows, [False, True, True, False, False, True, False, False], Recorder())
    assert isinstance(masked, Rows) and list(masked.offsets()) == [101, 102, 105]
    tracker = OffsetTracker(100)
    tracker.delivered(100, 107)
    ack_run(tracker, kept)
    assert sorted(o for o in range(100, 108) if tracker.is_acked(o)) == [101, 102, 105]
    book = Acknowledgments(Redeliveries())
    book.delivered("orders", 3, 100, 107, rows)
    book.ack_partition("orders", 3, rows[:4])
    assert not book.settle(rows)
    book.ack_partition("orders", 3, rows[4:])
    assert book.settle(rows)
    assert len(rows.columns.built) <= 4  # the first and last of a batch and of a run, not one per message
