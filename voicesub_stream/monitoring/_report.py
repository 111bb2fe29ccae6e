"""``engine.performance_report()``: a JSON-ready summary and recommendations with numbers."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .._config import cpu_count
from .._stats import percentiles
from ._sampler import SampleHistory

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._monitor import Monitor
    from ._sampler import Sample

__all__ = ("build_report", "recommendations", "rss_slope", "summarize")


MIN_SLOPE_SPAN = 300.0
"""Seconds of samples, at least, before RSS is given a slope: over less, model loads and
warm-up allocations read as gigabytes an hour."""
MIN_SLOPE_SAMPLES = 10


def rss_slope(samples: SampleHistory | Sequence[Sample]) -> float | None:
    """Least-squares slope of RSS over time, in bytes per hour; ``None`` for fewer than
    :data:`MIN_SLOPE_SAMPLES` samples or a span under :data:`MIN_SLOPE_SPAN`."""
    history = _history(samples)
    if len(history) < MIN_SLOPE_SAMPLES:
        return None
    xs, ys = history.column("time"), history.column("rss")
    xs -= xs[0]
    if np.ptp(xs) < MIN_SLOPE_SPAN:
        return None
    return float(np.polyfit(xs, ys, 1)[0]) * 3600


def summarize(samples: SampleHistory | Sequence[Sample]) -> dict[str, Any]:
    """Means, peaks and trends over ``samples``."""
    history = _history(samples)
    if not len(history):
        return {"samples": 0}
    col = history.column
    time_, cpu, rss, lag = col("time"), col("process_cpu"), col("rss"), col("loop_lag")
    lag_p50, lag_p95 = percentiles(lag.tolist(), 0.5, 0.95)
    gpu = col("gpu_memory_percent")
    disk = col("disk_read_rate") + col("disk_write_rate")
    return {
        "samples": len(history), "seconds": float(time_[-1] - time_[0]),
        "process_cpu_mean": float(cpu.mean()), "process_cpu_max": float(cpu.max()),
        "system_cpu_mean": float(col("system_cpu").mean()),
        "rss_first": int(rss[0]), "rss_last": int(rss[-1]),
        "rss_max": int(rss.max()), "rss_slope_per_hour": rss_slope(history),
        "memory_percent_max": float(col("memory_percent").max()),
        "loop_lag_p50": lag_p50, "loop_lag_p95": lag_p95,
        "loop_lag_max": float(lag.max()),
        "disk_rate_mean": float(disk.mean()),
        "scheduler_queued_mean": float(col("scheduler_queued").mean()),
        "gpu_memory_percent_max": None if np.isnan(gpu).all() else float(np.nanmax(gpu)),
    }


def _history(samples: SampleHistory | Sequence[Sample]) -> SampleHistory:
    return samples if isinstance(samples, SampleHistory) else SampleHistory.of(samples)


def recommendations(summary: dict[str, Any], engine: dict[str, Any]) -> list[dict[str, Any]]:
    """Rules over the numbers; each recommendation names the number behind it."""
    out: list[dict[str, Any]] = []

    def add(rule: str, value: float, message: str) -> None:
        out.append({"rule": rule, "value": value, "message": message})

    cache = engine.get("cache") or {}
    lookups = cache.get("hits", 0) + cache.get("misses", 0)
    if lookups >= 20 and (cache.get("hit_ratio") or 0.0) < 0.2:
        ratio = cache.get("hit_ratio") or 0.0
        add("cache_hit_ratio", ratio,
            f"cache hit ratio {ratio:.0%} over {lookups} lookups: inputs rarely repeat or "
            "their options differ; a shared cache (CACHE_TYPE=redis) helps several workers")
    scheduler = engine.get("scheduler") or {}
    workers = scheduler.get("workers")
    for label, cls in (scheduler.get("classes") or {}).items():
        wait = cls.get("wait_p95")
        if wait is not None and wait > 1.0:
            add("queue_wait", wait,
                f"{label} jobs wait {wait:.2f} s (p95) for a model slot with {workers} "
                "worker(s): add workers if the CPU has headroom, else fewer streams per "
                "process or a GPU")
    cpu_share = (summary.get("process_cpu_mean") or 0.0) / cpu_count()
    queued = summary.get("scheduler_queued_mean") or 0.0
    if queued >= 1.0 and cpu_share < 60.0:
        add("too_few_workers", queued,
            f"{queued:.1f} jobs wait on average while the process uses {cpu_share:.0f} % of "
            f"the CPU: raise MAX_WORKERS (now {workers})")
    if workers is not None and cpu_share > 95.0 and workers > cpu_count():
        add("too_many_workers", float(workers),
            f"{workers} workers on {cpu_count()} cores with the CPU {cpu_share:.0f} % busy: "
            "concurrent model calls only slow each other; lower MAX_WORKERS")
    lag = summary.get("loop_lag_p95")
    if lag is not None and lag > 0.05:
        add("loop_lag", lag,
            f"event-loop lag p95 {lag * 1000:.0f} ms: something blocks the loop (sync I/O or "
            "CPU work in a coroutine); move it to a thread")
    slope = summary.get("rss_slope_per_hour")
    if slope is not None and slope > 50e6:
        add("rss_rising", slope,
            f"RSS rising {slope / 1e6:.0f} MB/hour over {summary['seconds'] / 60:.0f} min: "
            "a leak or an unbounded cache; ENABLE_MEMORY_PROFILING=true names the sites")
    gpu = summary.get("gpu_memory_percent_max")
    if gpu is not None and gpu > 90.0:
        add("gpu_memory", gpu,
            f"GPU memory {gpu:.0f} % used: fewer loaded models (max_loaded_models) or a "
            "smaller compute type (int8_float16)")
    return out


def build_report(monitor: Monitor | None, engine: dict[str, Any]) -> dict[str, Any]:
    """The report of ``engine.performance_report()``; ``engine`` is the engine's statistics
    as data (``EngineStatistics.to_dict()``)."""
    started = time.perf_counter()
    history = monitor.history if monitor is not None else SampleHistory(1)
    summary = summarize(history)
    report: dict[str, Any] = {
        "time": time.time(),
        "latest": history.latest.to_dict() if history.latest is not None else None,
        "summary": summary,
        "timings": ({name: dataclasses.asdict(t) for name, t in monitor.timings.snapshot().items()}
                    if monitor is not None else {}),
        "engine": engine,
        "alerts": {"firing": monitor.alerts.firing,
                   "recent": [dataclasses.asdict(a) for a in monitor.alerts.history[-20:]]}
        if monitor is not None else None,
        "memory": dataclasses.asdict(monitor.memory.statistics()) if monitor is not None
        else None,
        "recommendations": recommendations(summary, engine),
    }
    report["build_seconds"] = time.perf_counter() - started
    return report

