"""``voicesub bench concurrency``: N live streams of real speech, paced in real time, at once.

For each N the clip is fed to N streams together, their starts spread over one second so
their updates do not fall in lockstep, up to three ways in one run: one engine with
cross-stream batching (the default), one engine without it (every update its own model call,
all through one scheduler), and N engines with a model each. Every stream's finals are scored
against the same engine's offline transcript of the clip, so a variant that keeps up by
getting words wrong shows it.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import psutil

from .._config import LiveOptions, Settings
from .._engine import Engine
from .._stats import percentiles
from .._text import word_error_rate
from ..sources import paced, read_audio

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import numpy.typing as npt

    from ..stages import BatchingStatistics


VARIANTS = {"batched": "batched, shared model", "unbatched": "unbatched, shared model",
            "per-stream": "a model per stream"}


async def _stream(engine: Engine, audio: npt.NDArray[np.float32], live: LiveOptions,
                  delay: float, out: dict[str, Any]) -> None:
    await anyio.sleep(delay)
    source = paced(audio)
    lat: list[float] = []
    texts: list[str] = []
    async with engine.transcribe_stream(source, live=live) as stream:
        async for seg in stream:
            fed = source.fed_at(seg.end)
            if seg.is_final and fed is not None:
                lat.append(time.monotonic() - fed)
                texts.append(seg.text)
        stats = stream.statistics()
    out.update(latencies=lat, text=" ".join(texts),
               dropped=stats.live.dropped_seconds if stats.live else 0.0,
               model_seconds=stats.model_seconds)


async def _round(n: int, audio: npt.NDArray[np.float32], settings: Settings,
                 live: LiveOptions, shared: bool, offline: str) -> dict[str, Any]:
    batching: BatchingStatistics | None = None
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    async with AsyncExitStack() as stack:
        engines = [await stack.enter_async_context(Engine(settings))
                   for _ in range(1 if shared else n)]
        for engine in engines:  # models load before the clock starts
            await anyio.to_thread.run_sync(engine.registry.get, engine.registry.key_for(None))
        proc = psutil.Process()
        proc.cpu_percent(None)
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(_stream, engines[0 if shared else i], audio, live, i / n,
                              results[i])
        wall = time.monotonic() - started
        cpu = proc.cpu_percent(None)
        if engines[0].batcher is not None:
            batching = engines[0].batcher.statistics()
    lat = [x for r in results for x in r["latencies"]]
    p50, p95 = percentiles(lat, 0.5, 0.95)
    duration = len(audio) / 16_000
    wers = [word_error_rate(offline, r["text"]) for r in results]
    return {
        "streams": n, "final_p50": p50, "final_p95": p95, "finals": len(lat),
        "wer_vs_offline_mean": sum(wers) / n, "wer_vs_offline_max": max(wers),
        "model_rtf": sum(r["model_seconds"] for r in results) / (n * duration),
        "dropped_seconds": sum(r["dropped"] for r in results),
        "wall_seconds": wall, "cpu_percent": cpu,
        "real_time": p95 is not None and p95 <= 2.5,
        "batching": dataclasses.asdict(batching) if batching else None,
    }


async def _offline(audio: npt.NDArray[np.float32], settings: Settings) -> str:
    async with Engine(settings) as engine, engine.transcribe_stream(audio) as stream:
        return " ".join([seg.text async for seg in stream])


def bench_concurrency(clip: Path, *, streams: list[int], seconds: float, model: str,
                      compute_type: str, live: LiveOptions,
                      variants: tuple[str, ...] = tuple(VARIANTS),
                      engine: dict[str, Any] | None = None) -> dict[str, Any]:
    audio = read_audio(clip)[: int(seconds * 16_000)]
    base = Settings.load(model=model, compute_type=compute_type, device="cpu",
                         cache_type="none", **(engine or {}))
    unbatched = base.model_copy(update={"stream_batching": False})
    runs = {"batched": (base, True), "unbatched": (unbatched, True),
            "per-stream": (unbatched, False)}
    offline = anyio.run(_offline, audio, base)
    rows = []
    for variant in variants:
        settings, shared = runs[variant]
        for n in streams:
            row = anyio.run(_round, n, audio, settings, live, shared, offline)
            row["variant"] = VARIANTS[variant]
            rows.append(row)
    return {"benchmark": "concurrency", "clip": str(clip), "seconds": len(audio) / 16_000,
            "model": model, "compute_type": compute_type, "live": dataclasses.asdict(live),
            "engine": {"cpu_threads": base.cpu_threads, "model_workers": base.model_workers},
            "offline_text": offline, "rows": rows,
            "target": {"streams": 8, "final_p95": 2.5}}
