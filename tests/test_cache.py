"""Caches: memory, file (several processes), real Redis (killed and restarted), tiered,
and the single-flight decorator."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from typing import TYPE_CHECKING

import anyio
import pytest

from voicesub_stream.cache import (
    CircuitBreaker,
    FileCache,
    MemoryCache,
    RedisCache,
    TieredCache,
    cached,
    make_key,
)
from voicesub_stream.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import RedisServer

VALUES = [
    "plain text",
    "Ünïcödé — 日本語のテキスト — emoji 🎙️",
    {"segments": [{"text": "héllo", "start": 0.5}], "n": 3, "ok": True, "none": None},
    bytes(range(256)) * 40,  # binary, and long enough to be compressed in Redis
    "x" * 5000,
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- memory -------------------------------------------------------------------------------

async def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_size=3)
    for key in "abc":
        await cache.set(key, key.upper())
    assert await cache.get("a") == "A"  # a is now the most recently used
    await cache.set("d", "D")
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in "acd"] == ["A", "C", "D"]
    stats = cache.statistics()
    assert stats.evictions == 1
    assert stats.hits == 4
    assert stats.misses == 1
    assert stats.hit_ratio == pytest.approx(0.8)


async def test_memory_ttl_follows_the_clock() -> None:
    clock = Clock()
    cache = MemoryCache(ttl=10, clock=clock)
    await cache.set("default", 1)
    await cache.set("short", 2, ttl=1)
    clock.now += 5
    assert await cache.get_many(["default", "short"]) == {"default": 1}
    clock.now += 6
    assert await cache.get("default") is None
    assert len(cache) == 0


# -- file -----------------------------------------------------------------------------------

async def test_file_cache_round_trips_every_kind_of_value(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    for i, value in enumerate(VALUES):
        await cache.set(f"k{i}", value)
    assert [await cache.get(f"k{i}") for i in range(len(VALUES))] == VALUES
    assert await cache.delete("k0")
    assert await cache.get("k0") is None


async def test_file_ttl_follows_the_clock(tmp_path: Path) -> None:
    clock = Clock()
    cache = FileCache(tmp_path, ttl=60, clock=clock)
    await cache.set("k", "v")
    clock.now += 59
    assert await cache.get("k") == "v"
    clock.now += 2
    assert await cache.get("k") is None


async def test_corrupt_file_entry_is_a_logged_miss_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = FileCache(tmp_path)
    await cache.set("k", "x" * 1000)
    path = cache._path("k")
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with caplog.at_level(logging.WARNING):
        assert await cache.get("k") is None
    assert "corrupt" in caplog.text
    assert not path.exists()
    assert cache.statistics().errors == 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage")
    assert await cache.get("k") is None


async def test_a_fifo_in_the_cache_directory_is_refused_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = FileCache(tmp_path)
    path = cache._path("k")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)  # nobody will ever write to it: a blocking open would never return
    with anyio.fail_after(5), caplog.at_level(logging.WARNING):
        assert await cache.get("k") is None
    assert "not a regular file" in caplog.text
    assert not path.exists()
    await cache.set("k", "fine")  # the key works again
    assert await cache.get("k") == "fine"


async def test_file_cache_keeps_under_its_size_cap(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, max_bytes=50_000)
    for i in range(40):
        await cache.set(f"k{i}", "v" * 2000)
    assert cache._disk_usage() <= 50_000
    assert cache.statistics().evictions > 0
    assert await cache.get("k39") == "v" * 2000  # the newest survive


def _hammer(directory: str, worker: int, rounds: int) -> None:
    async def main() -> None:
        cache = FileCache(directory)
        for i in range(rounds):
            key = f"shared-{i % 10}"
            await cache.set(key, {"worker": worker, "i": i, "pad": "x" * (i % 7) * 100})
            value = await cache.get(key)
            assert value is None or set(value) == {"worker", "i", "pad"}
            assert cache.stats.errors == 0

    anyio.run(main)


def leftover_temp_files(directory: Path) -> list[Path]:
    return list(directory.rglob(".tmp-*"))


async def test_two_processes_writing_the_same_keys_never_corrupt_them(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), w, 300)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        await anyio.to_thread.run_sync(p.join)
        assert p.exitcode == 0
    cache = FileCache(tmp_path)
    for i in range(10):
        assert set(await cache.get(f"shared-{i}")) == {"worker", "i", "pad"}
    assert cache.stats.errors == 0
    assert not leftover_temp_files(tmp_path)


def test_values_must_be_json_or_bytes() -> None:
    from voicesub_stream.cache._base import encode

    with pytest.raises(ConfigError):
        encode(object())


# -- redis ----------------------------------------------------------------------------------

async def test_redis_round_trip_with_compression(redis_server: RedisServer) -> None:
    async with RedisCache(redis_server.url, namespace="t") as cache:
        await cache.set_many({f"k{i}": v for i, v in enumerate(VALUES)})
        got = await cache.get_many([f"k{i}" for i in range(len(VALUES))] + ["missing"])
        assert got == {f"k{i}": v for i, v in enumerate(VALUES)}
        raw = await cache._client.get("t:v1:k3")
        assert raw[:1] == b"g"  # the binary value went in gzipped
        assert len(raw) < len(VALUES[3])
        assert (await cache._client.get("t:v1:k0"))[:1] == b"r"  # small: stored as is


@pytest.mark.parametrize("poison", [b"z\x00bad", b"gnot gzip", b"r\xffnot json", b"?"])
async def test_a_poisoned_redis_entry_is_a_logged_miss_and_removed(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, poison: bytes
) -> None:
    async with RedisCache(redis_server.url, namespace="p") as cache:
        await cache._client.set("p:v1:k", poison)
        with caplog.at_level(logging.WARNING):
            assert await cache.get("k") is None
        assert "unreadable Redis entry" in caplog.text
        assert await cache._client.get("p:v1:k") is None  # gone, not poisoned for a week
        assert cache.statistics().errors == 1
        await cache.set("k", "fine")
        assert await cache.get("k") == "fine"


async def test_redis_ttl_and_namespaced_clear(redis_server: RedisServer) -> None:
    async with RedisCache(redis_server.url, namespace="a") as a, \
            RedisCache(redis_server.url, namespace="b") as b:
        await a.set("k", "short", ttl=0.2)
        await a.set("keep", 1)
        await b.set("keep", 2)
        await anyio.sleep(0.4)
        assert await a.get("k") is None
        await a.clear()
        assert await a.get("keep") is None
        assert await b.get("keep") == 2  # another namespace is untouched


async def test_redis_outage_degrades_then_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker("test redis", base=0.1, maximum=0.2)
    async with RedisCache(redis_server.url, breaker=breaker, socket_timeout=0.5) as cache:
        await cache.set("k", "v")
        redis_server.stop()
        with caplog.at_level(logging.WARNING):
            for _ in range(5):
                assert await cache.get("k") is None  # a miss, never an exception
                await cache.set("k2", "v2")
        assert breaker.is_open
        assert caplog.text.count("unavailable") == 1  # logged once per outage
        assert cache.statistics().errors >= 1
        redis_server.start()  # an empty server on the same port
        with anyio.fail_after(10):
            while True:
                await anyio.sleep(0.25)
                await cache.set("k3", "v3")
                if await cache.get("k3") == "v3":
                    break
        assert not breaker.is_open
        assert "reachable again" in caplog.text


async def test_slow_redis_counts_as_unavailable(redis_server: RedisServer) -> None:
    import redis.asyncio as redis

    breaker = CircuitBreaker("slow redis", base=5)
    async with RedisCache(redis_server.url, breaker=breaker, socket_timeout=0.2) as cache:
        await cache.set("k", "v")
        admin = redis.Redis.from_url(redis_server.url)
        async with anyio.create_task_group() as tg:
            tg.start_soon(admin.execute_command, "DEBUG", "SLEEP", "1")
            await anyio.sleep(0.1)
            assert await cache.get("k") is None  # timed out: a miss, not a hang
        await admin.aclose()
        assert breaker.is_open
        assert await cache.get("k") is None  # skipped while the circuit is open


async def test_tiered_cache_writes_through_promotes_and_survives_redis_loss(
    redis_server: RedisServer,
) -> None:
    front = MemoryCache(max_size=100)
    back = RedisCache(redis_server.url, breaker=CircuitBreaker("r", base=60))
    async with TieredCache(front, back) as tiered:
        await tiered.set("both", "v")
        assert await front.get("both") == "v"
        assert await back.get("both") == "v"
        await back.set("only-back", "w")
        assert await tiered.get("only-back") == "w"
        assert await front.get("only-back") == "w"  # promoted
        redis_server.stop()
        assert await tiered.get("both") == "v"  # served by the front tier
        await tiered.set("new", 1)
        assert await tiered.get("new") == 1
        stats = tiered.statistics()
        assert stats.back.circuit_open


# -- decorator ------------------------------------------------------------------------------

async def test_concurrent_calls_for_one_key_compute_once() -> None:
    calls = []

    @cached(MemoryCache(), ttl=60)
    async def slow_square(x: int) -> int:
        calls.append(x)
        await anyio.sleep(0.05)
        return x * x

    results: list[int] = []
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(lambda: _append(results, slow_square(7)))
    assert results == [49] * 10
    assert calls == [7]
    assert await slow_square(7) == 49
    assert calls == [7]


async def _append(results: list[int], awaitable: object) -> None:
    results.append(await awaitable)  # type: ignore[misc]


async def test_sync_functions_run_in_a_thread_and_errors_are_not_cached() -> None:
    import threading

    threads = []
    attempts = []

    @cached(MemoryCache())
    def flaky(name: str, *, loud: bool = False) -> str:
        threads.append(threading.current_thread())
        attempts.append(name)
        if len(attempts) == 1:
            raise RuntimeError("first call fails")
        return name.upper() if loud else name

    with pytest.raises(RuntimeError):
        await flaky("a")
    assert await flaky("a") == "a"
    assert await flaky("a", loud=False) == "a"  # same key: bound with defaults
    assert attempts == ["a", "a"]
    assert threading.main_thread() not in threads


def test_keys_are_stable_and_bind_arguments() -> None:
    def f(a: int, b: int = 2) -> None: ...

    assert make_key(f, (1,), {}) == make_key(f, (1, 2), {}) == make_key(f, (), {"a": 1, "b": 2})
    assert make_key(f, (1,), {}) != make_key(f, (2,), {})
    assert make_key(f, (1,), {}).startswith("tests.test_cache.")


# -- the engine's transcription cache ---------------------------------------------------------

async def transcribe_with(settings: object, source: object, **kw: object
                          ) -> tuple[list[object], dict[str, object], int]:
    from voicesub_stream import Engine

    async with Engine(settings, **kw) as engine:  # type: ignore[arg-type]
        async with engine.transcribe_stream(source) as stream:
            segments = [seg async for seg in stream]
        return segments, stream.statistics(), engine.registry.loads


@pytest.mark.speech
async def test_second_run_is_served_from_cache_without_loading_the_model(
    settings: object, espeak_wav: Path
) -> None:
    cache = MemoryCache()
    first, stats1, loads1 = await transcribe_with(settings, espeak_wav, cache=cache)
    second, stats2, loads2 = await transcribe_with(settings, espeak_wav, cache=cache)
    assert (stats1.cache, loads1) == ("miss", 1)
    assert (stats2.cache, loads2) == ("hit", 0)  # a fresh engine never loaded a model
    assert second == first
    # Other options, other output: not served from the cache.
    from voicesub_stream import Engine

    async with Engine(settings, cache=cache) as engine:  # type: ignore[arg-type]
        async with engine.transcribe_stream(espeak_wav, beam_size=1) as stream:
            _ = [seg async for seg in stream]
        assert stream.statistics().cache == "miss"


@pytest.mark.speech
async def test_file_cache_serves_a_later_engine_like_a_later_process(
    settings: object, espeak_audio: object, tmp_path: Path
) -> None:
    first, _, _ = await transcribe_with(settings, espeak_audio, cache=FileCache(tmp_path))
    second, stats, loads = await transcribe_with(settings, espeak_audio,
                                                 cache=FileCache(tmp_path))
    assert (stats.cache, loads) == ("hit", 0)
    assert second == first


@pytest.mark.speech
async def test_a_dead_redis_never_fails_the_stream(
    settings: object, espeak_wav: Path, redis_server: RedisServer
) -> None:
    redis_server.stop()
    cache = RedisCache(redis_server.url, socket_timeout=0.3)
    segments, stats, _ = await transcribe_with(settings, espeak_wav, cache=cache)
    assert "journey" in " ".join(s.text for s in segments).lower()  # type: ignore[attr-defined]
    assert stats.cache == "miss"
    assert cache.statistics().errors >= 1
    await cache.aclose()


def test_cache_type_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    from voicesub_stream import Settings
    from voicesub_stream.cache import make_cache

    monkeypatch.setenv("CACHE_TYPE", "tiered")
    monkeypatch.setenv("CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("VOICESUB_CACHE_TTL", "60")
    settings = Settings.load()
    cache = make_cache(settings.cache())
    assert isinstance(cache, TieredCache)
    assert isinstance(cache.back, FileCache)  # tiered without REDIS_URL: memory over files
    assert cache.front.ttl == 60
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert isinstance(make_cache(Settings.load().cache()).back, RedisCache)  # type: ignore[union-attr]
    monkeypatch.setenv("CACHE_TYPE", "sqlite")
    with pytest.raises(ConfigError):
        Settings.load()
