"""``voicesub bench monitor``: what observability costs.

Timing overhead is the per-call difference between a decorated and a bare function over a
million calls; the sampler's CPU share is the process CPU time it adds at its interval over
an idle event loop measured the same way without it; report build time is measured with the
history ring full (an hour of samples) and a dozen timed names full of durations.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import psutil

from .._stats import percentiles
from ..monitoring import Monitor, Probe, Timings, build_report, timed, timer

CALLS = 1_000_000


def _per_call_ns(func: Any, calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        func()
    return (time.perf_counter_ns() - started) / calls


def timing_overhead(calls: int = CALLS) -> dict[str, float]:
    registry = Timings()

    def bare() -> None:
        pass

    decorated = timed("bench.decorated", registry)(bare)

    def block() -> None:
        with timer("bench.block", registry):
            pass

    async def coro() -> None:
        pass

    decorated_coro = timed("bench.async", registry)(coro)

    async def run_async(func: Any, n: int) -> float:
        started = time.perf_counter_ns()
        for _ in range(n):
            await func()
        return (time.perf_counter_ns() - started) / n

    # Best of three for each function on its own: the machine's noise only ever adds, so the
    # quickest run of each is its cost. (The quickest of three differences would be the one
    # whose bare run was slowed most, below zero on a busy machine.)
    best: dict[str, float] = {}
    for _ in range(3):
        runs = {"bare": _per_call_ns(bare, calls), "decorated": _per_call_ns(decorated, calls),
                "block": _per_call_ns(block, calls),
                "async": asyncio.run(run_async(coro, calls // 4)),
                "decorated_async": asyncio.run(run_async(decorated_coro, calls // 4))}
        for k, v in runs.items():
            best[k] = min(best.get(k, v), v)
    return {"timed_sync_ns": best["decorated"] - best["bare"],
            "timer_block_ns": best["block"] - best["bare"],
            "timed_async_ns": best["decorated_async"] - best["async"]}


async def _cpu_seconds_idle(seconds: float, monitor: Monitor | None) -> float:
    process = psutil.Process()
    before = process.cpu_times()
    async with anyio.create_task_group() as tg:
        if monitor is not None:
            tg.start_soon(monitor.run)
        await anyio.sleep(seconds)
        tg.cancel_scope.cancel()
    after = process.cpu_times()
    return (after.user - before.user) + (after.system - before.system)


def sampler_share(seconds: float, interval: float) -> dict[str, float]:
    idle = anyio.run(_cpu_seconds_idle, seconds, None)
    monitor = Monitor(interval=interval)
    busy = anyio.run(_cpu_seconds_idle, seconds, monitor)
    return {"interval": interval, "seconds": seconds, "samples": monitor.samples_taken,
            "cpu_percent_of_core": max(busy - idle, 0.0) / seconds * 100}


def report_build(repeat: int = 50) -> dict[str, float | None]:
    monitor = Monitor(interval=1.0)
    probe = Probe()
    first = probe.read()
    for i in range(monitor.history.maxlen):
        monitor.history.append(type(first)(**{**first.to_dict(), "time": first.time + i,
                                              "gpus": ()}))
    for n in range(12):
        for k in range(4096):
            monitor.timings.observe(f"bench.stage{n}", (k % 100) / 1000)
    engine = {"scheduler": {"workers": 1, "running": 0, "queued": 0, "classes": {}},
              "cache": None}
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        build_report(monitor, engine)
        times.append(time.perf_counter() - started)
    p50, p95 = percentiles(times, 0.5, 0.95)
    return {"history": len(monitor.history), "timed_names": 12, "p50_ms": (p50 or 0) * 1000,
            "p95_ms": (p95 or 0) * 1000, "max_ms": max(times) * 1000}


def bench_monitor(*, seconds: float = 30.0, interval: float = 1.0) -> dict[str, Any]:
    return {"benchmark": "monitor", "timing": timing_overhead(),
            "sampler": sampler_share(seconds, interval), "report": report_build(),
            "targets": {"timing_ns": 1000, "sampler_cpu_percent": 0.5, "report_ms": 10},
            "seed": {"timing_percent": 2, "sampler_cpu_percent": 1, "report_ms": 100}}
