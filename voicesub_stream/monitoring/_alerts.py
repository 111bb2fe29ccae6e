"""Alerts with hysteresis: a rule fires when its metric crosses the threshold and clears only
once the metric is back below it by a margin, so a value hovering at the line does not flap.

With ``adaptive`` rules the threshold follows the observed baseline: it is the larger of the
configured threshold and the metric's running mean plus ``sigmas`` standard deviations (learnt
from the first :data:`WARMUP` samples on, and then from samples that did not fire), so a
machine whose disk is always busy does not alert all day, and a real excursion still does.
The memory rule is never adaptive: running out of memory is absolute.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._sampler import Sample

logger = logging.getLogger("voicesub_stream.alerts")

__all__ = ("Alert", "AlertRule", "Alerts", "default_rules")

WARMUP = 10
"""Samples an adaptive rule learns from before it judges any."""


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert changing state: ``state`` is ``"firing"`` or ``"cleared"``."""

    rule: str
    state: Literal["firing", "cleared"]
    value: float
    threshold: float
    message: str
    time: float = field(default_factory=time.time)


@dataclass(slots=True)
class AlertRule:
    """``metric(sample)`` above ``threshold`` for ``for_samples`` samples in a row fires;
    below ``threshold * (1 - hysteresis)`` clears."""

    name: str
    metric: Callable[[Sample], float | None]
    threshold: float
    unit: str = ""
    hysteresis: float = 0.1
    for_samples: int = 1
    adaptive: bool = False
    sigmas: float = 3.0
    # running state
    firing: bool = False
    _above: int = 0
    _n: int = 0
    _mean: float = 0.0
    _m2: float = 0.0

    def effective_threshold(self, adaptive: bool) -> float:
        if not (adaptive and self.adaptive) or self._n < WARMUP:
            return self.threshold
        std = math.sqrt(self._m2 / (self._n - 1))
        return max(self.threshold, self._mean + self.sigmas * std)

    def update(self, sample: Sample, *, adaptive: bool) -> Alert | None:
        value = self.metric(sample)
        if value is None:
            return None
        if adaptive and self.adaptive and self._n < WARMUP:
            self._learn(value)  # no baseline yet: learn it before judging against it
            return None
        threshold = self.effective_threshold(adaptive)
        alert = None
        if not self.firing:
            self._above = self._above + 1 if value > threshold else 0
            if self._above >= self.for_samples:
                self.firing = True
                alert = Alert(self.name, "firing", value, threshold,
                              f"{self.name}: {value:.3g}{self.unit} above "
                              f"{threshold:.3g}{self.unit}")
        elif value < threshold * (1 - self.hysteresis):
            self.firing, self._above = False, 0
            alert = Alert(self.name, "cleared", value, threshold,
                          f"{self.name}: back to {value:.3g}{self.unit}")
        if not self.firing:  # the baseline learns from normal samples only
            self._learn(value)
        return alert

    def _learn(self, value: float) -> None:
        self._n += 1  # Welford's running mean and variance
        delta = value - self._mean
        self._mean += delta / self._n
        self._m2 += delta * (value - self._mean)


def default_rules(*, memory_threshold: float = 85.0) -> list[AlertRule]:
    """The defaults: memory > 85 %, CPU > 90 %, any timed call > 5 s, disk I/O > 1 MB/s."""
    return [
        AlertRule("memory", lambda s: s.memory_percent, memory_threshold, "%"),
        AlertRule("cpu", lambda s: s.system_cpu, 90.0, "%", for_samples=3, adaptive=True),
        AlertRule("slow_call", lambda s: max(s.slowest.values(), default=0.0), 5.0, " s",
                  adaptive=True),
        AlertRule("disk_io", lambda s: s.disk_rate / 1e6, 1.0, " MB/s", for_samples=3,
                  adaptive=True),
    ]


class Alerts:
    """Evaluates rules on each sample; logs, calls hooks and keeps what is firing."""

    def __init__(self, rules: list[AlertRule], *, adaptive: bool = False) -> None:
        self.rules = rules
        self.adaptive = adaptive
        self.history: list[Alert] = []
        self._hooks: list[Callable[[Alert], object]] = []

    def add_hook(self, hook: Callable[[Alert], object]) -> None:
        self._hooks.append(hook)

    @property
    def firing(self) -> list[str]:
        return [r.name for r in self.rules if r.firing]

    def evaluate(self, sample: Sample) -> list[Alert]:
        out = []
        for rule in self.rules:
            alert = rule.update(sample, adaptive=self.adaptive)
            if alert is None:
                continue
            out.append(alert)
            self.history.append(alert)
            del self.history[:-256]
            if alert.state == "firing":
                logger.warning("alert %s", alert.message)
            else:
                logger.info("alert cleared %s", alert.message)
            for hook in self._hooks:
                hook(alert)
        return out
