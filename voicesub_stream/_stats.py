"""Percentiles for the statistics every component reports (nearest rank, no interpolation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


def percentiles(values: Iterable[float], *qs: float) -> list[float | None]:
    """The ``qs`` quantiles (0..1) of ``values``, ``None`` each when there are none."""
    ordered = sorted(values)
    if not ordered:
        return [None] * len(qs)
    return [ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for q in qs]
