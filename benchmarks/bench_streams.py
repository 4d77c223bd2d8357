"""Events/s through from_iterable -> map -> filter, against a hand-written async-generator loop.

Run: python benchmarks/bench_streams.py [--events N] [--repeat R]
Each figure is the median of R runs; ratios are against the baseline measured in the same run.
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


def divisible_by_three(x: int) -> bool:
    return x % 3 == 0


async def baseline(n: int) -> int:
    """The same work as a plain `async for` loop over an async generator."""

    async def source() -> AsyncIterator[int]:
        for i in range(n):
            yield i

    count = 0
    async for x in source():
        y = double(x)
        if divisible_by_three(y):
            count += 1
    return count


async def stream_async_for(n: int) -> int:
    count = 0
    async for _ in Stream.from_iterable(range(n)).map(double).filter(divisible_by_three):
        count += 1
    return count


async def stream_to_list(n: int) -> int:
    return len(await Stream.from_iterable(range(n)).map(double).filter(divisible_by_three).to_list())


def measure(fun: Callable[[int], Awaitable[int]], n: int, repeat: int) -> tuple[float, int]:
    times = []
    result = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = asyncio.run(fun(n))  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.events
    base, expected = measure(baseline, n, args.repeat)
    print(f"baseline async-generator loop: {n / base:,.0f} events/s")
    for name, fun in (("async for", stream_async_for), ("to_list()", stream_to_list)):
        took, result = measure(fun, n, args.repeat)
        if result != expected:
            raise SystemExit(f"{name}: got {result} values, the baseline got {expected}")
        print(f"from_iterable -> map -> filter, {name}: {n / took:,.0f} events/s, ratio {base / took:.2f}")


if __name__ == "__main__":
    main()
