"""What every component's statistics share: percentiles (nearest rank, no interpolation) and
the field marker that tells the Prometheus exporter a figure only ever grows."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

COUNTER = {"counter": True}
"""Field metadata: this figure counts events since start (exported as a Prometheus counter;
other numeric fields are gauges)."""


def counter(*, name: str | None = None, default: int | float = 0) -> Any:
    """A dataclass field for a counter; ``name`` overrides its exported metric name."""
    return dataclasses.field(default=default, metadata={**COUNTER, "name": name})


def percentiles(values: Iterable[float], *qs: float) -> list[float | None]:
    """The ``qs`` quantiles (0..1) of ``values``, ``None`` each when there are none."""
    ordered = sorted(values)
    if not ordered:
        return [None] * len(qs)
    return [ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for q in qs]
