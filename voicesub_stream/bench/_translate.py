"""``voicesub bench translate``: translation throughput, cold and warm cache, on real subtitles.

The cues come from a subtitle file, or from transcribing a real clip first. They go through
the translation stage in batches of 16 (what the stage takes from its channel) three ways:
the backend alone one line at a time (the baseline), the stage with an empty cache (cold:
sentences spanning several cues are joined, repeated lines asked once), and the same cues
again (warm: every line from the cache).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._types import Segment
from ..cache import MemoryCache
from ..scheduler import Scheduler
from ..stages._translate import TranslationStage
from ..translation import Translators

if TYPE_CHECKING:
    from pathlib import Path


def load_cues(subtitles: Path) -> list[Segment]:
    import pysubs2

    return [Segment(i, e.start / 1000, e.end / 1000, e.plaintext.replace("\n", " "),
                    language="en")
            for i, e in enumerate(pysubs2.load(str(subtitles))) if e.plaintext.strip()]


async def transcribe_cues(clip: Path, model: str) -> list[Segment]:
    from .._config import Settings
    from .._engine import Engine

    async with Engine(Settings.load(model=model, device="cpu", cache_type="none")) as engine:
        return [s async for s in engine.transcribe_stream(clip)]


async def _run(cues: list[Segment], target: str, backend: str) -> dict[str, Any]:
    translators = Translators()
    translator = translators.choose(backend, "en", target)
    if translator is None:
        raise ValueError(f"{backend} has no en->{target}")
    translator.translate(["warm up"], source="en", target=target)  # load before timing
    started = time.perf_counter()
    def one(text: str) -> list[str]:
        return translator.translate([text], source="en", target=target)

    for cue in cues:
        await anyio.to_thread.run_sync(one, cue.text)
    baseline = time.perf_counter() - started
    stage = TranslationStage(translators, Scheduler(1), target=target, backend=backend,
                             cache=MemoryCache())
    rows = {}
    for name in ("cold", "warm"):
        before = stage.statistics()
        started = time.perf_counter()
        for i in range(0, len(cues), 16):
            await stage.translate(cues[i:i + 16])
        wall = time.perf_counter() - started
        after = stage.statistics()
        hits = after.cache_hits - before.cache_hits
        misses = after.cache_misses - before.cache_misses
        rows[name] = {"seconds": wall, "segments_per_second": len(cues) / wall,
                      "cache_hits": hits, "cache_misses": misses,
                      "hit_ratio": hits / (hits + misses) if hits + misses else None,
                      "backend_calls": after.backend_calls - before.backend_calls}
    return {"cues": len(cues), "unique_lines": len({c.text for c in cues}),
            "baseline": {"seconds": baseline, "segments_per_second": len(cues) / baseline},
            **rows}


def bench_translate(cues: list[Segment], *, target: str, backend: str,
                    source: str) -> dict[str, Any]:
    report = anyio.run(_run, cues, target, backend)
    return {"benchmark": "translate", "source": source, "target": target,
            "backend": backend, **report}
