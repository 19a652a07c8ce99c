"""The policy store: a cachetools cache that decides which completed entry goes.

The store holds completed entries only (never flights). The coordinator mirrors it in a
plain dict for the hit path and replays hits into it in batches (see `TouchMode`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable
from typing import Any, Final

import cachetools

from ._expiry import Entry

Store = cachetools.Cache[Hashable, Entry]

_UNBOUNDED: Final = float("inf")


class TouchMode(enum.Enum):
    """How a batch of hits is replayed into the store's order."""

    #: Only the last hit of each key matters (LRU): replay each key once, in last-hit order.
    LAST = "last"
    #: Every hit counts (LFU, TinyLFU, unknown policies): replay every hit in order.
    EVERY = "every"
    #: Hits do not change the order (FIFO, RR): replay nothing.
    NONE = "none"


def _policies() -> dict[str, Callable[[float], Store]]:
    table: dict[str, Callable[[float], Store]] = {
        "lru": cachetools.LRUCache,
        "lfu": cachetools.LFUCache,
        "fifo": cachetools.FIFOCache,
        "rr": cachetools.RRCache,
    }
    return table


POLICIES: Final = _policies()


def make_store(policy: str, maxsize: int | None) -> Store:
    """A fresh store for a policy name; `maxsize=None` means unbounded."""
    return POLICIES[policy](_UNBOUNDED if maxsize is None else maxsize)


def touch_mode(store: Store) -> TouchMode:
    if isinstance(store, cachetools.LRUCache):
        return TouchMode.LAST
    if isinstance(store, cachetools.FIFOCache | cachetools.RRCache):
        return TouchMode.NONE
    return TouchMode.EVERY


def is_hooked(store: Store) -> bool:
    """True when `hook_evictions` has already claimed this store for some cache."""
    return "popitem" in vars(store)


def hook_evictions(store: Store, on_evict: Callable[[Hashable, Entry], None]) -> None:
    """Call `on_evict(key, entry)` for every entry the store drops to make room.

    cachetools evicts by calling `self.popitem()` from `__setitem__`; an instance attribute
    shadows the class method, so this works for any `cachetools.Cache`, subclasses included.
    """
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
