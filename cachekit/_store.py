"""The policy store: a cachetools cache that decides which completed entry goes.

The store holds completed entries only (never flights). The hit path reads the dict in
which the store keeps its items directly (see `items_of`), so an entry costs one dict slot,
not two, and hits are replayed into the store's order in batches (see `hit_replayer`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, ItemsView, Iterable, Iterator, ValuesView
from typing import Any, Final, Literal, get_args

import cachetools

from ._cachetools_compat import copy_cache
from ._expiry import Entry
from ._tinylfu import TinyLFUCache

Store = cachetools.Cache[Hashable, Entry]

#: The names `policy=` accepts (the keys of POLICIES, which a check below keeps equal).
Policy = Literal["lru", "lfu", "fifo", "rr", "tinylfu"]

_UNBOUNDED: Final = float("inf")

# Up to this many hits, replaying each is cheaper than finding each key's last one first
# (instructions per operation of a Zipf stream of hits and misses, 3.12: 1 -> 21.2k,
# 8 -> 19.9k, 16 -> 19.8k, 32 done in C -> 20.7k).
_REPLAYED_AS_IS: Final = 16


class LRUStore(cachetools.Cache[Hashable, Entry]):
    """Least recently used first, with one OrderedDict holding both items and order.

    It behaves as `cachetools.LRUCache`, which keeps its items in a dict and their order in
    a second OrderedDict; here the OrderedDict is the items dict itself (about 50 bytes an
    entry fewer), and `OrderedDict.move_to_end` and its first key keep the order.
    """

    #: Told of every entry evicted for room (see `hook_evictions`). A class default, so
    #: that re-initialising a store in place (`empty`) keeps the instance's own.
    _on_evict: Callable[[Hashable, Entry], None] | None = None

    def __init__(self, maxsize: float, getsizeof: Callable[[Entry], float] | None = None) -> None:
        super().__init__(maxsize, getsizeof)
        # Invariant: the items, least recently used first.
        self._order: OrderedDict[Hashable, Entry] = OrderedDict()
        self._Cache__data = self._order
        # With unit weights (no getsizeof), this class stores and drops items itself, as
        # TinyLFUCache does: Cache's __setitem__, popitem and __delitem__ cost a Python call
        # each on every miss. The size is then the item count (see `currsize`). With
        # weights, Cache's own methods store into `_order` and keep the sizes.
        self._unit = self.getsizeof is cachetools.Cache.getsizeof
        self._capacity = maxsize

    def __getitem__(self, key: Hashable) -> Entry:
        entry = super().__getitem__(key)
        try:
            self._order.move_to_end(key)
        except KeyError:  # a subclass's __missing__ may return a value it did not store
            pass
        return entry

    def __setitem__(self, key: Hashable, entry: Entry) -> None:
        order = self._order
        if not self._unit:
            super().__setitem__(key, entry)
            order.move_to_end(key)
        elif key in order:
            order[key] = entry
            order.move_to_end(key)
        else:
            if self._capacity < 1:
                raise ValueError("value too large")
            while len(order) >= self._capacity:
                evicted, dropped = order.popitem(last=False)
                report = self._on_evict
                if report is not None:
                    report(evicted, dropped)
            order[key] = entry  # a new key goes last: the most recently used

    def __delitem__(self, key: Hashable) -> None:
        if self._unit:
            del self._order[key]
        else:
            super().__delitem__(key)

    @property
    def currsize(self) -> float:
        return len(self._order) if self._unit else super().currsize

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({dict(self._order)!r}, maxsize={self.maxsize!r}, "
            f"currsize={self.currsize!r})"
        )

    def __copy__(self) -> LRUStore:
        twin = copy_cache(self)
        twin._order = twin._Cache__data  # copy_cache copied the items (and the order)
        return twin

    # Reading every item is not a use of each: these views read the items in place, as
    # cachetools.LRUCache's do, where Mapping's would call __getitem__ and reorder the
    # OrderedDict under its own iterator (RuntimeError).
    def items(self) -> ItemsView[Hashable, Entry]:
        return self._order.items()

    def values(self) -> ValuesView[Entry]:
        return self._order.values()

    def replay_hits(self, keys: list[Hashable]) -> None:
        """Replay a batch of hits, oldest first: only each key's last hit decides where it
        ends up. A small batch (every miss drains the hits since the last one, a listener
        each hit) is replayed as it is; a large one once per key, in C."""
        move = self._order.move_to_end
        try:
            if len(keys) <= _REPLAYED_AS_IS:
                for key in keys:
                    move(key)
            else:
                deque(map(move, _last_hits(keys)), maxlen=0)  # the loop runs in C
        except KeyError:  # another thread dropped a key after its hit: replay the rest
            for key in _last_hits(keys):
                if key in self._order:
                    move(key)

    def popitem(self) -> tuple[Hashable, Entry]:
        """Remove and return the least recently used item (reported as an eviction)."""
        try:
            key = next(iter(self._order))
        except StopIteration:
            raise KeyError(f"{type(self).__name__} is empty") from None
        entry = self._order[key]
        del self[key]
        if self._on_evict is not None:
            self._on_evict(key, entry)
        return key, entry


def items_of(store: Store) -> dict[Hashable, Entry]:
    """The dict in which a `cachetools.Cache` keeps its items.

    cachetools keeps them in the private attribute `Cache.__data` (so `_Cache__data` on the
    instance) in every version since 1.0; reading it is what lets the hit path skip
    `Cache.__getitem__`, which costs several hundred nanoseconds.
    """
    items = vars(store).get("_Cache__data")
    if not isinstance(items, dict):
        raise TypeError(f"store must be initialised by cachetools.Cache.__init__, got {store!r}")
    return items


def _policies() -> dict[str, Callable[[float], Store]]:
    table: dict[str, Callable[[float], Store]] = {
        "lru": LRUStore,
        "lfu": cachetools.LFUCache,
        "fifo": cachetools.FIFOCache,
        "rr": cachetools.RRCache,
        "tinylfu": TinyLFUCache,
    }
    return table


POLICIES: Final = _policies()
assert tuple(POLICIES) == get_args(Policy), "Policy and POLICIES name the same policies"


def make_store(policy: str, maxsize: int | None) -> Store:
    """A fresh store for a policy name; `maxsize=None` means unbounded."""
    return POLICIES[policy](_UNBOUNDED if maxsize is None else maxsize)


def _last_hits(keys: list[Hashable]) -> Iterator[Hashable]:
    """Each key once, at the place of its last hit: all that matters to an LRU order."""
    return reversed(dict.fromkeys(reversed(keys)))


def _replay_reads(store: Store, keys: Iterable[Hashable]) -> None:
    for key in keys:
        try:
            store[key]  # a read is what moves a key in a cachetools policy
        except KeyError:  # dropped since it was hit
            pass


def hit_replayer(store: Store) -> Callable[[list[Hashable]], None] | None:
    """How a batch of hits (keys in hit order) is replayed into the store, None if hits do
    not change its order (FIFO, RR). Every other policy sees each hit as a read."""
    if isinstance(store, LRUStore | TinyLFUCache):
        return store.replay_hits  # TinyLFUCache's counts every hit: frequency matters
    if isinstance(store, cachetools.LRUCache):
        return lambda keys: _replay_reads(store, _last_hits(keys))
    if isinstance(store, cachetools.FIFOCache | cachetools.RRCache):
        return None
    return lambda keys: _replay_reads(store, keys)


def is_hooked(store: Store) -> bool:
    """True when `hook_evictions` has already claimed this store for some cache."""
    return "popitem" in vars(store) or "_on_evict" in vars(store)


def hook_evictions(store: Store, on_evict: Callable[[Hashable, Entry], None]) -> None:
    """Call `on_evict(key, entry)` for every entry the store drops to make room.

    cachetools evicts by calling `self.popitem()` from `__setitem__`; an instance attribute
    shadows the class method, so this works for any `cachetools.Cache`, subclasses included.
    An LRUStore, which evicts inline, is told directly instead.
    """
    if isinstance(store, LRUStore):
        store._on_evict = on_evict
        return
    popitem = store.popitem

    def popitem_and_report() -> tuple[Hashable, Entry]:
        key, entry = popitem()
        on_evict(key, entry)
        return key, entry

    store.popitem = popitem_and_report  # type: ignore[method-assign]


def size_entries_by_value(store: Store) -> None:
    """Make a store's own `getsizeof` weigh an entry by its value, as its owner expects.

    A cached failure weighs 1.
    """
    getsizeof: Callable[[Any], float] = store.getsizeof
    if getsizeof is cachetools.Cache.getsizeof:
        return

    def getsizeof_entry(entry: Entry) -> float:
        return getsizeof(entry.value) if type(entry) is Entry else 1

    store.getsizeof = getsizeof_entry  # type: ignore[method-assign,assignment]


def unfindable_keys(items: dict[Hashable, Entry]) -> list[Hashable]:
    """The keys a store's dict holds but can no longer find: their hash or equality changed
    after they were stored (a mutated key). O(n): only after the store has failed."""
    lost = []
    for key in list(dict.keys(items)):  # dict's own iteration: OrderedDict's looks keys up
        try:
            found = key in items
        except Exception:  # its __hash__ or __eq__ now raises
            found = False
        if not found:
            lost.append(key)
    return lost
