"""File transcription stage: batches of speech windows through the model, cut into cues.

Whatever windows are waiting (up to ``batch_size``, never waiting for more) go to the model
as one call through the engine's scheduler; the words that come back are cut into
subtitle-sized cues (``subtitles._cues``). With a translator that works from the audio
(Whisper's translate task) the same windows are decoded again as English and that English is
spread over the window's cues.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from .._timing import timer
from .._types import Segment, Word
from ..subtitles._cues import cue_text, split_cues, spread
from ._base import Stage, receive_waiting

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ..models import Runner, WindowText
    from ..scheduler import Scheduler
    from ._vad import SpeechWindow

__all__ = ("Transcriber", "TranscriberStatistics")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TranscriberStatistics:
    language: str | None
    language_probability: float | None
    windows: int
    batches: int
    dropped_silent: int
    model_seconds: float


class Transcriber(Stage["SpeechWindow", Segment, TranscriberStatistics]):
    """Stage: :class:`SpeechWindow` in, final :class:`Segment` out."""

    def __init__(self, runner: Runner, scheduler: Scheduler, *, priority: str | int = "batch",
                 first_index: int = 0, translate_audio: bool = False) -> None:
        self.runner = runner
        self.scheduler = scheduler
        self.priority = priority
        self.translate_audio = translate_audio
        self.input_buffer = runner.options.batch_size
        self._windows = self._batches = self._dropped_silent = 0
        self._model_seconds = 0.0
        self._next_index = first_index

    def statistics(self) -> TranscriberStatistics:
        return TranscriberStatistics(self.runner.language, self.runner.language_probability,
                                     self._windows, self._batches, self._dropped_silent,
                                     round(self._model_seconds, 3))

    async def run(self, receive: MemoryObjectReceiveStream[SpeechWindow],
                  send: MemoryObjectSendStream[Segment]) -> None:
        async with receive, send:
            eof = False
            while not eof:
                batch, eof = await receive_waiting(receive, self.runner.options.batch_size)
                if batch:
                    for segment in await self._transcribe(batch):
                        await send.send(segment)

    async def _transcribe(self, batch: list[SpeechWindow]) -> list[Segment]:
        started = anyio.current_time()
        async with timer("stage.transcribe"):
            results, english = await self.scheduler.run_sync(self._call, batch,
                                                             priority=self.priority)
        elapsed = anyio.current_time() - started
        self._model_seconds += elapsed
        self._batches += 1
        self._windows += len(batch)
        logger.debug("batch of %d window(s), %.1f s of speech, took %.3f s", len(batch),
                     sum(w.duration for w in batch), elapsed)
        return [segment for result, text in zip(results, english, strict=True)
                for segment in self._segments(result, text)]

    def _call(self, batch: list[SpeechWindow]) -> tuple[list[WindowText], list[str | None]]:
        results = self.runner.transcribe(batch)
        if not self.translate_audio:
            return results, [None] * len(batch)
        return results, list(self.runner.translate(results))

    def _segments(self, result: WindowText, english: str | None = None) -> list[Segment]:
        if result.is_silence:
            self._dropped_silent += 1
            logger.debug("dropped window %d as silence (no_speech=%.2f logprob=%.2f)",
                         result.window.index, result.no_speech_prob, result.avg_logprob)
            return []
        if not result.text:
            return []
        opts = self.runner.options
        groups: list[tuple[float, float, str, tuple[Word, ...]]]
        if not result.words:
            groups = [(result.window.start, result.window.end, result.text, ())]
        else:
            groups = [(cue[0].start, cue[-1].end, cue_text(cue), tuple(cue))
                      for cue in split_cues(result.words, max_chars=opts.max_cue_chars,
                                            max_duration=opts.max_cue_duration)]
        groups = [g for g in groups if g[2]]
        translations: list[str | None] = [None] * len(groups)
        if english:  # spread the window's English over its cues
            translations = list(spread(english, [g[2] for g in groups]))
        segments = []
        for (start, end, text, words), translation in zip(groups, translations, strict=True):
            segments.append(Segment(
                self._next_index, start, max(end, start), text, words,
                language=self.runner.language,
                language_probability=self.runner.language_probability,
                avg_logprob=result.avg_logprob, no_speech_prob=result.no_speech_prob,
                translation=translation))
            self._next_index += 1
        return segments
