"""What differs between the cachetools versions that cachekit supports (5.3 to 8).

cachetools 7.1 gave `Cache` a `__copy__` whose copy owns its items, and a `clear()` that
empties every store in place. Before, a copy was shallow (it shared the items dict), and
`clear()` was MutableMapping's: one `popitem()` per item.
"""

from __future__ import annotations

import inspect
from typing import Any, Final, TypeVar

import cachetools

S = TypeVar("S", bound=cachetools.Cache[Any, Any])


def copy_cache(store: S) -> S:
    """A copy of a `cachetools.Cache` whose items and sizes are its own, as
    `cachetools.Cache.__copy__` makes from 7.1 on, for a subclass's `__copy__` to build on."""
    cls = type(store)
    twin = cls.__new__(cls)
    state = vars(twin)
    state.update(vars(store))
    state["_Cache__data"] = state["_Cache__data"].copy()
    if state.get("_Cache__size") is not None:
        state["_Cache__size"] = state["_Cache__size"].copy()
    return twin


#: cachetools 7.1 and newer clear every store in place, without looking a key up. Before,
#: `clear()` was MutableMapping's: one `popitem()` per item, which counts it as an eviction,
#: costs O(n) per item in an LFUCache, and stops at the first key that cannot be found.
_CLEARS_IN_PLACE: Final = "clear" in vars(cachetools.Cache)


def empty(store: cachetools.Cache[Any, Any]) -> None:
    """Remove every item without looking one up, counting no eviction.

    The store stays the same object, and so does the dict of its items that the hit path
    reads. Where `clear()` would go through `popitem()` (cachetools before 7.1), or did not
    empty the store (a key that cannot be found), the store is initialised afresh instead;
    a store whose `__init__` takes other arguments is cleared by `popitem()` after all,
    unreported (no eviction is counted).
    """
    items = vars(store)["_Cache__data"]
    if _CLEARS_IN_PLACE:
        store.clear()
        if not items:
            return
    getsizeof = vars(store).get("getsizeof")  # the instance's own: size_entries_by_value's
    init = type(store).__init__
    try:
        inspect.signature(init).bind(store, store.maxsize, getsizeof=getsizeof)
    except TypeError:  # a class of its own (TTLCache needs its ttl): pop by pop, unhooked
        hook = vars(store).pop("popitem", None)
        try:
            store.clear()
        finally:
            if hook is not None:
                store.popitem = hook  # type: ignore[method-assign]
        return
    aliases = [name for name, value in vars(store).items() if value is items]
    items.clear()
    init(store, store.maxsize, getsizeof=getsizeof)
    for name in aliases:  # the new dict(s) give way to the one the hit path holds
        setattr(store, name, items)
