"""Why a RedisTier gives each event loop a lane of its own (README, "Event loops").

`python -m benchmarks.loop_handoff` (needs redis-server; not part of `make bench`):
the cost of a Redis GET issued from a second event loop, on a client of that loop's own
(what a lane does), against handing it to a first loop running in another thread
(`run_coroutine_threadsafe`, what "one loop serves the others" would do). Median of 5
rounds of 2,000 sequential GETs each.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

from .shared import _redis_server

N = 2000
ROUNDS = 5


async def _measure(url: str) -> tuple[float, float]:
    from redis.asyncio import Redis

    first = asyncio.new_event_loop()
    thread = threading.Thread(target=first.run_forever, daemon=True)
    thread.start()
    try:
        client_first = Redis.from_url(url)
        asyncio.run_coroutine_threadsafe(client_first.set("k", b"x" * 100), first).result()
        own_client = Redis.from_url(url)
        await own_client.get("k")
        own: list[float] = []
        handed: list[float] = []
        for _ in range(ROUNDS):
            began = time.perf_counter()
            for _ in range(N):
                await own_client.get("k")
            own.append((time.perf_counter() - began) / N)
            began = time.perf_counter()
            for _ in range(N):
                future = asyncio.run_coroutine_threadsafe(client_first.get("k"), first)
                await asyncio.wrap_future(future)
            handed.append((time.perf_counter() - began) / N)
        asyncio.run_coroutine_threadsafe(client_first.aclose(), first).result()
        await own_client.aclose()
    finally:
        first.call_soon_threadsafe(first.stop)
        thread.join()
        first.close()
    return statistics.median(own), statistics.median(handed)


def main() -> None:
    with _redis_server() as url:
        if url is None:
            print("skipped: no redis-server")
            return
        own, handed = asyncio.run(_measure(url))
    print(
        f"GET from a second loop: its own client {own * 1e6:.0f} us; handed to the first "
        f"loop's thread {handed * 1e6:.0f} us ({handed / own:.2f}x)"
    )


if __name__ == "__main__":
    main()
