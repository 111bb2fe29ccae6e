"""VAD chunking: find speech with faster-whisper's Silero VAD and pack it into model windows.

Silero runs over a rolling buffer rather than the whole file: every ``step`` seconds of new
audio the buffer is scanned, speech regions that can no longer grow are committed, and the
buffer is trimmed to the start of the region still open. Committed regions are packed, silence
removed, into windows of at most ``max_window`` seconds of speech (the way faster-whisper's
batched pipeline packs them), so the model sees full windows and never pads silence.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import numpy as np

from .._timing import timer
from .._types import SAMPLE_RATE, AudioChunk, SpeechWindow
from ..models import speech_timestamps
from ._base import Stage

if TYPE_CHECKING:
    import numpy.typing as npt
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._config import VadOptions

__all__ = ("SpeechWindow", "VadChunker", "VadStatistics")

AUDIO_BUFFER = 8
"""Decoded 1 s chunks allowed ahead of the VAD: decoding stays a few seconds ahead, no more."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VadStatistics:
    audio_seconds: float
    speech_seconds: float
    windows: int


class _Region:
    __slots__ = ("audio", "end", "start")

    def __init__(self, start: int, audio: npt.NDArray[np.float32]) -> None:
        self.start, self.audio, self.end = start, audio, start + len(audio)


class VadChunker(Stage[AudioChunk, SpeechWindow, VadStatistics]):
    """Stage: :class:`AudioChunk` in, :class:`SpeechWindow` out."""

    input_buffer = AUDIO_BUFFER

    def __init__(self, options: VadOptions, *, step: float = 30.0) -> None:
        self.options = options
        self._max = int(options.max_window * SAMPLE_RATE)
        self._step = int(step * SAMPLE_RATE)
        # A region ending closer than this to the buffer's end may still grow.
        self._guard = int((options.min_silence_ms + options.speech_pad_ms) / 1000 * SAMPLE_RATE
                          + 0.5 * SAMPLE_RATE)
        self._buffer: list[npt.NDArray[np.float32]] = []
        self._buffer_start = 0
        self._buffer_len = 0
        self._unscanned = 0
        self._committed_end = 0
        self._pending: list[_Region] = []
        self._group: list[_Region] = []
        self._group_len = 0
        self._windows = 0
        self.speech_seconds = 0.0
        self.audio_seconds = 0.0

    async def run(self, receive: MemoryObjectReceiveStream[AudioChunk],
                  send: MemoryObjectSendStream[SpeechWindow]) -> None:
        async with receive, send:
            async for chunk in receive:
                self._append(chunk.samples)
                if self._unscanned >= self._step:
                    for window in await anyio.to_thread.run_sync(self._scan, False):
                        await send.send(window)
            for window in await anyio.to_thread.run_sync(self._scan, True):
                await send.send(window)

    def statistics(self) -> VadStatistics:
        return VadStatistics(round(self.audio_seconds, 3), round(self.speech_seconds, 3),
                             self._windows)

    def _append(self, samples: npt.NDArray[np.float32]) -> None:
        self._buffer.append(samples)
        self._buffer_len += len(samples)
        self._unscanned += len(samples)
        self.audio_seconds += len(samples) / SAMPLE_RATE

    def _scan(self, eof: bool) -> list[SpeechWindow]:
        """Commit finished speech regions and return the windows they fill (runs in a thread)."""
        started = time.perf_counter()
        try:
            with timer("stage.vad"):
                return self._scan_buffer(eof)
        finally:
            logger.debug("VAD scan of %.1f s took %.3f s", self._buffer_len / SAMPLE_RATE,
                         time.perf_counter() - started)

    def _scan_buffer(self, eof: bool) -> list[SpeechWindow]:
        self._unscanned = 0
        if not self._buffer:
            return self._flush() if eof else []
        audio = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        horizon = len(audio) if eof else len(audio) - self._guard
        keep_from = max(horizon, 0)
        for start, end in self._speech(audio):
            if end > horizon:
                keep_from = min(keep_from, start)
                break
            start = max(start + self._buffer_start, self._committed_end) - self._buffer_start
            if end > start:
                self._commit(_Region(self._buffer_start + start, audio[start:end].copy()))
        rest = audio[keep_from:]
        self._buffer = [rest] if len(rest) else []
        self._buffer_start += keep_from
        self._buffer_len = len(rest)
        windows = self._take_windows()
        if eof:
            windows += self._flush()
        elif self._group and (
            self._buffer_start + self._buffer_len - self._group[0].start > 2 * self._max
        ):
            # Long silence after the last speech: send what we have rather than wait for company.
            windows += self._flush()
        return windows

    def _speech(self, audio: npt.NDArray[np.float32]) -> list[tuple[int, int]]:
        if not self.options.enabled:
            return [(i, min(i + self._max, len(audio))) for i in range(0, len(audio), self._max)]
        o = self.options
        return speech_timestamps(audio, threshold=o.threshold, min_speech_ms=o.min_speech_ms,
                                 max_speech_s=o.max_window, min_silence_ms=o.min_silence_ms,
                                 speech_pad_ms=o.speech_pad_ms)

    def _commit(self, region: _Region) -> None:
        self._committed_end = region.end
        self.speech_seconds += len(region.audio) / SAMPLE_RATE
        # Speech padding can push a maximal region just past the window; never let the model
        # trim audio off the end of a window.
        for offset in range(0, len(region.audio), self._max):
            self._pending.append(_Region(region.start + offset,
                                         region.audio[offset : offset + self._max]))

    def _take_windows(self) -> list[SpeechWindow]:
        windows = []
        for region in self._pending:
            if self._group and self._group_len + len(region.audio) > self._max:
                windows.append(self._make_window())
            self._group.append(region)
            self._group_len += len(region.audio)
        self._pending = []
        return windows

    def _flush(self) -> list[SpeechWindow]:
        windows = self._take_windows()
        if self._group:
            windows.append(self._make_window())
        return windows

    def _make_window(self) -> SpeechWindow:
        group, self._group, self._group_len = self._group, [], 0
        audio = np.concatenate([r.audio for r in group]) if len(group) > 1 else group[0].audio
        window = SpeechWindow(self._windows, audio, tuple((r.start, r.end) for r in group))
        self._windows += 1
        return window
