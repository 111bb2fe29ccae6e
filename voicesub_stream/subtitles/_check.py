"""Check a subtitle file against a profile: each cue that breaks a rule, and which rule."""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pysubs2

from ..errors import ConfigError
from ._cues import breaks_phrase, guess_language
from ._writers import text_width

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator

    from ._profile import SubtitleProfile

__all__ = ("Violation", "check_subtitles", "load_cues")

_TOLERANCE = 0.0015
"""Seconds of rounding a time may carry (SRT and WebVTT keep milliseconds)."""
_TAG = re.compile(r"<[^>]*>|\{[^}]*\}")


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule a cue breaks: ``cue`` counts from 1, as players and editors number cues."""

    cue: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"cue {self.cue}: {self.rule}: {self.message}"


def load_cues(path: str | os.PathLike[str]) -> list[pysubs2.SSAEvent]:
    """The cues of an SRT or WebVTT file (any format pysubs2 reads), in time order.

    :raises ConfigError: the file cannot be read as subtitles
    """
    try:
        subs = pysubs2.load(str(path), encoding="utf-8")
    except (OSError, UnicodeDecodeError, pysubs2.exceptions.Pysubs2Error) as exc:
        raise ConfigError(f"cannot read subtitles from {path}: {exc}") from exc
    return sorted((e for e in subs if not e.is_comment), key=lambda e: (e.start, e.end))


def check_subtitles(cues: list[pysubs2.SSAEvent], profile: SubtitleProfile,
                    language: str | None = None) -> list[Violation]:
    """Every rule of ``profile`` each cue breaks, in cue order.

    Rules: ``line-length``, ``line-count``, ``line-break`` (a line ending on a function word
    or inside a name), ``reading-speed`` (characters a second, or words a minute),
    ``min-duration``, ``max-duration``, ``gap`` (closer than the minimum gap, or
    overlapping) and ``gap-not-closed`` (a gap under ``close_gaps_under`` left open). The
    language, guessed from the text when not given, picks the line-length and reading-speed
    limits and the function words. Whether cues follow their speech cannot be told from the
    file alone and is not checked.
    """
    lines_of = [[html.unescape(_TAG.sub("", line)).strip() for line in cue.text.split(r"\N")]
                for cue in cues]
    if language is None:
        language = _script_language(lines_of) or guess_language(
            " ".join(" ".join(lines) for lines in lines_of))
    profile = profile.for_language(language)
    found: list[Violation] = []
    for n, (cue, lines) in enumerate(zip(cues, lines_of, strict=True), 1):
        gap = (cues[n].start - cue.end) / 1000 if n < len(cues) else None
        found += (Violation(n, rule, message) for rule, message in itertools.chain(
            _lines(lines, profile, language), _timing(lines, cue, profile),
            _gap(gap, n, profile)))
    return found


def _lines(lines: list[str], p: SubtitleProfile,
           language: str | None) -> Iterator[tuple[str, str]]:
    for line in lines:
        if text_width(line) > p.max_line:
            yield "line-length", f"{text_width(line)} characters in {line!r} (at most {p.max_line})"
    if len(lines) > p.max_lines:
        yield "line-count", f"{len(lines)} lines (at most {p.max_lines})"
    for upper, lower in itertools.pairwise(lines):
        if upper.split() and lower.split():
            reason = breaks_phrase(upper.split()[-1], lower.split()[0], language)
            if reason:
                yield "line-break", f"line {upper!r} {reason}"


def _timing(lines: list[str], cue: pysubs2.SSAEvent,
            p: SubtitleProfile) -> Iterator[tuple[str, str]]:
    duration = (cue.end - cue.start) / 1000
    if duration > 0 and p.max_cps is not None:
        cps = len("".join(lines)) / duration
        if cps > p.max_cps * (1 + _TOLERANCE):
            yield "reading-speed", f"{cps:.1f} characters a second (at most {p.max_cps:g})"
    if duration > 0 and p.max_wpm is not None:
        wpm = 60 * len(" ".join(lines).split()) / duration
        if wpm > p.max_wpm * (1 + _TOLERANCE):
            yield "reading-speed", f"{wpm:.0f} words a minute (at most {p.max_wpm:g})"
    if duration < p.min_duration - _TOLERANCE:
        yield "min-duration", f"{duration:.3f} s on screen (at least {p.min_duration:.3f} s)"
    if p.max_duration is not None and duration > p.max_duration + _TOLERANCE:
        yield "max-duration", f"{duration:.3f} s on screen (at most {p.max_duration:g} s)"


def _gap(gap: float | None, n: int, p: SubtitleProfile) -> Iterator[tuple[str, str]]:
    """The gap after cue ``n`` (None after the last)."""
    if gap is None:
        return
    frames = p.min_gap_frames / p.fps
    if gap < 0:
        yield "gap", f"overlaps cue {n + 1} by {-gap * 1000:.0f} ms"
    elif gap < frames - _TOLERANCE:
        yield "gap", (f"{gap * 1000:.0f} ms before cue {n + 1} (at least "
                      f"{p.min_gap_frames} frames at {p.fps:g} fps)")
    elif p.close_gaps_under is not None and frames + 2 * _TOLERANCE < gap < p.close_gaps_under:
        yield "gap-not-closed", (f"{gap * 1000:.0f} ms before cue {n + 1}: gaps under "
                                 f"{p.close_gaps_under:g} s are closed to "
                                 f"{p.min_gap_frames} frames")


def _script_language(lines_of: list[list[str]]) -> str | None:
    """zh, ja or ko when the text is mostly written in that script."""
    text = "".join("".join(lines) for lines in lines_of)
    if not text:
        return None
    kana = sum("\u3040" <= c <= "\u30ff" for c in text)
    hangul = sum("\uac00" <= c <= "\ud7af" for c in text)
    han = sum("\u4e00" <= c <= "\u9fff" for c in text)
    if kana > len(text) / 10:
        return "ja"
    if hangul > len(text) / 3:
        return "ko"
    return "zh" if han > len(text) / 3 else None
