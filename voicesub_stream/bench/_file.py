"""``voicesub bench file``: our engine against plain and batched faster-whisper on one file.

Every run happens in a fresh child process so that peak RSS belongs to that run alone, and the
model is loaded before the clock starts, so the figures compare transcription, not loading.
"""

from __future__ import annotations

import multiprocessing as mp
import platform
import resource
import time
from typing import TYPE_CHECKING, Any

from .._config import Settings, cpu_count

if TYPE_CHECKING:
    from pathlib import Path

    from .._stream import SegmentStream

RUNS = ("faster-whisper", "faster-whisper-batched", "voicesub")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_faster_whisper(audio: str, model_path: str, compute_type: str, batched: bool,
                        result: dict[str, Any]) -> None:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(model_path, device="cpu", compute_type=compute_type,
                         cpu_threads=cpu_count())
    runner: Any = BatchedInferencePipeline(model) if batched else model
    started = time.perf_counter()
    segments, info = runner.transcribe(audio)  # each with its own defaults
    texts, first = [], None
    for seg in segments:
        first = first if first is not None else time.perf_counter() - started
        texts.append(seg.text)
    result.update(wall=time.perf_counter() - started, first_segment=first,
                  text=" ".join(t.strip() for t in texts), segments=len(texts),
                  duration=info.duration)


def _run_voicesub(audio: str, model_name: str, compute_type: str, result: dict[str, Any]) -> None:
    import anyio

    from .._engine import Engine
    from ..sources import probe_duration

    async def main() -> None:
        settings = Settings.load(model=model_name, compute_type=compute_type, device="cpu")
        async with Engine(settings) as engine:
            # The model, and the copy files run on where the engine keeps one, load before
            # the clock starts, as every contender's model does.
            await engine.warm_up()
            started = time.perf_counter()
            texts, first = [], None
            stream: SegmentStream
            async with engine.transcribe_stream(audio) as stream:
                async for seg in stream:
                    first = first if first is not None else time.perf_counter() - started
                    texts.append(seg.text)
            result.update(wall=time.perf_counter() - started, first_segment=first,
                          text=" ".join(texts), segments=len(texts),
                          duration=probe_duration(audio), stats=stream.statistics().to_dict())

    anyio.run(main)


def _child(kind: str, audio: str, model_name: str, model_path: str, compute_type: str,
           queue: Any) -> None:
    result: dict[str, Any] = {"run": kind}
    try:
        if kind == "voicesub":
            _run_voicesub(audio, model_name, compute_type, result)
        else:
            _run_faster_whisper(audio, model_path, compute_type, kind.endswith("batched"),
                                result)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    queue.put(result)


def bench_file(audio: Path, *, model: str, compute_type: str, reference: str | None,
               repeat: int = 1) -> dict[str, Any]:
    """Run the three transcribers on ``audio``; returns the JSON-ready report."""
    from .._text import word_error_rate
    from ..models import resolve_model

    settings = Settings.load()
    model_path = resolve_model(model, cache_dir=settings.cache_dir, offline=settings.offline)
    ctx = mp.get_context("spawn")
    runs: list[dict[str, Any]] = []
    for attempt in range(repeat):
        for kind in RUNS:
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(kind, str(audio), model, model_path,
                                                    compute_type, queue))
            proc.start()
            result = queue.get()
            proc.join()
            result["attempt"] = attempt
            if "wall" in result and result.get("duration"):
                result["rtf"] = result["wall"] / result["duration"]
                result["speed_x_realtime"] = result["duration"] / result["wall"]
            if reference is not None and "text" in result:
                result["wer"] = word_error_rate(reference, result["text"])
            runs.append(result)
    best = {kind: min((r for r in runs if r["run"] == kind and "wall" in r),
                      key=lambda r: r["wall"], default=None) for kind in RUNS}
    ours = best["voicesub"]
    comparison = {}
    for kind in RUNS[:2]:
        theirs = best[kind]
        if ours and theirs:
            comparison[f"speedup_vs_{kind}"] = theirs["wall"] / ours["wall"]
            if reference is not None:
                comparison[f"wer_delta_vs_{kind}"] = ours["wer"] - theirs["wer"]
    return {
        "benchmark": "file",
        "audio": str(audio),
        "model": model,
        "compute_type": compute_type,
        "machine": {"cpus": cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "runs": runs,
        "best": {k: v for k, v in best.items() if v},
        "comparison": comparison,
    }
