"""Tables on the memory transport: changelog, recovery on restart and rebalance, stores, joins, errors."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream.errors import ConfigurationError, TableError
from rxstream.transport.partitioner import partition_for
from tests.test_app import eventually, memory_url, read_all

WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]


def word_count_app(
    url: str, *, store: str = "memory://", app_id: str = "wc", **settings: Any
) -> tuple[App, Any, Any, list[str]]:
    """An app counting words (keyed by the word) in a table; ``settings`` go to the App."""
    app = App(app_id, broker=url, commit_interval=0.05, **settings)
    words = app.topic("words", partitions=4)
    counts = app.Table("counts", default=int, partitions=4, store=store)
    seen: list[str] = []

    @app.agent(words)
    async def count(stream: rxstream.Stream[str]) -> None:
        async for word in stream:
            counts[word] += 1
            seen.append(word)

    return app, words, counts, seen


async def send_words(topic: Any, words: list[str]) -> None:
    for word in words:
        await topic.send(key=word, value=word)


async def test_word_count_survives_a_restart_with_the_right_totals(caplog: pytest.LogCaptureFixture) -> None:
    url = memory_url()
    first_words = [WORDS[i % 7] for i in range(300)]
    second_words = [WORDS[(i * 3) % 5] for i in range(120)]

    app, words, counts, seen = word_count_app(url)
    async with app:
        await send_words(words, first_words)
        await eventually(lambda: len(seen) == len(first_words))
        assert counts.as_dict() == Counter(first_words)
        await counts.changelog.flush()
        changelog = await read_all(app, "wc-counts-changelog")
    assert counts.last_recovery is not None and counts.last_recovery.records == 0
    assert len(changelog) == len(first_words)
    for message in changelog:  # each change went to the partition of the event that made it
        assert message.partition == partition_for(message.key, 4)

    caplog.set_level(logging.INFO, logger="rxstream.tables")
    again, words, counts, seen = word_count_app(url)
    async with again:
        assert counts.last_recovery is not None
        assert counts.last_recovery.records == len(first_words)
        assert counts.as_dict() == Counter(first_words)
        await send_words(words, second_words)
        await eventually(lambda: len(seen) == len(second_words))
        assert counts.as_dict() == Counter(first_words) + Counter(second_words)
    assert any("recovered 300/300 changelog records" in r.getMessage() for r in caplog.records)


async def test_changing_a_table_outside_an_agent_raises_naming_table_and_key() -> None:
    app = App("outside", broker=memory_url())
    counts = app.Table("counts", default=int)
    by_key = app.Table("by-key", use_partitioner=True, partitions=4)
    async with app:
        with pytest.raises(TableError, match=r"table 'counts': cannot change key 'x' outside of a stream"):
            counts["x"] = 1
        with pytest.raises(TableError, match=r"table 'counts': cannot change key 'x'"):
            counts["x"] += 1
        assert "x" not in counts and counts["x"] == 0  # a read gives the default and stores nothing
        with pytest.raises(TableError, match="None marks a deletion"):
            by_key["y"] = None
        by_key["y"] = 5  # use_partitioner: the key's hash picks the partition
        assert by_key["y"] == 5
        await by_key.changelog.flush()
        logged = await read_all(app, "outside-by-key-changelog")
    assert [(m.partition, m.key, m.value) for m in logged] == [(partition_for("y", 4), "y", 5)]


async def test_a_table_of_fewer_partitions_than_its_source_is_an_error_naming_the_partition() -> None:
    app = App("narrow", broker=memory_url())
    topic = app.topic("events", partitions=4)
    table = app.Table("small", partitions=2)
    errors: list[BaseException] = []

    @app.agent(topic, on_error=lambda agent, exc: errors.append(exc))
    async def write(stream: rxstream.Stream[str]) -> None:
        async for value in stream:
            table[value] = 1

    async with app:
        await topic.send(key="k", value="v", partition=3)
        await eventually(lambda: bool(errors))
    assert isinstance(errors[0], TableError)
    assert "partition 3 but the table has 2 partitions" in str(errors[0])


async def test_stream_join_table_enriches_each_value_with_the_table_value_of_its_key() -> None:
    app = App("shop", broker=memory_url())
    prices_topic = app.topic("prices", partitions=2)
    orders = app.topic("orders", partitions=2)
    prices = app.Table("prices", partitions=2)
    enriched: list[tuple[Any, Any]] = []

    @app.agent(prices_topic)
    async def keep_prices(stream: rxstream.Stream[float]) -> None:
        async for event in stream.events():
            prices[event.key] = event.value

    @app.agent(orders)
    async def enrich(stream: rxstream.Stream[int]) -> None:
        async for pair in stream.join(prices):
            enriched.append(pair)

    async with app:
        await prices_topic.send(key="pen", value=1.5)
        await prices_topic.send(key="ink", value=7.0)
        await eventually(lambda: len(prices) == 2)
        for item, quantity in (("pen", 3), ("ink", 1), ("cap", 2)):
            await orders.send(key=item, value=quantity)
        await eventually(lambda: len(enriched) == 3)
    assert sorted(enriched, key=repr) == sorted([(3, 1.5), (1, 7.0), (2, None)], key=repr)


async def test_join_with_a_table_can_key_by_a_function_and_streams_still_need_within() -> None:
    out = (
        await rxstream.Stream.from_iterable([1, 2, 3]).join({1: "one", 3: "three"}, on=lambda n: n).to_list()
    )
    assert out == [(1, "one"), (2, None), (3, "three")]
    with pytest.raises(ConfigurationError, match="within"):
        rxstream.Stream.from_iterable([1]).join(rxstream.Stream.from_iterable([2]))


async def test_revoked_partitions_are_dropped_and_a_stopped_workers_state_moves_to_the_survivor() -> None:
    url = memory_url()
    a, words_a, counts_a, seen_a = word_count_app(url)
    b, _words_b, counts_b, seen_b = word_count_app(url)
    batch1 = [WORDS[i % 7] for i in range(140)]
    batch2 = [WORDS[(i * 2) % 7] for i in range(70)]
    await a.start()
    try:
        await send_words(words_a, batch1)
        await eventually(lambda: len(seen_a) == len(batch1))
        await b.start()  # takes half of the partitions: a drops their table state, b recovers it
        owned_a = counts_a.store.partitions()
        owned_b = counts_b.store.partitions()
        assert owned_a and owned_b and not owned_a & owned_b
        assert set(counts_a.as_dict()) == {w for w in WORDS if partition_for(w, 4) in owned_a}
        assert counts_a.as_dict() | counts_b.as_dict() == Counter(batch1)
        await b.stop()  # the "killed" worker: its partitions and their state go back to a
        await eventually(lambda: counts_a.store.partitions() == frozenset(range(4)))
        await send_words(words_a, batch2)
        await eventually(lambda: len(seen_a) + len(seen_b) == len(batch1) + len(batch2))
        assert counts_a.as_dict() == Counter(batch1) + Counter(batch2)
    finally:
        await a.stop()


async def test_set_table_adds_and_discards_and_recovers_sets() -> None:
    url = memory_url()

    def make() -> tuple[App, Any, Any, list[Any]]:
        app = App("sets", broker=url)
        follows = app.topic("follows", partitions=2)
        followers = app.SetTable("followers", partitions=2)
        done: list[Any] = []

        @app.agent(follows)
        async def track(stream: rxstream.Stream[dict[str, str]]) -> None:
            async for event in stream.events():
                if event.value["op"] == "add":
                    followers[event.key].add(event.value["who"])
                else:
                    followers[event.key].discard(event.value["who"])
                done.append(event.value)

        return app, follows, followers, done

    app, follows, followers, done = make()
    async with app:
        for user, op, who in [
            ("ada", "add", "bob"),
            ("ada", "add", "cy"),
            ("eve", "add", "bob"),
            ("ada", "del", "bob"),
        ]:
            await follows.send(key=user, value={"op": op, "who": who})
        await eventually(lambda: len(done) == 4)
        assert set(followers["ada"]) == {"cy"} and "bob" in followers["eve"]
    again, follows, followers, done = make()
    async with again:
        assert followers.as_dict() == {"ada": frozenset({"cy"}), "eve": frozenset({"bob"})}
        assert set(followers["nobody"]) == set()


async def test_global_table_holds_every_partition_on_every_worker() -> None:
    url = memory_url()

    def make() -> tuple[App, Any, Any]:
        app = App("glob", broker=url)
        topic = app.topic("settings", partitions=4)
        table = app.GlobalTable("settings", partitions=4)

        @app.agent(topic)
        async def store(stream: rxstream.Stream[str]) -> None:
            async for event in stream.events():
                table[event.key] = event.value

        return app, topic, table

    a, topic_a, table_a = make()
    b, _, table_b = make()
    async with a, b:
        expected = {f"k{i}": f"v{i}" for i in range(40)}
        for key, value in expected.items():
            await topic_a.send(key=key, value=value)
        await eventually(lambda: table_a.as_dict() == expected and table_b.as_dict() == expected)
        assert table_a.store.partitions() == table_b.store.partitions() == frozenset(range(4))
    late, _, table_late = make()
    async with late:  # a new worker recovers every partition on start
        assert table_late.as_dict() == expected


def rocksdb_available() -> bool:
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(
    not rocksdb_available(), reason="rocksdict is not installed (pip install 'rxstream[rocksdb]')"
)
async def test_rocksdb_store_recovers_incrementally(tmp_path: Path) -> None:
    url = memory_url()
    store = f"rocksdb://{tmp_path}"
    first = [WORDS[i % 7] for i in range(200)]
    meanwhile = [WORDS[i % 3] for i in range(50)]

    app, words, counts, seen = word_count_app(url, store=store)
    async with app:
        await send_words(words, first)
        await eventually(lambda: len(seen) == len(first))
    assert counts.last_recovery is not None and counts.last_recovery.records == 0
    assert (tmp_path / "wc" / "counts").is_dir()

    # another worker (memory store) takes over while the RocksDB worker is down and adds 50 changes
    other, words, counts, seen = word_count_app(url)
    async with other:
        assert counts.last_recovery is not None and counts.last_recovery.records == len(first)
        await send_words(words, meanwhile)
        await eventually(lambda: len(seen) == len(meanwhile))

    again, words, counts, seen = word_count_app(url, store=store)
    async with again:
        assert counts.last_recovery is not None
        assert counts.last_recovery.records == len(meanwhile)  # only what is new since its checkpoint
        assert counts.as_dict() == Counter(first) + Counter(meanwhile)
        await send_words(words, ["fig"])
        await eventually(lambda: len(seen) == 1)
        assert counts["fig"] == Counter(first)["fig"] + 1


async def test_bad_table_declarations_fail_clearly() -> None:
    app = App("conf", broker=memory_url())
    app.Table("t")
    with pytest.raises(ConfigurationError, match="already has a table named 't'"):
        app.Table("t")
    with pytest.raises(ConfigurationError, match="default must be a callable"):
        app.Table("u", default=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unsupported store URL"):
        app.Table("v", store="redis://")
    windowed = app.Table("w", default=int)
    windowed.tumbling(10)
    with pytest.raises(ConfigurationError, match="already windowed"):
        windowed.hopping(10, 5)
