"""The shared tier on a three-node Redis Cluster (real redis-server processes).

The cluster is built without redis-cli: each node gets a third of the slots
(CLUSTER ADDSLOTSRANGE) and meets the others; the test waits for cluster_state:ok.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from cachekit import AsyncCache
from cachekit.redis import RedisTier

from .conftest import assert_stats
from .redis_server import HOW_TO_GET_ONE, RedisServer, find_binary, require_binary, required

if find_binary() is None and not required():
    pytest.skip(HOW_TO_GET_ONE, allow_module_level=True)
if not hasattr(RedisCluster, "pubsub"):  # the `lowest` nox session's redis-py 5.0
    pytest.skip(
        "redis-py's asyncio RedisCluster has no pubsub() before redis-py 8.0, so RedisTier "
        "refuses it (README: a Cluster client needs redis-py >= 8.0)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[RedisServer]]:
    binary = require_binary()
    servers = [RedisServer(binary, cluster=True) for _ in range(3)]
    try:
        for server in servers:
            server.start("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
async def cluster_url(nodes: list[RedisServer]) -> AsyncIterator[str]:
    clients = [Redis(host="127.0.0.1", port=n.port) for n in nodes]
    try:
        if (await clients[0].cluster("info"))["cluster_state"] != "ok":
            for i, client in enumerate(clients):
                first, last = i * 16384 // 3, (i + 1) * 16384 // 3 - 1
                await client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for node in nodes[1:]:
                await clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
            async with asyncio.timeout(20):
                while True:  # the nodes gossip until they agree
                    infos = [await c.cluster("info") for c in clients]
                    if all(i["cluster_state"] == "ok" for i in infos):
                        break
                    await asyncio.sleep(0.05)
        for client in clients:
            await client.flushall()
        yield f"redis://127.0.0.1:{nodes[0].port}/0"
    finally:
        for client in clients:
            await client.aclose()


async def test_one_load_per_key_and_broadcasts_across_a_cluster(cluster_url: str) -> None:
    clients = [RedisCluster.from_url(cluster_url) for _ in range(2)]
    tiers = [RedisTier(c, namespace="cl", secret=b"s" * 32, op_timeout=5.0) for c in clients]
    try:
        a, b = (AsyncCache[int, int](ttl=60, shared=t, name="c") for t in tiers)
        calls = 0

        async def load(key: int) -> int:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.02)
            return key * 3

        results = await asyncio.gather(
            *(c.get_or_compute(k, lambda k=k: load(k)) for c in (a, b) for k in range(30))
        )
        assert results == [k * 3 for _ in range(2) for k in range(30)]
        assert calls == 30  # keys spread over three nodes, one load each
        assert a.stats().shared_misses + b.stats().shared_misses == 30
        assert_stats(a, shared_errors=0)
        assert_stats(b, shared_errors=0)

        a.invalidate(3)
        async with asyncio.timeout(5):
            while 3 in b:  # noqa: ASYNC110 - another tier's L1
                await asyncio.sleep(0.005)
        a.clear()
        async with asyncio.timeout(5):
            while len(b):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        await tiers[0].settle()
        assert [k async for k in clients[0].scan_iter(match="ck:cl:*")] == []
    finally:
        for tier in tiers:
            await tier.aclose()
        for client in clients:
            await client.aclose()


async def test_bulk_loads_across_a_cluster(cluster_url: str) -> None:
    # The bulk read is a pipeline the cluster client splits by node; the stores go one
    # script per key (a multi-key script would cross slots).
    clients = [RedisCluster.from_url(cluster_url) for _ in range(2)]
    tiers = [RedisTier(c, namespace="cb", secret=b"s" * 32, op_timeout=5.0) for c in clients]
    try:
        a, b = (AsyncCache[int, int](ttl=60, shared=t, name="m") for t in tiers)
        loaded: list[int] = []

        async def load(keys: list[int]) -> dict[int, int]:
            loaded.extend(keys)
            await asyncio.sleep(0.02)
            return {k: k * 3 for k in keys}

        async with asyncio.timeout(10):
            results = await asyncio.gather(
                a.get_many(range(20), load), b.get_many(range(10, 30), load)
            )
        assert results == [{k: k * 3 for k in range(20)}, {k: k * 3 for k in range(10, 30)}]
        assert sorted(loaded) == list(range(30))  # keys on three nodes, each loaded once
        assert_stats(a, shared_errors=0)
        assert_stats(b, shared_errors=0)
    finally:
        for tier in tiers:
            await tier.aclose()
        for client in clients:
            await client.aclose()
