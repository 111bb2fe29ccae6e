"""Subtitle files written while a live stream runs: valid after every cue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiofiles
import aiofiles.os
import pysubs2

from ..errors import ConfigError, StreamClosedError
from ._profile import PROFILES, CueTimer, SubtitleProfile
from ._writers import cue_event, fitted, format_for_path

if TYPE_CHECKING:
    import os
    from types import TracebackType
    from typing import Self

    from aiofiles.threadpool.text import AsyncTextIOWrapper

    from .._types import Segment


def render_cue(segment: Segment, number: int, fmt: str,
               profile: SubtitleProfile = PROFILES["netflix"]) -> str:
    """One SRT or WebVTT cue block, numbered ``number``, with its blank line."""
    subs = pysubs2.SSAFile()
    subs.append(cue_event(segment, fmt, profile=profile))
    body = str(subs.to_string(fmt))
    if fmt == "vtt":
        body = body.removeprefix("WEBVTT\n\n")
    # pysubs2 numbers a one-cue file 1; the cue's place in the live file is ``number``.
    _, cue = body.split("\n", 1)
    return f"{number}\n{cue}"


class _Cues:
    """Finals cut and timed to a profile as they arrive (:class:`CueTimer`): a cue is
    settled once the next one begins, since its end depends on when that one starts."""

    def __init__(self, profile: SubtitleProfile) -> None:
        self.profile = profile
        self._timer = CueTimer(profile)

    def push(self, segment: Segment) -> list[Segment]:
        return [timed for cue in fitted(segment, self.profile)
                for timed in self._timer.push(cue, cue.text)]

    def flush(self) -> list[Segment]:
        return list(self._timer.flush())


class LiveSubtitleWriter:
    """Append final segments to an SRT or WebVTT file as they arrive; partials are ignored.

    Cues keep ``profile``'s rules. Each one goes out in one write and is flushed once the
    next final arrives (how long it stays up depends on when the next begins), the last one
    when the writer closes, so a player or a tail-reader sees a valid file at every moment
    (for WebVTT the header is written when the file is opened).

    ::

        async with LiveSubtitleWriter("live.vtt") as writer:
            async for seg in transcribe_stream(microphone(), live=True):
                await writer.write(seg)
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None, *,
                 profile: SubtitleProfile = PROFILES["netflix"]) -> None:
        self.path = path
        self.fmt = fmt or format_for_path(path)
        if self.fmt not in ("srt", "vtt"):
            raise ConfigError(f"live subtitles are written as srt or vtt, not {self.fmt!r}")
        self.profile = profile
        self.cues = 0
        self._cues = _Cues(profile)
        self._file: AsyncTextIOWrapper | None = None

    async def __aenter__(self) -> Self:
        self._file = await aiofiles.open(self.path, "w", encoding="utf-8")
        if self.fmt == "vtt":
            await self._file.write("WEBVTT\n\n")
            await self._file.flush()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def write(self, segment: Segment) -> None:
        """Append ``segment`` if it is final.

        :raises StreamClosedError: the writer is not open
        """
        if self._file is None:
            raise StreamClosedError("LiveSubtitleWriter is not open")
        if segment.is_final:
            await self._write(self._cues.push(segment))

    async def _write(self, cues: list[Segment]) -> None:
        assert self._file is not None
        for cue in cues:
            self.cues += 1
            await self._file.write(render_cue(cue, self.cues, self.fmt, self.profile))
            await self._file.flush()

    async def aclose(self) -> None:
        """Write the last cue and close the file."""
        if self._file is not None:
            await self._write(self._cues.flush())
            await self._file.close()
            self._file = None


class HlsSubtitleWriter:
    """WebVTT for a live HLS feed: fixed-length ``.vtt`` segments and a sliding playlist.

    Cues keep ``profile``'s rules (each settled once the next final arrives). They are cut
    at segment boundaries (a cue spanning two segments appears in both, as HLS
    expects). A segment is written once the stream has moved past its end, and the playlist
    (``subs.m3u8``) is rewritten atomically after each, listing the last ``window`` segments;
    :meth:`aclose` flushes the last segment and ends the playlist.
    """

    def __init__(self, directory: str | os.PathLike[str], *, segment_seconds: int = 6,
                 window: int = 10, name: str = "subs",
                 profile: SubtitleProfile = PROFILES["netflix"]) -> None:
        from pathlib import Path

        self.directory = Path(directory)
        self.segment_seconds = segment_seconds
        self.window = window
        self.name = name
        self.profile = profile
        self._cues = _Cues(profile)
        self._pending: list[Segment] = []
        self._written = 0  # segments written so far

    async def write(self, segment: Segment) -> None:
        """Take a final (partials are ignored) and write every segment it completes."""
        if not segment.is_final:
            return
        for cue in self._cues.push(segment):
            self._pending.append(cue)
            while cue.start >= (self._written + 1) * self.segment_seconds:
                await self._flush_segment(ended=False)

    async def aclose(self) -> None:
        self._pending.extend(self._cues.flush())
        while self._pending:
            await self._flush_segment(ended=not any(
                s.end > (self._written + 1) * self.segment_seconds for s in self._pending))
        await self._write_playlist(ended=True)

    async def _flush_segment(self, *, ended: bool) -> None:
        start = self._written * self.segment_seconds
        end = start + self.segment_seconds
        cues = [s for s in self._pending if s.start < end and s.end > start]
        body = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n" + "".join(
            render_cue(s, n, "vtt", self.profile) for n, s in enumerate(cues, 1))
        self.directory.mkdir(parents=True, exist_ok=True)
        async with aiofiles.open(self.directory / self._segment_name(self._written), "w",
                                 encoding="utf-8") as fh:
            await fh.write(body)
        self._written += 1
        self._pending = [s for s in self._pending if s.end > end]
        await self._write_playlist(ended=ended)

    def _segment_name(self, n: int) -> str:
        return f"{self.name}-{n:05d}.vtt"

    async def _write_playlist(self, *, ended: bool) -> None:
        first = max(self._written - self.window, 0)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3",
                 f"#EXT-X-TARGETDURATION:{self.segment_seconds}",
                 f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for n in range(first, self._written):
            lines += [f"#EXTINF:{self.segment_seconds:.3f},", self._segment_name(n)]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        tmp = self.directory / f".{self.name}.m3u8.tmp"
        async with aiofiles.open(tmp, "w", encoding="utf-8") as fh:
            await fh.write("\n".join(lines) + "\n")
        await aiofiles.os.replace(tmp, self.directory / f"{self.name}.m3u8")
