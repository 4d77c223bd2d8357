"""Writes the notebooks in this folder from their cells, so the .ipynb files stay reviewable and output-free.

Run: python notebooks/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

OPERATOR_CHAINS = [
    new_markdown_cell(
        "# Operator chains\n\n"
        "Functional streams need no app and no broker: build a chain, then `await` a consumer.\n"
        "Every operator compiles to a `reactivex` pipeline running on the notebook's event loop."
    ),
    new_code_cell("import asyncio\n\nfrom reactivex import operators as ops\n\nfrom rxstream import Stream"),
    new_code_cell(
        "evens = Stream.from_iterable(range(10)).filter(lambda x: x % 2 == 0)\n"
        "evens_times_ten = evens.map(lambda x: x * 10)\n"
        "evens_times_ten"
    ),
    new_code_cell("result = await evens_times_ten.to_list()\nassert result == [0, 20, 40, 60, 80]\nresult"),
    new_markdown_cell("Batches: `take` closes a list at `max_` values, or `within` seconds after its first."),
    new_code_cell("await Stream.from_iterable(range(7)).take(3).to_list()"),
    new_markdown_cell("Async functions work wherever plain ones do."),
    new_code_cell(
        "async def slow_square(x):\n"
        "    await asyncio.sleep(0)\n"
        "    return x * x\n\n"
        "await Stream.from_iterable(range(5)).map(slow_square).to_list()"
    ),
    new_markdown_cell("Grouping: one substream per key, merged back with `flat_map`."),
    new_code_cell(
        "clicks = [{'user': u, 'page': p} for p in range(4) for u in ('ada', 'bob')]\n"
        "per_user = (\n"
        "    Stream.from_iterable(clicks)\n"
        "    .group_by(lambda c: c['user'])\n"
        "    .flat_map(lambda user, sub: sub.map(lambda c, user=user: (user, c['page'])))\n"
        ")\n"
        "pairs = await per_user.to_list()\n"
        "assert sorted(pairs) == sorted((c['user'], c['page']) for c in clicks)\n"
        "pairs"
    ),
    new_markdown_cell("Any `reactivex` operator can join the chain with `pipe`."),
    new_code_cell("await Stream.from_iterable(range(10)).pipe(ops.skip(7), ops.map(str)).to_list()"),
    new_markdown_cell("`async for` iterates a stream; `enumerate` and `items` add positions and keys."),
    new_code_cell(
        "seen = []\n"
        "async for i, word in Stream.from_iterable('stream processing in a notebook'.split()).enumerate(1):\n"
        "    seen.append(f'{i}:{word}')\n"
        "seen"
    ),
    new_markdown_cell(
        "Every consumer can be awaited in a cell: `to_list`, `first`, and `first` of a batched chain."
    ),
    new_code_cell(
        "numbers = Stream.from_iterable(range(100))\n"
        "assert await numbers.first() == 0\n"
        "await Stream.from_iterable(range(100)).take(4).first()"
    ),
    new_markdown_cell(
        "A stream has one consumer, but `peek(n)` reads the first values again without consuming it: "
        "the chain runs on a second pass over the source (a list, tuple or range; an iterator would be "
        "eaten, so peeking one raises)."
    ),
    new_code_cell(
        "squares = Stream.from_iterable(range(10)).map(lambda x: x * x).filter(lambda x: x % 2)\n"
        "assert await squares.peek(2) == [1, 9]\n"
        "await squares.to_list()"
    ),
    new_markdown_cell("A stream shows its source and operator chain."),
    new_code_cell("squares"),
    new_markdown_cell(
        "`echo()` prints the values the consumer takes, and `tee(f)` calls `f` on them: nothing the "
        "pipeline read ahead. Bound a watch with `stop_after(seconds)`, `to_list(n, timeout=)` or "
        "`run(count=, timeout=)`: they end quietly, where `asyncio.timeout` raises."
    ),
    new_code_cell(
        "seen = []\n"
        "first_batch = await Stream.from_iterable(range(1_000_000)).tee(seen.append).echo().take(3).first()\n"
        "assert first_batch == seen == [0, 1, 2]"
    ),
]

APP_AND_AGENTS = [
    new_markdown_cell(
        "# Apps and agents\n\n"
        "An app with agents on the embedded `memory://` transport: a partitioned log with offsets, consumer "
        "groups and commits, no server. Each run of this notebook uses a `memory://` URL of its own, so "
        "re-running it starts from an empty log."
    ),
    new_code_cell(
        "import asyncio\n"
        "import uuid\n\n"
        "from IPython.display import display\n\n"
        "from rxstream import App, Record\n"
        "from rxstream.display import dataframe\n"
        "from rxstream.waiting import wait_until  # polls a check (plain or async), bounded by a timeout"
    ),
    new_markdown_cell("Records are typed values; topics declare what they carry. A record shows its fields."),
    new_code_cell(
        "class Order(Record):\n"
        "    id: str\n"
        "    customer: str\n"
        "    amount: float\n\n\n"
        "app = App('shop', broker=f'memory://notebook-{uuid.uuid4().hex[:8]}', topic_partitions=2)\n"
        "orders = app.topic('orders', value_type=Order)\n"
        "receipts = app.topic('receipts', value_type=float)\n"
        "payments = app.topic('payments', value_type=Order, max_redeliveries=1)\n"
        "Order('o1', 'ada', 12.5)"
    ),
    new_markdown_cell(
        "Two agents: `tally` keeps a total per customer and yields it (to the `receipts` sink and as the "
        "answer to `ask`); `settle` uses `noack()` and acknowledges or rejects each payment itself. "
        "The app shows its topics, agents and channels."
    ),
    new_code_cell(
        "totals = {}\n"
        "settled_events = []\n\n\n"
        "@app.agent(orders, concurrency=2, sink=[receipts], help='Running total per customer.')\n"
        "async def tally(stream):\n"
        "    async for order in stream:\n"
        "        totals[order.customer] = totals.get(order.customer, 0.0) + order.amount\n"
        "        yield totals[order.customer]\n\n\n"
        "@app.agent(payments, help='Accepts positive payments, rejects the others.')\n"
        "async def settle(stream):\n"
        "    async for event in stream.noack().events():\n"
        "        settled_events.append(event)\n"
        "        if event.value.amount > 0:\n"
        "            event.ack()\n"
        "        else:\n"
        "            event.reject()  # redelivered up to max_redeliveries, then dead-lettered\n\n\n"
        "app"
    ),
    new_markdown_cell(
        "Messages sent before the app starts wait in the log. `app.peek(topic, n)` reads the oldest `n` "
        "with a throwaway consumer group: it takes no stream's consumption, commits nothing, and the agents "
        "still get every message."
    ),
    new_code_cell(
        "sent = [('ada', 12.5), ('bob', 3.0), ('ada', 7.5), ('cyd', 20.0)]\n"
        "for i, (customer, amount) in enumerate(sent):\n"
        "    await orders.send(key=customer, value=Order(f'o{i}', customer, amount))\n"
        "await app.peek(orders, 3)"
    ),
    new_markdown_cell("With `events=True` a peek returns events: key, value, headers and where they live."),
    new_code_cell("first, *_ = await app.peek(orders, 1, events=True)\nfirst"),
    new_markdown_cell("A stream of a topic peeks through its operator chain."),
    new_code_cell(
        "big = app.stream(orders).filter(lambda o: o.amount > 5).map(lambda o: (o.customer, o.amount))\n"
        "display(big)\n"
        "await big.peek(5)"
    ),
    new_markdown_cell("Start the app: the agents run in the background of the notebook's event loop."),
    new_code_cell("await app.start()\nawait wait_until(lambda: len(totals) == 3)\ntotals"),
    new_markdown_cell("`ask` sends a value to an agent and returns what the agent yields for it."),
    new_code_cell("answer = await tally.ask(Order('o4', 'bob', 4.5))\nassert answer == 7.5\nanswer"),
    new_markdown_cell(
        "Acknowledgment by hand: `settle` acks a good payment and rejects a negative one. The rejected "
        "payment is redelivered (`max_redeliveries=1`), rejected again, and then sent to the topic's "
        "dead-letter topic with the reason in its headers."
    ),
    new_code_cell(
        "await payments.send(key='p1', value=Order('p1', 'ada', 10.0))\n"
        "await payments.send(key='p2', value=Order('p2', 'bob', -1.0), headers={'source': 'notebook'})\n"
        "await wait_until(lambda: [e.key for e in settled_events].count('p2') == 2)\n"
        "[(e.key, e.acked, e.rejected) for e in settled_events]"
    ),
    new_code_cell(
        "dead = await wait_until(lambda: app.peek('payments-dead-letter', 5, events=True))\n"
        "assert dead[0].headers['rxstream-reason'].startswith('rejected 2 times')\n"
        "dead[0]"
    ),
    new_markdown_cell(
        "A poison message, an order whose amount is not a number, cannot be decoded: it goes straight to "
        "`orders-dead-letter`, and the agents carry on with the next order."
    ),
    new_code_cell(
        "await orders.send(key='eve', value={'id': 'o5', 'customer': 'eve', 'amount': 'lots'})\n"
        "await orders.send(key='eve', value=Order('o6', 'eve', 1.0))\n"
        "await wait_until(lambda: 'eve' in totals)\n"
        "poison = await wait_until(lambda: app.peek('orders-dead-letter', 5, events=True))\n"
        "dataframe(poison)[['value', 'key', 'topic', 'offset']]"
    ),
    new_code_cell("{name: text for name, text in poison[0].headers.items() if name.startswith('rxstream-')}"),
    new_markdown_cell(
        "Peeking while the agents run commits nothing: the app's committed offsets are the same before "
        "and after. (`memory://` trims what every consumer group has committed, so a peek shows what is "
        "still retained.)"
    ),
    new_code_cell(
        "await app.commit()\n"
        "before = app.committed_offsets()\n"
        "await app.peek(orders, 5)\n"
        "assert app.committed_offsets() == before\n"
        "before"
    ),
    new_markdown_cell(
        "`to_dataframe(n)` consumes `n` values into a pandas DataFrame with their metadata: here the "
        "receipts `tally` wrote to its sink (one per order and one for the `ask`), read by a stream of "
        "the running app."
    ),
    new_code_cell(
        "frame = await app.stream(receipts).to_dataframe(6, timeout=10)\nassert len(frame) == 6\nframe"
    ),
    new_markdown_cell(
        "Beside the agents, `app.stream(orders)` is a reader of its own: it gets every new order, and the "
        "agents still get them too (an offset is committed once every reader acknowledged it). "
        "`app.tap(orders)` only looks: a throwaway consumer group that acknowledges nothing. Bound both "
        "with `run(count=, timeout=)`, `to_list(timeout=)` or `stop_after(seconds)`."
    ),
    new_code_cell(
        "reader = asyncio.ensure_future(app.stream(orders).run(count=2, timeout=10))\n"
        "tap = asyncio.ensure_future(app.tap(orders).run(count=2, timeout=10))\n"
        "await asyncio.sleep(0.1)  # both joined: they read what arrives from now on\n"
        "await orders.send(key='fay', value=Order('o7', 'fay', 2.0))\n"
        "await orders.send(key='fay', value=Order('o8', 'fay', 3.0))\n"
        "read, watched = await reader, await tap\n"
        "await wait_until(lambda: totals.get('fay') == 5.0)\n"
        "assert [o.id for o in read] == [o.id for o in watched] == ['o7', 'o8']\n"
        "read"
    ),
    new_markdown_cell(
        "`peek(n, latest=True)` reads the newest `n`, not the oldest; it shows as a table. (Here of a topic "
        "no group commits, so `memory://` trims nothing from it.)"
    ),
    new_code_cell("await app.peek('orders-dead-letter', 2, latest=True, events=True)"),
    new_code_cell("await app.stop()"),
]

TABLES_AND_WINDOWS = [
    new_markdown_cell(
        "# Tables and windows\n\n"
        "Counting clicks per page: a table of totals, and a windowed table of tumbling 0.5 s windows of "
        "event time, plotted as the windows close. Then the same windows from stream operators alone "
        "(`group_by`, `take(within=...)`), and with pandas."
    ),
    new_code_cell(
        "import asyncio\n"
        "import random\n"
        "import uuid\n"
        "from collections import Counter\n\n"
        "import matplotlib.pyplot as plt\n"
        "from IPython.display import display\n\n"
        "from rxstream import App, Record, Stream\n"
        "from rxstream.display import plot_counts\n"
        "from rxstream.waiting import wait_until\n\n"
        "PAGES = ['home', 'search', 'cart', 'checkout']\n"
        "T0 = 1_700_000_000.0  # event time of the first click\n"
        "SIZE = 0.5  # seconds of event time per window\n\n\n"
        "class Click(Record):\n"
        "    user: str\n"
        "    page: str\n"
        "    ts: float  # event time, seconds since the epoch\n\n\n"
        "rng = random.Random(7)\n"
        "clicks = [\n"
        "    Click(f'u{rng.randrange(12)}', rng.choices(PAGES, weights=[6, 4, 2, 1])[0], T0 + i * 0.01)\n"
        "    for i in range(240)\n"
        "]\n"
        "clicks[0]"
    ),
    new_markdown_cell(
        "An app whose agent counts every click twice: in `views`, a table of totals per page, and in "
        "`per_window`, the same table split into tumbling windows of the clicks' own `ts` field. "
        "Clicks are sent keyed by page, so a page's counts live in the partition its clicks arrive on."
    ),
    new_code_cell(
        "app = App('clicks', broker=f'memory://notebook-{uuid.uuid4().hex[:8]}', topic_partitions=2)\n"
        "topic = app.topic('clicks', value_type=Click)\n"
        "views = app.Table('page-views', default=int, help='Clicks per page since the start.')\n"
        "closed = []  # (page, count) of every window that closed\n"
        "per_window = (\n"
        "    app.Table('page-windows', default=int, on_window_close=lambda *pair: closed.append(pair))\n"
        "    .tumbling(SIZE, expires=3600)\n"
        "    .relative_to_field('ts')\n"
        ")\n"
        "seen = []\n\n\n"
        "@app.agent(topic, help='Counts clicks per page, in total and per window.')\n"
        "async def count(stream):\n"
        "    async for click in stream:\n"
        "        views[click.page] += 1\n"
        "        per_window[click.page] += 1\n"
        "        seen.append(click)\n\n\n"
        "app"
    ),
    new_markdown_cell(
        "Start the app and send the clicks over time. A window closes once the event time passed its end; "
        "the figure is redrawn each time windows close."
    ),
    new_code_cell(
        "def window_counts():\n"
        "    return {page: {w.start - T0: n for w, n in per_window.windows(page)} for page in PAGES}\n\n\n"
        "def draw(title):\n"
        "    plot_counts(window_counts(), ax=ax, title=title, xlabel='window start (s)')\n"
        "    handle.update(fig)\n\n\n"
        "await app.start()\n"
        "fig, ax = plt.subplots(figsize=(7, 3))\n"
        "handle = display(fig, display_id=True)\n"
        "drawn = 0\n"
        "for click in clicks:\n"
        "    await topic.send(key=click.page, value=click)\n"
        "    await asyncio.sleep(0.002)\n"
        "    if len(closed) > drawn:\n"
        "        drawn = len(closed)\n"
        "        draw(f'clicks per page per {SIZE} s window ({drawn} closed)')\n"
        "await wait_until(lambda: len(seen) == len(clicks))\n"
        "draw(f'clicks per page per {SIZE} s window')\n"
        "plt.close(fig)\n"
        "assert closed, 'windows closed while the clicks arrived'"
    ),
    new_markdown_cell("A table shows its first rows and size; a windowed table its windows."),
    new_code_cell("assert sum(views.values()) == len(clicks)\nviews"),
    new_code_cell("per_window"),
    new_markdown_cell(
        "A windowed table reads like a dict that ends: its keys, `in`, `items()` (each key's latest "
        "window) and `to_dataframe()`, a wide frame with a row per page and a column per window."
    ),
    new_code_cell(
        "assert 'home' in per_window and sorted(per_window) == sorted(PAGES)\n"
        "wide = per_window.to_dataframe()\n"
        "assert wide.fillna(0).to_numpy().sum() == len(clicks)\n"
        "wide"
    ),
    new_markdown_cell(
        "The same event-time windows from stream operators alone: `group_by` the window a click falls in, "
        "and count each window's clicks with `flat_map`. They match the windowed table."
    ),
    new_code_cell(
        "def window_of(click):\n"
        "    return int((click.ts - T0) // SIZE)\n\n\n"
        "def count_pages(window, substream):\n"
        '    """The window\'s clicks as one list (its substream ends with the source), per page."""\n'
        "    return substream.take(100_000).map(lambda batch: (window, Counter(c.page for c in batch)))\n\n\n"
        "windows = Stream.from_iterable(clicks).group_by(window_of).flat_map(count_pages)\n"
        "per_group = {w * SIZE: counts for w, counts in await windows.to_list()}\n"
        "from_operators = {page: {w: c[page] for w, c in per_group.items() if c[page]} for page in PAGES}\n"
        "assert from_operators == window_counts()\n"
        "plot_counts(from_operators, title='the same windows from group_by', xlabel='window start (s)');"
    ),
    new_markdown_cell(
        "Processing-time windows need no table: `take(10_000, within=0.2)` closes a list 0.2 s after its "
        "first click, while the clicks arrive from an async generator."
    ),
    new_code_cell(
        "async def arriving(clicks):\n"
        "    for click in clicks:\n"
        "        yield click\n"
        "        await asyncio.sleep(0.003)\n\n\n"
        "batches = Stream.from_async_iterable(arriving(clicks)).take(10_000, within=0.2)\n"
        "live = {page: {} for page in PAGES}\n"
        "async for index, batch in batches.enumerate():\n"
        "    counts = Counter(click.page for click in batch)\n"
        "    for page in PAGES:\n"
        "        live[page][index] = counts[page]\n"
        "assert sum(sum(series.values()) for series in live.values()) == len(clicks)\n"
        "plot_counts(live, title='clicks per page per 0.2 s of processing time', xlabel='window');"
    ),
    new_markdown_cell("The same windows with pandas: `to_dataframe` flattens the records into columns."),
    new_code_cell(
        "frame = await Stream.from_iterable(clicks).to_dataframe()\n"
        "frame['window'] = ((frame['ts'] - T0) // SIZE) * SIZE\n"
        "table = frame.pivot_table(\n"
        "    index='window', columns='page', values='user', aggfunc='count', fill_value=0\n"
        ")\n"
        "assert table.sum().to_dict() == dict(views.items())\n"
        "table"
    ),
    new_code_cell("await app.stop()"),
]

LIVE_PIPELINE = [
    new_markdown_cell(
        "# Watching a live pipeline\n\n"
        "An app runs in the background of the notebook while a producer task keeps sending page views. "
        "We watch it without disturbing it: a tap, a live view that updates in place, a bounded collect "
        "into a DataFrame, and a windowed table as a wide DataFrame and a plot."
    ),
    new_code_cell(
        "import asyncio\n"
        "import random\n"
        "import uuid\n\n"
        "from rxstream import App, Record\n"
        "from rxstream.display import plot_counts\n"
        "from rxstream.live import watch\n"
        "from rxstream.waiting import wait_until\n\n"
        "PAGES = ['home', 'search', 'cart', 'checkout']\n\n\n"
        "class View(Record):\n"
        "    user: str\n"
        "    page: str\n\n\n"
        "app = App('live', broker=f'memory://notebook-{uuid.uuid4().hex[:8]}', topic_partitions=2)\n"
        "views = app.topic('views', value_type=View)\n"
        "per_second = app.Table('views-per-second', default=int).tumbling(0.25, expires=3600)\n\n\n"
        "@app.agent(views, help='Counts page views per 0.25 s window.')\n"
        "async def count(stream):\n"
        "    async for view in stream:\n"
        "        per_second[view.page] += 1\n\n\n"
        "async def produce(n=400, every=0.005):\n"
        "    rng = random.Random(3)\n"
        "    for _ in range(n):\n"
        "        page = rng.choices(PAGES, weights=[6, 4, 2, 1])[0]\n"
        "        await views.send(key=page, value=View(f'u{rng.randrange(9)}', page))\n"
        "        await asyncio.sleep(every)\n\n\n"
        "await app.start()\n"
        "producer = asyncio.ensure_future(produce())\n"
        "app"
    ),
    new_markdown_cell(
        "`app.tap(views)` watches the topic through a throwaway consumer group: it acknowledges nothing, so "
        "the agent and the app's commits are untouched. `watch` shows it for a second, redrawn in place: "
        "the latest views and a count per page."
    ),
    new_code_cell("live = await watch(app.tap(views), 1.0, every=0.25)\nassert live.total > 0"),
    new_markdown_cell(
        "A bounded collect: `to_dataframe(n, timeout=)` returns what arrived, at most `n` rows, within the "
        "timeout, so the cell always ends."
    ),
    new_code_cell(
        "frame = await app.tap(views).to_dataframe(50, timeout=2)\n"
        "assert 0 < len(frame) <= 50\n"
        "frame.groupby('page').size().sort_values(ascending=False)"
    ),
    new_markdown_cell(
        "Wait for the producer to finish and the agent to catch up, then read the windowed table as a wide "
        "DataFrame: a row per page, a column per window, and plot it."
    ),
    new_code_cell(
        "await producer\n"
        "await wait_until(lambda: sum(per_second.to_dataframe().fillna(0).sum()) == 400, timeout=10)\n"
        "wide = per_second.to_dataframe().fillna(0).astype(int)\n"
        "wide"
    ),
    new_code_cell(
        "counts = {page: dict(enumerate(wide.loc[page].tolist())) for page in wide.index}\n"
        "plot_counts(counts, title='views per page per 0.25 s window', xlabel='window');"
    ),
    new_markdown_cell("The windowed table shows its window spec and closed windows; the app its offsets."),
    new_code_cell("per_second"),
    new_code_cell("await app.commit()\nawait app.monitor.refresh()\napp"),
    new_code_cell("await app.stop()"),
]


def write(name: str, cells: list[Any]) -> None:
    """Write one notebook; cell ids are numbered, not random, so regenerating changes only what changed."""
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index:02d}"
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, HERE / name)


NOTEBOOKS = {
    "01-operator-chains.ipynb": OPERATOR_CHAINS,
    "02-app-and-agents.ipynb": APP_AND_AGENTS,
    "03-tables-and-windows.ipynb": TABLES_AND_WINDOWS,
    "04-live-pipeline.ipynb": LIVE_PIPELINE,
}


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        write(name, cells)
