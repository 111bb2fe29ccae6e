"""``voicesub bench wer``: accuracy over a whole corpus, ours beside faster-whisper's two modes.

One clip's error rate moves by a point or more with where the windows happen to be cut, so
quality is compared on every clip of a corpus, pooled per language by reference units: words,
or characters for languages written without spaces (CER). Every contender runs on its own
defaults with the language detected, as a user would call it: our :class:`Engine`, and
faster-whisper's sequential ``WhisperModel.transcribe`` and ``BatchedInferencePipeline``
sharing one loaded model. The corpus is a manifest in the ``../shared/data/speech`` format
(entries with ``file``, ``language``, ``reference_file``).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._config import Settings
from .._engine import Engine
from .._text import CHARACTER_SCORED, error_counts

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    PeerRun = Callable[[Path], tuple[str, str | None]]
    """Transcribe a file, return (text, detected language)."""

CONTENDERS = ("voicesub", "faster-whisper", "faster-whisper-batched")


def corpus(manifest: Path, languages: set[str] | None = None) -> list[dict[str, Any]]:
    """The manifest's clips (of ``languages``, when given) with their reference text."""
    root = manifest.parent
    entries = json.loads(manifest.read_text(encoding="utf-8"))["entries"]
    return [{"file": e["file"], "path": root / e["file"], "language": e["language"],
             "duration": e.get("duration_s"),
             "reference": (root / e["reference_file"]).read_text(encoding="utf-8")}
            for e in entries if languages is None or e["language"] in languages]


async def peer_runs(engine: Engine) -> dict[str, PeerRun]:
    """faster-whisper's sequential and batched transcription on its own defaults, with the
    engine's default model (loaded once, shared): name -> run(path) -> (text, language)."""
    from faster_whisper import BatchedInferencePipeline

    loaded = await anyio.to_thread.run_sync(engine.registry.get, engine.registry.key_for(None))
    batched = BatchedInferencePipeline(loaded.whisper)

    def sequential(path: Path) -> tuple[str, str | None]:
        segments, info = loaded.whisper.transcribe(str(path))
        return " ".join(s.text for s in segments), info.language

    def in_batches(path: Path) -> tuple[str, str | None]:
        segments, info = batched.transcribe(str(path))
        return " ".join(s.text for s in segments), info.language

    return {"faster-whisper": sequential, "faster-whisper-batched": in_batches}


async def _run(clips: list[dict[str, Any]], model: str, compute_type: str,
               peers: bool) -> list[dict[str, Any]]:
    settings = Settings.load(model=model, compute_type=compute_type, device="cpu")
    out = []
    async with Engine(settings) as engine:
        runs = await peer_runs(engine) if peers else {}
        for clip in clips:
            started = time.perf_counter()
            async with engine.transcribe_stream(clip["path"]) as stream:
                texts = [seg.text async for seg in stream]
            heard = {"voicesub": (" ".join(texts), stream.statistics().language,
                                  time.perf_counter() - started)}
            for name, run in runs.items():
                started = time.perf_counter()
                text, language = await anyio.to_thread.run_sync(run, clip["path"])
                heard[name] = (text, language, time.perf_counter() - started)
            _, units = error_counts(clip["reference"], "", clip["language"])
            scored: dict[str, Any] = {}
            for name, (text, language, seconds) in heard.items():
                errors, _ = error_counts(clip["reference"], text, clip["language"])
                scored[name] = {"errors": errors, "rate": errors / units if units else None,
                                "language": language, "seconds": round(seconds, 3),
                                "text": text}
            out.append({"file": clip["file"], "language": clip["language"], "units": units,
                        "unit": "char" if clip["language"] in CHARACTER_SCORED else "word",
                        "results": scored})
    return out


def pooled(clips: list[dict[str, Any]], name: str) -> float | None:
    units = sum(c["units"] for c in clips if name in c["results"])
    errors = sum(c["results"][name]["errors"] for c in clips if name in c["results"])
    return errors / units if units else None


def bench_wer(manifest: Path, *, model: str, compute_type: str, languages: set[str] | None,
              peers: bool = True) -> dict[str, Any]:
    """Every clip of ``manifest`` through every contender; pooled rates per language and
    overall (each clip's units weighed alike), and time."""
    clips = anyio.run(_run, corpus(manifest, languages), model, compute_type, peers)
    names = [n for n in CONTENDERS if any(n in c["results"] for c in clips)]
    by_language = {}
    for language in sorted({c["language"] for c in clips}):
        mine = [c for c in clips if c["language"] == language]
        by_language[language] = {
            "clips": len(mine), "units": sum(c["units"] for c in mine),
            "unit": mine[0]["unit"], **{n: pooled(mine, n) for n in names}}
    seconds = {n: round(sum(c["results"][n]["seconds"] for c in clips), 2) for n in names}
    return {"benchmark": "wer", "manifest": str(manifest), "model": model,
            "compute_type": compute_type, "contenders": names, "clips": clips,
            "by_language": by_language, "pooled": {n: pooled(clips, n) for n in names},
            "seconds": seconds}
