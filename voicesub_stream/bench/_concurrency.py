"""``voicesub bench concurrency``: N live streams of real speech offered at once, on defaults.

For each N, N streams of the clip are offered to one ``Engine()`` on its defaults (the way a
web server embeds it: no settings, ``live=True``), their starts spread over one second. Each
is fed in real time. A stream the engine refuses records how long the refusal took. Every
admitted stream's finals are scored against the same engine's offline transcript of the
clip, so a load that is held by getting words wrong shows it; when the whole clip plays and
its reference transcript lies beside it, finals and offline are scored against that too.
Latency is the wall time from when the audio of a final's last word was fed to when the final
arrived.

Beside the defaults, in the same run: the baseline of fixed pacing (``policy="block"``, what
live streams did before the pace followed the load) at one N, and live streams sharing the
engine with a long file at batch priority.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import psutil

from .._config import LiveOptions, Settings
from .._engine import Engine
from .._stats import percentiles
from .._text import word_error_rate
from ..errors import OverloadedError
from ..sources import paced, read_audio

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt


async def _stream(engine: Engine, audio: npt.NDArray[np.float32], live: LiveOptions,
                  delay: float, out: dict[str, Any]) -> None:
    await anyio.sleep(delay)
    source = paced(audio)
    lat: list[float] = []
    texts: list[str] = []
    offered = time.monotonic()
    stream = engine.transcribe_stream(source, live=live)
    try:
        await stream.__aenter__()
    except OverloadedError:
        out.update(refused=True, refusal_seconds=time.monotonic() - offered)
        return
    try:
        async for seg in stream:
            fed = source.fed_at(seg.end)
            if seg.is_final and fed is not None:
                lat.append(time.monotonic() - fed)
                texts.append(seg.text)
        stats = stream.statistics()
    finally:
        await stream.aclose()
    live_stats = stats.live
    out.update(refused=False, latencies=lat, text=" ".join(texts),
               degraded=bool(live_stats and live_stats.degraded),
               pace=live_stats.pace if live_stats else 0,
               pace_changes=live_stats.pace_changes if live_stats else 0,
               dropped=live_stats.dropped_seconds if live_stats else 0.0)


async def _file(engine: Engine, audio: npt.NDArray[np.float32], out: dict[str, Any]) -> None:
    started = time.monotonic()
    async with engine.transcribe_stream(audio) as stream:
        words = sum([len(seg.text.split()) async for seg in stream])
    out.update(file_seconds=time.monotonic() - started, file_words=words)


async def _round(n: int, audio: npt.NDArray[np.float32], settings: Settings, live: LiveOptions,
                 offline: str, long_file: npt.NDArray[np.float32] | None,
                 reference: str | None = None) -> dict[str, Any]:
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    file_out: dict[str, Any] = {}
    async with Engine(settings) as engine:
        # The model loads and one live update is timed before the clock starts, as
        # ``voicesub serve`` does before it takes clients.
        await engine.warm_up()
        proc = psutil.Process()
        proc.cpu_percent(None)
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            if long_file is not None:
                tg.start_soon(_file, engine, long_file, file_out)
            for i in range(n):
                tg.start_soon(_stream, engine, audio, live, i / n, results[i])
        wall = time.monotonic() - started
        cpu = proc.cpu_percent(None)
        admission = engine.statistics().admission
    admitted = [r for r in results if not r["refused"]]
    refused = [r for r in results if r["refused"]]
    lat = [x for r in admitted for x in r["latencies"]]
    p50, p95 = percentiles(lat, 0.5, 0.95)
    per_stream = [percentiles(r["latencies"], 0.95)[0] for r in admitted]
    wers = [word_error_rate(offline, r["text"]) for r in admitted]
    scored = [word_error_rate(reference, r["text"]) for r in admitted] if reference else []
    return {
        "streams": n, "admitted": len(admitted), "refused": len(refused),
        "degraded": sum(r["degraded"] for r in admitted),
        "refusal_ms_max": round(1000 * max(r["refusal_seconds"] for r in refused), 1)
        if refused else None,
        "final_p50": p50, "final_p95": p95,
        "worst_stream_p95": max((p for p in per_stream if p is not None), default=None),
        "stream_p95": [None if p is None else round(p, 2) for p in per_stream],
        "stream_paces": [(r["pace"], r["pace_changes"]) for r in admitted],
        "finals": len(lat),
        "wer_vs_offline_mean": sum(wers) / len(wers) if wers else None,
        "wer_vs_offline_max": max(wers, default=None),
        "wer_mean": sum(scored) / len(scored) if scored else None,
        "wer_max": max(scored, default=None),
        "pace_max": max((r["pace"] for r in admitted), default=0),
        "dropped_seconds": sum(r["dropped"] for r in admitted),
        "wall_seconds": wall, "cpu_percent": cpu,
        "capacity_cores": admission.capacity,
        "update_cost": {m: dataclasses.asdict(c) for m, c in admission.models.items()},
        **file_out,
    }


async def _offline(audio: npt.NDArray[np.float32], settings: Settings) -> str:
    async with Engine(settings) as engine, engine.transcribe_stream(audio) as stream:
        return " ".join([seg.text async for seg in stream])


def _compare_to_alone(row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Put the live latency beside a file over the same streams' latency alone, from this run
    (the target: p95 within 10 %). One run's p95 rests on a few finals: compare several."""
    alone = next((r for r in rows if r["variant"] == "defaults"
                  and r["streams"] == row["streams"] and r["final_p95"]), None)
    if alone is None or not row["final_p95"]:
        return
    row["p50_vs_alone"] = row["final_p50"] / alone["final_p50"] - 1
    row["p95_vs_alone"] = row["final_p95"] / alone["final_p95"] - 1


def bench_concurrency(clip: Path, *, streams: list[int], seconds: float, model: str,
                      compute_type: str, baseline_streams: list[int],
                      with_file: Path | None, file_streams: int = 4,
                      file_minutes: float = 10.0) -> dict[str, Any]:
    """Rows for the defaults at every N, the fixed-pace baseline at ``baseline_streams``, and
    ``file_streams`` live streams beside a ``file_minutes`` file made of ``with_file``."""
    audio = read_audio(clip)
    audio = audio[: int(seconds * 16_000)] if seconds > 0 else audio
    # The reference transcript scores finals and offline alike, when the whole clip plays.
    ref_path = clip.with_suffix(".txt")
    reference = (ref_path.read_text(encoding="utf-8")
                 if ref_path.is_file() and len(audio) == len(read_audio(clip)) else None)
    settings = Settings.load(model=model, compute_type=compute_type, cache_type="none")
    offline = anyio.run(_offline, audio, settings)
    runs: list[tuple[str, int, LiveOptions, npt.NDArray[np.float32] | None]] = [
        ("defaults", n, LiveOptions(), None) for n in streams]
    runs += [("fixed pace (policy block)", n, LiveOptions(policy="block"), None)
             for n in baseline_streams]
    if with_file is not None:
        piece = read_audio(with_file)
        repeats = max(1, round(file_minutes * 60 * 16_000 / len(piece)))
        long_file = np.concatenate([piece] * repeats)
        runs.append((f"defaults + {len(long_file) / 16_000 / 60:.1f}-min file", file_streams,
                     LiveOptions(), long_file))
    rows: list[dict[str, Any]] = []
    for variant, n, live, extra in runs:
        row = anyio.run(_round, n, audio, settings, live, offline, extra, reference)
        row["variant"] = variant
        if extra is not None:
            _compare_to_alone(row, rows)
        rows.append(row)
    return {"benchmark": "concurrency", "clip": str(clip), "seconds": len(audio) / 16_000,
            "model": model, "compute_type": compute_type,
            "engine": dataclasses.asdict(Engine(settings).execution),
            "offline_text": offline, "rows": rows,
            "offline_wer": word_error_rate(reference, offline) if reference else None,
            "targets": {"8": 2.0, "12": 2.5, "16": "12 admitted at p95 <= 2.5"}}
