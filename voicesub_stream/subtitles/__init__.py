"""Subtitle writers: SRT, WebVTT, JSON and plain text from segments (formats via pysubs2)."""

from ._live import HlsSubtitleWriter, LiveSubtitleWriter
from ._writers import (
    FORMATS,
    SubtitleFormat,
    awrite_subtitles,
    format_for_path,
    render_subtitles,
    wrap_lines,
    write_subtitles,
)

__all__ = (
    "FORMATS",
    "HlsSubtitleWriter",
    "LiveSubtitleWriter",
    "SubtitleFormat",
    "awrite_subtitles",
    "format_for_path",
    "render_subtitles",
    "wrap_lines",
    "write_subtitles",
)
