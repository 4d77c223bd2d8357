"""Every agent of a topic gets every message, as in Faust: a second agent reads with a queue of its own."""

from __future__ import annotations

import rxstream
from rxstream import App
from tests.test_app import eventually, memory_url


async def test_two_agents_on_one_topic_each_get_every_message_and_commits_wait_for_both() -> None:
    app = App("fanout", broker=memory_url())
    orders = app.topic("orders", partitions=2)
    audited: list[int] = []
    billed: list[int] = []

    @app.agent(orders)
    async def audit(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            audited.append(n)

    @app.agent(orders)
    async def bill(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            billed.append(n)

    async with app:
        await orders.send_many(list(range(200)))
        await eventually(lambda: len(audited) == 200 and len(billed) == 200)
        committed = await app.commit()
    assert sorted(audited) == sorted(billed) == list(range(200))
    assert sum(committed.values()) == 200
    assert audit.subscription() is not bill.subscription()


async def test_a_slow_second_agent_holds_the_commit_back_for_both() -> None:
    app = App("fanout-slow", broker=memory_url())
    orders = app.topic("orders", partitions=1)
    fast: list[int] = []

    @app.agent(orders)
    async def quick(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            fast.append(n)

    @app.agent(orders)
    async def stuck(stream: rxstream.Stream[int]) -> None:
        async for event in stream.noack().events():
            del event  # never acknowledged

    async with app:
        await orders.send_many(list(range(50)))
        await eventually(lambda: len(fast) == 50)
        committed = await app.commit()
    assert committed.get(rxstream.transport.TopicPartition("orders", 0), 0) == 0
