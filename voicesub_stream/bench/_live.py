"""``voicesub bench live``: latency and accuracy of live mode on clips fed in real time.

Latency of a segment is the wall time it arrived minus the wall time the audio of its last
word had been fed (:meth:`PacedSource.fed_at`), the measure the peers in
``shared/notes/measurements.md`` were taken with. Each clip is also transcribed offline by the
same engine and by faster-whisper's sequential and batched modes (same model), so live WER is
reported against the reference, against offline output, and beside the better peer's offline
WER per clip, the figure live finals are held to.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._config import LiveOptions, Settings
from .._engine import Engine
from .._stats import percentiles
from .._text import normalize, word_error_rate
from ..sources import paced
from ._wer import peer_runs

if TYPE_CHECKING:
    from pathlib import Path

    from .._types import Segment
    from ._wer import PeerRun


def flicker(segments: list[Segment]) -> dict[str, int]:
    """How stable the partials were: of the words partials showed, how many a later version
    changed. A partial's words are compared, from the start, with the finals from its index
    on (a final may be cut before the partial's last words, which then open the next final);
    a word counts as changed from the first one that differs. ``shrunk``: indices whose last
    partial showed more words than the finals from there on hold."""
    finals = {s.index: [_word(w.text) for w in s.words] for s in segments if s.is_final}
    order = sorted(finals)
    shown = changed = 0
    last: dict[int, list[str]] = {}
    for seg in segments:
        if seg.is_final:
            continue
        words = [_word(w.text) for w in seg.words]
        later = [w for i in order if i >= seg.index for w in finals[i]]
        same = next((k for k, (a, b) in enumerate(zip(words, later, strict=False)) if a != b),
                    min(len(words), len(later)))
        shown += len(words)
        changed += len(words) - same
        last[seg.index] = words
    shrunk = sum(1 for i, words in last.items()
                 if len([w for j in order if j >= i for w in finals[j]]) < len(words))
    return {"partial_words": shown, "changed_words": changed, "shrunk": shrunk}


def _word(text: str) -> str:
    return normalize(text, "en")


def _quantiles(values: list[float]) -> dict[str, float | None]:
    p50, p95, top = percentiles(values, 0.5, 0.95, 1.0)
    return {"p50": p50, "p95": p95, "max": top, "n": len(values)}


async def _one(engine: Engine, clip: Path, reference: str | None, live: LiveOptions,
               speed: float, peers: dict[str, PeerRun]) -> dict[str, Any]:
    async with engine.transcribe_stream(clip) as stream:
        offline = " ".join([seg.text async for seg in stream])
    peer_wer: dict[str, float] = {}
    for name, run in peers.items():
        if reference:
            text, _ = await anyio.to_thread.run_sync(run, clip)
            peer_wer[name] = word_error_rate(reference, text)
    source = paced(clip, speed=speed)
    finals: list[str] = []
    final_lat: list[float] = []
    partial_lat: list[float] = []
    started = time.monotonic()
    seen: list[Segment] = []
    async with engine.transcribe_stream(source, live=live) as stream:
        async for seg in stream:
            seen.append(seg)
            now = time.monotonic()
            fed = source.fed_at(seg.end)
            lag = (now - fed) * speed if fed is not None else 0.0  # in seconds of audio
            (final_lat if seg.is_final else partial_lat).append(lag)
            if seg.is_final:
                finals.append(seg.text)
        stats = stream.statistics()
    wall = time.monotonic() - started
    text = " ".join(finals)
    duration = stats.audio_seconds
    live_stats = stats.live
    assert live_stats is not None
    return {
        "clip": str(clip),
        "audio_seconds": duration,
        "wall_seconds": wall,
        "final_latency": _quantiles(final_lat),
        "partial_latency": _quantiles(partial_lat),
        "model_rtf": stats.model_seconds / duration if duration else None,
        "dropped_seconds": live_stats.dropped_seconds,
        "finals": len(finals),
        "partials": live_stats.partials,
        "wer_vs_reference": word_error_rate(reference, text) if reference else None,
        "offline_wer_vs_reference": word_error_rate(reference, offline) if reference else None,
        "wer_vs_offline": word_error_rate(offline, text),
        "peer_offline_wer": peer_wer,
        "best_peer_offline_wer": min(peer_wer.values(), default=None),
        "flicker": flicker(seen),
        "finals_text": text,
        "offline_text": offline,
        "reference_words": len(reference.split()) if reference else 0,
        "_final_latencies": final_lat,
        "_partial_latencies": partial_lat,
    }


async def _bench(clips: list[tuple[Path, str | None]], model: str, compute_type: str,
                 live: LiveOptions, speed: float) -> dict[str, Any]:
    settings = Settings.load(model=model, compute_type=compute_type, device="cpu")
    async with Engine(settings) as engine:
        peers = await peer_runs(engine)
        runs = [await _one(engine, clip, ref, live, speed, peers) for clip, ref in clips]
    final_all = [x for r in runs for x in r.pop("_final_latencies")]
    partial_all = [x for r in runs for x in r.pop("_partial_latencies")]
    words: int = sum(r["reference_words"] for r in runs)

    def pooled(field: str) -> float | None:
        # One clip's WER swings with where its finals happen to be cut: pool by words.
        if not words:
            return None
        total: float = sum(r[field] * r["reference_words"] for r in runs if r[field] is not None)
        return total / words

    return {
        "benchmark": "live", "model": model, "compute_type": compute_type, "speed": speed,
        "live_options": {k: getattr(live, k) for k in live.__dataclass_fields__},
        "runs": runs,
        "final_latency": _quantiles(final_all),
        "partial_latency": _quantiles(partial_all),
        "pooled_wer": {"live": pooled("wer_vs_reference"),
                       "offline": pooled("offline_wer_vs_reference"),
                       "best_peer_offline": pooled("best_peer_offline_wer"), "words": words},
        "flicker": _pooled_flicker(runs),
        "targets": {"final_p50": 1.0, "final_p95": 2.0, "partial_p50": 0.5,
                    "wer_points_over_offline": 1.5, "flicker": 0.10},
    }


def _pooled_flicker(runs: list[dict[str, Any]]) -> dict[str, Any]:
    shown = sum(r["flicker"]["partial_words"] for r in runs)
    changed = sum(r["flicker"]["changed_words"] for r in runs)
    return {"partial_words": shown, "changed_words": changed,
            "rate": changed / shown if shown else None,
            "shrunk": sum(r["flicker"]["shrunk"] for r in runs)}


def bench_live(clips: list[tuple[Path, str | None]], *, model: str, compute_type: str,
               live: LiveOptions, speed: float = 1.0) -> dict[str, Any]:
    return anyio.run(_bench, clips, model, compute_type, live, speed)
