"""cachekit: an asyncio memoizing cache that never runs the same call twice at once."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
