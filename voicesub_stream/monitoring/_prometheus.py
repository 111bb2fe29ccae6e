"""Prometheus exposition of an engine's figures, read at scrape time (no cost per call)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.core import Metric

__all__ = ("render_metrics",)


def render_metrics(engine: Any) -> tuple[bytes, str]:
    """The Prometheus text format for ``engine`` (an :class:`~voicesub_stream.Engine`), and
    its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_EngineCollector(engine))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _EngineCollector:
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            Metric,
        )

        def gauge(name: str, doc: str, value: float | None,
                  labels: dict[str, str] | None = None) -> GaugeMetricFamily | None:
            if value is None:
                return None
            g = GaugeMetricFamily(f"voicesub_{name}", doc, labels=list(labels or {}))
            g.add_metric(list((labels or {}).values()), value)
            return g

        stats = self.engine.statistics()
        monitor = self.engine.monitor
        out: list[Metric | None] = []
        sample = monitor.latest if monitor is not None else None
        if sample is not None:
            out += [
                gauge("process_cpu_percent", "Process CPU, percent of one core.",
                      sample.process_cpu),
                gauge("system_cpu_percent", "System CPU, percent.", sample.system_cpu),
                gauge("process_resident_memory_bytes", "Process RSS.", sample.rss),
                gauge("system_memory_percent", "System memory used, percent.",
                      sample.memory_percent),
                gauge("disk_read_bytes_per_second", "System disk reads.",
                      sample.disk_read_rate),
                gauge("disk_write_bytes_per_second", "System disk writes.",
                      sample.disk_write_rate),
                gauge("network_sent_bytes_per_second", "System network out.",
                      sample.net_sent_rate),
                gauge("network_received_bytes_per_second", "System network in.",
                      sample.net_recv_rate),
                gauge("event_loop_lag_seconds", "How late the sampler woke up.",
                      sample.loop_lag),
                gauge("process_threads", "Threads in the process.", sample.threads),
            ]
            gpu_mem = GaugeMetricFamily("voicesub_gpu_memory_used_bytes", "GPU memory used.",
                                        labels=["gpu"])
            gpu_util = GaugeMetricFamily("voicesub_gpu_utilization_percent",
                                         "GPU utilisation.", labels=["gpu"])
            for g in sample.gpus:
                gpu_mem.add_metric([str(g["index"])], g["memory_used"])
                if g.get("utilization") is not None:
                    gpu_util.add_metric([str(g["index"])], g["utilization"])
            out += [gpu_mem, gpu_util]
        if monitor is not None:
            summary = Metric("voicesub_function_seconds", "Durations of timed functions.",
                             "summary")
            for name, t in monitor.timings.snapshot().items():
                for q in ("p50", "p95", "p99"):
                    if t[q] is not None:
                        summary.add_sample("voicesub_function_seconds",
                                           {"name": name, "quantile": f"0.{q[1:]}"}, t[q])
                summary.add_sample("voicesub_function_seconds_count", {"name": name},
                                   t["count"])
                summary.add_sample("voicesub_function_seconds_sum", {"name": name},
                                   t["total"])
            out.append(summary)
            firing = GaugeMetricFamily("voicesub_alert_firing", "1 while an alert fires.",
                                       labels=["rule"])
            for rule in monitor.alerts.rules:
                firing.add_metric([rule.name], 1.0 if rule.firing else 0.0)
            out.append(firing)
        sched = stats["scheduler"]
        out += [gauge("scheduler_workers", "Concurrent model calls allowed.", sched["workers"]),
                gauge("scheduler_running", "Model calls running.", sched["running"]),
                gauge("scheduler_queued", "Jobs waiting for a slot.", sched["queued"])]
        jobs = CounterMetricFamily("voicesub_scheduler_jobs", "Jobs by class and outcome.",
                                   labels=["priority", "outcome"])
        wait = GaugeMetricFamily("voicesub_scheduler_wait_seconds", "Wait for a slot.",
                                 labels=["priority", "quantile"])
        for label, cls in sched["classes"].items():
            for outcome in ("completed", "failed", "cancelled"):
                jobs.add_metric([label, outcome], cls[outcome])
            for q, key in (("0.5", "wait_p50"), ("0.95", "wait_p95")):
                if cls[key] is not None:
                    wait.add_metric([label, q], cls[key])
        out += [jobs, wait]
        streams = CounterMetricFamily("voicesub_streams", "Streams started.")
        streams.add_metric([], stats["streams_started"])
        out.append(streams)
        models = stats["models"]
        out += [gauge("models_loaded", "Models in memory.", len(models["loaded"]))]
        for name, doc in (("loads", "Model loads."), ("evictions", "Model unloads.")):
            c = CounterMetricFamily(f"voicesub_model_{name}", doc)
            c.add_metric([], models[name])
            out.append(c)
        cache = stats.get("cache")
        if cache is not None:
            for name in ("hits", "misses", "sets", "evictions", "errors"):
                c = CounterMetricFamily(f"voicesub_cache_{name}", f"Cache {name}.")
                c.add_metric([], cache[name])
                out.append(c)
        batching = stats.get("batching")
        if batching is not None:
            for name in ("batches", "windows"):
                c = CounterMetricFamily(f"voicesub_batching_{name}",
                                        f"Cross-stream batching: {name}.")
                c.add_metric([], batching[name])
                out.append(c)
        yield from (m for m in out if m is not None)
