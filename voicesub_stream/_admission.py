"""Admission control: the engine takes on only as many live streams as it can serve in time.

A live stream needs one model update per step of audio. Under load its pace controller
settles at the economical pace (one update a second, ``stages._pace.ECONOMICAL``), so a
stream costs ``update cost / step`` cores, where the update cost is the model time of one
update in core-seconds (its share of a batched call times the call's threads). The engine
admits a stream while the admitted ones together would keep the cores at most
``UTILISATION`` busy; past that, queueing makes every stream's latency climb, so the next
one is refused at once with :class:`~voicesub_stream.errors.OverloadedError`. A stream that
accepts a degraded service is admitted at finals only and a longer step, which costs less,
when a full one no longer fits.

The update cost is measured per model from the live updates that ran at the economical pace
or above. Until there are some (a cold engine, or one never loaded enough to slow its
streams down) it is calibrated: before a model's first live stream is admitted, the engine
times one update of the kind a loaded stream makes (``models.live_update_seconds``: encoder,
decoder and alignment, with as many calls at once as the engine makes), so a burst of
streams at a cold start is sized for the machine it runs on, not for the one a fixed figure
was taken on. Without calibration (model calls in
worker processes) a prior per model size stands in. File work is not admitted here: it runs
at batch priority on what live streams leave, and the scheduler keeps the model calls
admitted live streams need free of it.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._config import LiveOptions
from ._stats import counter
from .errors import OverloadedError
from .stages import ECONOMICAL, paces

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("Admission", "AdmissionStatistics", "Ticket")

logger = logging.getLogger(__name__)

UTILISATION = 0.8
"""Share of the cores admitted live streams are counted to keep busy with model calls. The
rest goes to the work beside them (decoding each source, Silero, the event loop) and to the
queueing that makes latency climb as the cores fill: at 96 % two cores held 12 streams of
tiny.en (0.12 core-s an update) at final p95 2.3 s but 15 at 2.7 s, and on a slower machine
(0.27 core-s an update) 7 streams at 2.7-4.2 s, where 6 (81 %) kept 2.4 s."""
SMOOTHING = 0.02
"""Weight of one update in the running average of update costs (about the last 50)."""
PRIOR_UPDATE_SECONDS = {"tiny": 0.13, "base": 0.3, "small": 0.9, "medium": 2.6, "large": 5.0,
                        "turbo": 2.0}
"""Core-seconds of one live update at the economical pace, one CPU thread, int8, by model
size; the unmeasured fallback. A GPU call is counted as ``GPU_SPEEDUP`` times cheaper."""
GPU_SPEEDUP = 20.0
RETRY_AFTER = 5.0
"""Seconds a refused client is told to wait: live streams come and go over tens of seconds."""
_SIZE = re.compile("|".join(PRIOR_UPDATE_SECONDS))


def prior_update_seconds(model: str, device: str) -> float:
    """The assumed cost of one live update of ``model`` before any was measured."""
    match = _SIZE.search(model.lower())
    seconds = PRIOR_UPDATE_SECONDS[match.group(0) if match else "base"]
    return seconds / GPU_SPEEDUP if device == "cuda" else seconds


@dataclass(frozen=True, slots=True)
class ModelCost:
    update_seconds: float
    """Core-seconds of one live update at the economical pace."""
    measured: bool
    """Whether ``update_seconds`` comes from this engine's updates (else the calibration, or
    the prior)."""
    streams: float
    """Full live streams of this model alone the capacity holds: the estimate admission
    works from."""
    calibrated: bool = False
    """Whether the estimate before any measurement came from timing this machine's encoder."""


@dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    live_streams: int
    """Live streams admitted and running now (degraded ones included)."""
    degraded_streams: int
    load: float
    """Cores the running live streams are counted to need."""
    capacity: float
    """Cores live streams may use: the cores times ``UTILISATION``."""
    models: dict[str, ModelCost] = field(default_factory=dict)
    """The update cost of each model live streams used."""
    others: float = 0.0
    """Cores the live streams of the other engines on the same Ray cluster are counted to
    need (they share the capacity)."""
    admitted: int = counter()
    refused: int = counter()
    degraded: int = counter()
    """Streams admitted degraded (finals only, a longer step) because a full one did not fit."""


@dataclass(eq=False)
class Ticket:
    """One admitted live stream: its model, its lowest pace, and what it is counted to cost."""

    admission: Admission
    model: str
    step: float
    """The step its cost is counted at: the economical pace's, or the top pace's if degraded."""
    lowest_pace: int = 0
    released: bool = False

    @property
    def degraded(self) -> bool:
        return self.lowest_pace > 0

    @property
    def load(self) -> float:
        return self.admission.update_seconds(self.model) / self.step

    def observe(self, model_seconds: float, pace: int) -> None:
        """One live update of this stream took ``model_seconds`` of one model call's time
        (its share of a batched call) at pace ``pace``."""
        if pace >= ECONOMICAL:
            self.admission.observe(self.model, model_seconds)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission.release(self)


class Admission:
    """Counts what the admitted live streams cost against the cores, and refuses past it."""

    def __init__(self, *, cores: float, threads_per_call: int, device: str,
                 on_change: Callable[[int], None] | None = None) -> None:
        self.cores = cores
        self._on_change = on_change
        self.threads_per_call = threads_per_call
        self.device = device
        self._costs: dict[str, float] = {}
        self._observed: dict[str, int] = {}
        self._calibrated: set[str] = set()
        self._tickets: list[Ticket] = []
        self._step = paces(LiveOptions())[ECONOMICAL].step
        self.others = 0.0
        """Load of the other engines sharing these cores (a Ray cluster's), as last heard."""
        self.admitted = self.refused = self.degraded = 0

    @property
    def capacity(self) -> float:
        return self.cores * UTILISATION

    def update_seconds(self, model: str) -> float:
        if model not in self._costs:
            self._costs[model] = prior_update_seconds(model, self.device)
        return self._costs[model]

    def load(self) -> float:
        return sum(t.load for t in self._tickets)

    def admit(self, model: str, live: LiveOptions, *, adaptive: bool = True) -> Ticket:
        """A ticket for one more live stream of ``model``, or a refusal.

        An ``adaptive`` stream is counted at the economical pace it settles at under load;
        one at a fixed pace (``block`` and the other fixed policies) at its own step; the
        live streams of other engines sharing the cores count too. The first live stream is
        always admitted, whatever it costs: alone it is served as well as the machine can.

        :raises OverloadedError: the admitted streams already fill the capacity
        """
        ladder = paces(live)
        full = Ticket(self, model, step=ladder[ECONOMICAL].step if adaptive else live.step)
        load = self.load() + self.others
        if load <= 0 or load + full.load <= self.capacity:
            return self._admit(full)
        degraded = Ticket(self, model, step=ladder[-1].step, lowest_pace=len(ladder) - 1)
        if live.accept_degraded and adaptive and load + degraded.load <= self.capacity:
            self.degraded += 1
            return self._admit(degraded)
        self.refused += 1
        streams = len(self._tickets)
        elsewhere = f" (and other engines' streams {self.others:.2f})" if self.others else ""
        raise OverloadedError(
            f"at capacity: {streams} live stream{'s' if streams != 1 else ''}{elsewhere} "
            f"need {load:.2f} of the {self.capacity:.2f} cores kept for live work; retry later"
            + ("" if live.accept_degraded else " or accept a degraded stream (finals only)"),
            retry_after=RETRY_AFTER)

    def needs_calibration(self, model: str) -> bool:
        return model not in self._calibrated and model not in self._observed

    def calibrate(self, model: str, update_seconds: float) -> None:
        """Count ``model``'s updates at one update timed on this machine (wall seconds on a
        call's threads), until updates are measured."""
        cost = update_seconds * self.threads_per_call
        self._calibrated.add(model)
        if model not in self._observed:
            self._costs[model] = cost
            logger.info("live update of %s counted at %.3f core-s (timed update %.3f s)",
                        model, cost, update_seconds)

    def observe(self, model: str, model_seconds: float) -> None:
        """Fold one update's model time into ``model``'s cost: a plain mean of the first
        updates (the prior counts as one), then a running average that follows the load."""
        current = self.update_seconds(model)
        n = self._observed.get(model, 0) + 1
        self._observed[model] = n
        weight = max(SMOOTHING, 1 / (n + 1))
        self._costs[model] = current + weight * (model_seconds * self.threads_per_call - current)

    def release(self, ticket: Ticket) -> None:
        self._tickets.remove(ticket)
        self._changed()

    def slots_needed(self) -> int:
        """Model calls at once the admitted live streams are counted to need (at least one
        while any runs): what the scheduler keeps free of batch work."""
        if not self._tickets:
            return 0
        return max(1, math.ceil(self.load() / self.threads_per_call))

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.slots_needed())

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            live_streams=len(self._tickets),
            degraded_streams=sum(t.degraded for t in self._tickets),
            load=round(self.load(), 3), capacity=round(self.capacity, 3),
            models={m: ModelCost(round(c, 4), m in self._observed,
                                 round(self.capacity * self._step / c, 2),
                                 calibrated=m in self._calibrated)
                    for m, c in self._costs.items()},
            others=round(self.others, 3), admitted=self.admitted, refused=self.refused,
            degraded=self.degraded)

    def _admit(self, ticket: Ticket) -> Ticket:
        self.admitted += 1
        self._tickets.append(ticket)
        self._changed()
        return ticket
