"""Async caches for transcriptions (and, later, translations).

Backends share one interface (:class:`Cache`): :class:`MemoryCache` (LRU + TTL),
:class:`FileCache` (atomic files, several processes), :class:`RedisCache` (pooled,
compressed, pipelined, behind a circuit breaker) and :class:`TieredCache` (memory in front of
either). :func:`cached` memoises functions with single flight.

Why not aiocache's backends as they are: its memory cache has no size bound or LRU order,
it has no file backend, its Redis backend has no fallback when Redis goes away and no
pipelined multi-set with TTLs, and its ``cached`` decorator does not coalesce concurrent
misses. What we take from the ecosystem instead: redis.asyncio (+ hiredis) for the protocol,
aiofiles for file I/O. Every other backend plugs in through aiocache: :class:`AiocacheCache`
takes any aiocache cache (memcached, with its serializers and plugins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ._aiocache import AiocacheCache
from ._base import Cache, CacheStatistics, CacheStats
from ._decorator import cached, make_key
from ._file import FileCache
from ._memory import MemoryCache
from ._redis import CircuitBreaker, RedisCache
from ._tiered import TieredCache

if TYPE_CHECKING:
    from .._config import CacheConfig

__all__ = (
    "AiocacheCache",
    "Cache",
    "CacheStatistics",
    "CacheStats",
    "CircuitBreaker",
    "FileCache",
    "MemoryCache",
    "RedisCache",
    "TieredCache",
    "cached",
    "make_cache",
    "make_key",
)


def make_cache(config: CacheConfig) -> Cache | None:
    """The cache ``config.kind`` names (``none`` gives ``None``)."""
    kind, ttl = config.kind, config.ttl
    if kind == "none":
        return None
    if kind == "aiocache":
        if not config.url:
            raise ConfigError("cache_type 'aiocache' needs cache_url (VOICESUB_CACHE_URL), "
                              "e.g. memcached://127.0.0.1:11211")
        return AiocacheCache.from_url(config.url, ttl=ttl)
    memory = MemoryCache(max_size=config.max_size, ttl=ttl)
    if kind == "memory":
        return memory
    back: Cache
    if kind == "file" or (kind == "tiered" and not config.redis_url):
        back = FileCache(config.directory, ttl=ttl)
    else:
        back = RedisCache(config.redis_url or "redis://localhost:6379/0", ttl=ttl)
    return TieredCache(memory, back) if kind == "tiered" else back
