"""cachekit: an asyncio memoizing cache that never runs the same call twice at once.

A caller either gets a fresh result, joins the one computation already under way for its
key, or starts it. Completed results expire (TTL), are evicted by a cachetools policy, and
failures can be cached for a short while (negative caching).
"""

from ._bulk import BulkCachedFunction, async_cached_many
from ._cache import AsyncCache, LoadTimeoutError
from ._decorator import CachedFunction, async_cached
from ._events import CacheEvent
from ._limits import LoadLimiter
from ._stats import CacheStats
from ._tinylfu import TinyLFUCache

__version__ = "0.1.0"

__all__ = [
    "AsyncCache",
    "BulkCachedFunction",
    "CacheEvent",
    "CacheStats",
    "CachedFunction",
    "LoadLimiter",
    "LoadTimeoutError",
    "TinyLFUCache",
    "async_cached",
    "async_cached_many",
    "__version__",
]
