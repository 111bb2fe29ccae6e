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
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import aiofiles
import pysubs2

from ..errors import ConfigError
from ._cues import (
    best_break,
    breaks_phrase,
    cue_text,
    ends_clause,
    ends_sentence,
    guess_language,
)
from ._profile import PROFILES, CueTimer, SubtitleProfile

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


def wrap_lines(text: str, max_line: int = MAX_LINE, max_lines: int = 2,
               language: str | None = None) -> list[str]:
    """Break a cue into as few lines as fit ``max_line``, at most ``max_lines`` of them, with
    the longest line as short as it can be (so the lines come out of similar width).

    Width counts East Asian wide characters twice, as they are drawn. Text with spaces
    breaks at spaces, never after a function word of ``language`` or inside a name
    (:func:`breaks_phrase`) unless no other break fits, and after a comma or a full stop
    when that fits too. Text written without spaces (Chinese, Japanese) breaks between
    characters, never before closing punctuation. Text that fits no way is broken as evenly
    as it can be.
    """
    return _wrap(text, max_line, max_lines, language)[0]


def _wrap(text: str, max_line: int, max_lines: int,
          language: str | None) -> tuple[list[str], bool]:
    """:func:`wrap_lines`, and whether its lines fit without breaking a phrase."""
    text = " ".join(text.split())
    if text_width(text) <= max_line or max_lines < 2:
        return [text], text_width(text) <= max_line
    if " " in text:
        spaces = [i for i, c in enumerate(text) if c == " "]
        words = text.split(" ")
        good = [i for n, i in enumerate(spaces)
                if not breaks_phrase(words[n], words[n + 1], language)]
        clauses = [i for i in good if ends_clause(text[:i]) or ends_sentence(text[:i])]
        choices = [clauses, good, spaces]
    else:
        choices = [[i for i in range(1, len(text)) if text[i] not in _NO_LINE_START]]
    for count in range(2, max_lines + 1):
        for breaks in choices:
            if len(breaks) + 1 < count:
                continue
            lines = _even_lines(text, breaks, count)
            if max(map(text_width, lines)) <= max_line and (
                    breaks is not choices[0] or len(choices) == 1
                    or 3 * min(map(text_width, lines)) >= max(map(text_width, lines))):
                # fits, and a clause break leaves no stub of a line
                return lines, breaks is not choices[-1] or len(choices) == 1
    every = choices[-1]
    return (_even_lines(text, every, min(max_lines, len(every) + 1)) if every else [text]), False


def _even_lines(text: str, breaks: list[int], count: int) -> list[str]:
    """``text`` in ``count`` lines, cut at ``breaks``, the longest line as short as can be."""
    cuts = [0, *breaks, len(text)]

    def width(a: int, b: int) -> int:
        return text_width(text[cuts[a]:cuts[b]].strip())

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


def text_width(text: str) -> int:
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


def render_subtitles(segments: Iterable[Segment], fmt: str, *, bilingual: bool = False,
                     profile: SubtitleProfile = PROFILES["netflix"],
                     language: str | None = None) -> str:
    """The whole subtitle document as a string: each cue shows the segment's translation
    when it has one, or with ``bilingual`` the original above the translation.

    Cues keep ``profile``'s rules: too long a cue is cut at its best break (:func:`fitted`),
    lines are wrapped at phrase boundaries and cues timed to be read (:class:`CueTimer`).
    ``language`` is that of the translations, when they are shown.

    :raises ConfigError: unknown format
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown subtitle format {fmt!r}; choose one of {', '.join(FORMATS)}")
    segments = list(segments)
    if fmt == "json":
        return json.dumps([s.to_dict() for s in segments], ensure_ascii=False, indent=2) + "\n"
    if fmt == "txt":
        return "".join(f"{_cue_text(s, bilingual)}\n" for s in segments)
    if any(s.language is None for s in segments):  # unknown: the words tell which it is
        guess = guess_language(" ".join(s.text for s in segments))
        segments = [s if s.language else dataclasses.replace(s, language=guess)
                    for s in segments]
    cues = [cue for seg in segments for cue in fitted(seg, profile, language)]
    timed = CueTimer(profile).times((cue, _cue_text(cue, bilingual)) for cue in cues)
    subs = pysubs2.SSAFile()
    subs.extend(cue_event(cue, fmt, bilingual=bilingual, profile=profile, language=language)
                for cue in timed)
    return str(subs.to_string(fmt))


def shown_language(segment: Segment, language: str | None) -> str | None:
    """The language a cue for ``segment`` is written in."""
    return language if segment.translation is not None else segment.language


def fits(text: str, profile: SubtitleProfile, language: str | None = None) -> bool:
    """Whether ``text`` wraps into the lines ``profile`` allows for ``language``, with no
    line ending inside a phrase."""
    profile = profile.for_language(language)
    return _wrap(text, profile.max_line, profile.max_lines, language)[1]


def fitted(segment: Segment, profile: SubtitleProfile,
           language: str | None = None) -> list[Segment]:
    """``segment`` as cues that fit ``profile``'s lines and longest duration: one that does
    not is cut in two at a word, by its word times, where the speaker paused near the middle
    and not inside a phrase (the rule :func:`split_cues` cuts by), until every part fits.
    A segment without word times, or with a translation (whose words have no times), is
    drawn as it is."""
    words = list(segment.words)
    if segment.translation is not None or len(words) < 2:
        return [segment]
    lang = shown_language(segment, language)
    too_long = (profile.max_duration is not None
                and words[-1].end - words[0].start > profile.max_duration)
    if not too_long and fits(segment.text, profile, lang):
        return [segment]
    cut = best_break(words, lang)
    first, rest = words[:cut], words[cut:]
    head = dataclasses.replace(segment, end=first[-1].end, text=cue_text(first),
                               words=tuple(first))
    tail = dataclasses.replace(segment, start=max(segment.start, rest[0].start),
                               text=cue_text(rest), words=tuple(rest))
    return fitted(head, profile, language) + fitted(tail, profile, language)


def cue_event(segment: Segment, fmt: str, *, bilingual: bool = False,
              profile: SubtitleProfile = PROFILES["netflix"],
              language: str | None = None) -> pysubs2.SSAEvent:
    """The cue for ``segment``: its translation if it has one (below the original when
    ``bilingual``), wrapped to ``profile`` and escaped."""
    def wrap(text: str, lang: str | None) -> list[str]:
        p = profile.for_language(lang)
        return wrap_lines(text, p.max_line, p.max_lines, lang)

    if bilingual and segment.translation is not None:
        lines = wrap(segment.text, segment.language) + wrap(segment.translation, language)
    else:
        lines = wrap(_cue_text(segment, False), shown_language(segment, language))
    return pysubs2.SSAEvent(start=round(segment.start * 1000), end=round(segment.end * 1000),
                            text=r"\N".join(_escape(line, fmt) for line in lines))


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
                    profile: SubtitleProfile = PROFILES["netflix"],
                    language: str | None = None) -> None:
    """Write ``segments`` to ``path``; the format follows the suffix unless given."""
    Path(path).write_text(render_subtitles(segments, fmt or format_for_path(path),
                                           bilingual=bilingual, profile=profile,
                                           language=language),
                          encoding="utf-8")


async def awrite_subtitles(segments: Iterable[Segment], path: str | os.PathLike[str],
                           fmt: str | None = None, *, bilingual: bool = False,
                           profile: SubtitleProfile = PROFILES["netflix"],
                           language: str | None = None) -> None:
    """:func:`write_subtitles` without blocking the event loop (aiofiles)."""
    text = render_subtitles(segments, fmt or format_for_path(path), bilingual=bilingual,
                            profile=profile, language=language)
    async with aiofiles.open(path, "w", encoding="utf-8") as fh:
        await fh.write(text)
