"""``voicesub bench cluster``: the same work in this process and on Ray actors, and where the
driver's own limit lies.

Three parts, in one run, each on a local Ray cluster started for it:

1. **Files.** A batch of clips through :meth:`Engine.transcribe_many`: in this process (the
   default executor), then on 1 and on 2 single-CPU actors. Throughput is audio seconds per
   wall second, the models loaded before the clock starts. Ray's cost per call is measured
   from the calls themselves: a call's round trip beyond the actor's own time.
2. **Live.** N live streams of one clip in real time, on defaults, in this process and on 2
   actors: final latency, admitted and refused.
3. **The driver's ceiling.** Everything above the model call runs in the driver (decoding,
   VAD, the live controller, batching, subtitles); only the model call scales out with
   actors. To find what one driver holds, the live run's recorded model times are replayed
   by actors that only sleep (:class:`ReplayActor`), so they cost no CPU, with enough of them
   that they never queue; then M simulated clients are played in real time into the driver.
   Its CPU and event-loop lag as M grows say where one driver saturates.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import psutil

from .._config import LiveOptions, ModelConfig, Settings
from .._engine import Engine
from .._stats import percentiles
from ..errors import OverloadedError
from ..executors import RayPool
from ..executors._ray import Answer, RemoteCall
from ..sources import paced, read_audio

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import numpy.typing as npt

__all__ = ("ReplayActor", "bench_cluster")

WORD_EVERY = 0.4
"""Seconds between the words a replaying actor reports (about speech's pace)."""
SENTENCE_WORDS = 8


class ReplayActor:
    """Answers a model call after the model time of a recorded one, with no model: words at
    a speaking pace on the stream clock (so that successive updates agree, as a model's do,
    and sentences end), and never any CPU of its own."""

    def __init__(self, config: ModelConfig, seconds_per_window: list[float]) -> None:
        self.seconds_per_window = seconds_per_window
        self.random = random.Random(os.getpid())

    def ready(self) -> int:
        return os.getpid()

    def multilingual(self, model: str) -> bool:
        return False

    def transcribe(self, call: RemoteCall) -> Answer:
        seconds = sum(self.random.choice(self.seconds_per_window) for _ in call.items)
        time.sleep(seconds)
        results = []
        for _, window, _ in call.items:
            words = []
            t = 0.1
            while t + 0.3 < window.duration:
                start, end = window.stream_time(t), window.stream_time(t + 0.3, is_end=True)
                n = round(start / WORD_EVERY)
                text = f" w{n}" + ("." if n % SENTENCE_WORDS == SENTENCE_WORDS - 1 else "")
                words.append((start, end, text, 0.9))
                t += WORD_EVERY
            results.append(("".join(w[2] for w in words).strip(), words, -0.2, 0.01,
                            seconds / len(call.items)))
        return Answer([("en", 1.0)] * len(call.streams), results, seconds)


def _settings(model: str, executor: str) -> Settings:
    return Settings.load(model=model, executor=executor, cache_type="none",
                         enable_performance_monitoring=False)


def _ray_init(cpus: int) -> None:
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)


def _ray_stop() -> None:
    import ray

    ray.shutdown()


# -- files ----------------------------------------------------------------------------------

async def _files(paths: list[Path], settings: Settings) -> dict[str, Any]:
    async with Engine(settings) as engine:
        # Every model loaded before the clock starts: a short file through each call slot.
        async for _ in engine.transcribe_many(paths[:1] * engine.execution.concurrent_calls):
            pass
        started = time.perf_counter()
        audio = words = failed = 0.0
        async for result in engine.transcribe_many(paths):
            failed += not result.ok
            words += sum(len(s.text.split()) for s in result.segments)
            audio += result.statistics.audio_seconds if result.statistics else 0.0
        wall = time.perf_counter() - started
        stats = engine.statistics()
    return {"files": len(paths), "audio_seconds": round(audio, 1), "wall_seconds": round(wall, 2),
            "audio_per_wall": round(audio / wall, 1), "words": int(words),
            "failed": int(failed), "execution": stats.execution.reason,
            "actors": stats.cluster.actors if stats.cluster else None,
            "ray_overhead_ms": stats.cluster.mean_overhead_ms if stats.cluster else None}


# -- live -----------------------------------------------------------------------------------

async def _client(engine: Engine, audio: npt.NDArray[np.float32], delay: float,
                  out: dict[str, Any]) -> None:
    await anyio.sleep(delay)
    source = paced(audio)
    latencies: list[float] = []
    stream = engine.transcribe_stream(source, live=LiveOptions())
    try:
        await stream.__aenter__()
    except OverloadedError:
        out["refused"] = True
        return
    try:
        async for seg in stream:
            fed = source.fed_at(seg.end)
            if seg.is_final and fed is not None:
                latencies.append(time.monotonic() - fed)
    finally:
        await stream.aclose()
    out.update(refused=False, latencies=latencies)


async def _loop_lag(lags: list[float], stop: anyio.Event) -> None:
    while not stop.is_set():
        asked = time.perf_counter()
        await anyio.sleep(0.05)
        lags.append(time.perf_counter() - asked - 0.05)


async def _live(n: int, audio: npt.NDArray[np.float32], settings: Settings,
                pool: RayPool | None = None) -> dict[str, Any]:
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    lags: list[float] = []
    async with Engine(settings, cluster=pool) as engine:
        # The model loads before the clock starts.
        name = engine.registry.key_for(None).name
        if pool is not None:
            await anyio.to_thread.run_sync(pool.warm, name)
        else:
            await anyio.to_thread.run_sync(engine.registry.get, engine.registry.key_for(None))
        process = psutil.Process()
        process.cpu_percent(None)
        started = time.perf_counter()
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_loop_lag, lags, stop)
            async with anyio.create_task_group() as clients:
                for i in range(n):
                    clients.start_soon(_client, engine, audio, i / n, results[i])
            stop.set()
        cpu = process.cpu_percent(None)
        wall = time.perf_counter() - started
        stats = engine.statistics()
    admitted = [r for r in results if not r["refused"]]
    latencies = [x for r in admitted for x in r["latencies"]]
    p50, p95 = percentiles(latencies, 0.5, 0.95)
    lag50, lag95 = percentiles(lags, 0.5, 0.95)
    worst = max((percentiles(r["latencies"], 0.95)[0] or 0.0 for r in admitted), default=None)
    return {"streams": n, "admitted": len(admitted), "refused": n - len(admitted),
            "final_p50": p50, "final_p95": p95, "worst_stream_p95": worst,
            "finals": len(latencies), "driver_cpu_percent": round(cpu),
            "loop_lag_p50_ms": None if lag50 is None else round(1000 * lag50, 1),
            "loop_lag_p95_ms": None if lag95 is None else round(1000 * lag95, 1),
            "loop_lag_max_ms": round(1000 * max(lags), 1) if lags else None,
            "ray_overhead_ms": stats.cluster.mean_overhead_ms if stats.cluster else None,
            "audio_kb_per_stream_second": round(
                stats.cluster.audio_bytes / 1024 / wall / max(1, len(admitted)), 1)
            if stats.cluster else None,
            "actors": stats.cluster.actors if stats.cluster else None}


def _recorded(pool: RayPool) -> list[float]:
    """Model seconds per window of the pool's calls."""
    return [seconds / windows for seconds, windows in pool.recent if windows]


async def _live_on_ray(n: int, audio: npt.NDArray[np.float32], settings: Settings,
                       recorded: list[float]) -> dict[str, Any]:
    pool = await anyio.to_thread.run_sync(RayPool, settings.models())
    try:
        row = await _live(n, audio, settings, pool)
        recorded.extend(_recorded(pool))
        return row
    finally:
        await anyio.to_thread.run_sync(pool.close)


async def _replayed(n: int, audio: npt.NDArray[np.float32], settings: Settings,
                    recorded: list[float], actors: int) -> dict[str, Any]:
    def start() -> RayPool:  # actors that only sleep reserve no CPU
        return RayPool(settings.models(), actors=actors, ray_cpus=0, actor=ReplayActor,
                       actor_args=(recorded,))

    pool = await anyio.to_thread.run_sync(start)
    try:
        return await _live(n, audio, settings, pool)
    finally:
        await anyio.to_thread.run_sync(pool.close)


# -- the whole run --------------------------------------------------------------------------

def bench_cluster(files: list[Path], clip: Path, *, model: str, live_streams: int,
                  clients: list[int], client_seconds: float, replay_actors: int,
                  ) -> dict[str, Any]:
    """The three parts (see the module); every figure side by side with this process's."""
    audio = read_audio(clip)
    threads, ray = _settings(model, "threads"), _settings(model, "ray")
    file_rows = [{"run": "in process", **anyio.run(_files, files, threads)}]
    for actors in (1, 2):
        _ray_init(actors)
        try:
            file_rows.append({"run": f"Ray, {actors} actor{'s' if actors > 1 else ''}",
                              **anyio.run(_files, files, ray)})
        finally:
            _ray_stop()
    live_rows = [{"run": "in process", **anyio.run(_live, live_streams, audio, threads)}]
    recorded: list[float] = []
    _ray_init(2)
    try:
        live_rows.append({"run": "Ray, 2 actors",
                          **anyio.run(_live_on_ray, live_streams, audio, ray, recorded)})
    finally:
        _ray_stop()
    short = audio[: int(client_seconds * 16_000)]
    driver_rows = []
    _ray_init(2)
    try:
        for m in clients:
            driver_rows.append({"run": f"{m} clients, {replay_actors} replaying actors",
                                **anyio.run(_replayed, m, short, ray, recorded,
                                            replay_actors)})
    finally:
        _ray_stop()
    return {"benchmark": "cluster", "model": model, "cpus": psutil.cpu_count(),
            "clip": str(clip), "files": [str(p) for p in files], "file_rows": file_rows,
            "live_rows": live_rows, "driver_rows": driver_rows,
            "replayed_seconds_per_window": {
                "p50": percentiles(recorded, 0.5)[0], "p95": percentiles(recorded, 0.95)[0],
                "calls": len(recorded)},
            "settings": dataclasses.asdict(ray.scheduling())}
