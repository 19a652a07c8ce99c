"""Scenario shared: a fleet of workers behind one Redis, Zipf requests, a loader that sleeps.

A throwaway redis-server (no persistence, free loopback port; the binary from
$CACHEKIT_REDIS_SERVER or PATH) serves W=4 workers, each its own instance of the system
with its own Redis client, all in this process's event loop. R requests over K keys drawn
from a Zipf law (s=1.1, seeded) are spread round-robin over the workers, C at a time; the
loader sleeps 5 ms. Measured per system:

    wall ms           until every request has its answer
    loader calls      against the ideal: the number of distinct keys requested
    cmds/req          Redis commands executed per request (INFO commandstats; commands a
                      Lua script calls count one each, so a script is several)
    msgs/req          pub/sub messages delivered per request: each PUBLISH times the
                      subscribers of its channel (every worker reads one channel)
    x GET             a Redis hit with a cold L1: a fresh worker asks for 200 keys already in
                      Redis one after another; its time over that of bare redis-py GETs of as
                      many keys, measured just before; x GET c64: the same with 64 callers
                      at once, against 64 concurrent bare GETs; x tuned GET: the sequential
                      hit against GETs on a client with the tier's settings (no retries, no
                      socket timeout) rather than redis-py's defaults

Then the same requests from 4 and from 8 processes (one worker each, started together):
loader calls summed over the processes against the distinct keys requested, and the
commands and messages per request of the whole fleet.

Systems: cachekit `@async_cached(ttl=60, shared=RedisTier)`; cashews `@cache(ttl=60)` on a
redis:// backend, with and without `lock=True`; aiocache `@cached` and `@cached_stampede`
(lease 2 s) on RedisCache. Skipped cleanly, with the reason, when there is no redis-server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from itertools import accumulate
from typing import Any

from .common import Context, Result, Target, median

SLEEP = 0.005
WORKERS = 4
COLD_HITS = 200
COLD_ROUNDS = 5
COLD_CALLERS = 64  # the concurrent variant of the cold-L1 hit
COLD_WIDE = 1000  # keys it reads (at most: the keys the run loaded)
FLEET_TIMEOUT = 600.0  # seconds one system may take for all its requests
PROCESS_START = 3.0  # x20: seconds a process may take to start and connect (then it fails)
PROCESSES = (4, 8)  # the process variants
GET_TARGET = 1.3  # issue 7: a cold-L1 Redis hit within 1.3x a bare GET

Fn = Callable[[int], Awaitable[Any]]
Build = Callable[[str, str, Fn], tuple[Fn, Callable[[], Awaitable[None]]]]


@contextmanager
def _redis_server() -> Iterator[str | None]:
    """A redis-server for the run: its URL, or None when no binary is found."""
    binary = os.environ.get("CACHEKIT_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="cachekit-bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    args += ["no", "--dir", workdir, "--logfile", ""]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# --- systems --------------------------------------------------------------------------------


def _cachekit(url: str, namespace: str, loader: Fn) -> tuple[Fn, Callable[[], Awaitable[None]]]:
    from cachekit import async_cached
    from cachekit.redis import RedisTier

    tier = RedisTier.from_url(url, namespace=namespace, secret=b"benchmark-secret-0123456789")

    @async_cached(ttl=60, maxsize=10_000, shared=tier, name="bench")
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, tier.aclose


def _cashews(lock: bool) -> Build:
    def build(url: str, namespace: str, loader: Fn) -> tuple[Fn, Callable[[], Awaitable[None]]]:
        from cashews import Cache

        cache = Cache()
        cache.setup(url)

        @cache(ttl=60, key=namespace + ":{x}", lock=lock)
        async def fn(x: int) -> Any:
            return await loader(x)

        return fn, cache.close

    return build


def _aiocache(stampede: bool) -> Build:
    def build(url: str, namespace: str, loader: Fn) -> tuple[Fn, Callable[[], Awaitable[None]]]:
        from aiocache import Cache, cached, cached_stampede

        port = int(url.rsplit(":", 1)[1].split("/")[0])
        options: dict[str, Any] = {
            "ttl": 60,
            "cache": Cache.REDIS,
            "endpoint": "127.0.0.1",
            "port": port,
            "namespace": namespace,
        }
        decorator = cached_stampede(lease=2, **options) if stampede else cached(**options)

        @decorator
        async def fn(x: int) -> Any:
            return await loader(x)

        async def close() -> None:
            await fn.cache.close()  # type: ignore[attr-defined]

        return fn, close

    return build


# --- variants: bulk reads, stale serving -----------------------------------------------------

BULK = 10  # keys per bulk request
FRESH = 0.05  # seconds a value is fresh in the stale-serving variant; then served stale
# The cold-burst variant: this many callers at once, each key requested BURST_REPEATS times,
# on pools that hold one connection each (the fleet's full mode found the fault it guards:
# commands timed out while their connections were being opened and opened the circuit).
BURST_CALLERS = 1_000
BURST_REPEATS = 4
BURST_KEYS = (1_000, 5_000)  # quick, full: the run stays well within the values' ttl (60 s)
Bulk = Callable[[list[int]], Awaitable[Any]]
VariantBuild = Callable[[str, str, Any], tuple[Any, Callable[[], Awaitable[None]]]]


def _cachekit_bulk(url: str, namespace: str, loader: Bulk) -> tuple[Any, Any]:
    from cachekit import async_cached_many
    from cachekit.redis import RedisTier

    tier = RedisTier.from_url(url, namespace=namespace, secret=b"benchmark-secret-0123456789")

    @async_cached_many(ttl=60, maxsize=10_000, shared=tier, name="bulk")
    async def fn(keys: list[int]) -> Any:
        return await loader(keys)

    return fn, tier.aclose


def _cashews_bulk(url: str, namespace: str, loader: Bulk) -> tuple[Any, Any]:
    from cashews import Cache

    cache = Cache()
    cache.setup(url)

    @cache(ttl=60, key=namespace + ":{x}")
    async def one(x: int) -> Any:
        return (await loader([x]))[x]

    async def fn(keys: list[int]) -> Any:  # no bulk decorator: what a user would write
        values = await asyncio.gather(*(one(k) for k in keys))
        return dict(zip(keys, values, strict=True))

    return fn, cache.close


def _aiocache_bulk(url: str, namespace: str, loader: Bulk) -> tuple[Any, Any]:
    from aiocache import Cache, multi_cached

    port = int(url.rsplit(":", 1)[1].split("/")[0])

    @multi_cached(
        keys_from_attr="keys",
        ttl=60,
        cache=Cache.REDIS,
        endpoint="127.0.0.1",
        port=port,
        namespace=namespace,
    )
    async def fn(keys: list[int]) -> Any:
        return await loader(keys)

    async def close() -> None:
        await fn.cache.close()  # type: ignore[attr-defined]

    return fn, close


def _cachekit_stale(url: str, namespace: str, loader: Fn) -> tuple[Any, Any]:
    from cachekit import async_cached
    from cachekit.redis import RedisTier

    tier = RedisTier.from_url(url, namespace=namespace, secret=b"benchmark-secret-0123456789")

    @async_cached(ttl=FRESH, stale_ttl=60, maxsize=10_000, shared=tier, name="stale")
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, tier.aclose


def _cashews_stale(url: str, namespace: str, loader: Fn) -> tuple[Any, Any]:
    from cashews import Cache

    cache = Cache()
    cache.setup(url)

    @cache.early(ttl=60 + FRESH, early_ttl=FRESH, key=namespace + ":{x}")
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, cache.close


# (variant, row name, adapter, modules it needs, builder)
VARIANTS: list[tuple[str, str, str, tuple[str, ...], VariantBuild]] = [
    ("bulk", "cachekit get_many", "cachekit", ("cachekit.redis",), _cachekit_bulk),
    ("bulk", "cashews gather", "cashews", ("cashews",), _cashews_bulk),
    ("bulk", "aiocache multi_cached", "aiocache", ("aiocache",), _aiocache_bulk),
    ("stale", "cachekit stale_ttl", "cachekit", ("cachekit.redis",), _cachekit_stale),
    ("stale", "cashews early", "cashews", ("cashews",), _cashews_stale),
    ("burst", "cachekit", "cachekit", ("cachekit.redis",), _cachekit),
    ("burst", "cashews lock=True", "cashews", ("cashews",), _cashews(lock=True)),
    ("burst", "aiocache stampede", "aiocache-stampede", ("aiocache",), _aiocache(stampede=True)),
]


class _KeyLoader:
    """A bulk loader counting the keys it loads (one call loads many)."""

    def __init__(self) -> None:
        self.keys = 0

    async def __call__(self, keys: list[int]) -> dict[int, int]:
        self.keys += len(keys)
        await asyncio.sleep(SLEEP)
        return {k: k * 2 for k in keys}


async def _variant(
    url: str, variant: str, name: str, build: VariantBuild, requests: list[Any], concurrency: int
) -> dict[str, Any]:
    """One variant's run over a fleet of WORKERS workers in this process: wall time, keys
    loaded, wrong answers, commands and messages per request, and the slowest 1% of
    requests (a request that waited for the loader takes SLEEP or more)."""
    from redis.asyncio import Redis

    control = Redis.from_url(url)
    await control.flushall()
    bulk = _KeyLoader()
    single = _Loader()
    loader: Any = bulk if variant == "bulk" else single
    namespace = _namespace(f"bench-{variant}-", name)
    workers = [build(url, namespace, loader) for _ in range(WORKERS)]
    deliveries = _Deliveries(url)
    await deliveries.start()
    latencies: list[float] = []
    errors = 0
    try:
        warm = zip([fn for fn, _ in workers], range(-1, -1 - WORKERS, -1), strict=True)
        await asyncio.gather(*(fn([k]) if variant == "bulk" else fn(k) for fn, k in warm))
        await deliveries.subscribers()
        await control.execute_command("CONFIG", "RESETSTAT")
        bulk.keys = single.calls = 0
        calls = ((workers[i % WORKERS][0], r) for i, r in enumerate(requests))

        async def caller() -> None:
            nonlocal errors
            for fn, request in calls:
                began = time.perf_counter()
                try:
                    answer = await fn(request)
                    if variant == "bulk":
                        wrong = answer != {k: k * 2 for k in request}
                    else:
                        wrong = answer != request * 2
                    errors += wrong
                except Exception:
                    errors += 1
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        wall = time.perf_counter() - began
        degraded = sum(_degraded(fn) for fn, _ in workers)
        commands = await _commands(control)
        messages = await deliveries.stop()
    finally:
        for _, close in workers:
            await close()
        await control.aclose()
    latencies.sort()
    distinct = {k for r in requests for k in (r if variant == "bulk" else [r])}
    return {
        "system": f"{name} ({variant})",
        "wall ms": wall * 1e3,
        "loader calls": bulk.keys if variant == "bulk" else single.calls,
        "degraded": degraded,
        "ideal calls": len(distinct),
        "errors": errors,
        "cmds/req": commands / len(requests),
        "msgs/req": messages / len(requests),
        "note": f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.1f} ms"
        + {"bulk": ", loader calls count keys", "stale": ", loads include refreshes"}.get(
            variant, ""
        ),
    }


# (row name, the adapter whose --systems name selects it, modules it needs, builder)
SYSTEMS: list[tuple[str, str, tuple[str, ...], Build]] = [
    ("cachekit", "cachekit", ("cachekit.redis",), _cachekit),
    ("cashews", "cashews", ("cashews",), _cashews(lock=False)),
    ("cashews lock=True", "cashews", ("cashews",), _cashews(lock=True)),
    ("aiocache", "aiocache", ("aiocache",), _aiocache(stampede=False)),
    ("aiocache stampede", "aiocache-stampede", ("aiocache",), _aiocache(stampede=True)),
]


# --- measurement ----------------------------------------------------------------------------


def _zipf_keys(n: int, keys: int, seed: int) -> list[int]:
    weights = [1.0 / (rank**1.1) for rank in range(1, keys + 1)]
    return random.Random(seed).choices(range(keys), cum_weights=list(accumulate(weights)), k=n)


async def _drive(calls: Iterator[tuple[Fn, int]], concurrency: int) -> int:
    """Make the calls, `concurrency` at a time (that many callers, each taking the next
    call when its last is answered, as the requests of a busy server do; never one task
    per request up front). Returns how many failed or answered wrongly."""
    errors = 0

    async def caller() -> None:
        nonlocal errors
        for fn, key in calls:
            try:
                if await fn(key) != key * 2:
                    errors += 1
            except Exception:
                errors += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return errors


_IGNORED = {
    "info",
    "config|resetstat",
    "flushall",
    "ping",
    "client|setinfo",
    "hello",
    "pubsub|numsub",
    "pubsub|channels",
    "psubscribe",
}


async def _commands(client: Any) -> int:
    """Commands executed since the last CONFIG RESETSTAT."""
    stats = await client.info("commandstats")
    total = 0
    for name, fields in stats.items():
        command = name.removeprefix("cmdstat_")
        if command not in _IGNORED:
            total += int(fields["calls"])
    return total


class _Deliveries:
    """Counts the pub/sub messages Redis delivers: a pattern subscription sees every
    PUBLISH with its channel; each is delivered to that channel's subscribers (taken with
    `subscribers()` while every worker listens; the pattern subscriber is not among them)."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._client = Redis.from_url(url)
        self._pubsub = self._client.pubsub()
        self._seen: dict[bytes, int] = {}
        self._numsub: dict[bytes, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()

    async def start(self) -> None:
        await self._pubsub.psubscribe("*")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "pmessage":
                channel = message["channel"]
                if channel == b"bench:end":
                    self._ended.set()
                else:
                    self._seen[channel] = self._seen.get(channel, 0) + 1

    async def subscribers(self) -> None:
        channels = await self._client.execute_command("PUBSUB", "CHANNELS")
        if channels:
            counts = await self._client.execute_command("PUBSUB", "NUMSUB", *channels)
            self._numsub = {c: int(n) for c, n in zip(counts[::2], counts[1::2], strict=True)}
        self._seen.clear()

    async def stop(self) -> int:
        """Messages delivered since `subscribers()`."""
        await self._client.publish("bench:end", b"")  # everything before it has been read
        await asyncio.wait_for(self._ended.wait(), 10)
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._pubsub.aclose()
        await self._client.aclose()
        return sum(n * self._numsub.get(c, 0) for c, n in self._seen.items())


class _Loader:
    """The loader every system caches: answers 2x after SLEEP, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, x: int) -> int:
        self.calls += 1
        await asyncio.sleep(SLEEP)
        return x * 2


def _namespace(prefix: str, name: str) -> str:
    return prefix + name.replace(" ", "-").replace("=", "")


async def _fleet(
    url: str, name: str, build: Build, requests: list[int], concurrency: int
) -> dict[str, Any]:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    control = Redis.from_url(url)
    # A bare GET on a client set up as cachekit's tier sets up its own (no retries, no
    # socket timeout): the second baseline of the cold-L1 hit, beside redis-py's defaults.
    tuned = Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_timeout=None)
    await control.flushall()
    load = _Loader()
    namespace = _namespace("bench-", name)
    workers = [build(url, namespace, load) for _ in range(WORKERS)]
    deliveries = _Deliveries(url)
    await deliveries.start()
    try:
        # Warm the clients (connections, subscriptions, scripts) outside the measurement.
        await asyncio.gather(*(fn(-1 - i) for i, (fn, _) in enumerate(workers)))
        await deliveries.subscribers()
        await control.execute_command("CONFIG", "RESETSTAT")
        load.calls = 0
        began = time.perf_counter()
        errors = await _drive(
            ((workers[i % WORKERS][0], key) for i, key in enumerate(requests)), concurrency
        )
        wall = time.perf_counter() - began
        commands = await _commands(control)
        messages = await deliveries.stop()
        loads = load.calls
        degraded = sum(_degraded(fn) for fn, _ in workers)

        # A Redis hit with a cold L1: a fresh worker per round, keys every worker has
        # loaded; each round's time over that of bare GETs timed just before it.
        hot = sorted(set(requests))[:COLD_HITS]
        raw_keys = (await control.keys("*"))[:COLD_HITS]
        await tuned.get(raw_keys[0])  # (its connection, opened)
        colds: list[float] = []
        ratios: list[float] = []
        tuned_ratios: list[float] = []
        cold_loads = 0
        for _ in range(COLD_ROUNDS):
            fresh, close_fresh = build(url, namespace, load)
            try:
                await fresh(-100)  # connect and subscribe before timing
                began = time.perf_counter()
                for key in raw_keys:
                    await control.get(key)
                bare = (time.perf_counter() - began) / max(1, len(raw_keys))
                began = time.perf_counter()
                for key in raw_keys:
                    await tuned.get(key)
                bare_tuned = (time.perf_counter() - began) / max(1, len(raw_keys))
                load.calls = 0
                began = time.perf_counter()
                for key in hot:
                    await fresh(key)
                cold = (time.perf_counter() - began) / max(1, len(hot))
                cold_loads += load.calls
            finally:
                await close_fresh()
            colds.append(cold)
            ratios.append(cold / bare if bare else float("nan"))
            tuned_ratios.append(cold / bare_tuned if bare_tuned else float("nan"))

        # The same with 64 callers at once: a fresh worker per round, its connections
        # opened beforehand (as the bare client's are); its throughput over bare GETs'.
        wide = sorted(set(requests))[:COLD_WIDE]
        raw_wide = (await control.keys("*"))[: len(wide)]
        await _at_once(control.get, raw_wide)  # the bare client's connections, opened
        wides: list[float] = []
        for _ in range(COLD_ROUNDS):
            fresh, close_fresh = build(url, namespace, load)
            try:
                await _at_once(fresh, range(-1000, -1000 - COLD_CALLERS, -1))
                load.calls = 0
                bare = await _at_once(control.get, raw_wide)
                cold = await _at_once(fresh, wide)
                cold_loads += load.calls
            finally:
                await close_fresh()
            wides.append(cold / bare if bare else float("nan"))  # NaN: calls failed
    finally:
        for _, close in workers:
            await close()
        await control.aclose()
        await tuned.aclose()
    return {
        "system": name,
        "wall ms": wall * 1e3,
        "loader calls": loads,
        "degraded": degraded,
        "ideal calls": len(set(requests)),
        "errors": errors,
        "cmds/req": commands / len(requests),
        "msgs/req": messages / len(requests),
        "redis hit us": median(colds) * 1e6,
        "x GET": median(ratios),
        "x tuned GET": median(tuned_ratios),
        "x GET c64": median(wides) if all(w == w for w in wides) else float("nan"),
        "note": f"{cold_loads} reloads in the cold-L1 pass" if cold_loads else "",
    }


async def _at_once(fn: Callable[[Any], Awaitable[Any]], items: Any) -> float:
    """Seconds `fn` takes over `items` with COLD_CALLERS callers at once; NaN if any call
    failed (a peer whose pool is smaller than COLD_CALLERS may refuse calls)."""
    pending = iter(items)
    failed = False

    async def caller() -> None:
        nonlocal failed
        for item in pending:
            try:
                await fn(item)
            except Exception:
                failed = True

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(COLD_CALLERS)))
    return float("nan") if failed else time.perf_counter() - began


def _degraded(fn: Any) -> int:
    """Redis errors (op_timeout and the like) that cachekit's worker `fn` answered by loading
    in-process, as its statistics count them; 0 for a peer, which does not say."""
    info = getattr(fn, "cache_info", None)
    return int(info().shared_errors) if info is not None else 0


def _in_process(
    url: str, name: str, index: int, requests: list[int], concurrency: int, ready: Any, go: Any
) -> tuple[int, int, int]:
    """One of the processes: its own worker of system `name`, its share of the requests,
    started when `go` is set (after it put itself on `ready`). Returns (loader calls, errors,
    Redis errors cachekit answered around by loading in-process; 0 for the peers)."""
    build = next(b for n, _, _, b in SYSTEMS if n == name)
    return asyncio.run(_process_worker(url, name, build, index, requests, concurrency, ready, go))


async def _process_worker(
    url: str,
    name: str,
    build: Build,
    index: int,
    requests: list[int],
    concurrency: int,
    ready: Any,
    go: Any,
) -> tuple[int, int, int]:
    load = _Loader()
    namespace = _namespace("bench-procs-", name)
    fn, close = build(url, namespace, load)
    errors = degraded = 0
    try:
        await fn(-1 - index)  # connect (and subscribe) before the common start
        load.calls = 0
        ready.put(index)
        await asyncio.get_running_loop().run_in_executor(None, go.wait, PROCESS_START * 20)
        errors = await _drive(((fn, key) for key in requests), concurrency)
        degraded = _degraded(fn)
    finally:
        await close()
    return load.calls, errors, degraded


async def _processes(
    url: str, name: str, requests: list[int], concurrency: int, count: int
) -> dict[str, Any]:
    """The requests split over `count` processes; Redis's counters are reset once every
    process has connected (and subscribed), then they all start."""
    from redis.asyncio import Redis

    control = Redis.from_url(url)
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    deliveries = _Deliveries(url)
    await deliveries.start()
    try:
        await control.flushall()
        with context.Manager() as manager, context.Pool(count) as pool:
            ready, go = manager.Queue(), manager.Event()
            pending = [
                pool.apply_async(
                    _in_process,
                    (url, name, i, requests[i::count], max(1, concurrency // count), ready, go),
                )
                for i in range(count)
            ]
            for _ in range(count):
                await loop.run_in_executor(None, ready.get, True, PROCESS_START * 20)
            await deliveries.subscribers()
            await control.execute_command("CONFIG", "RESETSTAT")
            go.set()
            outcomes = [await loop.run_in_executor(None, p.get) for p in pending]
        commands = await _commands(control)
        messages = await deliveries.stop()
    finally:
        await control.aclose()
    return {
        "system": name,
        "loader calls": sum(outcome[0] for outcome in outcomes),
        "ideal calls": len(set(requests)),
        "errors": sum(outcome[1] for outcome in outcomes),
        "degraded": sum(outcome[2] for outcome in outcomes),
        "cmds/req": commands / len(requests),
        "msgs/req": messages / len(requests),
    }


def _targets(
    rows: list[dict[str, Any]], processes: list[dict[str, Any]], variants: list[dict[str, Any]]
) -> list[Target]:
    ck = next((r for r in rows if r["system"] == "cachekit" and "wall ms" in r), None)
    if ck is None:
        return []
    peers = [r for r in rows if r["system"] != "cachekit" and "wall ms" in r]
    targets = []
    loads = f"{ck['loader calls']} of {ck['ideal calls']} ideal in one process"
    met = ck["loader calls"] == ck["ideal calls"]
    for row in processes:
        if row["system"] == "cachekit" and "loader calls" in row:
            loads += f", {row['loader calls']} in {row['processes']} processes"
            met = met and row["loader calls"] == row["ideal calls"]
    targets.append(Target("shared: loads", "loader calls = distinct keys", loads, met))
    burst = next((r for r in variants if r["system"] == "cachekit (burst)"), None)
    if burst is not None and "loader calls" in burst:
        targets.append(
            Target(
                "shared: cold burst",
                f"loader calls = distinct keys, {BURST_CALLERS:,} callers on cold pools",
                f"{burst['loader calls']:,} of {burst['ideal calls']:,}",
                burst["loader calls"] == burst["ideal calls"],
            )
        )
    for column, label in (("cmds/req", "Redis commands per request"), ("wall ms", "wall time")):
        best = min(peers, key=lambda r: r[column], default=None)
        if best is None:
            continue
        value = f"{ck[column]:.2f} vs {best[column]:.2f} ({best['system']})"
        targets.append(
            Target(
                f"shared: {column}", f"{label} below every peer", value, ck[column] < best[column]
            )
        )
    value = f"{ck['x GET']:.2f}x ({ck['redis hit us']:.0f} us)"
    targets.append(
        Target(
            "shared: Redis hit",
            f"cold-L1 hit <= {GET_TARGET}x a bare GET",
            value,
            ck["x GET"] <= GET_TARGET,
        )
    )
    targets.append(
        Target(
            f"shared: Redis hit, {COLD_CALLERS} callers",
            f"cold-L1 hit <= {GET_TARGET}x a bare GET",
            f"{ck['x GET c64']:.2f}x",
            ck["x GET c64"] <= GET_TARGET,
        )
    )
    return targets


REPEATS = 1


def _available(ctx: Context) -> tuple[list[tuple[str, Build]], list[dict[str, Any]]]:
    """The selected systems that import, and a row for each one that does not."""
    available: list[tuple[str, Build]] = []
    skipped: list[dict[str, Any]] = []
    selected = {a.name for a in ctx.systems} | {a.name for a in ctx.skipped}
    for name, adapter, modules, build in SYSTEMS:
        if adapter not in selected:
            continue
        try:
            for module in modules:
                __import__(module)
            available.append((name, build))
        except Exception as exc:  # a peer that does not import is reported, not dropped
            skipped.append({"system": name, "note": f"skipped: {type(exc).__name__}: {exc}"})
    return available, skipped


def _variants(ctx: Context) -> list[tuple[str, str, VariantBuild]]:
    selected = {a.name for a in ctx.systems} | {a.name for a in ctx.skipped}
    found = []
    for variant, name, adapter, modules, build in VARIANTS:
        if adapter not in selected:
            continue
        try:
            for module in modules:
                __import__(module)
        except Exception:
            continue  # (the main table reports the peer as skipped)
        found.append((variant, name, build))
    return found


def steps(ctx: Context) -> int:
    """The progress steps run() takes: one per fleet run, then one per process run, then
    one per variant run."""
    return len(_available(ctx)[0]) * (REPEATS + len(PROCESSES)) + len(_variants(ctx))


async def run(ctx: Context) -> Result:
    title = "Shared tier: 4 workers on one Redis, Zipf requests, loader sleeps 5 ms"
    # Full mode: the size of the comparison cacheme's author published (200k Zipf requests,
    # 1,000 concurrent callers), over 10k keys.
    n, keys, concurrency = (2_000, 300, 100) if ctx.quick else (200_000, 10_000, 1_000)
    repeats = REPEATS
    available, skipped = _available(ctx)
    with _redis_server() as url:
        if url is None:
            return Result(
                "shared",
                title,
                [],
                notes=["skipped: no redis-server (set CACHEKIT_REDIS_SERVER or install one)"],
            )
        rows: list[dict[str, Any]] = []
        if available:  # a throwaway pass: a fresh server and interpreter would tax the first
            name, build = available[0]
            await _fleet(url, name, build, _zipf_keys(n // 4, keys, ctx.seed + 1), concurrency)
        for name, build in available:
            runs = []
            requests = _zipf_keys(n, keys, ctx.seed)  # one stream: the ideal is the same
            for _ in range(repeats):
                try:
                    async with asyncio.timeout(FLEET_TIMEOUT):
                        runs.append(await _fleet(url, name, build, requests, concurrency))
                except TimeoutError:
                    pass  # a system that hangs (cashews#127) is reported as such
                ctx.progress.step(f"shared {name}")
            if not runs:
                rows.append({"system": name, "note": f"timed out after {FLEET_TIMEOUT:.0f} s"})
                continue
            row = dict(runs[-1])
            for column in (
                "wall ms",
                "cmds/req",
                "redis hit us",
                "x GET",
                "x tuned GET",
                "x GET c64",
            ):
                row[column] = median([run[column] for run in runs])
            row["loader calls"] = max(run["loader calls"] for run in runs)
            row["errors"] = max(run["errors"] for run in runs)
            rows.append(row)
        processes: list[dict[str, Any]] = []
        requests = _zipf_keys(n, keys, ctx.seed)
        for count in PROCESSES:
            for name, _ in available:
                try:
                    row = await _processes(url, name, requests, concurrency, count)
                except Exception as exc:  # a peer that fails across processes is reported
                    row = {"system": name, "note": f"failed: {type(exc).__name__}: {exc}"}
                processes.append(dict(row, processes=count))
                ctx.progress.step(f"shared {name} x{count} processes")
        variants: list[dict[str, Any]] = []
        rng = random.Random(ctx.seed + 2)
        keys_of = _zipf_keys(n, keys, ctx.seed + 3)
        bulk_requests = [
            sorted(set(keys_of[i : i + BULK])) for i in range(0, n // 2, BULK)
        ]  # n/2 keys in requests of BULK
        rng.shuffle(bulk_requests)
        burst_keys = BURST_KEYS[0] if ctx.quick else BURST_KEYS[1]
        burst_requests = [k for k in range(burst_keys) for _ in range(BURST_REPEATS)]
        rng.shuffle(burst_requests)
        for variant, name, build in _variants(ctx):
            requests_v: list[Any] = keys_of
            callers = concurrency
            if variant == "bulk":
                requests_v, callers = bulk_requests, max(1, concurrency // BULK)
            elif variant == "burst":
                requests_v, callers = burst_requests, BURST_CALLERS
            try:
                async with asyncio.timeout(FLEET_TIMEOUT):
                    row = await _variant(url, variant, name, build, requests_v, callers)
            except Exception as exc:  # a peer that fails is reported
                row = {"system": f"{name} ({variant})", "note": f"failed: {exc!r:.80}"}
            variants.append(row)
            ctx.progress.step(f"shared {name} {variant}")
    targets = _targets(rows, processes, variants)
    for row in processes:
        row["system"] = f"{row['system']} ({row.pop('processes')} processes)"
    return Result(
        "shared",
        title,
        rows + skipped + processes + variants,
        notes=[
            f"{n:,} requests over {keys:,} keys (Zipf s=1.1), {concurrency} at a time, "
            f"round-robin over {WORKERS} workers (each its own client); one run each.",
            "ideal calls = distinct keys requested: one load per key for the whole fleet.",
            "cmds/req counts every Redis command, those inside Lua scripts included.",
            f"x GET: a cold-L1 Redis hit over a bare redis-py GET ({COLD_HITS} sequential keys; "
            f"median of {COLD_ROUNDS} rounds, each a fresh worker); x GET c64: the same with "
            f"{COLD_CALLERS} callers at once over up to {COLD_WIDE} keys, throughput against "
            f"{COLD_CALLERS} concurrent bare GETs (each side's connections opened beforehand). "
            "x tuned GET: the sequential hit over GETs on a client set up as cachekit's tier "
            "sets up its own (no retries, no socket timeout: redis-py 8's default of 5 s costs "
            "every command a timer, and on Python 3.11 a task).",
            "(N processes): the same requests split over N processes, one worker each, "
            "started together once all have connected; loader calls summed over them; "
            "degraded: Redis errors (op_timeout and the like) cachekit answered by loading "
            "in-process, summed over them (the peers do not report theirs).",
            "msgs/req: pub/sub messages delivered per request (PUBLISHes x subscribers).",
            f"(bulk): requests of up to {BULK} Zipf keys, {BULK}x fewer callers; loader calls "
            "count keys loaded. "
            "cashews has no bulk decorator: a gather of its per-key function.",
            f"(stale): values fresh for {FRESH * 1000:.0f} ms, then served stale while one "
            "refresh runs (cashews: early_ttl); loads include refreshes; p99 = slowest 1% "
            "of requests (aiocache has no stale serving).",
            f"(burst): {burst_keys:,} keys, each requested {BURST_REPEATS} times in random order, "
            f"{BURST_CALLERS:,} callers at once on pools that hold one open connection each "
            "(the peers with their single-flight option).",
        ],
        targets=targets,
    )
