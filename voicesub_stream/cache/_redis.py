"""Redis cache (redis.asyncio with hiredis) that degrades to a miss when Redis is away."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import time
import zlib
from typing import TYPE_CHECKING, Any, Literal

import redis.asyncio as redis
from redis.exceptions import RedisError

from ._base import Cache, CacheStatistics, Clock, decode, encode

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

logger = logging.getLogger(__name__)

SCHEMA = "v1"
Compression = Literal["gzip", "zlib"] | None


class CircuitBreaker:
    """Stops calling a backend that is failing, and tries again with exponential backoff.

    Closed: calls go through. After a failure it opens for ``base`` seconds (doubling on each
    failed retry up to ``maximum``), during which callers skip the backend; then one call is
    let through, and its success closes the circuit. Each outage is logged once, and so is
    the recovery.
    """

    def __init__(self, name: str, *, base: float = 0.5, maximum: float = 30.0,
                 clock: Clock = time.monotonic) -> None:
        self.name = name
        self.base, self.maximum = base, maximum
        self._clock = clock
        self._backoff = base
        self._retry_at: float | None = None  # None = closed
        self.opened = 0

    @property
    def is_open(self) -> bool:
        return self._retry_at is not None

    def allow(self) -> bool:
        return self._retry_at is None or self._clock() >= self._retry_at

    def success(self) -> None:
        if self._retry_at is not None:
            logger.warning("%s is reachable again; cache back in use", self.name)
        self._retry_at, self._backoff = None, self.base

    def failure(self, exc: BaseException) -> None:
        if self._retry_at is None:
            self.opened += 1
            logger.warning("%s unavailable (%s: %s); falling back, retrying with backoff",
                           self.name, type(exc).__name__, exc)
        else:
            self._backoff = min(self._backoff * 2, self.maximum)
        self._retry_at = self._clock() + self._backoff


class RedisCache(Cache):
    """Entries under ``{namespace}:v1:{key}``; values above ``compress_threshold`` bytes are
    compressed. ``get_many`` is one ``MGET`` and ``set_many`` one pipeline, so a batch costs
    one round trip. ``clear`` deletes this namespace only (``SCAN`` + ``UNLINK``).

    When Redis is down, slow (``socket_timeout``) or drops mid-stream, operations become
    misses and no-ops behind a :class:`CircuitBreaker`, so callers carry on without it.
    """

    def __init__(self, url: str = "redis://localhost:6379/0", *, namespace: str = "voicesub",
                 compression: Compression = "gzip", compress_threshold: int = 1024,
                 ttl: float | None = None, max_connections: int = 32,
                 socket_timeout: float = 1.0, breaker: CircuitBreaker | None = None) -> None:
        super().__init__()
        self.url = url
        self.prefix = f"{namespace}:{SCHEMA}:"
        self.compression = compression
        self.compress_threshold = compress_threshold
        self.ttl = ttl
        self.breaker = breaker or CircuitBreaker(f"Redis at {url}")
        self._client = redis.Redis.from_url(
            url, max_connections=max_connections, socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout, health_check_interval=30,
        )

    def _pack(self, value: Any) -> bytes:
        data = encode(value)
        if self.compression is None or len(data) <= self.compress_threshold:
            return b"r" + data
        if self.compression == "gzip":
            return b"g" + gzip.compress(data, compresslevel=5)
        return b"z" + zlib.compress(data, 5)

    @staticmethod
    def _unpack(raw: bytes) -> Any:
        tag, body = raw[:1], raw[1:]
        if tag == b"g":
            body = gzip.decompress(body)
        elif tag == b"z":
            body = zlib.decompress(body)
        elif tag != b"r":
            raise ValueError("not a voicesub cache entry")
        return decode(body)

    def _px(self, ttl: float | None) -> int | None:
        ttl = self.ttl if ttl is None else ttl
        return None if ttl is None else max(int(ttl * 1000), 1)

    async def get(self, key: str) -> Any | None:
        return (await self.get_many([key])).get(key)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        started = time.perf_counter()
        if not keys:
            return {}
        if not self.breaker.allow():
            self.stats.misses += len(keys)
            return {}
        try:
            raws = await self._client.mget([self.prefix + k for k in keys])
        except (RedisError, OSError) as exc:
            self.breaker.failure(exc)
            self.stats.errors += 1
            self.stats.misses += len(keys)
            return {}
        self.breaker.success()
        out, unreadable = {}, []
        for key, raw in zip(keys, raws, strict=True):
            if raw is None:
                self.stats.misses += 1
                continue
            try:
                out[key] = self._unpack(raw if isinstance(raw, bytes) else raw.encode())
                self.stats.hits += 1
            except (ValueError, OSError, EOFError, zlib.error) as exc:
                logger.warning("removing unreadable Redis entry %s: %s", key, exc)
                unreadable.append(self.prefix + key)
                self.stats.errors += 1
                self.stats.misses += 1
        if unreadable:
            # Left in place, a poisoned entry would be a miss on every request until it
            # expired; removed, the next run stores a good one.
            try:
                await self._client.delete(*unreadable)
            except (RedisError, OSError) as exc:
                self.breaker.failure(exc)
        self.stats.observe(started)
        return out

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self.set_many({key: value}, ttl)

    async def set_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        started = time.perf_counter()
        packed = {self.prefix + k: self._pack(v) for k, v in items.items()}
        if not packed or not self.breaker.allow():
            return
        px = self._px(ttl)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, raw in packed.items():
                    pipe.set(key, raw, px=px)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.breaker.failure(exc)
            self.stats.errors += 1
            return
        self.breaker.success()
        self.stats.sets += len(packed)
        self.stats.observe(started)

    async def delete(self, key: str) -> bool:
        self.stats.deletes += 1
        if not self.breaker.allow():
            return False
        try:
            removed = await self._client.delete(self.prefix + key)
        except (RedisError, OSError) as exc:
            self.breaker.failure(exc)
            self.stats.errors += 1
            return False
        self.breaker.success()
        return bool(removed)

    async def clear(self) -> None:
        try:
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=self.prefix + "*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await self._client.unlink(*batch)
                    batch = []
            if batch:
                await self._client.unlink(*batch)
        except (RedisError, OSError) as exc:
            self.breaker.failure(exc)
            self.stats.errors += 1

    def statistics(self) -> CacheStatistics:
        return dataclasses.replace(super().statistics(), circuit_open=self.breaker.is_open,
                                   outages=self.breaker.opened)

    async def aclose(self) -> None:
        await self._client.aclose()
