"""Render segments as subtitle files.

SRT, WebVTT, ASS/SSA and TTML go through pysubs2 so timing syntax and escaping follow the
formats exactly; JSON is our own segment schema (:meth:`Segment.to_dict`), text is one cue
per line. A format that cannot be written is refused, never replaced by another.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import aiofiles
import pysubs2

from ..errors import ConfigError

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


def wrap_lines(text: str, max_line: int = MAX_LINE) -> list[str]:
    """Break a cue into at most two lines of similar width.

    Width counts East Asian wide characters twice, as they are drawn. Text with spaces
    breaks at the space nearest the middle; text written without them (Chinese, Japanese)
    between characters, never before closing punctuation.
    """
    text = " ".join(text.split())
    if _width(text) <= max_line:
        return [text]
    half = _width(text) / 2
    if " " in text:
        candidates = [i for i, c in enumerate(text) if c == " "]
    else:
        candidates = [i for i in range(1, len(text)) if text[i] not in _NO_LINE_START]
    if not candidates:
        return [text]
    cut = min(candidates, key=lambda i: abs(_width(text[:i]) - half))
    return [text[:cut].rstrip(), text[cut:].lstrip()]


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


def render_subtitles(segments: Iterable[Segment], fmt: str, *, bilingual: bool = False) -> str:
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
    subs = pysubs2.SSAFile()
    subs.extend(cue_event(seg, fmt, bilingual=bilingual) for seg in segments)
    return str(subs.to_string(fmt))


def cue_event(segment: Segment, fmt: str, *, bilingual: bool = False) -> pysubs2.SSAEvent:
    """The cue for ``segment``: its translation if it has one (below the original when
    ``bilingual``), wrapped and escaped."""
    if bilingual and segment.translation is not None:
        lines = wrap_lines(segment.text) + wrap_lines(segment.translation)
    else:
        lines = wrap_lines(_cue_text(segment, False))
    return pysubs2.SSAEvent(
        start=round(segment.start * 1000), end=round(segment.end * 1000),
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
                    fmt: str | None = None, *, bilingual: bool = False) -> None:
    """Write ``segments`` to ``path``; the format follows the suffix unless given."""
    Path(path).write_text(render_subtitles(segments, fmt or format_for_path(path),
                                           bilingual=bilingual), encoding="utf-8")


async def awrite_subtitles(segments: Iterable[Segment], path: str | os.PathLike[str],
                           fmt: str | None = None, *, bilingual: bool = False) -> None:
    """:func:`write_subtitles` without blocking the event loop (aiofiles)."""
    text = render_subtitles(segments, fmt or format_for_path(path), bilingual=bilingual)
    async with aiofiles.open(path, "w", encoding="utf-8") as fh:
        await fh.write(text)
