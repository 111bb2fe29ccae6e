"""Source stage: an :class:`~voicesub_stream.sources.AudioSource` read into the pipeline."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._types import SAMPLE_RATE, AudioChunk
from ..errors import SourceError, VoicesubError
from ._base import Stage

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ..sources import AudioSource

__all__ = ("SourceReader", "SourceStatistics")


@dataclass(frozen=True, slots=True)
class SourceStatistics:
    duration: float | None
    """The source's length when known up front (files), else ``None``."""
    audio_seconds: float
    """Audio decoded and handed on so far."""


class SourceReader(Stage[None, AudioChunk, SourceStatistics]):
    """Stage: nothing in, the source's decoded 1 s :class:`AudioChunk` out.

    Its source is closed when the stage ends, however it ends, so an abandoned stream never
    leaves a user's async generator suspended or a file open. Whatever the source raises
    reaches the consumer as a :class:`~voicesub_stream.errors.SourceError` (the original is
    its ``__cause__``), after the segments for the audio read before it.
    """

    input_buffer = 0

    def __init__(self, source: AudioSource) -> None:
        self.source = source
        self._samples = 0

    def statistics(self) -> SourceStatistics:
        return SourceStatistics(self.source.duration, round(self._samples / SAMPLE_RATE, 3))

    async def run(self, receive: MemoryObjectReceiveStream[None],
                  send: MemoryObjectSendStream[AudioChunk]) -> None:
        async with receive, send, aclosing(self.source.chunks()) as chunks:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except VoicesubError:
                    raise
                except Exception as exc:
                    raise SourceError(
                        f"the audio source failed {self._samples / SAMPLE_RATE:.1f} s into its "
                        f"audio: {type(exc).__name__}: {exc}") from exc
                self._samples += len(chunk.samples)
                await send.send(chunk)
