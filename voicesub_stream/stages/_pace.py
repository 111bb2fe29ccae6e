"""How often a live stream is transcribed again, chosen from how well it keeps up.

A live update costs about the same model time whatever its step (the window is the
unfinalised audio plus some context), so the one lever that lowers a stream's load is to
update it less often, on a shorter window. :class:`PaceController` moves each stream along a
short ladder of paces: the caller's own :class:`~voicesub_stream.LiveOptions` at the bottom,
then longer steps with a shorter buffer, and at the top finals only. It
climbs when the answers take a large part of a step to come back (the model, or the queue in
front of it, is saturated), goes on to finals only when they take one and a half steps (the
stream falls behind), and comes down only after a run of quick answers, so a stream does not
swing between paces.

Whatever the pace, an adaptive stream transcribes everything received in one update, so a
backlog never queues up as a series of updates: latency stays bounded by one update's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config import LiveOptions

__all__ = ("ECONOMICAL", "Pace", "PaceController", "paces")

RISE = 0.6
"""Answers that take more than this share of a step, on average, move the stream up a pace,
up to the economical one."""
BEHIND = 1.5
"""Past the economical pace, only answers slower than one and a half steps (the stream falls
behind, not just a burst of other streams' updates) move it on to finals only."""
FALL = 0.3
"""Answers quicker than this share of a step, ``CALM`` updates in a row, move it down one."""
CALM = 6
DWELL = 3
"""Updates a stream stays at a new pace before it may rise again: one slow answer (a burst
of other streams' updates) is not a trend."""
SMOOTHING = 0.3
"""Weight of the newest update in the running average of answer times."""
MAX_FINAL = 2.0
"""Past the caller's own pace, the span of committed words finalised without a sentence end:
at a step of a second, waiting for three seconds of them is what made the slowest finals."""
ECONOMICAL = 2
"""The pace admission control counts capacity at: the longest step that keeps partials."""


@dataclass(frozen=True, slots=True)
class Pace:
    """The live options one update runs with."""

    level: int
    step: float
    context: float
    max_buffer: float
    holdback: float
    partials: bool
    max_final: float
    """Committed words spanning this long are finalised without waiting for a sentence end."""


def paces(live: LiveOptions) -> tuple[Pace, ...]:
    """The ladder for ``live``: its own settings, then cheaper ones (never costlier)."""
    def rung(level: int, step: float, context: float, max_buffer: float,
             partials: bool) -> Pace:
        return Pace(level, max(live.step, step), min(live.context, context),
                    min(live.max_buffer, max_buffer), min(live.holdback, 0.3),
                    live.partials and partials, max_final=min(live.max_final, MAX_FINAL))

    # A 5 s buffer keeps windows (context, then the audio since the last final) inside the
    # encoder's 10 s input, where the 21 s one costs three times as much. Context is what
    # finals' accuracy rests on: on the four LibriVox sonnets (tiny.en, the first rung's
    # steps, fixed pace), finals' WER was 12.9 % with 1 s of it, 10.7 % with 3 s and 9.6 %
    # with 5 s; a window takes only the context that fits its encoder size. Finals after 2 s
    # of committed words rather than 3 s took the slowest of 12 streams' p95 from 2.9-3.8 s
    # to 2.4-2.5 s.
    own = Pace(0, live.step, live.context, live.max_buffer, live.holdback, live.partials,
               max_final=live.max_final)
    return (own, rung(1, 0.75, 5.0, 5.0, True), rung(2, 1.0, 5.0, 5.0, True),
            rung(3, 1.5, 5.0, 5.0, False))


class PaceController:
    """Chooses a live stream's pace from its answer times and its backlog.

    ``adaptive=False`` keeps the bottom pace (the options as given): the ``block``,
    ``drop-oldest`` and ``skip-partials`` policies. ``lowest`` is where it starts and the
    pace it never goes below (a stream admitted degraded starts at finals only).
    """

    def __init__(self, live: LiveOptions, *, adaptive: bool, lowest: int = 0) -> None:
        self.ladder = paces(live)
        self.adaptive = adaptive
        self.lowest = min(lowest, len(self.ladder) - 1) if adaptive else 0
        self._level = self.lowest
        self._average: float | None = None
        self._calm = 0
        self._dwell = 0
        self.changes = 0

    @property
    def pace(self) -> Pace:
        return self.ladder[self._level]

    def observe(self, answer_seconds: float, backlog: float) -> None:
        """One update took ``answer_seconds`` from its start to its answer; ``backlog``
        seconds of received audio were waiting when it started."""
        if not self.adaptive:
            return
        avg = self._average
        self._average = avg = answer_seconds if avg is None else \
            avg + SMOOTHING * (answer_seconds - avg)
        self._dwell -= 1
        step = self.pace.step
        limit = RISE if self._level < ECONOMICAL else BEHIND
        if avg > limit * step or backlog > 2 * step:
            if self._dwell <= 0:
                self._move(+1)
        elif avg < FALL * step:
            self._calm += 1
            if self._calm >= CALM:
                self._move(-1)
        else:
            self._calm = 0

    def _move(self, direction: int) -> None:
        level = min(max(self._level + direction, self.lowest), len(self.ladder) - 1)
        self._calm = 0
        self._dwell = DWELL
        if level != self._level:
            self._level = level
            self.changes += 1
