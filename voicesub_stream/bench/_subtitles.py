"""``voicesub bench subtitles``: our subtitles for every clip of a corpus, checked against
every profile (the rules ``voicesub check`` applies), with the violations counted by rule."""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any

import anyio
import pysubs2

from .._config import Settings
from .._engine import Engine
from ..subtitles import PROFILES, check_subtitles, render_subtitles
from ._wer import corpus

if TYPE_CHECKING:
    from pathlib import Path


async def _run(manifest: Path, settings: Settings) -> dict[str, Any]:
    clips: list[dict[str, Any]] = []
    started = time.perf_counter()
    async with Engine(settings) as engine:
        for clip in corpus(manifest):
            async with engine.transcribe_stream(clip["path"]) as stream:
                segments = [seg async for seg in stream]
            row: dict[str, Any] = {"file": clip["file"], "language": clip["language"],
                                   "segments": len(segments), "violations": {}}
            for name, profile in PROFILES.items():
                cues = list(pysubs2.SSAFile.from_string(
                    render_subtitles(segments, "srt", profile=profile)))
                found = check_subtitles(cues, profile, clip["language"])
                row.setdefault("cues", len(cues))  # the default profile's
                row["violations"][name] = [str(v) for v in found]
            clips.append(row)
    totals = {name: dict(collections.Counter(v.split(": ")[1] for c in clips
                                             for v in c["violations"][name]))
              for name in PROFILES}
    return {"benchmark": "subtitles", "model": settings.model, "clips": clips,
            "violations": totals, "cues": sum(c["cues"] for c in clips),
            "seconds": round(time.perf_counter() - started, 1)}


def bench_subtitles(manifest: Path, settings: Settings | None = None) -> dict[str, Any]:
    """Every clip of ``manifest`` transcribed on the engine's defaults and checked."""
    return anyio.run(_run, manifest, settings or Settings.load())
