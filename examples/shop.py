"""A small shop on the embedded memory transport: validation, revenue per customer, an RPC price quote.

Run it: python examples/shop.py   (no server needed; it sends orders, processes them and exits)
Or as a worker: rxstream worker -A examples.shop:app
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator

import rxstream


class Order(rxstream.Record):
    id: str
    customer: str
    item: str
    quantity: int


PRICES = {"book": 12.5, "pen": 1.2, "lamp": 30.0}

app = rxstream.App("shop", commit_interval=0.5)
orders = app.topic("orders", value_type=Order, partitions=4, max_redeliveries=1)
valid_orders = app.topic("valid-orders", value_type=Order, partitions=4)
revenue: dict[str, float] = defaultdict(float)
processed: Counter[str] = Counter()


@app.agent(orders, sink=[valid_orders])
async def validate(stream: rxstream.Stream[Order]) -> AsyncIterator[Order]:
    """Drop orders of unknown items; an order with a negative quantity is poison and is dead-lettered."""
    async for order in stream.filter(lambda o: o.item in PRICES):
        if order.quantity < 0:
            raise ValueError(f"order {order.id} has a negative quantity")
        yield order


@app.agent(valid_orders, concurrency=2)
async def account(stream: rxstream.Stream[Order]) -> None:
    """Add each order's price to its customer's revenue."""
    async for order in stream:
        revenue[order.customer] += PRICES[order.item] * order.quantity
        processed["orders"] += 1


@app.agent()
async def quote(stream: rxstream.Stream[dict[str, object]]) -> AsyncIterator[float]:
    """Answer price questions: {"item": ..., "quantity": ...} -> total price."""
    async for question in stream:
        yield PRICES[str(question["item"])] * int(str(question["quantity"]))


async def main() -> None:
    rng = random.Random(7)
    customers = ["ada", "grace", "linus", "barbara"]
    expected = 0
    async with app:
        for i in range(2_000):
            item = rng.choice([*PRICES, "unicorn"])
            quantity = -1 if i == 1_000 else rng.randint(1, 3)
            expected += item in PRICES and quantity > 0
            await orders.send(key=f"o{i}", value=Order(f"o{i}", rng.choice(customers), item, quantity))
        price = await quote.ask({"item": "lamp", "quantity": 3})
        print(f"quote for 3 lamps: {price:.2f}")
        async with asyncio.timeout(30):
            while processed["orders"] < expected:
                await asyncio.sleep(0.05)
    print(f"{processed['orders']} valid orders of 2000; unknown items filtered; 1 poison order dead-lettered")
    print("revenue per customer:")
    for customer, total in sorted(revenue.items()):
        print(f"  {customer:8} {total:9.2f}")
    print(f"total {sum(revenue.values()):.2f}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  (log) %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
