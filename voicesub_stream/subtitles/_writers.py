"""Render segments as subtitle files.

SRT and WebVTT go through pysubs2 so timing syntax and escaping follow the formats exactly;
JSON is our own segment schema (:meth:`Segment.to_dict`), text is one cue per line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import aiofiles
import pysubs2

from ..errors import ConfigError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from .._types import Segment

SubtitleFormat = Literal["srt", "vtt", "json", "txt"]
FORMATS: tuple[str, ...] = get_args(SubtitleFormat)
MAX_LINE = 42
"""Characters per subtitle line: the common broadcast and streaming-service limit."""


def wrap_lines(text: str, max_line: int = MAX_LINE) -> list[str]:
    """Break a cue into at most two lines of similar length at the space nearest the middle."""
    text = " ".join(text.split())
    if len(text) <= max_line or " " not in text:
        return [text]
    middle = len(text) // 2
    spaces = [i for i, c in enumerate(text) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - middle))
    return [text[:cut], text[cut + 1 :]]


def format_for_path(path: str | os.PathLike[str], default: SubtitleFormat = "srt") -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else default


def render_subtitles(segments: Iterable[Segment], fmt: str) -> str:
    """The whole subtitle document as a string.

    :raises ConfigError: unknown format
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown subtitle format {fmt!r}; choose one of {', '.join(FORMATS)}")
    segments = list(segments)
    if fmt == "json":
        return json.dumps([s.to_dict() for s in segments], ensure_ascii=False, indent=2) + "\n"
    if fmt == "txt":
        return "".join(f"{s.text}\n" for s in segments)
    subs = pysubs2.SSAFile()
    subs.extend(cue_event(seg, fmt) for seg in segments)
    return str(subs.to_string(fmt))


def cue_event(segment: Segment, fmt: str) -> pysubs2.SSAEvent:
    """The cue for ``segment``: its translation if it has one, wrapped and escaped."""
    text = segment.text if segment.translation is None else segment.translation
    return pysubs2.SSAEvent(
        start=round(segment.start * 1000), end=round(segment.end * 1000),
        text=r"\N".join(_escape(line, fmt) for line in wrap_lines(text)),
    )


def _escape(text: str, fmt: str) -> str:
    """Keep spoken text from being read as markup; pysubs2 writes cue text as given.

    WebVTT has entities for this. SRT has none and players treat ``<...>`` as tags, so the
    angle brackets become their typographic look-alikes there.
    """
    if fmt == "vtt":
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("<", "‹").replace(">", "›")


def write_subtitles(segments: Iterable[Segment], path: str | os.PathLike[str],
                    fmt: str | None = None) -> None:
    """Write ``segments`` to ``path``; the format follows the suffix unless given."""
    Path(path).write_text(render_subtitles(segments, fmt or format_for_path(path)),
                          encoding="utf-8")


async def awrite_subtitles(segments: Iterable[Segment], path: str | os.PathLike[str],
                           fmt: str | None = None) -> None:
    """:func:`write_subtitles` without blocking the event loop (aiofiles)."""
    text = render_subtitles(segments, fmt or format_for_path(path))
    async with aiofiles.open(path, "w", encoding="utf-8") as fh:
        await fh.write(text)
