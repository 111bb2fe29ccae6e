"""Observability: function timing, a resource sampler with alerts, memory management, reports.

The Engine runs a :class:`Monitor` beside its streams (``ENABLE_PERFORMANCE_MONITORING``);
``engine.performance_report()`` summarises it and the ASGI app exports it at ``/metrics``
(``voicesub_stream.server.render_metrics``). Function timing (``timed``, ``timer``) lives
below every stage, in ``voicesub_stream._timing``, and is re-exported here.
"""

from .._timing import Timings, TimingStatistics, timed, timer, timings
from ._alerts import Alert, AlertRule, Alerts, default_rules
from ._memory import MemoryManager, limit_malloc_arenas
from ._monitor import Monitor
from ._report import build_report, recommendations, rss_slope, summarize
from ._sampler import Probe, Sample, SampleHistory

__all__ = (
    "Alert",
    "AlertRule",
    "Alerts",
    "MemoryManager",
    "Monitor",
    "Probe",
    "Sample",
    "SampleHistory",
    "TimingStatistics",
    "Timings",
    "build_report",
    "default_rules",
    "limit_malloc_arenas",
    "recommendations",
    "rss_slope",
    "summarize",
    "timed",
    "timer",
    "timings",
)
