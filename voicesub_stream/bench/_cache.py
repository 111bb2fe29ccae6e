"""``voicesub bench cache``: operations per second and latency of every cache backend, and
``redis-benchmark`` against the same Redis server in the same run."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._stats import percentiles
from ..cache import FileCache, MemoryCache, RedisCache, TieredCache
from ..testing import free_port

if TYPE_CHECKING:
    from ..cache import Cache

VALUE = {"segments": [{"index": i, "start": i * 2.0, "end": i * 2.0 + 1.5,
                       "text": "a typical subtitle line of about forty chars"}
                      for i in range(3)]}
SEED_QUOTED = {"memory": 2_000, "redis": 8_000, "file": 150}
"""Gets per second first quoted for these caches, before this benchmark measured them."""
TARGETS = {"memory": 200_000, "file": 5_000}


async def _measure(cache: Cache, keys: list[str], *, batch: int) -> dict[str, Any]:
    await cache.set_many(dict.fromkeys(keys, VALUE))
    out: dict[str, Any] = {}
    for op in ("get", "set"):
        latencies: list[float] = []
        started = time.perf_counter()
        for i in range(0, len(keys), batch):
            chunk = keys[i : i + batch]
            t = time.perf_counter()
            if batch == 1:
                if op == "get":
                    await cache.get(chunk[0])
                else:
                    await cache.set(chunk[0], VALUE)
            elif op == "get":
                await cache.get_many(chunk)
            else:
                await cache.set_many(dict.fromkeys(chunk, VALUE))
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
        p50, p99 = percentiles(latencies, 0.5, 0.99)
        assert p50 is not None
        assert p99 is not None
        out[op] = {"ops_per_s": len(keys) / elapsed, "p50_us": p50 * 1e6, "p99_us": p99 * 1e6,
                   "batch": batch}
    return out


def _redis_benchmark(port: int, requests: int, pipeline: int,
                     clients: int) -> dict[str, float] | None:
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return None
    result = subprocess.run(
        [exe, "-h", "127.0.0.1", "-p", str(port), "-t", "get,set", "-n", str(requests),
         "-P", str(pipeline), "-c", str(clients), "-d", "200", "-q"],
        capture_output=True, text=True, check=True)
    rates = {}
    for line in result.stdout.replace("\r", "\n").splitlines():
        match = re.match(r"(GET|SET): ([\d.]+) requests per second", line.strip())
        if match:
            rates[match.group(1).lower()] = float(match.group(2))
    return rates


def _start_redis(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", directory],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.02)


async def _bench(n: int, redis_url: str | None, port: int | None, directory: str
                 ) -> dict[str, Any]:
    keys = [f"bench:{i}" for i in range(n)]
    file_keys = keys[: max(n // 10, 100)]  # files are slower; fewer of them
    runs: dict[str, Any] = {}
    memory = MemoryCache(max_size=n * 2)
    runs["memory"] = await _measure(memory, keys, batch=1)
    runs["memory (get_many 100)"] = await _measure(memory, keys, batch=100)
    async with FileCache(Path(directory) / "files") as files:
        runs["file"] = await _measure(files, file_keys, batch=1)
    if redis_url is not None:
        async with RedisCache(redis_url, namespace="bench") as redis:
            runs["redis"] = await _measure(redis, keys, batch=1)
            runs["redis (pipelined 100)"] = await _measure(redis, keys, batch=100)
        async with TieredCache(MemoryCache(max_size=n * 2),
                               RedisCache(redis_url, namespace="bench-t")) as tiered:
            runs["tiered (memory over redis)"] = await _measure(tiered, keys, batch=1)
    return runs


def bench_cache(n: int = 20_000, redis_url: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        proc = None
        port: int | None = None
        if redis_url is None and shutil.which("redis-server"):
            proc, port = _start_redis(directory)
            redis_url = f"redis://127.0.0.1:{port}/0"
        elif redis_url is not None:
            port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        try:
            runs = anyio.run(_bench, n, redis_url, port, directory)
            baseline = None
            if port is not None:
                # redis-benchmark's default is 50 parallel clients; "1 client" rows are the
                # like-for-like comparison with one Python task issuing requests in turn.
                baseline = {"plain": _redis_benchmark(port, n * 5, 1, 50),
                            "pipeline_100": _redis_benchmark(port, n * 10, 100, 50),
                            "1 client": _redis_benchmark(port, n, 1, 1),
                            "1 client, pipeline_100": _redis_benchmark(port, n * 10, 100, 1)}
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
    report: dict[str, Any] = {"benchmark": "cache", "entries": n, "value_bytes":
                              len(str(VALUE)), "runs": runs, "redis_benchmark": baseline,
                              "seed_quoted_gets_per_s": SEED_QUOTED, "targets": TARGETS}
    ours = runs.get("redis (pipelined 100)")
    for name in ("pipeline_100", "1 client, pipeline_100"):
        rates = (baseline or {}).get(name)
        if ours and rates:
            report[f"redis_pipelined_get_vs_redis_benchmark {name}"] = (
                ours["get"]["ops_per_s"] / rates["get"])
    return report
