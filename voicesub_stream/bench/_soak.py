"""``voicesub bench soak``: hours of audio through one live stream, as fast as it goes.

The clip is looped into an async source of the requested length (never held in memory
whole). After a warm-up (first model calls, allocator growth) RSS is read every ``every``
seconds of audio, and the slope is fitted against hours of *audio*, so the figure does not
depend on how fast this machine is. Each reading follows ``gc.collect()`` and glibc's
``malloc_trim``, so it is the memory the process holds, not garbage or freed pages the
allocator has yet to hand back (the engine's monitor hands them back every minute anyway,
so between its trims RSS saws up and down by tens of MB); RSS as found before the trim is
reported beside it. Tasks, threads and open files are compared between the
end of the warm-up and the end of the run. With ``profile`` tracemalloc follows the Python heap
too, telling growth of Python objects from native memory the allocator keeps.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import psutil

from .._config import LiveOptions, Settings
from .._engine import Engine
from ..monitoring._memory import _malloc_trim
from ..sources import read_audio
from ..testing import resource_snapshot

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import numpy.typing as npt


async def _looped(audio: npt.NDArray[np.float32], seconds: float) -> AsyncIterator[Any]:
    total = round(seconds * 16_000)
    step = 16_000
    sent = 0
    while sent < total:
        start = sent % len(audio)
        piece = audio[start:start + min(step, total - sent)]
        sent += len(piece)
        yield piece


async def _soak(audio: npt.NDArray[np.float32], seconds: float, warmup: float, every: float,
                settings: Settings, profile: bool) -> dict[str, Any]:
    process = psutil.Process()
    points: list[tuple[float, int, int]] = []  # audio seconds, RSS held, RSS as found
    traced: list[tuple[float, int]] = []
    baseline = None
    if profile:
        tracemalloc.start(5)
    started = time.monotonic()
    finals = 0
    next_mark = warmup
    warm = None
    async with Engine(settings) as engine:
        # Fed as fast as it goes, not in real time: the fixed pace processes every step, as
        # an hour of real-time audio would be on an idle engine.
        async with engine.transcribe_stream(_looped(audio, seconds),
                                            live=LiveOptions(policy="block")) as stream:
            async for seg in stream:
                finals += seg.is_final
                if seg.end >= next_mark:
                    gc.collect()
                    raw = process.memory_info().rss
                    _malloc_trim()
                    points.append((seg.end, process.memory_info().rss, raw))
                    if profile:
                        traced.append((seg.end, tracemalloc.get_traced_memory()[0]))
                    if warm is None:
                        warm = resource_snapshot()
                        if profile:
                            baseline = tracemalloc.take_snapshot()
                    next_mark += every
            stats = stream.statistics()
        end = resource_snapshot()
    python_heap: dict[str, Any] | None = None
    if profile:
        growth = []
        if baseline is not None:
            growth = [{"site": str(d.traceback[0]), "size_diff": d.size_diff}
                      for d in tracemalloc.take_snapshot().compare_to(baseline, "lineno")[:10]]
        tracemalloc.stop()
        python_heap = {"traced_mb": [[round(t, 1), round(b / 1e6, 2)] for t, b in traced],
                       "top_growth": growth}
    xs = np.array([p[0] / 3600 for p in points])
    ys = np.array([p[1] / 1e6 for p in points])
    found = np.array([p[2] / 1e6 for p in points])
    slope = float(np.polyfit(xs, ys, 1)[0]) if len(points) >= 3 else None
    found_slope = float(np.polyfit(xs, found, 1)[0]) if len(points) >= 3 else None
    new = end.new_since(warm) if warm is not None else {}
    return {"audio_hours": seconds / 3600, "wall_seconds": time.monotonic() - started,
            "finals": finals, "model_seconds": stats.model_seconds,
            "rss_mb_first": float(ys[0]) if len(ys) else None,
            "rss_mb_last": float(ys[-1]) if len(ys) else None,
            "rss_slope_mb_per_audio_hour": slope,
            "rss_as_found": {"slope_mb_per_audio_hour": found_slope,
                             "max_mb": float(found.max()) if len(found) else None},
            "grew_after_warmup": {kind: len(held) for kind, held in new.items()},
            "new_after_warmup": new, "python_heap": python_heap,
            "points": [[round(x * 3600, 1), round(y, 1), round(f, 1)]
                       for x, y, f in zip(xs, ys, found, strict=True)]}


def bench_soak(clip: Path, *, hours: float, model: str, compute_type: str,
               warmup: float = 120.0, every: float = 60.0,
               profile: bool = False) -> dict[str, Any]:
    audio = read_audio(clip)
    settings = Settings.load(model=model, compute_type=compute_type, device="cpu",
                             cache_type="none")
    report = anyio.run(_soak, audio, hours * 3600, warmup, every, settings, profile)
    return {"benchmark": "soak", "clip": str(clip), "model": model,
            "compute_type": compute_type, **report,
            "target": {"rss_slope_mb_per_audio_hour": 2.0}}
