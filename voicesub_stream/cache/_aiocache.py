"""Any aiocache cache as the engine's cache: memcached, Redis or a backend of your own, with
the serializer and plugins you configured it with.

Transcription and translation keys are content hashes, the same on every machine, so a cache
that several engines share (memcached, Redis) serves a transcription made on one of them to
all the others.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import Cache, CacheStatistics

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from aiocache.base import BaseCache

logger = logging.getLogger("voicesub_stream.cache")


class AiocacheCache(Cache):
    """:class:`Cache` over an ``aiocache`` cache instance.

    Values go through the instance's serializer (aiocache's ``JsonSerializer`` for its
    memcached and Redis caches, which holds every transcription; ``bytes`` need a serializer
    that takes them). Its plugins see every call. Like every backend here, a failing call
    (the server down, a value over memcached's 1 MB) counts an error and reads as a miss; it
    never fails the stream. ``ttl`` is the default lifetime, in seconds, rounded up to whole
    seconds for backends that keep no finer time.

    ::

        from aiocache import MemcachedCache
        engine = Engine(cache=AiocacheCache(MemcachedCache(endpoint="10.0.0.5")))
    """

    def __init__(self, cache: BaseCache, *, ttl: float | None = None) -> None:
        super().__init__()
        self.cache = cache
        self.ttl = ttl

    @classmethod
    def from_url(cls, url: str, *, ttl: float | None = None) -> AiocacheCache:
        """``memcached://host:11211``, ``redis://host:6379/0`` or ``memory://``, as
        aiocache's ``Cache.from_url`` reads them.

        :raises ConfigError: aiocache is not installed, or cannot read the URL
        """
        try:
            from aiocache import Cache as Aiocache
        except ImportError:
            raise ConfigError("cache_type 'aiocache' needs aiocache: pip install "
                              "'voicesub-stream[aiocache]'") from None
        try:
            return cls(Aiocache.from_url(url), ttl=ttl)
        except Exception as exc:  # aiocache raises several kinds for a bad URL
            raise ConfigError(f"aiocache cannot use the cache URL {url!r}: {exc}") from exc

    def _ttl(self, ttl: float | None) -> int | None:
        ttl = self.ttl if ttl is None else ttl
        return None if ttl is None else max(1, math.ceil(ttl))

    def _failed(self, what: str, exc: Exception) -> None:
        self.stats.errors += 1
        logger.warning("aiocache %s failed: %s: %s", what, type(exc).__name__, exc)

    async def get(self, key: str) -> Any | None:
        started = time.perf_counter()
        try:
            value = await self.cache.get(key)
        except Exception as exc:
            self._failed("get", exc)
            value = None
        self.stats.observe(started)
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        started = time.perf_counter()
        try:
            values = await self.cache.multi_get(keys)
        except Exception as exc:
            self._failed("multi_get", exc)
            values = [None] * len(keys)
        self.stats.observe(started)
        found = {k: v for k, v in zip(keys, values, strict=True) if v is not None}
        self.stats.hits += len(found)
        self.stats.misses += len(keys) - len(found)
        return found

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        try:
            await self.cache.set(key, value, ttl=self._ttl(ttl))
        except Exception as exc:
            self._failed("set", exc)
        else:
            self.stats.sets += 1

    async def set_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        if not items:
            return
        try:
            await self.cache.multi_set(list(items.items()), ttl=self._ttl(ttl))
        except Exception as exc:
            self._failed("multi_set", exc)
        else:
            self.stats.sets += len(items)

    async def delete(self, key: str) -> bool:
        try:
            deleted = bool(await self.cache.delete(key))
        except Exception as exc:
            self._failed("delete", exc)
            return False
        self.stats.deletes += deleted
        return deleted

    async def clear(self) -> None:
        try:
            await self.cache.clear()
        except Exception as exc:
            self._failed("clear", exc)

    def statistics(self) -> CacheStatistics:
        return self.stats.snapshot(f"aiocache.{type(self.cache).__name__}")

    async def aclose(self) -> None:
        try:
            await self.cache.close()
        except Exception as exc:
            self._failed("close", exc)
