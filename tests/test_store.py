"""The policy stores: LRUStore behaves as cachetools.LRUCache; the hit path reads items."""

from __future__ import annotations

from typing import Any

import cachetools
from hypothesis import given
from hypothesis import strategies as st

from cachekit import AsyncCache
from cachekit._expiry import NEVER, Entry
from cachekit._store import LRUStore, items_of

OPS = st.lists(
    st.tuples(st.sampled_from(["set", "get", "del", "pop"]), st.integers(0, 6)), max_size=60
)


@given(ops=OPS, maxsize=st.integers(1, 4))
def test_lru_store_matches_cachetools_lru(ops: list[tuple[str, int]], maxsize: int) -> None:
    ours = LRUStore(maxsize)
    theirs: cachetools.LRUCache[Any, Any] = cachetools.LRUCache(maxsize)
    for op, key in ops:
        entry = Entry(key, key, NEVER)
        if op == "set":
            ours[key] = entry
            theirs[key] = entry
        elif op == "get":
            assert ours.get(key) is theirs.get(key)
        elif op == "del":
            if key in theirs:
                del ours[key]
                del theirs[key]
        elif theirs:
            assert ours.popitem() == theirs.popitem()
        assert set(ours) == set(theirs)  # the same items...
        assert ours.currsize == theirs.currsize
    while theirs:
        assert ours.popitem() == theirs.popitem()  # ...evicted in the same order
    assert len(ours) == 0


def test_lru_store_respects_getsizeof() -> None:
    store = LRUStore(10, getsizeof=lambda entry: entry.value)
    store["a"] = Entry("a", 6, NEVER)
    store["b"] = Entry("b", 3, NEVER)
    store["a"]  # a is now the most recent
    store["c"] = Entry("c", 4, NEVER)  # 13 > 10: b goes
    assert list(store) == ["a", "c"]
    assert store.currsize == 10


def test_the_hit_path_reads_the_stores_own_items() -> None:
    for policy in ("lru", "lfu", "fifo", "rr"):
        cache: AsyncCache[str, int] = AsyncCache(policy=policy)
        cache.set("k", 1)
        assert cache._entries is items_of(cache._store)
        assert list(cache._entries) == ["k"]


def test_a_user_ttl_store_expiring_on_its_own_stays_consistent() -> None:
    clock = [0.0]
    store: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(
        maxsize=10, ttl=5, timer=lambda: clock[0]
    )
    cache: AsyncCache[str, int] = AsyncCache(store=store)
    cache.set("k", 1)
    assert cache.get("k") == 1
    clock[0] = 6  # the store's own ttl ran out; it drops the item on its next write
    cache.set("other", 2)
    assert "k" not in cache
    assert cache.get("other") == 2
