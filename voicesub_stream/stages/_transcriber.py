"""File transcription stage: batches of speech windows through the model, cut into cues.

Whatever windows are waiting (up to ``batch_size``, never waiting for more) go to the model
as one call through the engine's scheduler; the words that come back are cut into
subtitle-sized cues (``subtitles._cues``). As many calls run at once as the scheduler admits
(on CPU, single-thread calls side by side do more work than one call over every core), and
their segments go out in window order. With a translator that works from the audio
(Whisper's translate task, asked for, or what ``auto`` falls back to for speech no text translator
takes into English) the same windows are decoded again as English and that English is
spread over the window's cues.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from .._timing import timer
from .._types import Segment, Word
from ..subtitles._cues import cue_text, split_cues, spread
from ._base import Stage, even_share, receive_waiting, take_waiting

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup
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


@dataclass(eq=False)
class _Call:
    """One model call of the stage: its windows, and what came back."""

    batch: list[SpeechWindow]
    results: list[WindowText] = field(default_factory=list)
    english: list[str | None] = field(default_factory=list)
    error: Exception | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


class _Slots:
    """Calls and windows the stage may have outstanding: a call may start once a call slot
    and at least one window slot are free. A call's slot frees when its model work ends, its
    windows' slots when its segments have gone on: a short call that ends behind a long one
    lets the next call start at once instead of waiting for the long one's turn to send."""

    def __init__(self, calls: int, windows: int) -> None:
        self.calls, self.windows = calls, windows
        self._freed = anyio.Event()

    async def acquire(self) -> None:
        while self.calls == 0 or self.windows == 0:
            self._freed = anyio.Event()
            await self._freed.wait()
        self.calls -= 1

    def take(self, windows: int) -> None:
        self.windows -= windows

    def end_call(self) -> None:
        self.calls += 1
        self._freed.set()

    def release(self, windows: int) -> None:
        self.windows += windows
        self._freed.set()


class Transcriber(Stage["SpeechWindow", Segment, TranscriberStatistics]):
    """Stage: :class:`SpeechWindow` in, final :class:`Segment` out."""

    def __init__(self, runner: Runner, scheduler: Scheduler, *, priority: str | int = "batch",
                 first_index: int = 0,
                 translate_audio: Callable[[str | None], bool] | None = None) -> None:
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
        # At most as many calls running as the scheduler runs at once, and at most
        # batch_size windows outstanding (running, or done and not yet sent on) over all of
        # them: a slow consumer holds back no more audio than one call at a time would. A
        # call's windows are taken only when it may start, so everything that arrived
        # meanwhile joins it.
        batch_size = self.runner.options.batch_size
        slots = _Slots(self.scheduler.workers, batch_size)
        calls, in_order = anyio.create_memory_object_stream[_Call](batch_size)
        with calls:  # closed here too, should the task group end before the producer starts
            await self._run(receive, send, slots, calls, in_order)

    async def _run(self, receive: MemoryObjectReceiveStream[SpeechWindow],
                   send: MemoryObjectSendStream[Segment], slots: _Slots,
                   calls: MemoryObjectSendStream[_Call],
                   in_order: MemoryObjectReceiveStream[_Call]) -> None:
        async with receive, send, anyio.create_task_group() as tg:
            tg.start_soon(self._start_calls, receive, calls, slots, tg)
            async with in_order:
                async for call in in_order:  # oldest first: segments keep window order
                    await call.done.wait()
                    if call.error is not None:
                        raise call.error
                    for segment in self._cut(call.results, call.english):
                        await send.send(segment)
                    slots.release(len(call.batch))

    async def _start_calls(self, receive: MemoryObjectReceiveStream[SpeechWindow],
                           calls: MemoryObjectSendStream[_Call], slots: _Slots,
                           tg: TaskGroup) -> None:
        async with calls:
            eof = False
            while not eof:
                await slots.acquire()
                batch, eof = await receive_waiting(receive, 1)
                if batch and not eof:
                    more, eof = take_waiting(receive,
                                             min(self._share(receive), slots.windows) - 1)
                    batch += more
                slots.take(len(batch))
                if not batch:
                    slots.end_call()
                    continue
                call = _Call(batch)
                await calls.send(call)
                tg.start_soon(self._transcribe, call, slots)

    def _share(self, receive: MemoryObjectReceiveStream[SpeechWindow]) -> int:
        """Windows for the next call: what waits, split evenly over the calls that may run at
        once (so that no core idles while another works through a long batch alone), at
        most ``batch_size``; one while live streams run beside a batch-priority file, so
        that a live update never waits for a core behind a long call."""
        if self.scheduler.keep_short(self.priority):
            return 1
        workers = self.scheduler.slots_for(self.priority)
        waiting = 1 + receive.statistics().current_buffer_used  # with the one taken
        return even_share(waiting, workers, most=self.runner.options.batch_size)

    async def _transcribe(self, call: _Call, slots: _Slots) -> None:
        try:
            call.results, call.english = await self._call_model(call.batch)
        except Exception as exc:
            call.error = exc
        finally:
            slots.end_call()
            call.done.set()

    async def _call_model(self, batch: list[SpeechWindow],
                          ) -> tuple[list[WindowText], list[str | None]]:
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
        return results, english

    def _cut(self, results: list[WindowText], english: list[str | None]) -> list[Segment]:
        return [segment for result, text in zip(results, english, strict=True)
                for segment in self._segments(result, text)]

    def _call(self, batch: list[SpeechWindow]) -> tuple[list[WindowText], list[str | None]]:
        results = self.runner.transcribe(batch)
        if self.translate_audio is None or not self.translate_audio(self.runner.language):
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
                                            max_duration=opts.max_cue_duration,
                                            language=self.runner.language)]
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
