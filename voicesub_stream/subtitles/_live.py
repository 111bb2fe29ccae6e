"""Subtitle files written while a live stream runs: valid after every cue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiofiles
import pysubs2

from ..errors import ConfigError, StreamClosedError
from ._writers import _escape, format_for_path, wrap_lines

if TYPE_CHECKING:
    import os
    from types import TracebackType
    from typing import Self

    from aiofiles.threadpool.text import AsyncTextIOWrapper

    from .._types import Segment


def render_cue(segment: Segment, number: int, fmt: str) -> str:
    """One SRT or WebVTT cue block, numbered ``number``, with its blank line."""
    subs = pysubs2.SSAFile()
    text = segment.text if segment.translation is None else segment.translation
    subs.append(pysubs2.SSAEvent(
        start=round(segment.start * 1000), end=round(segment.end * 1000),
        text=r"\N".join(_escape(line, fmt) for line in wrap_lines(text)),
    ))
    body = str(subs.to_string(fmt))
    if fmt == "vtt":
        body = body.removeprefix("WEBVTT\n\n")
    # pysubs2 numbers a one-cue file 1; the cue's place in the live file is ``number``.
    return f"{number}\n{body.split(chr(10), 1)[1]}"


class LiveSubtitleWriter:
    """Append final segments to an SRT or WebVTT file as they arrive; partials are ignored.

    Each cue goes out in one write and is flushed, so a player or a tail-reader sees a valid
    file at every moment (for WebVTT the header is written when the file is opened).

    ::

        async with LiveSubtitleWriter("live.vtt") as writer:
            async for seg in transcribe_stream(microphone(), live=True):
                await writer.write(seg)
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None) -> None:
        self.path = path
        self.fmt = fmt or format_for_path(path)
        if self.fmt not in ("srt", "vtt"):
            raise ConfigError(f"live subtitles are written as srt or vtt, not {self.fmt!r}")
        self.cues = 0
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
        if not segment.is_final:
            return
        self.cues += 1
        await self._file.write(render_cue(segment, self.cues, self.fmt))
        await self._file.flush()

    async def aclose(self) -> None:
        if self._file is not None:
            await self._file.close()
            self._file = None
