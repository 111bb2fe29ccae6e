"""Prometheus exposition of an engine's figures, read at scrape time (no cost per call).

The engine's statistics are frozen dataclasses, so the exporter is one walk over their
fields: a number becomes ``voicesub_<section>_<field>`` (a counter where the field is marked
as one, else a gauge), a tuple its length, a nested statistics object a deeper section, and
a mapping of them one labelled family per field (priority classes, timed functions).
Timed functions and the latencies users watch (finals, model calls, queue waits) are
histograms, from counts the timings keep per bucket; the process itself (CPU seconds, memory,
open files) comes from prometheus-client's own collectors.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector

    from .._engine import Engine
    from .._timing import TimingStatistics
    from ..monitoring import Monitor, Sample
    from ..scheduler import ClassStatistics

__all__ = ("render_metrics",)

_LABELS = {"classes": "priority", "models": "model"}
"""The label a mapping field's keys become."""


LATENCIES = {"final": "live.final_latency", "model_call": "model.call",
             "queue_wait_live": "scheduler.wait.live", "queue_wait_batch": "scheduler.wait.batch",
             "queue_wait_interactive": "scheduler.wait.interactive"}
"""``voicesub_latency_seconds`` kinds and the timings they are read from: a live final after
the audio of its last word arrived, one model call, and a job's wait for a model slot by
priority class."""


def render_metrics(engine: Engine, *extra: Collector) -> tuple[bytes, str]:
    """The Prometheus text format for ``engine`` (and the ``extra`` collectors, such as the
    server's own counters), with the library's process, platform and GC collectors, and its
    content type."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
        generate_latest,
    )
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(_EngineCollector(engine))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _EngineCollector:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        stats = self.engine.statistics()
        yield from _fields("", stats)
        yield from _scheduler_jobs(stats.scheduler.classes)
        monitor = self.engine.monitor
        if monitor is None:
            return
        if monitor.latest is not None:
            yield from _resources(monitor.latest)
        timings = monitor.timings.snapshot()
        yield _histogram("voicesub_function_seconds", "Durations of timed functions.", "name",
                         timings)
        yield _histogram("voicesub_latency_seconds", "Final latency, model-call time and "
                         "queue wait.", "kind", {kind: timings[name] for kind, name
                                                 in LATENCIES.items() if name in timings})
        yield _alerts(monitor)


def _fields(section: str, stats: Any, labels: Mapping[str, str] | None = None,
            families: dict[str, CounterMetricFamily | GaugeMetricFamily] | None = None,
            ) -> Iterator[Metric]:
    """One metric per numeric field of ``stats`` (a statistics dataclass), recursively."""
    from prometheus_client import core

    labels = dict(labels or {})
    own = families is None
    families = {} if families is None else families
    for f in dataclasses.fields(stats):
        value = getattr(stats, f.name)
        name = f"voicesub_{f.metadata.get('name') or '_'.join(filter(None, (section, f.name)))}"
        if value is None or isinstance(value, str):
            continue
        if dataclasses.is_dataclass(value):
            yield from _fields(name.removeprefix("voicesub_"), value, labels, families)
        elif isinstance(value, dict) and f.name in _LABELS:
            for key, child in value.items():
                yield from _fields(name.removeprefix("voicesub_"), child,
                                   {**labels, _LABELS[f.name]: str(key)}, families)
        elif isinstance(value, (bool, int, float, tuple)):
            number = float(len(value) if isinstance(value, tuple) else value)
            if name not in families:
                kind = (core.CounterMetricFamily if f.metadata.get("counter")
                        else core.GaugeMetricFamily)
                families[name] = kind(name, _doc(f), labels=list(labels))
            families[name].add_metric(list(labels.values()), number)
    if own:
        yield from families.values()


def _doc(f: dataclasses.Field[Any]) -> str:
    return f.name.replace("_", " ").capitalize() + "."


def _scheduler_jobs(classes: Mapping[str, ClassStatistics]) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily

    jobs = CounterMetricFamily("voicesub_scheduler_jobs", "Jobs by class and outcome.",
                               labels=["priority", "outcome"])
    for label, cls in classes.items():
        for outcome in ("completed", "failed", "cancelled"):
            jobs.add_metric([label, outcome], getattr(cls, outcome))
    yield jobs


def _resources(sample: Sample) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    for field, name, doc in (
        ("system_cpu", "system_cpu_percent", "System CPU, percent."),
        ("memory_percent", "system_memory_percent", "System memory used, percent."),
        ("disk_read_rate", "disk_read_bytes_per_second", "System disk reads."),
        ("disk_write_rate", "disk_write_bytes_per_second", "System disk writes."),
        ("net_sent_rate", "network_sent_bytes_per_second", "System network out."),
        ("net_recv_rate", "network_received_bytes_per_second", "System network in."),
        ("loop_lag", "event_loop_lag_seconds", "How late the sampler woke up."),
        ("threads", "process_threads", "Threads in the process."),
    ):
        value = getattr(sample, field)
        if value is not None:
            yield GaugeMetricFamily(f"voicesub_{name}", doc, value=value)
    gpu_mem = GaugeMetricFamily("voicesub_gpu_memory_used_bytes", "GPU memory used.",
                                labels=["gpu"])
    gpu_util = GaugeMetricFamily("voicesub_gpu_utilization_percent", "GPU utilisation.",
                                 labels=["gpu"])
    for g in sample.gpus:
        gpu_mem.add_metric([str(g["index"])], g["memory_used"])
        if g.get("utilization") is not None:
            gpu_util.add_metric([str(g["index"])], g["utilization"])
    yield gpu_mem
    yield gpu_util


def _histogram(name: str, doc: str, label: str,
               timings: Mapping[str, TimingStatistics]) -> Metric:
    from prometheus_client.core import HistogramMetricFamily

    from .._timing import BUCKETS

    family = HistogramMetricFamily(name, doc, labels=[label])
    for key, t in timings.items():
        counts = t.buckets or (0,) * len(BUCKETS)
        family.add_metric([key], [*((f"{b:g}", c) for b, c in zip(BUCKETS, counts, strict=True)),
                                  ("+Inf", t.count)], sum_value=t.total)
    return family


def _alerts(monitor: Monitor) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    firing = GaugeMetricFamily("voicesub_alert_firing", "1 while an alert fires.",
                               labels=["rule"])
    for rule in monitor.alerts.rules:
        firing.add_metric([rule.name], 1.0 if rule.firing else 0.0)
    return firing
