"""The shapes Faust users write for apps, agents, events, signals, web pages and commands, run on rxstream."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import rxstream
from rxstream import App, Event, Record
from rxstream.cli import _parser, argument, option
from rxstream.errors import ConfigurationError
from rxstream.transport import TopicPartition
from rxstream.web import View, WebServer

ROOT = Path(__file__).parent.parent


def memory_url() -> str:
    return f"memory://faust-{uuid.uuid4().hex[:8]}"


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Word(Record):
    text: str


# ------------------------------------------------------------------ settings


def test_a_version_from_two_on_renames_the_group_and_every_internal_topic() -> None:
    app = App("counts", version=3, broker=memory_url())
    table = app.Table("totals", default=int)

    @app.agent()
    async def tally(stream: rxstream.Stream[Any]) -> None:
        async for _ in stream:
            pass

    assert app.id == app.conf.app_id == "counts-v3" and app.conf.id == "counts"
    assert table.changelog_topic == "counts-v3-totals-changelog"
    assert app.reply_topic_name == "counts-v3-replies"
    assert tally.channel.name.startswith("counts-v3-")
    assert App("counts", version=1).id == "counts"
    with pytest.raises(ConfigurationError, match="version must be an integer >= 1"):
        App("counts", version=0)


def test_faust_broker_urls_are_read_as_kafka_urls() -> None:
    assert App("a", broker="aiokafka://").broker == "kafka://localhost:9092"
    assert App("a", broker="aiokafka://h1:9093").broker == "kafka://h1:9093"
    assert App("a", broker=["kafka://h1:9092", "kafka://h2:9092"]).broker == "kafka://h1:9092;h2:9092"  # type: ignore[arg-type]
    assert App("a", broker="kafka://").conf.broker == "kafka://localhost:9092"


def test_key_serializer_and_stream_buffer_maxsize_are_defaults_of_declared_topics() -> None:
    app = App("defaults", key_serializer="json", stream_buffer_maxsize=64)
    topic = app.topic("orders")
    assert topic.key_serializer == "json" and topic.maxsize == 64
    assert app.topic("other", key_serializer="raw", maxsize=8).key_serializer == "raw"
    assert App("plain").topic("orders").key_serializer == "raw"
    assert App("plain").topic("orders").maxsize == 4096


def test_faust_settings_renamed_in_rxstream_are_taken_and_unneeded_ones_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="rxstream.app"):
        app = App(
            "faustish", broker_session_timeout=20.0, reply_create_topic=True, topic_replication_factor=2
        )
    assert app.conf.session_timeout == 20.0 and app.topic_replicas == 2
    assert app.conf.broker_session_timeout == 20.0  # read back under Faust's name too
    assert app.conf.ignored == {"reply_create_topic": True}
    assert "reply_create_topic" in caplog.text
    app.conf.table_cleanup_interval = 1.0  # Faust's examples set this on conf
    assert app.conf.table_cleanup_interval == 1.0


def test_unknown_settings_and_writes_to_real_settings_are_refused_pointing_to_the_guide() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown setting 'no_such_thing'.*Coming from Faust"):
        App("strict", no_such_thing=1)
    app = App("strict")
    with pytest.raises(ConfigurationError, match=r"conf.topic_partitions is read-only.*topic_partitions="):
        app.conf.topic_partitions = 3
    with pytest.raises(ConfigurationError, match=r"'bogus' is not a setting.*Coming from Faust"):
        app.conf.bogus = 3


def test_origin_and_autodiscover_import_the_apps_modules(tmp_path: Path) -> None:
    package = tmp_path / "discoverme"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import rxstream\napp = rxstream.App('found', origin='discoverme', "
        "autodiscover=True, broker='memory://discover')\n"
    )
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "agents.py").write_text(
        "from discoverme import app\n\n@app.agent()\nasync def found(stream):\n"
        "    async for _ in stream:\n        pass\n"
    )
    code = (
        "import asyncio, discoverme\n"
        "async def main():\n"
        "    async with discoverme.app:\n"
        "        print(sorted(discoverme.app.agents))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['discoverme.sub.agents.found']"
    with pytest.raises(ConfigurationError, match="autodiscover=True needs origin="):
        asyncio.run(App("lost", autodiscover=True, broker=memory_url()).start())


# ------------------------------------------------------------------ signals and tasks


async def test_signals_are_sent_with_the_app_first_at_each_point_of_its_life() -> None:
    app = App("signals", broker=memory_url())
    topic = app.topic("work", partitions=2)
    heard: list[tuple[str, Any]] = []

    @app.agent(topic)
    async def work(stream: rxstream.Stream[Any]) -> None:
        async for _ in stream:
            pass

    @app.on_configured.connect
    def configured(sender: App, conf: Any, **kwargs: Any) -> None:
        heard.append(("configured", conf.id))

    @app.on_partitions_assigned.connect()
    async def assigned(sender: App, assigned: set[TopicPartition], **kwargs: Any) -> None:
        heard.append(("assigned", sorted(tp.partition for tp in assigned if tp.topic == "work")))

    @app.on_rebalance_complete.connect
    async def complete(sender: App, **kwargs: Any) -> None:
        heard.append(("complete", sender is app))

    @app.on_startup.connect
    async def startup(sender: App) -> None:
        heard.append(("startup", sender.started))

    @app.on_shutdown.connect
    async def shutdown(sender: App) -> None:
        heard.append(("shutdown", None))

    finished: list[bool] = []

    async def startup_finished() -> None:
        finished.append(True)

    app.on_startup_finished = startup_finished
    async with app:
        await until(lambda: ("complete", True) in heard, "the rebalance to complete")
    assert heard[0] == ("configured", "signals")
    assert ("assigned", [0, 1]) in heard and ("startup", True) in heard and heard[-1] == ("shutdown", None)
    assert finished == [True]


async def test_a_receiver_connected_on_the_class_hears_every_app() -> None:
    heard: list[str] = []

    async def revoked(sender: App, revoked: set[TopicPartition], **kwargs: Any) -> None:
        heard.append(sender.id)

    App.on_partitions_revoked.connect(revoked)
    try:
        broker = memory_url()
        first, second = App("shared", broker=broker), App("shared", broker=broker)
        for app in (first, second):

            @app.agent(app.topic("work", partitions=2))
            async def work(stream: rxstream.Stream[Any]) -> None:
                async for _ in stream:
                    pass

        async with first:
            await asyncio.sleep(0.05)
            async with second:
                await until(lambda: "shared" in heard, "the first worker to give a partition up")
    finally:
        App.on_partitions_revoked.disconnect(revoked)


async def test_tasks_take_the_app_when_they_take_an_argument_and_work_with_parentheses() -> None:
    app = App("tasks", broker=memory_url())
    seen: list[Any] = []

    @app.task
    async def bare(app_: App) -> None:
        seen.append(app_)

    @app.task()
    async def called() -> None:
        seen.append("called")

    async with app:
        await until(lambda: len(seen) == 2, "both tasks")
    assert app in seen and "called" in seen


# ------------------------------------------------------------------ agents and events


async def test_an_agents_own_topic_takes_key_and_value_types_and_bare_decorators_work() -> None:
    app = App("typed", broker=memory_url())
    got: list[Any] = []

    @app.agent(key_type=str, value_type=Word)
    async def words(stream: rxstream.Stream[Word]) -> None:
        async for key, word in stream.items():
            got.append((key, word))

    @app.agent
    async def bare(stream: rxstream.Stream[Any]) -> None:
        async for _ in stream:
            pass

    assert words.channel.value_type is Word and words.channel.key_type is str
    assert isinstance(bare, rxstream.Agent)
    async with app:
        await words.send(key="k", value={"text": "hi"})
        await until(lambda: bool(got), "the typed value")
    assert got == [("k", Word(text="hi"))]


async def test_map_join_kvmap_and_kvjoin_ask_for_many_values_at_once() -> None:
    app = App("fanout", broker=memory_url())

    @app.agent()
    async def square(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n * n

    async def numbers() -> AsyncIterator[int]:
        for n in (4, 5):
            yield n

    async with app:
        assert await square.join([1, 2, 3]) == [1, 4, 9]
        assert await square.join(numbers()) == [16, 25]
        assert sorted([r async for r in square.map([1, 2, 3])]) == [1, 4, 9]
        assert await square.kvjoin([("a", 2), ("b", 3)]) == [4, 9]
        assert sorted([r async for r in square.kvmap([("a", 6)])]) == [36]


async def test_send_with_reply_to_delivers_what_the_agent_yields_to_another_agent() -> None:
    app = App("replies", broker=memory_url())
    replies: list[tuple[Any, Any]] = []

    @app.agent()
    async def double(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n * 2

    @app.agent()
    async def collect(stream: rxstream.Stream[Any]) -> None:
        async for key, value in stream.items():
            replies.append((key, value))

    async with app:
        await double.send(value=21, reply_to=collect, correlation_id="q1")
        await until(lambda: bool(replies), "the reply")
    assert replies == [("q1", 42)]


async def test_cast_works_awaited_or_not_and_loses_nothing() -> None:
    app = App("casts", broker=memory_url())
    got: list[int] = []

    @app.agent()
    async def sink(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            got.append(n)

    async with app:
        await sink.cast(1)  # Faust's shape
        sink.cast(2)  # fire and forget: no "never awaited" warning
        await until(lambda: sorted(got) == [1, 2], "both casts")


async def test_ack_works_awaited_or_not_and_async_with_acks_on_a_clean_exit_only() -> None:
    acked: list[tuple[Any, ...]] = []

    class Acker:
        def ack(self, refs: Any) -> None:
            acked.append(tuple(refs))

        def reject(self, ref: Any) -> None:
            raise AssertionError("not rejected")

    first, second, third, fourth = (Event(value=n, acker=Acker(), ref=f"ref{n}") for n in range(4))
    assert first.ack()  # plain call, as rxstream's docs write it
    await second.ack()  # Faust's shape
    async with third:
        pass
    with pytest.raises(ValueError):
        async with fourth:
            raise ValueError("the agent raised: the event is left for redelivery")
    with Event(value=5, acker=Acker(), ref="ref5"):
        pass
    assert acked == [("ref0",), ("ref1",), ("ref2",), ("ref5",)]
    assert first.acked and third.acked and not fourth.acked


# ------------------------------------------------------------------ web pages


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def test_pages_answer_as_functions_and_view_classes_and_table_routes_answer_where_the_key_lives(
    http: aiohttp.ClientSession,
) -> None:
    broker = memory_url()
    app = App("pages", broker=broker)
    counts = app.Table("counts", default=int, partitions=2)
    topic = app.topic("words", partitions=2)

    @app.agent(topic)
    async def count(stream: rxstream.Stream[Any]) -> None:
        async for word in stream:
            counts[word] += 1

    @app.page("/hello/{name}/")
    async def hello(web: View, request: Any, name: str) -> Any:
        return web.json({"hello": name})

    @app.page("/counter/")
    class Counter(View):
        async def get(self, request: Any) -> Any:
            return self.json({"words": len(counts)})

        async def post(self, request: Any) -> Any:
            return self.text("posted", status=201)

    @app.page("/count/{word}/")
    @app.table_route(table=counts, match_info="word")
    async def get_count(web: View, request: Any, word: str) -> Any:
        return web.json({word: counts[word]})

    @app.page("/count/")
    @app.table_route(table=counts, query_param="word")
    async def get_count_by_query(web: View, request: Any) -> Any:
        return web.json({"n": counts[request.query["word"]]})

    server = WebServer(app, port=0)
    await server.start()
    try:
        async with app:
            for word in ("a", "b", "a"):
                await topic.send(key=word, value=word)
            await until(lambda: counts.get("a") == 2, "the counts")
            base = f"http://127.0.0.1:{server.port}"
            async with http.get(f"{base}/hello/ana/") as response:
                assert response.status == 200 and await response.json() == {"hello": "ana"}
            async with http.get(f"{base}/counter/") as response:
                assert await response.json() == {"words": 2}
            async with http.post(f"{base}/counter/") as response:
                assert response.status == 201 and await response.text() == "posted"
            async with http.get(f"{base}/count/a/") as response:
                assert await response.json() == {"a": 2}
            async with http.get(f"{base}/count/?word=b") as response:
                assert await response.json() == {"n": 1}
            async with http.get(f"{base}/count/") as response:
                assert response.status == 400
            second = App("pages", broker=broker)
            second.Table("counts", default=int, partitions=2)

            @second.agent(second.topic("words", partitions=2))
            async def count_too(stream: rxstream.Stream[Any]) -> None:
                async for _ in stream:
                    pass

            async with second:
                await until(lambda: len(counts.store.partitions()) == 1, "the second worker to take one")
                statuses = set()
                for word in ("a", "b", "c", "d", "e"):
                    async with http.get(f"{base}/count/{word}/") as response:
                        statuses.add(response.status)
                        if response.status == 421:
                            assert "which another worker holds" in (await response.json())["error"]
                assert statuses == {200, 421}
    finally:
        await server.stop()


def test_page_refuses_what_it_cannot_serve() -> None:
    app = App("refusals")
    with pytest.raises(ConfigurationError, match="must start with '/'"):
        app.page("count")
    with pytest.raises(ConfigurationError, match="decorates an async def"):
        app.page("/count/")(lambda web, request: None)
    with pytest.raises(ConfigurationError, match="takes one of match_info="):
        app.table_route(app.Table("t"), match_info="a", query_param="b")


# ------------------------------------------------------------------ command line


def test_the_app_option_goes_before_or_after_the_command() -> None:
    parser = _parser(None)
    faust_order = parser.parse_args(["-A", "proj.app:app", "worker", "-l", "debug"])
    rxstream_order = parser.parse_args(["worker", "-A", "proj.app:app", "--broker", "memory://"])
    assert (faust_order.command, faust_order.app, faust_order.loglevel) == ("worker", "proj.app:app", "debug")
    assert (rxstream_order.app, rxstream_order.broker) == ("proj.app:app", "memory://")


CLI_APP = '''
import rxstream
from rxstream.cli import argument, option

app = rxstream.App("cli-faust", broker="aiokafka://")

@app.command(argument("location"), option("--times", type=int, default=1))
async def shout(self, location: str, times: int) -> None:
    """Shouts a location."""
    for _ in range(times):
        self.say(f"{location.upper()} from {self.app.id}")

@app.command()
def quiet() -> None:
    print("quiet")
'''


def test_commands_take_faust_style_arguments_options_and_self(tmp_path: Path) -> None:
    (tmp_path / "faustcli.py").write_text(CLI_APP)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rxstream.cli", *args],
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT), "PATH": ""},
            capture_output=True,
            text=True,
            timeout=60,
        )

    shouted = run("-A", "faustcli", "shout", "oslo", "--times", "2")
    assert shouted.returncode == 0, shouted.stderr
    assert shouted.stdout.splitlines() == ["OSLO from cli-faust"] * 2
    assert run("quiet", "-A", "faustcli").stdout.strip() == "quiet"
    assert argument("x").dest == "x" and option("--max-latency").dest == "max_latency"


def test_faust_attributes_without_a_counterpart_say_what_to_use_instead() -> None:
    app = App("absent")
    with pytest.raises(AttributeError, match=r"no 'service' as Faust's: .*@app.task.*Coming from Faust"):
        app.service  # noqa: B018
    with pytest.raises(AttributeError, match=r"'App' object has no attribute 'nothing'$"):
        app.nothing  # noqa: B018
    assert not hasattr(app, "start_client")


async def test_rebalancing_holds_while_the_app_joins_and_recovers() -> None:
    app = App("rebalancing", broker=memory_url())
    during: list[bool] = []

    @app.agent(app.topic("work", partitions=2))
    async def work(stream: rxstream.Stream[Any]) -> None:
        async for _ in stream:
            pass

    @app.on_partitions_assigned.connect
    def assigned(sender: App, **kwargs: Any) -> None:
        during.append(sender.rebalancing)

    assert not app.rebalancing
    async with app:
        await until(lambda: app.monitor.state == "running", "the app to run")
        assert not app.rebalancing
    assert during == [True]
