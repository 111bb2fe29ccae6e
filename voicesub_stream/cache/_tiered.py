"""Memory in front of a slower shared tier."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ._base import Cache, CacheStatistics

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._memory import MemoryCache


class TieredCache(Cache):
    """Reads try ``front`` then ``back`` and promote what ``back`` had; writes go to both.

    When the back tier is away (a Redis behind its circuit breaker) the front keeps serving,
    which is the fallback: the process loses sharing, never correctness.
    """

    def __init__(self, front: MemoryCache, back: Cache) -> None:
        super().__init__()
        self.front, self.back = front, back

    async def get(self, key: str) -> Any | None:
        return (await self.get_many([key])).get(key)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        found = await self.front.get_many(keys)
        missing = [k for k in keys if k not in found]
        if missing:
            promoted = await self.back.get_many(missing)
            for key, value in promoted.items():
                self.front.set_nowait(key, value)
            found.update(promoted)
        self.stats.hits += len(found)
        self.stats.misses += len(keys) - len(found)
        return found

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self.set_many({key: value}, ttl)

    async def set_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        await self.front.set_many(items, ttl)
        await self.back.set_many(items, ttl)
        self.stats.sets += len(items)

    async def delete(self, key: str) -> bool:
        front = await self.front.delete(key)
        return await self.back.delete(key) or front

    async def clear(self) -> None:
        await self.front.clear()
        await self.back.clear()

    def trim(self, fraction: float) -> int:
        return self.front.trim(fraction)

    def statistics(self) -> CacheStatistics:
        return dataclasses.replace(super().statistics(), front=self.front.statistics(),
                                   back=self.back.statistics())

    async def aclose(self) -> None:
        await self.front.aclose()
        await self.back.aclose()
