"""Events/s through from_iterable -> map -> filter, against a hand-written async-generator loop.

Run: python benchmarks/bench_streams.py [--events N] [--repeat R]
The filter keeps a third, half, or all of the values. Each figure is the median of R runs, the stream and
its baseline alternating run by run; ratios are against the baseline measured in the same run. For
``async for`` a third measure runs beside them: the same two calls made inside one async generator that
yields what the filter keeps (the shape any chain read by ``async for`` has, where the baseline makes the
calls in its loop's body), and the stream's ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from rxstream import Stream


def double(x: int) -> int:
    return x * 2


def keeps_third(x: int) -> bool:
    return x % 3 == 0


def keeps_half(x: int) -> bool:
    return x % 4 == 0


def keeps_all(x: int) -> bool:
    return x % 1 == 0


SELECTIVITIES = {"1/3": keeps_third, "1/2": keeps_half, "all": keeps_all}
"""What the filter keeps of the doubled values, and the predicate (each of the same cost)."""

Run = Callable[[int, Callable[[int], bool]], Awaitable[int]]


async def baseline(n: int, keeps: Callable[[int], bool] = keeps_third) -> int:
    """The same work as a plain `async for` loop over an async generator."""

    async def source() -> AsyncIterator[int]:
        for i in range(n):
            yield i

    count = 0
    async for x in source():
        y = double(x)
        if keeps(y):
            count += 1
    return count


async def inside_generator(n: int, keeps: Callable[[int], bool] = keeps_third) -> int:
    """The same calls made inside one async generator that yields what the filter keeps: the shape any
    chain read by ``async for`` has, where the baseline's loop makes them in its own body instead."""

    async def source() -> AsyncIterator[int]:
        for x in range(n):
            y = double(x)
            if keeps(y):
                yield y

    count = 0
    async for _ in source():
        count += 1
    return count


async def stream_async_for(n: int, keeps: Callable[[int], bool] = keeps_third) -> int:
    count = 0
    async for _ in Stream.from_iterable(range(n)).map(double).filter(keeps):
        count += 1
    return count


async def stream_to_list(n: int, keeps: Callable[[int], bool] = keeps_third) -> int:
    return len(await Stream.from_iterable(range(n)).map(double).filter(keeps).to_list())


def timed(fun: Run, n: int, keeps: Callable[[int], bool]) -> tuple[float, int]:
    start = time.perf_counter()
    result = asyncio.run(fun(n, keeps))
    return time.perf_counter() - start, result


def compare(
    name: str,
    fun: Run,
    n: int,
    keeps: Callable[[int], bool],
    repeat: int,
    reference: Run | None = None,
) -> None:
    """``fun`` against the baseline (and ``reference``), rotating which runs first; medians of ``repeat``."""
    runs: dict[str, Run] = {"base": baseline, "ours": fun}
    if reference is not None:
        runs["reference"] = reference
    times: dict[str, list[float]] = {which: [] for which in runs}
    results = set()
    order = list(runs)
    for i in range(repeat):
        for which in order[i % len(order) :] + order[: i % len(order)]:
            took, result = timed(runs[which], n, keeps)
            times[which].append(took)
            results.add(result)
    if len(results) != 1:
        raise SystemExit(f"{name}: the stream and the baseline got different counts: {sorted(results)}")
    base, ours = statistics.median(times["base"]), statistics.median(times["ours"])
    line = f"{name}: {n / ours:,.0f} events/s, baseline loop {n / base:,.0f} events/s"
    line += f", ratio {base / ours:.2f}"
    if reference is not None:
        inside = statistics.median(times["reference"])
        line += f"; the calls inside one async generator: {base / inside:.2f}"
        line += f", the stream {inside / ours:.2f} of that"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.events
    timed(baseline, n, keeps_third)  # a process's first run is slower: warm up before timing
    for kept, keeps in SELECTIVITIES.items():
        label = f"from_iterable -> map -> filter (keeps {kept})"
        compare(f"{label}, async for", stream_async_for, n, keeps, args.repeat, inside_generator)
        compare(f"{label}, to_list()", stream_to_list, n, keeps, args.repeat)


if __name__ == "__main__":
    main()
