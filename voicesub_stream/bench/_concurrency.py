"""``voicesub bench concurrency``: N live streams of real speech, paced in real time, at once.

For each N the clip is fed to N streams together (each starting at another point of it),
three ways in one run: one engine with
cross-stream batching (the default), one engine without it (every update its own model call,
all through one scheduler), and N engines with a model each.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import numpy as np
import psutil

from .._api import Engine
from .._config import LiveOptions, Settings
from .._stats import percentiles
from ..sources import paced

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt


async def _stream(engine: Engine, audio: npt.NDArray[np.float32], live: LiveOptions,
                  out: dict[str, Any]) -> None:
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
    out.update(latencies=lat, text=" ".join(texts), dropped=stats["dropped_seconds"],
               model_seconds=stats["model_seconds"])


async def _round(n: int, audio: npt.NDArray[np.float32], settings: Settings,
                 live: LiveOptions, shared: bool) -> dict[str, Any]:
    batching: dict[str, Any] | None = None
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
                # Each stream starts elsewhere in the clip: real streams are not in lockstep.
                clip = np.roll(audio, -round(i * len(audio) / n))
                tg.start_soon(_stream, engines[0 if shared else i], clip, live, results[i])
        wall = time.monotonic() - started
        cpu = proc.cpu_percent(None)
        if engines[0].batcher is not None:
            batching = engines[0].batcher.statistics()
    lat = [x for r in results for x in r["latencies"]]
    p50, p95 = percentiles(lat, 0.5, 0.95)
    duration = len(audio) / 16_000
    return {
        "streams": n, "final_p50": p50, "final_p95": p95, "finals": len(lat),
        "model_rtf": sum(r["model_seconds"] for r in results) / (n * duration),
        "dropped_seconds": sum(r["dropped"] for r in results),
        "wall_seconds": wall, "cpu_percent": cpu,
        "real_time": p95 is not None and p95 <= 2.5, "batching": batching,
    }


def bench_concurrency(clip: Path, *, streams: list[int], seconds: float, model: str,
                      compute_type: str, live: LiveOptions) -> dict[str, Any]:
    from faster_whisper.audio import decode_audio

    audio = np.asarray(decode_audio(str(clip)), dtype=np.float32)[: int(seconds * 16_000)]
    base = Settings.load(model=model, compute_type=compute_type, device="cpu",
                         cache_type="none")
    variants = [("batched, shared model", base, True),
                ("unbatched, shared model", base.model_copy(update={"stream_batching": False}),
                 True),
                ("a model per stream", base.model_copy(update={"stream_batching": False}), False)]
    rows = []
    for name, settings, shared in variants:
        for n in streams:
            row = anyio.run(_round, n, audio, settings, live, shared)
            row["variant"] = name
            rows.append(row)
    return {"benchmark": "concurrency", "clip": str(clip), "seconds": len(audio) / 16_000,
            "model": model, "compute_type": compute_type, "live": dataclasses.asdict(live),
            "rows": rows,
            "target": {"streams": 8, "final_p95": 2.5}}
