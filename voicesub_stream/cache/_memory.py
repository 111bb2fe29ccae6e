"""In-process LRU cache with a size cap and per-entry TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ._base import Cache, Clock

if TYPE_CHECKING:
    from collections.abc import Iterable


class MemoryCache(Cache):
    """LRU of at most ``max_size`` entries; every operation is O(1).

    aiocache's ``SimpleMemoryCache`` has TTLs but no size bound and no LRU order (and it
    expires entries with one event-loop timer each); this keeps an ``OrderedDict`` in use
    order and checks expiry lazily on access, so it needs no timers and no event loop.
    Values are stored as given (no copy): treat what you put in as immutable.
    """

    def __init__(self, *, max_size: int = 10_000, ttl: float | None = None,
                 clock: Clock = time.monotonic) -> None:
        super().__init__()
        self.max_size = max_size
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[Any, float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    async def get(self, key: str) -> Any | None:
        return self.get_nowait(key)

    def get_nowait(self, key: str) -> Any | None:
        started = time.perf_counter()
        entry = self._data.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= self._clock():
            del self._data[key]
            entry = None
        if entry is None:
            self.stats.misses += 1
        else:
            self._data.move_to_end(key)
            self.stats.hits += 1
        self.stats.observe(started)
        return None if entry is None else entry[0]

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.set_nowait(key, value, ttl)

    def set_nowait(self, key: str, value: Any, ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else ttl
        self._data[key] = (value, None if ttl is None else self._clock() + ttl)
        self._data.move_to_end(key)
        self.stats.sets += 1
        while len(self._data) > self.max_size:
            self._data.popitem(last=False)
            self.stats.evictions += 1

    async def delete(self, key: str) -> bool:
        self.stats.deletes += 1
        return self._data.pop(key, None) is not None

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return {k: v for k in keys if (v := self.get_nowait(k)) is not None}

    async def clear(self) -> None:
        self._data.clear()

    def trim(self, fraction: float) -> int:
        drop = min(len(self._data), round(len(self._data) * fraction))
        for _ in range(drop):
            self._data.popitem(last=False)
        self.stats.evictions += drop
        return drop
