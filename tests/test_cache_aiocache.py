"""Any aiocache cache as the engine's cache: a real memcached, started by a fixture."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from aiocache import MemcachedCache
from aiocache.plugins import HitMissRatioPlugin
from aiocache.serializers import JsonSerializer

from voicesub_stream import Engine, Settings
from voicesub_stream.cache import AiocacheCache, make_cache
from voicesub_stream.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import MemcachedServer


def memcached(server: MemcachedServer, **options: object) -> MemcachedCache:
    return MemcachedCache(endpoint="127.0.0.1", port=server.port, **options)


async def test_the_adapter_stores_reads_and_expires_in_memcached(
        memcached_server: MemcachedServer) -> None:
    plugin = HitMissRatioPlugin()
    async with AiocacheCache(memcached(memcached_server, serializer=JsonSerializer(),
                                       plugins=[plugin]), ttl=60) as cache:
        segments = [{"start": 0.0, "end": 1.5, "text": "hello", "words": []}]
        await cache.set("transcript:abc", segments)
        assert await cache.get("transcript:abc") == segments
        assert await cache.get("transcript:missing") is None
        await cache.set_many({"a": 1, "b": [2, 3]})
        assert await cache.get_many(["a", "b", "c"]) == {"a": 1, "b": [2, 3]}
        assert await cache.delete("a")
        assert not await cache.delete("a")
        await cache.set("short", "lived", ttl=1)  # memcached keeps whole seconds
        await anyio.sleep(2.1)
        assert await cache.get("short") is None
        stats = cache.statistics()
        assert stats.backend == "aiocache.MemcachedCache"
        assert (stats.hits, stats.misses, stats.sets, stats.deletes, stats.errors) == (
            3, 3, 4, 1, 0)
        # aiocache's own plugins see the calls the adapter makes.
        assert cache.cache.hit_miss_ratio["total"] >= 2


async def test_memcached_going_away_reads_as_misses_and_never_fails_a_stream(
        memcached_server: MemcachedServer, espeak_wav: Path) -> None:
    cache = AiocacheCache(memcached(memcached_server, timeout=1))
    await cache.set("k", "v")
    memcached_server.stop()
    assert await cache.get("k") is None
    await cache.set("k", "v")
    assert cache.statistics().errors >= 2
    settings = Settings.load(model="tiny.en", device="cpu", offline=True)
    async with (Engine(settings, cache=cache) as engine,
                engine.transcribe_stream(espeak_wav) as stream):
        segments = [s async for s in stream]
    assert segments  # transcribed all the same, with no cache to hold it
    await cache.aclose()


@pytest.mark.speech
async def test_engines_share_transcriptions_through_memcached(
        memcached_server: MemcachedServer, espeak_wav: Path, tmp_path: Path) -> None:
    """Two engines (two machines, say) with ``cache_type=aiocache`` on one memcached: the
    second is served the first one's transcription without running the model."""
    settings = Settings.load(model="tiny.en", device="cpu", offline=True,
                             cache_type="aiocache", cache_url=memcached_server.url,
                             cache_dir=tmp_path)
    results = []
    for _ in range(2):
        async with Engine(settings) as engine:
            assert type(engine.cache) is AiocacheCache
            async with engine.transcribe_stream(espeak_wav) as stream:
                texts = [s.text async for s in stream]
                results.append((texts, stream.statistics().cache))
    (first, miss), (second, hit) = results
    assert (miss, hit) == ("miss", "hit")
    assert second == first


def test_aiocache_settings_are_checked() -> None:
    from voicesub_stream._config import CacheConfig

    with pytest.raises(ConfigError, match="cache_url"):
        make_cache(CacheConfig(kind="aiocache"))
    with pytest.raises(ConfigError, match="cannot use the cache URL"):
        make_cache(CacheConfig(kind="aiocache", url="gopher://nowhere"))
