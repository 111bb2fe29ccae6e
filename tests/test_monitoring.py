"""Observability: timing, the sampler, alerts, memory manager, reports and exports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from voicesub_stream import Engine, Settings
from voicesub_stream.errors import ConfigError
from voicesub_stream.monitoring import (
    AlertRule,
    Alerts,
    MemoryManager,
    Monitor,
    Probe,
    Sample,
    Timings,
    recommendations,
    rss_slope,
    summarize,
    timed,
    timer,
)
from voicesub_stream.testing import assert_no_leaks, resource_snapshot

from .conftest import SENTENCES

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np


def sample(**values: Any) -> Sample:
    base: dict[str, Any] = dict(time=time.time(), process_cpu=10.0, system_cpu=10.0,
                                rss=100_000_000, memory_percent=40.0, disk_read_rate=0.0,
                                disk_write_rate=0.0, net_sent_rate=0.0, net_recv_rate=0.0,
                                loop_lag=0.001, threads=10)
    return Sample(**{**base, **values})


async def test_timed_and_timer_record_sync_and_async_calls() -> None:
    registry = Timings()

    @timed("sync", registry)
    def work(x: int) -> int:
        time.sleep(0.002)
        return x * 2

    @timed("async", registry)
    async def awork() -> str:
        await anyio.sleep(0.002)
        return "done"

    assert [work(i) for i in range(5)] == [0, 2, 4, 6, 8]
    assert await awork() == "done"
    with timer("block", registry):
        sum(range(10_000))
    async with timer("block", registry):
        await anyio.sleep(0.001)
    with pytest.raises(ZeroDivisionError), timer("failing", registry):
        _ = 1 / 0
    snap = registry.snapshot()
    assert snap["sync"].count == 5
    assert snap["async"].count == 1
    assert snap["block"].count == 2
    assert snap["failing"].count == 1
    p50, p99 = snap["sync"].p50, snap["sync"].p99
    assert p50 is not None
    assert p99 is not None
    assert 0.002 <= p50 <= p99
    assert registry.take_window_max()["sync"] >= 0.002
    assert registry.take_window_max() == {}  # reset once read


async def test_sampler_runs_and_stops_with_the_engine(settings: Settings, tmp_path: Path,
                                                      espeak_wav: Path) -> None:
    before = resource_snapshot()
    path = tmp_path / "metrics.jsonl"
    s = settings.model_copy(update={"metrics_interval": 0.05, "save_performance_metrics": True,
                                    "metrics_path": path})
    async with Engine(s) as engine:
        assert engine.monitor is not None
        async for _ in engine.transcribe_stream(espeak_wav):
            pass
        with anyio.fail_after(10):
            while engine.monitor.samples_taken < 5:  # noqa: ASYNC110 - polling a counter
                await anyio.sleep(0.05)
        latest = engine.monitor.latest
        assert latest is not None
        assert latest.rss > 0
        assert latest.threads > 0
        report = engine.performance_report()
    assert not engine.monitor.running
    await assert_no_leaks(before)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) >= 5
    assert {"rss", "loop_lag", "engine"} <= set(lines[0])
    assert report["summary"]["samples"] >= 5
    assert report["timings"]["stage.transcribe"]["count"] >= 1  # stages are timed by default
    assert report["timings"]["stage.decode"]["count"] >= 1
    assert report["build_seconds"] < 1.0  # generous: the target (10 ms) is a benchmark's job


async def test_alerts_fire_and_clear_with_hysteresis() -> None:
    rule = AlertRule("memory", lambda s: s.memory_percent, 85.0, "%", hysteresis=0.1)
    monitor = Monitor(rules=[rule], interval=3600)  # samples come from this test instead
    heard: list[str] = []
    monitor.on_alert(lambda a: heard.append(f"{a.rule}:{a.state}"))
    async with anyio.create_task_group() as tg, monitor.subscribe() as feed:
        tg.start_soon(monitor.run)
        for value in (50, 86, 90, 80, 84, 76, 90):  # 80 and 84 lie in the hysteresis band
            monitor.process(sample(memory_percent=value))
        events = [await feed.receive() for _ in range(3)]
        tg.cancel_scope.cancel()
    assert heard == ["memory:firing", "memory:cleared", "memory:firing"]
    assert [e.state for e in events] == ["firing", "cleared", "firing"]
    assert events[0].value == 86
    assert "85" in events[0].message
    assert monitor.alerts.firing == ["memory"]


def test_adaptive_threshold_follows_the_observed_baseline() -> None:
    def rule() -> AlertRule:
        return AlertRule("disk", lambda s: s.disk_rate / 1e6, 1.0, " MB/s", adaptive=True)

    fixed, adaptive = Alerts([rule()]), Alerts([rule()], adaptive=True)
    busy = [sample(disk_read_rate=5e6 + (i % 3) * 1e5) for i in range(30)]  # a busy baseline
    for s in busy:
        fixed.evaluate(s)
        adaptive.evaluate(s)
    assert fixed.firing == ["disk"]  # the static threshold alerts all day long
    assert adaptive.firing == []  # the adaptive one learned that 5 MB/s is normal here
    adaptive.evaluate(sample(disk_read_rate=40e6))
    assert adaptive.firing == ["disk"]  # and still hears a real excursion


async def test_memory_pressure_evicts_a_model_and_the_next_stream_reloads_it(
    settings: Settings, espeak_audio: np.ndarray
) -> None:
    from voicesub_stream._text import word_error_rate

    async with Engine(settings.model_copy(update={"memory_threshold": 70.0})) as engine:
        assert engine.monitor is not None
        first = " ".join([s.text async for s in engine.transcribe_stream(espeak_audio)])
        assert engine.registry.loads == 1
        assert engine.registry.loaded()
        memory = engine.monitor.memory
        assert memory.check(sample(memory_percent=72.0)) is not None  # normal: models stay
        assert engine.registry.loaded()
        freed = memory.check(sample(memory_percent=90.0))  # past halfway to 100: aggressive
        assert freed is not None
        assert freed["models_evicted"] == ["tiny.en"]
        assert engine.registry.loaded() == []
        again = " ".join([s.text async for s in engine.transcribe_stream(espeak_audio)])
        assert engine.registry.loads == 2
        assert memory.cleanups == {"normal": 1, "aggressive": 1}
    assert again == first
    assert word_error_rate(SENTENCES, again) <= 0.3


def test_memory_manager_tracks_objects_and_names_growing_sites() -> None:
    class Thing:
        pass

    with MemoryManager(profiling=True) as memory:
        things = [Thing() for _ in range(3)]
        for t in things:
            memory.track(t, "thing")
        assert memory.tracked() == {"thing": 3}
        del things[:2]
        assert memory.tracked() == {"thing": 1}  # weak references: the dead are not counted
        hoard = [bytearray(1024) for _ in range(2000)]
        growth = memory.top_growth(5)
        assert hoard
        assert any("test_monitoring.py" in g["site"] for g in growth)
    assert memory.top_growth() == []  # profiling ended with the block


def test_recommendations_name_the_numbers_behind_them() -> None:
    summary = summarize([sample(time=1000.0 + i, rss=100_000_000 + i * 100_000,
                                loop_lag=0.2) for i in range(400)])
    engine = {"cache": {"hits": 2, "misses": 98, "hit_ratio": 0.02},
              "scheduler": {"workers": 1, "classes": {"live": {"wait_p95": 2.5}}}}
    rules = {r["rule"]: r for r in recommendations(summary, engine)}
    assert set(rules) >= {"cache_hit_ratio", "queue_wait", "loop_lag", "rss_rising"}
    assert "2%" in rules["cache_hit_ratio"]["message"]
    assert "2.50 s" in rules["queue_wait"]["message"]
    assert "200 ms" in rules["loop_lag"]["message"]
    assert rules["rss_rising"]["value"] == pytest.approx(360e6, rel=0.01)  # 100 kB/s


async def test_prometheus_metrics_parse(engine: Engine, espeak_audio: np.ndarray) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    async for _ in engine.transcribe_stream(espeak_audio):
        pass
    assert engine.monitor is not None
    await engine.monitor.sample(Probe())
    from voicesub_stream.server import render_metrics

    body, content_type = render_metrics(engine)
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert families["voicesub_streams"].samples[0].value >= 1
    timed = families["voicesub_function_seconds"]
    assert timed.type == "histogram"
    names = {s.labels.get("name") for s in timed.samples}
    assert {"stage.transcribe", "model.call"} <= names
    calls = [s for s in timed.samples if s.labels.get("name") == "model.call"]
    buckets = [s.value for s in calls if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets)  # cumulative
    count = next(s.value for s in calls if s.name.endswith("_count"))
    assert buckets[-1] == count >= 1  # +Inf holds every call
    assert "voicesub_scheduler_jobs" in families
    # The engine's own choice of threads per call and calls at once, and the cores behind it.
    calls = families["voicesub_execution_concurrent_calls"].samples[0].value
    assert calls == engine.statistics().execution.concurrent_calls >= 1


def test_report_command_summarises_and_plots(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    with path.open("w") as f:
        for i in range(120):
            f.write(json.dumps(sample(time=1000.0 + i, process_cpu=20 + i % 7,
                                      slowest={"stage.transcribe": 0.1 + i % 5 / 10}
                                      ).to_dict()) + "\n")
    png = tmp_path / "out.png"
    done = subprocess.run([sys.executable, "-m", "voicesub_stream.cli", "report", str(path),
                           "--plot", str(png)], capture_output=True, text=True, check=True)
    assert "120 samples" in done.stdout
    assert "RSS slope" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    assert imread(png).shape[0] > 100  # decodes as an image


def test_monitoring_settings_take_the_seed_names_and_reject_bad_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENABLE_PERFORMANCE_MONITORING", "false")
    monkeypatch.setenv("MEMORY_THRESHOLD", "75")
    monkeypatch.setenv("VOICESUB_ADAPTIVE_MONITORING", "true")
    s = Settings.load()
    assert (s.enable_performance_monitoring, s.memory_threshold, s.adaptive_monitoring) == (
        False, 75.0, True)
    assert Engine(s).monitor is None
    monkeypatch.setenv("MEMORY_THRESHOLD", "170")
    with pytest.raises(ConfigError, match="MEMORY_THRESHOLD"):
        Settings.load()
    monkeypatch.setenv("MEMORY_THRESHOLD", "80")
    monkeypatch.setenv("SAVE_PERFORMANCE_METRICS", "perhaps")
    with pytest.raises(ConfigError, match="SAVE_PERFORMANCE_METRICS"):
        Settings.load()


def test_history_and_timing_rings_take_their_memory_up_front() -> None:
    # Rings that grew while filling would read as a leak in an hour-long RSS trend.
    from voicesub_stream._timing import RECENT
    from voicesub_stream.monitoring import SampleHistory

    history = SampleHistory(100)
    allocated = history._rows.nbytes
    for i in range(250):
        history.append(sample(time=1000.0 + i, rss=100_000_000 + i))
    assert history._rows.nbytes == allocated
    assert len(history) == 100
    assert history.column("time").tolist() == [1000.0 + i for i in range(150, 250)]
    assert history.latest is not None
    assert history.latest.rss == 100_000_249
    assert summarize(history)["rss_first"] == 100_000_150

    registry = Timings()
    for k in range(RECENT + 10):
        registry.observe("x", k / 1e6)
    histogram = registry.histogram("x")
    assert len(histogram.recent) == RECENT
    assert registry.snapshot()["x"].count == RECENT + 10
    assert registry.snapshot()["x"].max == pytest.approx((RECENT + 9) / 1e6)


def test_native_heap_is_trimmed_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import platform

    from voicesub_stream.monitoring import limit_malloc_arenas

    glibc = platform.libc_ver()[0] == "glibc"
    memory = MemoryManager(trim_interval=3600.0)
    assert memory.trim_native() is False  # the interval has not passed since start
    memory._trimmed_at -= 3600.0
    assert memory.trim_native() is glibc
    assert memory.trim_native() is False
    assert memory.statistics().native_trims == int(glibc)
    assert MemoryManager(trim_interval=None).trim_native() is False

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(2) is glibc
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False  # the user's own setting wins
    with pytest.raises(ConfigError, match="malloc_arenas"):
        Settings.load(malloc_arenas=0)


def test_rss_gets_a_slope_only_over_a_long_enough_span() -> None:
    # Four samples a minute apart after a model load: no "35 GB/hour" from them.
    short = [sample(time=1000.0 + 60 * i, rss=100_000_000 + (i > 0) * 2_000_000_000)
             for i in range(4)]
    assert rss_slope(short) is None
    assert "rss_rising" not in {r["rule"] for r in recommendations(summarize(short), {})}
    steady = [sample(time=1000.0 + 30 * i, rss=100_000_000 + i * 3_000_000) for i in range(11)]
    assert rss_slope(steady) == pytest.approx(360e6, rel=0.01)  # 100 kB/s over 5 min
