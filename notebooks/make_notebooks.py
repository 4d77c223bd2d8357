"""Writes the notebooks in this folder from their cells, so the .ipynb files stay reviewable and output-free.

Run: python notebooks/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

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
]


def write(name: str, cells: list[object]) -> None:
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, HERE / name)


if __name__ == "__main__":
    write("01-operator-chains.ipynb", OPERATOR_CHAINS)
