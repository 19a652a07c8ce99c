"""The policy stores: each keeps cachetools' Cache contract; LRUStore behaves as
cachetools.LRUCache; the hit path reads the store's own items."""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict
from typing import Any

import cachetools
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachekit import AsyncCache
from cachekit._expiry import NEVER, Entry
from cachekit._store import POLICIES, LRUStore, items_of

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


@given(
    hits=st.lists(st.integers(0, 7), max_size=40),
    dropped=st.one_of(st.none(), st.integers(0, 7)),
)
def test_replayed_hits_leave_the_order_that_hitting_each_in_turn_leaves(
    hits: list[int], dropped: int | None
) -> None:
    # Small batches are replayed hit by hit, large ones once per key (its last hit): both
    # must end in the order of the keys' last hits, a key dropped since its hit skipped.
    store = LRUStore(8)
    expected: OrderedDict[int, None] = OrderedDict()  # least recently used first
    for key in range(8):
        store[key] = Entry(key, key, NEVER)
        expected[key] = None
    if dropped is not None:
        del store[dropped], expected[dropped]
    for key in hits:
        if key in expected:
            expected.move_to_end(key)
    store.replay_hits(hits)
    assert list(store) == list(expected)
    assert [store.popitem()[0] for _ in range(len(expected))] == list(expected)


def test_lru_store_respects_getsizeof() -> None:
    store = LRUStore(10, getsizeof=lambda entry: entry.value)
    store["a"] = Entry("a", 6, NEVER)
    store["b"] = Entry("b", 3, NEVER)
    store["a"]  # a is now the most recent
    store["c"] = Entry("c", 4, NEVER)  # 13 > 10: b goes
    assert list(store) == ["a", "c"]
    assert store.currsize == 10


def test_the_hit_path_reads_the_stores_own_items() -> None:
    for policy in POLICIES:
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


# ----------------------------------------------------------------------------- the contract
# cachetools' behaviour contract for a Cache (its tests' CacheTestMixin), for every policy
# that `policy=` accepts: what a user of `store=` or of the class alone relies on.

STORE_CLASSES = sorted(POLICIES.items())


@pytest.fixture(params=[cls for _, cls in STORE_CLASSES], ids=[name for name, _ in STORE_CLASSES])
def store_class(request: pytest.FixtureRequest) -> Any:
    return request.param


def test_contract_defaults(store_class: Any) -> None:
    cache = store_class(maxsize=1)
    assert (len(cache), cache.maxsize, cache.currsize) == (0, 1, 0)
    assert cache.getsizeof(None) == cache.getsizeof("") == cache.getsizeof(0) == 1
    assert repr(cache).startswith(type(cache).__name__)


def test_contract_insert_keeps_the_bound_and_the_newest(store_class: Any) -> None:
    cache = store_class(maxsize=2)
    cache.update({1: 1, 2: 2})
    assert (len(cache), cache[1], cache[2]) == (2, 1, 2)
    cache[3] = 3
    assert (len(cache), cache[3]) == (2, 3)
    assert 1 in cache or 2 in cache
    cache[4] = 4
    assert (len(cache), cache[4]) == (2, 4)


def test_contract_update_replaces_values(store_class: Any) -> None:
    cache = store_class(maxsize=2)
    cache.update({1: 1, 2: 2})
    cache.update({1: "a", 2: "b"})
    assert (len(cache), cache[1], cache[2]) == (2, "a", "b")


def test_contract_delete_and_pop(store_class: Any) -> None:
    cache = store_class(maxsize=2)
    cache.update({1: 1, 2: 2})
    del cache[2]
    assert (len(cache), cache[1], 2 in cache) == (1, 1, False)
    with pytest.raises(KeyError):
        del cache[2]
    assert cache.pop(1) == 1
    assert len(cache) == 0
    with pytest.raises(KeyError):
        cache.pop(1)
    assert cache.pop(1, None) is None


def test_contract_popitem_empties_then_raises(store_class: Any) -> None:
    cache = store_class(maxsize=2)
    cache.update({1: 1, 2: 2})
    popped = {cache.popitem()[0], cache.popitem()[0]}
    assert popped == {1, 2}
    assert (len(cache), cache.currsize) == (0, 0)
    with pytest.raises(KeyError) as raised:
        cache.popitem()
    assert raised.value.__suppress_context__


def test_contract_missing_is_called_by_getitem_only(store_class: Any) -> None:
    class DefaultCache(store_class):  # type: ignore[misc,valid-type]
        def __missing__(self, key: Any) -> Any:
            self[key] = key
            return key

    cache = DefaultCache(maxsize=2)
    assert (cache[1], cache[2], len(cache)) == (1, 2, 2)
    assert (cache[3], len(cache), 3 in cache) == (3, 2, True)
    assert cache.get(5) is None  # get, pop and setdefault never call __missing__
    assert cache.pop(5, None) is None
    assert cache.setdefault(6, 6) == 6
    assert (len(cache), 6 in cache) == (2, True)


def test_contract_missing_that_does_not_store(store_class: Any) -> None:
    class DefaultCache(store_class):  # type: ignore[misc,valid-type]
        def __missing__(self, key: Any) -> Any:
            try:
                self[key] = key
            except ValueError:
                pass  # too large: not stored
            return key

    cache = DefaultCache(maxsize=2, getsizeof=lambda x: x)
    assert (cache[1], cache[2], len(cache), cache.currsize) == (1, 2, 1, 2)
    assert (cache[3], len(cache), cache.currsize) == (3, 1, 2)
    assert (cache[1], len(cache), cache.currsize) == (1, 1, 1)
    assert cache.popitem() == (1, 1)


@pytest.mark.parametrize("subclass", [False, True])
def test_contract_getsizeof_weighs_values(store_class: Any, subclass: bool) -> None:
    if subclass:

        class Sized(store_class):  # type: ignore[misc,valid-type]
            def getsizeof(self, value: Any) -> float:
                return float(value)

        cache = Sized(maxsize=3)
    else:
        cache = store_class(maxsize=3, getsizeof=lambda x: x)
    cache.update({1: 1, 2: 2})
    assert (len(cache), cache.currsize) == (2, 3)
    cache[1] = 2  # grows: the other key goes
    assert (len(cache), cache.currsize, cache[1], 2 in cache) == (1, 2, 2, False)
    cache.update({1: 1, 2: 2})
    cache[3] = 3
    assert (len(cache), cache.currsize, cache[3]) == (1, 3, 3)
    with pytest.raises(ValueError):
        cache[4] = 4  # larger than maxsize
    assert (len(cache), cache.currsize, cache[3]) == (1, 3, 3)


def test_contract_clear_then_reuse(store_class: Any) -> None:
    cache = store_class(maxsize=2)
    cache.update({1: 1, 2: 2})
    cache.clear()
    assert (len(cache), cache.currsize, 1 in cache) == (0, 0, False)
    cache.update({3: 3, 4: 4})
    cache[5] = 5
    assert (len(cache), 5 in cache) == (2, True)


@pytest.mark.parametrize("n", [0, 1, 2_000])
def test_contract_pickle_round_trip(store_class: Any, n: int) -> None:
    source = store_class(maxsize=n)
    source.update((i, i) for i in range(n))
    cache = pickle.loads(pickle.dumps(source))
    assert cache == source  # Mapping equality reads every item: no reordering meanwhile
    assert list(cache.items()) == list(source.items())
    assert list(cache.values()) == list(range(n))
    if n:
        cache[n] = n  # still evicts to stay within the bound
        assert (len(cache), n in cache) == (n, True)


def test_contract_copy_is_independent(store_class: Any) -> None:
    if store_class.__module__ == "cachetools" and "__copy__" not in vars(cachetools.Cache):
        pytest.skip("cachetools before 7.1 copies its own caches shallowly (its behaviour)")
    source = store_class(maxsize=3)
    source.update({1: 1, 2: 2})
    twin = copy.copy(source)
    twin[3] = 3
    del twin[1]
    assert (dict(source), dict(twin)) == ({1: 1, 2: 2}, {2: 2, 3: 3})
    source[4] = 4
    assert (len(source), 4 in source, 4 in twin) == (3, True, False)
