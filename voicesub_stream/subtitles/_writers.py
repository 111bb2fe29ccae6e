"""Render segments as subtitle files.

SRT, WebVTT, ASS/SSA and TTML go through pysubs2 so timing syntax and escaping follow the
formats exactly; JSON is our own segment schema (:meth:`Segment.to_dict`), text is one cue
per line. A format that cannot be written is refused, never replaced by another.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import aiofiles
import pysubs2

from ..errors import ConfigError
from ._cues import cue_text, ends_clause, ends_sentence

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from .._types import Segment

SubtitleFormat = Literal["srt", "vtt", "ass", "ssa", "ttml", "json", "txt"]
FORMATS: tuple[str, ...] = get_args(SubtitleFormat)
SUFFIXES = {**{f: f for f in FORMATS}, "dfxp": "ttml"}
"""File suffixes (without the dot) and the format each one means."""
MAX_LINE = 42
"""Characters per subtitle line: the common broadcast and streaming-service limit."""


def wrap_lines(text: str, max_line: int = MAX_LINE, max_lines: int = 2) -> list[str]:
    """Break a cue into as few lines as fit ``max_line``, at most ``max_lines`` of them, with
    the longest line as short as it can be (so the lines come out of similar width).

    Width counts East Asian wide characters twice, as they are drawn. Text with spaces
    breaks at spaces; text written without them (Chinese, Japanese) between characters,
    never before closing punctuation. Text that fits no way is broken as evenly as it can be.
    """
    text = " ".join(text.split())
    if _width(text) <= max_line or max_lines < 2:
        return [text]
    if " " in text:
        breaks = [i for i, c in enumerate(text) if c == " "]
    else:
        breaks = [i for i in range(1, len(text)) if text[i] not in _NO_LINE_START]
    best: list[str] = [text]
    for count in range(2, min(max_lines, len(breaks) + 1) + 1):
        best = _even_lines(text, breaks, count)
        if max(map(_width, best)) <= max_line:
            break
    return best


def _even_lines(text: str, breaks: list[int], count: int) -> list[str]:
    """``text`` in ``count`` lines, cut at ``breaks``, the longest line as short as can be."""
    cuts = [0, *breaks, len(text)]

    def width(a: int, b: int) -> int:
        return _width(text[cuts[a]:cuts[b]].strip())

    # longest[k][j]: the shortest possible longest line of text[:cuts[j]] in k lines
    inf = float("inf")
    longest = [[inf] * len(cuts) for _ in range(count + 1)]
    came_from = [[0] * len(cuts) for _ in range(count + 1)]
    longest[0][0] = 0
    for k in range(1, count + 1):
        for j in range(k, len(cuts)):
            for i in range(k - 1, j):
                value = max(longest[k - 1][i], width(i, j))
                if value < longest[k][j]:
                    longest[k][j], came_from[k][j] = value, i
    ends, j = [], len(cuts) - 1
    for k in range(count, 0, -1):
        ends.append(j)
        j = came_from[k][j]
    bounds = [0, *reversed(ends)]
    return [text[cuts[a]:cuts[b]].strip() for a, b in itertools.pairwise(bounds)]


_NO_LINE_START = set("、。，．・：；？！）」』】〕〉》”’ー…,.!?:;)")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def format_for_path(path: str | os.PathLike[str]) -> str:
    """The format a file name asks for by its suffix.

    :raises ConfigError: a suffix that names no format written here (``.smi``: SAMI is read
        by pysubs2 but not written), so a file never holds a format its name does not say
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in SUFFIXES:
        raise ConfigError(f"cannot tell a subtitle format from {Path(path).name!r}; name the "
                          f"file .{', .'.join(SUFFIXES)} or give the format")
    return SUFFIXES[suffix]


@dataclass(frozen=True, slots=True)
class CueLayout:
    """How cues are drawn: ``max_line`` characters a line, ``max_lines`` lines, and with
    ``max_cps`` a cue read faster than that many characters a second stays up longer, into
    the gap before the next cue (never over it: the speech sets the pace)."""

    max_line: int = MAX_LINE
    max_lines: int = 2
    max_cps: float | None = None

    def __post_init__(self) -> None:
        if self.max_line < 10 or self.max_lines < 1:
            raise ConfigError("subtitle lines need at least 10 characters, and cues a line")
        if self.max_cps is not None and self.max_cps <= 0:
            raise ConfigError(f"max_cps must be positive, got {self.max_cps}")

    @property
    def max_chars(self) -> int:
        """Characters one cue may hold (what cues are cut to)."""
        return self.max_line * self.max_lines

    def wrap(self, text: str) -> list[str]:
        """``text`` in this layout's lines (:func:`wrap_lines`)."""
        return wrap_lines(text, self.max_line, self.max_lines)

    def fits(self, text: str) -> bool:
        """Whether ``text`` wraps into this layout's lines with none too wide."""
        return max(map(_width, self.wrap(text))) <= self.max_line


def render_subtitles(segments: Iterable[Segment], fmt: str, *, bilingual: bool = False,
                     layout: CueLayout = CueLayout()) -> str:
    """The whole subtitle document as a string: each cue shows the segment's translation
    when it has one, or with ``bilingual`` the original above the translation.

    :raises ConfigError: unknown format
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown subtitle format {fmt!r}; choose one of {', '.join(FORMATS)}")
    segments = list(segments)
    if fmt == "json":
        return json.dumps([s.to_dict() for s in segments], ensure_ascii=False, indent=2) + "\n"
    if fmt == "txt":
        return "".join(f"{_cue_text(s, bilingual)}\n" for s in segments)
    segments = [cue for seg in segments for cue in _fitted(seg, layout)]
    subs = pysubs2.SSAFile()
    ends = _reading_ends(segments, layout.max_cps, bilingual)
    subs.extend(cue_event(seg, fmt, bilingual=bilingual, layout=layout, end=end)
                for seg, end in zip(segments, ends, strict=True))
    return str(subs.to_string(fmt))


def _fitted(segment: Segment, layout: CueLayout) -> list[Segment]:
    """``segment`` as cues that fit the layout's lines: one that does not is cut in two at a
    word, by its word times, at the clause end nearest its middle or else the word nearest
    it, until every part fits. A segment without word times, or with a translation (whose
    words have no times), is drawn as it is."""
    words = segment.words
    if segment.translation is not None or len(words) < 2 or layout.fits(segment.text):
        return [segment]
    middle = len(segment.text) / 2
    ends = list(itertools.accumulate(len(w.text) for w in words))[:-1]
    clauses = [i for i, w in enumerate(words[:-1]) if ends_clause(w.text) or ends_sentence(w.text)]
    cut = 1 + min(clauses or range(len(words) - 1), key=lambda i: abs(ends[i] - middle))
    first, rest = words[:cut], words[cut:]
    head = dataclasses.replace(segment, end=first[-1].end, text=cue_text(list(first)),
                               words=first)
    tail = dataclasses.replace(segment, start=max(segment.start, rest[0].start),
                               text=cue_text(list(rest)), words=rest)
    return _fitted(head, layout) + _fitted(tail, layout)


def _reading_ends(segments: list[Segment], max_cps: float | None,
                  bilingual: bool) -> list[float]:
    """Each cue's end, held longer where ``max_cps`` asks, up to the next cue's start."""
    ends = [s.end for s in segments]
    if max_cps is None:
        return ends
    for i, seg in enumerate(segments):
        needed = seg.start + len(_cue_text(seg, bilingual)) / max_cps
        limit = segments[i + 1].start if i + 1 < len(segments) else needed
        ends[i] = max(seg.end, min(needed, limit))
    return ends


def cue_event(segment: Segment, fmt: str, *, bilingual: bool = False,
              layout: CueLayout = CueLayout(), end: float | None = None) -> pysubs2.SSAEvent:
    """The cue for ``segment``: its translation if it has one (below the original when
    ``bilingual``), wrapped and escaped."""
    if bilingual and segment.translation is not None:
        lines = layout.wrap(segment.text) + layout.wrap(segment.translation)
    else:
        lines = layout.wrap(_cue_text(segment, False))
    return pysubs2.SSAEvent(
        start=round(segment.start * 1000),
        end=round((segment.end if end is None else end) * 1000),
        text=r"\N".join(_escape(line, fmt) for line in lines),
    )


def _cue_text(segment: Segment, bilingual: bool) -> str:
    if segment.translation is None:
        return segment.text
    return f"{segment.text} / {segment.translation}" if bilingual else segment.translation


def _escape(text: str, fmt: str) -> str:
    """Keep spoken text from being read as markup; pysubs2 writes cue text as given.

    WebVTT has entities for this and pysubs2 escapes TTML's XML itself. SRT has none and
    players treat ``<...>`` as tags, so the angle brackets become their typographic
    look-alikes there; in ASS/SSA braces open override tags and backslashes commands, so the
    same goes for those.
    """
    if fmt == "vtt":
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if fmt == "ttml":
        return text
    if fmt in ("ass", "ssa"):
        return text.replace("\\", "⧵").replace("{", "｛").replace("}", "｝")
    return text.replace("<", "‹").replace(">", "›")


def write_subtitles(segments: Iterable[Segment], path: str | os.PathLike[str],
                    fmt: str | None = None, *, bilingual: bool = False,
                    layout: CueLayout = CueLayout()) -> None:
    """Write ``segments`` to ``path``; the format follows the suffix unless given."""
    Path(path).write_text(render_subtitles(segments, fmt or format_for_path(path),
                                           bilingual=bilingual, layout=layout),
                          encoding="utf-8")


async def awrite_subtitles(segments: Iterable[Segment], path: str | os.PathLike[str],
                           fmt: str | None = None, *, bilingual: bool = False,
                           layout: CueLayout = CueLayout()) -> None:
    """:func:`write_subtitles` without blocking the event loop (aiofiles)."""
    text = render_subtitles(segments, fmt or format_for_path(path), bilingual=bilingual,
                            layout=layout)
    async with aiofiles.open(path, "w", encoding="utf-8") as fh:
        await fh.write(text)
