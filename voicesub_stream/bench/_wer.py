"""``voicesub bench wer``: pooled WER over a corpus, ours against faster-whisper's batched pipeline.

One clip's WER moves by a point or more with where the windows happen to be cut, so quality is
compared on every clip of a language in a manifest (``../shared/data/speech/manifest.json``
format: entries with ``file``, ``language``, ``reference_file``), pooled by reference words.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._config import Settings
from .._engine import Engine
from .._text import word_error_rate

if TYPE_CHECKING:
    from pathlib import Path


async def _bench(clips_in: list[tuple[str, Path, str]], language: str, model: str,
                 compute_type: str) -> list[dict[str, Any]]:
    from faster_whisper import BatchedInferencePipeline

    settings = Settings.load(model=model, compute_type=compute_type, device="cpu")
    clips = []
    async with Engine(settings) as engine:
        loaded = await anyio.to_thread.run_sync(engine.registry.get, engine.registry.key_for(None))
        batched = BatchedInferencePipeline(loaded.whisper)
        for name, path, reference in clips_in:
            async with engine.transcribe_stream(path, language=language) as stream:
                ours = " ".join([seg.text async for seg in stream])

            def run_batched(p: Path = path) -> str:
                segments, _ = batched.transcribe(str(p), language=language)
                return " ".join(s.text for s in segments)

            theirs = await anyio.to_thread.run_sync(run_batched)
            clips.append({
                "file": name,
                "words": len(reference.split()),
                "wer": {"voicesub": word_error_rate(reference, ours),
                        "faster-whisper-batched": word_error_rate(reference, theirs)},
            })
    return clips


def bench_wer(manifest: Path, *, language: str, model: str, compute_type: str,
              max_seconds: float = 600.0) -> dict[str, Any]:
    root = manifest.parent
    entries = [e for e in json.loads(manifest.read_text())["entries"]
               if e["language"] == language and e.get("category") != "stereo-en"
               and e.get("duration_s", 0) <= max_seconds]
    clips_in = [(e["file"], root / e["file"],
                 (root / e["reference_file"]).read_text(encoding="utf-8")) for e in entries]
    clips = anyio.run(_bench, clips_in, language, model, compute_type)
    words = sum(c["words"] for c in clips)
    pooled = {
        name: sum(c["wer"][name] * c["words"] for c in clips) / words if words else None
        for name in ("voicesub", "faster-whisper-batched")
    }
    return {"benchmark": "wer", "manifest": str(manifest), "language": language,
            "model": model, "compute_type": compute_type, "clips": clips, "words": words,
            "pooled_wer": pooled}
