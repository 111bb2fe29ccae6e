"""Subtitle writers: SRT, WebVTT, ASS/SSA, TTML, JSON and plain text from segments (pysubs2),
cut, wrapped and timed to a house style (:class:`SubtitleProfile`), and a checker for it."""

from ._check import Violation, check_subtitles, load_cues
from ._live import HlsSubtitleWriter, LiveSubtitleWriter
from ._profile import PROFILES, CueTimer, SubtitleProfile, get_profile
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
    "PROFILES",
    "CueTimer",
    "HlsSubtitleWriter",
    "LiveSubtitleWriter",
    "SubtitleFormat",
    "SubtitleProfile",
    "Violation",
    "awrite_subtitles",
    "check_subtitles",
    "format_for_path",
    "get_profile",
    "load_cues",
    "render_subtitles",
    "wrap_lines",
    "write_subtitles",
)
