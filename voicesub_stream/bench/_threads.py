"""``voicesub bench threads``: the threading figures first quoted for the engine, measured here.

The same jobs (single-window transcriptions) run sequentially in the calling thread, through
the async scheduler with 1 and 4 worker threads, and in a process pool of 2 workers. On CPU one
CTranslate2 call already uses every core, so parallel model calls are expected to gain little:
this measures how little, instead of quoting it.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import anyio

from .._config import Settings, TranscribeOptions
from .._types import SpeechWindow
from ..executors import ProcessPool, ProcessRunner
from ..models import ModelRegistry, WhisperRunner
from ..scheduler import Scheduler
from ..sources import read_audio

if TYPE_CHECKING:
    from pathlib import Path


def bench_threads(clip: Path, *, jobs: int, seconds: float, model: str,
                  compute_type: str) -> dict[str, Any]:
    audio = read_audio(clip)
    size = int(seconds * 16_000)
    windows = [SpeechWindow(i, audio[(i * size) % max(len(audio) - size, 1):][:size],
                            ((0, size),)) for i in range(jobs)]
    settings = Settings.load(model=model, compute_type=compute_type, device="cpu")
    registry = ModelRegistry(settings.models())
    key = registry.key_for(None)
    runner = WhisperRunner(registry.get(key), TranscribeOptions(language="en"))
    runner.transcribe([windows[0]])  # warm up
    rows: dict[str, float] = {}

    started = time.perf_counter()
    for w in windows:
        runner.transcribe([w])
    rows["sequential (sync)"] = time.perf_counter() - started

    for workers in (1, 4):
        async def scheduled(n: int = workers) -> None:
            scheduler = Scheduler(n)
            await scheduler.run_tasks_async([
                functools.partial(anyio.to_thread.run_sync, runner.transcribe, [w])
                for w in windows
            ])

        started = time.perf_counter()
        anyio.run(scheduled)
        rows[f"async scheduler, {workers} thread{'s' if workers > 1 else ''}"] = (
            time.perf_counter() - started)

    with ThreadPoolExecutor(4) as pool:
        started = time.perf_counter()
        list(pool.map(lambda w: runner.transcribe([w]), windows))
        rows["thread pool, 4 workers"] = time.perf_counter() - started

    processes = ProcessPool(settings.models(), key, workers=2)
    try:
        remote = ProcessRunner(processes, TranscribeOptions(language="en"))
        with ThreadPoolExecutor(2) as pool:
            started = time.perf_counter()
            list(pool.map(lambda w: remote.transcribe([w]), windows))
            rows["process pool, 2 workers"] = time.perf_counter() - started
    finally:
        processes.close()
    base = rows["sequential (sync)"]
    return {"benchmark": "threads", "clip": str(clip), "jobs": jobs, "window_seconds": seconds,
            "model": model, "compute_type": compute_type,
            "rows": [{"run": k, "wall_seconds": v, "speedup": base / v} for k, v in rows.items()]}
