"""Subtitle writers: SRT, WebVTT, ASS/SSA, TTML, JSON and plain text from segments (pysubs2)."""

from ._live import HlsSubtitleWriter, LiveSubtitleWriter
from ._writers import (
    FORMATS,
    CueLayout,
    SubtitleFormat,
    awrite_subtitles,
    format_for_path,
    render_subtitles,
    wrap_lines,
    write_subtitles,
)

__all__ = (
    "FORMATS",
    "CueLayout",
    "HlsSubtitleWriter",
    "LiveSubtitleWriter",
    "SubtitleFormat",
    "awrite_subtitles",
    "format_for_path",
    "render_subtitles",
    "wrap_lines",
    "write_subtitles",
)
