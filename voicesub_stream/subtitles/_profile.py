"""Subtitle profiles: the rules a house style sets for lines, reading speed and timing, and
the timer that makes cues keep them.

``netflix`` follows Netflix's Timed Text Style Guide (the default), ``netflix-children`` its
slower reading speed for children's programmes, ``bbc`` the BBC's subtitle guidelines; a
profile changed with :meth:`SubtitleProfile.with_changes` is ``custom``. Chinese, Japanese
and Korean take Netflix's limits for those languages (:meth:`SubtitleProfile.for_language`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from .._types import Segment

__all__ = ("PROFILES", "CueTimer", "SubtitleProfile", "get_profile")


@dataclass(frozen=True, slots=True)
class SubtitleProfile:
    """What a cue may hold and how long it stays up.

    Line widths count East Asian wide characters twice, as they are drawn; reading speed
    counts every character but line breaks, spaces included (as Netflix and Subtitle Edit
    count them). ``sync`` is how far a cue may be moved off its speech to meet the timing
    rules.
    """

    name: str = "netflix"
    max_line: int = 42
    max_lines: int = 2
    max_cps: float | None = 20.0
    max_wpm: float | None = None
    min_duration: float = 5 / 6
    max_duration: float | None = 7.0
    fps: float = 24.0
    min_gap_frames: int = 2
    close_gaps_under: float | None = 0.5
    sync: float = 1.5

    def __post_init__(self) -> None:
        if self.max_line < 10 or self.max_lines < 1:
            raise ConfigError("subtitle lines need at least 10 characters, and cues a line")
        for field in ("max_cps", "max_wpm", "max_duration"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise ConfigError(f"{field} must be positive, got {value}")
        if self.max_duration is not None and self.max_duration < self.min_duration:
            raise ConfigError(f"max_duration {self.max_duration} is under min_duration "
                              f"{self.min_duration}")
        if self.fps <= 0 or self.min_gap_frames < 0 or self.sync < 0:
            raise ConfigError("fps must be positive, and min_gap_frames and sync not negative")

    @property
    def max_chars(self) -> int:
        """Characters one cue may hold (what transcription cuts cues to)."""
        return self.max_line * self.max_lines

    @property
    def min_gap(self) -> float:
        """The shortest gap between two cues, in seconds, rounded up to the millisecond."""
        return math.ceil(1000 * self.min_gap_frames / self.fps) / 1000

    def with_changes(self, **changes: Any) -> SubtitleProfile:
        """This profile with some rules changed: a ``custom`` one, unless nothing changed."""
        changes = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if not changes:
            return self
        return dataclasses.replace(self, name="custom", **changes)

    def for_language(self, language: str | None) -> SubtitleProfile:
        """The profile for subtitles in ``language``: Netflix's line lengths and reading
        speeds for Chinese, Japanese and Korean, this profile for every other language."""
        if not self.name.startswith("netflix") or language not in _CJK:
            return self
        line, adult, children = _CJK[language]
        return dataclasses.replace(self, max_line=line,
                                   max_cps=children if self.name.endswith("children") else adult)

    def reading_time(self, text: str) -> float:
        """How long a cue showing ``text`` must stay up to be read (at least the minimum)."""
        needed = self.min_duration
        if self.max_cps is not None:
            needed = max(needed, len(text.replace("\n", "")) / self.max_cps)
        if self.max_wpm is not None:
            needed = max(needed, 60 * len(text.split()) / self.max_wpm)
        return needed


_CJK = {"zh": (32, 9.0, 7.0), "ja": (26, 4.0, 4.0), "ko": (32, 12.0, 9.0)}
"""Netflix's limits per language: line width (16 or 13 full-width characters, counted as 2
each), adult and children's characters per second."""

PROFILES: dict[str, SubtitleProfile] = {
    "netflix": SubtitleProfile(),
    "netflix-children": SubtitleProfile(name="netflix-children", max_cps=17.0),
    "bbc": SubtitleProfile(name="bbc", max_line=37, max_cps=None, max_wpm=180.0, fps=25.0,
                           close_gaps_under=None, max_duration=None),
}


def get_profile(name: str) -> SubtitleProfile:
    """The named profile.

    :raises ConfigError: no profile has that name
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown subtitle profile {name!r}; choose one of "
                          f"{', '.join(PROFILES)}") from None


class CueTimer:
    """Times cues to a profile: each shown long enough to be read, at most ``sync`` seconds
    off its speech.

    A cue starts with its speech. One shown too briefly to be read (the minimum duration, the
    reading speed) first stays up into the gap after it, then comes up early into the gap
    before it; if it still needs time, the next cue starts later. Where the cues after it
    need time the speech does not leave them (fast speech), it comes up early so that they
    can too, no cue moving more than ``sync``. A gap shorter than ``close_gaps_under`` is
    closed to the minimum gap by holding the earlier cue up, so cues flow without a flash
    of empty screen.

    :meth:`times` sees a whole document and so every cue ahead; live output passes
    each cue to :meth:`push` as it arrives and has it back, timed, when its successor
    arrives (or at :meth:`flush`), seeing one cue ahead.
    """

    def __init__(self, profile: SubtitleProfile) -> None:
        self.profile = profile
        self._last_end = -math.inf  # where the cue released last ends on screen
        self._held: tuple[Segment, float] | None = None  # (cue, time it needs on screen)

    def push(self, segment: Segment, text: str) -> Iterator[Segment]:
        """Take the next cue (``text`` is what it shows); yield the cue it settles."""
        cue = (segment, self.profile.reading_time(text))
        if self._held is not None:
            yield self._release(self._place([self._held, cue])[0])
        self._held = cue

    def flush(self) -> Iterator[Segment]:
        """Release the last cue held."""
        if self._held is not None:
            yield self._release(self._place([self._held])[0])
            self._held = None

    def times(self, cues: Iterable[tuple[Segment, str]]) -> list[Segment]:
        """Every cue of a finished document, timed."""
        placed = self._place([(seg, self.profile.reading_time(text)) for seg, text in cues])
        if placed:
            self._release(placed[-1])
        return placed

    def _release(self, cue: Segment) -> Segment:
        self._last_end = cue.end
        return cue

    def _place(self, cues: list[tuple[Segment, float]]) -> list[Segment]:
        """``cues`` (each with the time it needs) placed after the cues released before."""
        p = self.profile
        # The latest each cue may start for the ones after it to fit, and the start it
        # would like: its speech's, or earlier by what it cannot have after its speech.
        latest, after = [0.0] * len(cues), math.inf
        for i in range(len(cues) - 1, -1, -1):
            seg, need = cues[i]
            latest[i] = after = min(seg.start + p.sync, after - p.min_gap - need)
        starts: list[float] = []
        floor = max(self._last_end + p.min_gap, 0.0)  # no cue before may be overlapped
        for i, (seg, need) in enumerate(cues):
            room = cues[i + 1][0].start - p.min_gap if i + 1 < len(cues) else math.inf
            wanted = max(min(seg.start, room - need), seg.start - p.sync)
            start = max(min(wanted, latest[i]), floor)
            starts.append(start)
            speech_end = min(seg.end + p.min_gap, latest[i + 1]) if i + 1 < len(cues) else 0.0
            floor = max(start + need + p.min_gap, speech_end)
        out = []
        for i, (seg, need) in enumerate(cues):
            start = starts[i]
            end = max(seg.end, start + need)
            if i + 1 < len(cues):
                limit = starts[i + 1] - p.min_gap
                gap = limit - end + p.min_gap
                if end > limit or (p.close_gaps_under is not None and gap < p.close_gaps_under):
                    end = limit  # no overlap; a short gap closed
            if p.max_duration is not None and end - start > p.max_duration:
                end = max(start + p.max_duration, seg.end)
            out.append(dataclasses.replace(seg, start=round(start, 3), end=round(end, 3)))
        return out
