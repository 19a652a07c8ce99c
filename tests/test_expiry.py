"""The expiry queue: what it reclaims, when it says there is nothing to look at, compaction."""

from __future__ import annotations

from collections.abc import Hashable

from cachekit import AsyncCache
from cachekit._expiry import NEVER, Entry, ExpiryQueue, Failure, RefreshingEntry

from .conftest import FakeClock


def test_plain_entries_are_reclaimable_and_stale_at_their_expiry() -> None:
    entry = Entry("k", 1, 5.0)
    failure = Failure("k", ValueError("x"), 7.0)
    refreshing = RefreshingEntry("k", 1, 1.0, 2.0, 3.0, 4.0)
    assert (entry.stale_until, entry.reclaim_at) == (5.0, 5.0)
    assert (failure.stale_until, failure.reclaim_at) == (7.0, 7.0)
    assert (refreshing.expires_at, refreshing.stale_until, refreshing.reclaim_at) == (1, 3, 4)
    entry.expires_at = 6.0
    assert entry.reclaim_at == 6.0


def test_next_at_is_the_soonest_head_and_moves_as_entries_leave() -> None:
    queue = ExpiryQueue()
    assert queue.next_at == NEVER
    queue.push(Entry("a", 1, 10.0), 10.0)
    queue.push(Entry("b", 1, 12.0), 10.0)
    queue.push(Entry("c", 1, 5.0), 3.0)
    assert queue.next_at == 5.0
    assert queue.pop_expired(4.9, 32) == []
    assert queue.next_at == 5.0
    assert [e.key for e in queue.pop_expired(10.0, 32)] == ["a", "c"]
    assert queue.next_at == 12.0
    assert [e.key for e in queue.pop_expired(20.0, 32)] == ["b"]
    assert (queue.next_at, queue.size) == (NEVER, 0)


def test_next_at_covers_the_heap_past_the_fifos() -> None:
    queue = ExpiryQueue()
    for ttl in range(1, 12):  # more distinct ttls than fifos: the rest go to the heap
        queue.push(Entry(ttl, 1, 100.0 - ttl), float(ttl))
    assert queue.next_at == 89.0
    assert [e.key for e in queue.pop_expired(89.0, 32)] == [11]
    assert queue.next_at == 90.0


def test_compact_keeps_only_stored_entries_in_order() -> None:
    queue = ExpiryQueue()
    stored: dict[Hashable, Entry] = {}
    entries = [Entry(i, i, 10.0 + i) for i in range(20)]
    for i, entry in enumerate(entries):
        queue.push(entry, 10.0 if i < 10 else float(i))  # one fifo, then heap and fifos
        if i % 3 == 0:
            stored[entry.key] = entry
    stored[1] = Entry(1, "replaced", 50.0)  # same key, another entry: not current
    queue.compact(stored.get)
    assert queue.size == len([k for k in stored if k != 1])
    assert queue.next_at == 10.0
    assert [e.key for e in queue.pop_expired(100.0, 100)] == [0, 3, 6, 9, 12, 15, 18]


async def test_a_busy_cache_keeps_its_expiry_queue_bounded(clock: FakeClock) -> None:
    """Misses that evict entries long before their ttl: the queue is compacted, not grown."""
    cache: AsyncCache[int, int] = AsyncCache(maxsize=10, ttl=60, timer=clock)

    async def same(key: int) -> int:
        return key

    for key in range(5_000):
        assert await cache.get_or_compute(key, lambda key=key: same(key)) == key
    assert len(cache) == 10
    assert cache._expiry.size <= 2 * 10 + 1024 + 1
    held = cache._expiry.size
    assert await cache.get_or_compute(-1, lambda: same(-1)) == -1
    assert cache._expiry.size == held + 1  # nothing due: nothing looked at
    clock.tick(61)
    assert await cache.get_or_compute(-2, lambda: same(-2)) == -2  # reclaims as it writes
    assert cache._expiry.size == held + 1 - 32 + 1  # one budget's worth, then the new one
