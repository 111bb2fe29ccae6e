"""Live stage: partial and final segments while the audio arrives.

The buffer since the last final is transcribed again every ``step`` seconds of new audio. A
word is committed once two consecutive hypotheses agree on it (LocalAgreement-2, matched on
normalised text after the last committed word); committed words never change. Finals are cut
at a committed sentence end, when Silero hears ``finalize_silence`` after the speech, or when
the buffer grows past ``max_buffer``; the buffer is then trimmed to the end of the final, so a
trim never drops a committed word. Partials (committed words plus the unconfirmed tail) carry
the index their final will have.

Under the ``block`` policy updates happen at fixed steps of audio, so the output depends on
the audio alone, not on how fast it arrived or how fast the model ran. Under ``adaptive``
(real-time sources by default) each update takes everything received, and a
:class:`~voicesub_stream.stages.PaceController` picks the step, context and buffer from how
quickly the answers come back, so latency stays bounded under any load.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.to_thread
import numpy as np

from .._stats import percentiles
from .._timing import timed, timings
from .._types import SAMPLE_RATE, AudioChunk, Segment, Word
from ..models import VAD_FRAME, SpeechDetector, fitting_window, speech_regions
from ..subtitles._cues import cue_text, ends_clause, ends_sentence, split_cues
from ._base import Stage, receive_waiting
from ._pace import PaceController
from ._vad import AUDIO_BUFFER, SpeechWindow

if TYPE_CHECKING:
    import numpy.typing as npt
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._config import LiveOptions, TranscribeOptions
    from ..models import Runner, WindowText
    from ..scheduler import Scheduler
    from ._batcher import StreamBatcher

__all__ = ("LiveStatistics", "LiveTranscriber")

logger = logging.getLogger(__name__)

_NON_WORD = re.compile(r"[^\w']+")
LANGUAGE_DETECTION_AUDIO = 3.0
"""Seconds of audio a live stream collects before its language is detected."""
PAUSE = 0.1
"""Shortest gap between VAD speech segments that counts as a pause. Silero's segments are
padded by 0.1 s on each side, so this is about 0.3 s of actual silence."""
SURE = 0.6
"""Word probability under which a heard pause is not enough to commit without agreement
("we desire and crease," with "and" under 0.5, where the next hypothesis says "increase")."""
UNSURE_EDGE = 0.5
"""Seconds before the end of the audio heard in which a word the model was unsure of is not
shown in a partial yet: a word cut by the buffer's edge is the one the next hypothesis
changes."""
PAUSE_SLACK = 0.25
"""How far Whisper's word times may stray from the VAD's pause and still match it."""
LIVE_BACKLOG = 4096
"""Chunks a live stream under any policy but ``block`` may queue (the stage drains all of them
each update and applies its policy, so the queue stays short in practice)."""
CUT_SHORT = 1.5
"""Seconds of heard speech a hypothesis may leave untranscribed at its end before the window
is read again with less context (longer than any word is spoken)."""
LATE_START = 0.8
"""Seconds of heard speech between the committed words and a hypothesis's first new word
that mean words were skipped (word times stray by 0.2 s at each end; two short words take
longer than the rest)."""
RETRY_CONTEXT = 1.0
"""Seconds of final audio kept when a window is read again."""
OPENING_WORDS = 8
"""A stream's first words are heard with no audio and no text before them, and Whisper reads
them in turn two ways for seconds ("Looking like last" and "Look in thy glass" on alternate
updates of a sonnet's first line, at every window length up to 8 s)."""
OPENING_HOLDBACK = 1.5
"""Seconds of audio that must follow an opening word before two hypotheses that agree on it
commit it: what follows a word is what settles it ("From Ferris creatures" becomes "From
fairest creatures" once "we desire" is heard). Over the 18 shared English clips (tiny.en,
fixed pace, step 0.5 s) finals' WER was 8.8 % with no hold, 7.8 % with 1 s, 7.5 % with
1.5 s and 7.2 % with 2 s, and the 95th percentile of the audio heard past a final's end
when it went out was 1.0, 1.1, 1.7 and 2.0 s. At 2 s a stream's first finals miss the 2 s
final latency a live service is held to; 1.5 s keeps them under it for 0.3 points."""
UNHEARD_RUN = 3
"""Words in a row that the alignment puts at one instant. No one says three words in no
time: from there on the hypothesis is text the decoder wrote past what it heard, typically
a loop at the edge of the audio ("time is money. The origin's power and time is money."
with every repeated word at the same instant), which the end of a stream would commit."""
WINDOW_LIMIT = 29.0
"""Whisper reads at most 30 s; a buffer that grew past this (a long backlog under ``block``)
is transcribed in its first 29 s and force-finalised there."""


def _norm(word: Word) -> str:
    return _NON_WORD.sub("", word.text.lower())


def _match(words: list[Word], before: list[Word], last_end: float) -> int | None:
    """Where the words of a new hypothesis that come after ``before`` (words already
    committed) begin, or None when the hypothesis holds none of their text.

    The buffer still holds the audio of committed words, and their times move by a tenth of a
    second or more between hypotheses, so the new words are found by matching the text of the
    last committed words near where they ended. Short texts repeat ("thy self thy foe"): of
    the places that match, the one that ends nearest the committed end wins.
    """
    norm = [_norm(w) for w in words]
    tail = [_norm(w) for w in before]
    for k in range(min(len(tail), 4), 0, -1):
        ends = [i + k for i in range(len(words) - k + 1)
                if norm[i : i + k] == tail[-k:] and abs(words[i + k - 1].end - last_end) < 1.0]
        if ends:
            return min(ends, key=lambda j: abs(words[j - 1].end - last_end))
    return None


def _after(words: list[Word], before: list[Word], last_end: float) -> list[Word]:
    """The words of a new hypothesis after the committed ``before``: matched by text, else
    those whose middle is past the committed end."""
    start = _match(words, before, last_end)
    return words[start:] if start is not None else _after_time(words, last_end)


def _heard(words: list[Word]) -> list[Word]:
    """``words`` up to the first :data:`UNHEARD_RUN` in a row that the alignment gives no
    time."""
    run = 0
    for i, word in enumerate(words):
        run = run + 1 if word.end <= word.start else 0
        if run == UNHEARD_RUN:
            return words[: i + 1 - UNHEARD_RUN]
    return words


def _capitalised(word: Word) -> Word:
    """``word`` with its first letter in upper case (unchanged in scripts without case)."""
    text = word.text
    i = len(text) - len(text.lstrip())
    if i == len(text) or not text[i].islower():
        return word
    return Word(word.start, word.end, text[:i] + text[i].upper() + text[i + 1:],
                word.probability)


def _after_time(words: list[Word], last_end: float) -> list[Word]:
    """The words whose middle is past ``last_end``."""
    return [w for w in words if (w.start + w.end) / 2 > last_end]


class _Speech:
    """Where the live buffer holds speech. Silero reads each frame of the stream once, as it
    arrives, with its state carried on; an update applies the region rule to the buffer's
    frames. Read again over the whole buffer before each update, Silero cost 7 % of the CPU
    at 8 streams, and its state started afresh at each new buffer start."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._detector = SpeechDetector()
        self._origin = 0  # stream sample where the detector's first frame began
        self._probs = np.zeros(0, np.float32)
        self._first = 0  # stream sample where the frame of _probs[0] began

    def regions(self, audio: npt.NDArray[np.float32], start: int) -> list[tuple[int, int]]:
        """Speech regions of ``audio``, the buffer from stream sample ``start``, as (start,
        end) positions in it."""
        if len(audio) < VAD_FRAME:
            return []
        end = start + len(audio)
        judged = self._origin + self._detector.frames * VAD_FRAME
        if judged < start:  # audio no update read was dropped: start afresh after it
            self._detector, self._origin, judged = SpeechDetector(), start, start
            self._probs, self._first = np.zeros(0, np.float32), start
        whole = max(judged, end - (end - judged) % VAD_FRAME)
        fresh = self._detector(audio[judged - start : whole - start])
        tail = self._detector(audio[whole - start :], keep=False)  # read again next time
        gone = max(start - self._first, 0) // VAD_FRAME
        self._probs = np.concatenate([self._probs[gone:], fresh])
        self._first += gone * VAD_FRAME
        frames = -(-(end - self._first) // VAD_FRAME)
        regions = speech_regions(np.concatenate([self._probs, tail])[:frames], end - self._first,
                                 threshold=self.threshold, min_silence_ms=100,
                                 speech_pad_ms=100, min_speech_ms=100)
        shift = self._first - start
        return [(max(s + shift, 0), e + shift) for s, e in regions if e + shift > 0]


class Admitted(Protocol):
    """What the live stage needs of its admission (the engine's ``Ticket``)."""

    @property
    def lowest_pace(self) -> int: ...

    @property
    def degraded(self) -> bool: ...

    def observe(self, model_seconds: float, pace: int) -> None:
        """One update of the stream took ``model_seconds`` of model time at ``pace``."""


@dataclass
class _Plan:
    """What one update decided before the model call (``window`` None: no call needed)."""

    until: int
    eof: bool
    partial: bool
    silent: bool
    done: bool = False
    overflow: bool = False
    window: SpeechWindow | None = None
    prompt: str | None = None
    pauses: tuple[tuple[float, float], ...] = ()
    """Silences between speech inside the window, in stream seconds (start, end)."""
    speech_end: float = 0.0
    """Where the VAD last heard speech in the window, in stream seconds."""
    cut_short: bool = False
    """The hypothesis stopped well before the speech did (read again, still short)."""

    def heard(self, start: float, end: float) -> float:
        """Seconds of speech the VAD heard between two stream times."""
        end = min(end, self.speech_end)
        quiet = sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.pauses)
        return max(0.0, end - start - quiet)


@dataclass(frozen=True, slots=True)
class LiveStatistics:
    language: str | None
    audio_seconds: float
    updates: int
    model_calls: int
    model_seconds: float
    skipped_silent: int
    partials: int
    finals: int
    dropped_repeats: int
    dropped_seconds: float
    behind_events: int
    max_backlog: float
    policy: str = "block"
    """The backpressure policy in force (``auto`` resolved for the source)."""
    pace: int = 0
    """The pace the controller runs the stream at now: 0 is the stream's own options, higher
    is cheaper (``stages.paces``)."""
    pace_changes: int = 0
    degraded: bool = False
    """Admitted degraded: finals only, at the longest step."""
    retried: int = 0
    """Windows read again with less context because their hypothesis stopped early."""
    cut_short: int = 0
    """Hypotheses that still stopped early and were set aside for the next update's."""
    final_latency_p50: float | None = None
    final_latency_p95: float | None = None
    """This stream's final latency (over its last 256 finals): from the arrival of a final's
    last word to the final."""


@dataclass
class _Counters:
    updates: int = 0
    model_calls: int = 0
    model_seconds: float = 0.0
    skipped_silent: int = 0
    partials: int = 0
    finals: int = 0
    dropped_repeats: int = 0
    dropped_seconds: float = 0.0
    behind_events: int = 0
    max_backlog: float = 0.0
    retried: int = 0
    cut_short: int = 0


class LiveTranscriber(Stage[AudioChunk, Segment, LiveStatistics]):
    """Stage: :class:`AudioChunk` in, partial and final :class:`Segment` out."""

    def __init__(self, runner: Runner, scheduler: Scheduler,
                 options: TranscribeOptions, live: LiveOptions, *,
                 priority: str | int = "live", batcher: StreamBatcher | None = None,
                 realtime: bool = False, ticket: Admitted | None = None) -> None:
        self.runner = runner
        self.batcher = batcher
        self.scheduler = scheduler
        self.priority = priority
        self.options = options
        self.live = live
        self.policy = live.resolved_policy(realtime=realtime)
        self.ticket = ticket
        self._pacer = PaceController(live, adaptive=self.policy == "adaptive",
                                     lowest=ticket.lowest_pace if ticket else 0)
        self._counts = _Counters()
        # Under "block" a slow model holds the source back. The other policies decide
        # themselves what to do with a backlog, so the source must never wait on them.
        self.input_buffer = AUDIO_BUFFER if self.policy == "block" else LIVE_BACKLOG
        self._pieces: list[npt.NDArray[np.float32]] = []
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # stream sample of _buffer[0]
        self._received = 0  # stream samples received
        self._processed = 0  # stream samples the last update saw
        self._speech = _Speech(options.vad.threshold)
        self._committed: list[Word] = []
        self._tentative: list[Word] = []
        self._final_end = 0  # stream sample where the last final ended
        self._last_final_end = 0.0  # the same in seconds, as emitted
        self._final_tail: list[Word] = []
        self._final_words: list[Word] = []
        self._final_word_count = 0  # words finalised since the stream began
        self._last_partial = ""
        self._finals_text: list[str] = []
        self._next_index = 0
        self._sentence_ended = False  # whether the last final ended a sentence
        self.dropped: list[tuple[float, float]] = []
        """Stream times (start, end) of the audio the policy dropped unread, in order."""
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque()
        self._latencies: collections.deque[float] = collections.deque(maxlen=256)
        """(samples received, when) after each read: what final latency is measured from."""

    def statistics(self) -> LiveStatistics:
        c = self._counts
        return LiveStatistics(
            self.runner.language, round(self._received / SAMPLE_RATE, 3), c.updates,
            c.model_calls, round(c.model_seconds, 3), c.skipped_silent, c.partials, c.finals,
            c.dropped_repeats, round(c.dropped_seconds, 3), c.behind_events,
            round(c.max_backlog, 3), policy=self.policy, pace=self._pacer.pace.level,
            pace_changes=self._pacer.changes, degraded=bool(self.ticket and self.ticket.degraded),
            retried=c.retried, cut_short=c.cut_short,
            **dict(zip(("final_latency_p50", "final_latency_p95"),
                       (None if v is None else round(v, 3)
                        for v in percentiles(self._latencies, 0.5, 0.95)), strict=True)))

    async def run(self, receive: MemoryObjectReceiveStream[AudioChunk],
                  send: MemoryObjectSendStream[Segment]) -> None:
        member = (self.batcher.member(self.runner, prompt_limit=self.live.prompt_tokens)
                  if self.batcher is not None else contextlib.nullcontext())
        async with receive, send, member:
            eof = False
            while not eof:
                chunks, eof = await receive_waiting(receive)
                for chunk in chunks:
                    self._append(chunk)
                self._arrivals.append((self._received, anyio.current_time()))
                for segment in await self._catch_up(eof):
                    await send.send(segment)

    @property
    def _step(self) -> int:
        return round(self._pacer.pace.step * SAMPLE_RATE)

    async def _catch_up(self, eof: bool) -> list[Segment]:
        out: list[Segment] = []
        backlog = (self._received - self._processed) / SAMPLE_RATE
        self._counts.max_backlog = max(self._counts.max_backlog, backlog)
        behind = backlog > self.live.max_lag
        if behind:
            self._counts.behind_events += 1
            if self.policy == "drop-oldest":
                out += await self._drop_backlog()
        if self.policy == "adaptive":
            # Everything received in one update: a backlog never becomes a queue of updates.
            if not eof and self._received - self._processed >= self._step:
                out += await self._update(self._received, False, self._pacer.pace.partials)
        else:
            if behind and self.policy != "block":
                # One update over the whole backlog (what drop-oldest kept of it), no partial:
                # catch up at the cost of detail. Steps one by one would fall behind again.
                target = self._received if eof else self._received - self._received % self._step
                if target > self._processed:
                    out += await self._update(target, eof and target == self._received, False)
            while self._received - self._processed >= self._step:
                out += await self._update(self._processed + self._step, False,
                                          self.live.partials)
        if eof:
            out += await self._update(self._received, True, False)
        return out

    @timed("stage.live_update")
    async def _update(self, until: int, eof: bool, partial: bool) -> list[Segment]:
        started = anyio.current_time()
        backlog = (until - self._processed) / SAMPLE_RATE
        pace = self._pacer.pace.level
        plan, result = await self._transcribe(until, eof, partial)
        retry = self._reread_from(plan, result)
        while retry is not None:  # at most twice: with less context, then (at the end) none
            self._counts.retried += 1
            self._trim(retry)
            plan, result = await self._transcribe(until, eof, partial)
            retry = self._reread_from(plan, result)
        if result is not None and self._cut_short(plan, result):
            # Still short: the next update will do better. This one must not undo the
            # agreement so far, nor be finalised in its place.
            plan.cut_short = True
            self._counts.cut_short += 1
        segments = self._apply(plan, result)
        took = anyio.current_time() - started
        self._counts.model_seconds += took
        if result is not None:
            self._pacer.observe(took, backlog)
            if self.ticket is not None:
                self.ticket.observe(result.model_seconds, pace)
        return segments

    async def _transcribe(self, until: int, eof: bool,
                          partial: bool) -> tuple[_Plan, WindowText | None]:
        if self.batcher is None:
            plan, result = await self.scheduler.run_sync(self._call, until, eof, partial,
                                                         priority=self.priority)
        else:
            # The VAD runs here, the model call waits for company from other streams.
            plan = await anyio.to_thread.run_sync(self._plan, until, eof, partial)
            result = None
            if plan.window is not None:
                result = await self.batcher.transcribe(
                    self.runner, plan.window, plan.prompt,
                    prompt_limit=self.live.prompt_tokens, priority=self.priority)
        if result is not None:
            heard = _heard(result.words)
            if len(heard) < len(result.words):  # the text too, so the two never disagree
                result = dataclasses.replace(result, words=heard,
                                             text="".join(w.text for w in heard).strip())
        return plan, result

    def _reread_from(self, plan: _Plan, result: WindowText | None) -> int | None:
        """Where a window must open to be read again, or None when its hypothesis will do.

        Whisper reads a window that opens inside a word, or with much already-final speech,
        badly in two ways, and does so again on every update of the same audio. It may skip
        ahead to the next sentence start (the first new words start late), or end the
        hypothesis early (it stops short). The same audio from where the final ended, its
        text in the prompt, or with less of the final's audio, is usually read whole. At a
        stream's end a window still short with :data:`RETRY_CONTEXT` is read once more from
        where the final ended: no later update would read the speech it left out (earlier,
        the next update reads it better than a window without context would).
        """
        if result is None or plan.window is None:
            return None
        opens = round(plan.window.start * SAMPLE_RATE)
        if opens < self._final_end - round(PAUSE * SAMPLE_RATE) and self._starts_late(plan,
                                                                                     result):
            return self._final_end
        if opens >= self._final_end or not self._cut_short(plan, result):
            return None
        context = self._final_end - round(RETRY_CONTEXT * SAMPLE_RATE)
        if opens < context:
            return context
        return self._final_end if plan.eof else None

    def _starts_late(self, plan: _Plan, result: WindowText) -> bool:
        """Whether the hypothesis skipped heard speech after the committed words: it holds
        none of their text, and its first new word starts well after they end."""
        if not result.words or result.is_silence:
            return False
        before, last_end = self._context()
        if _match(result.words, before, last_end) is not None:
            return False
        new = _after_time(result.words, last_end)
        return bool(new) and plan.heard(last_end, new[0].start) > LATE_START

    @staticmethod
    def _cut_short(plan: _Plan, result: WindowText) -> bool:
        """Whether the hypothesis stops well before the speech in its window does.

        Whisper's word times stretch one of the last words over what it did not transcribe,
        so a word that spans more heard speech than any spoken word counts as well as a plain
        gap (a word stretched over a pause or the silence after the speech does not).
        """
        if plan.window is None or not result.words or result.is_silence:
            return False
        last = result.words[-3:]
        return (plan.heard(last[-1].end, plan.speech_end) > CUT_SHORT
                or any(plan.heard(w.start, w.end) > CUT_SHORT for w in last))

    async def _drop_backlog(self) -> list[Segment]:
        """Drop received audio no update has read yet, but for the newest ``max_lag``
        seconds (drop-oldest). Only audio the model never saw counts as dropped."""
        keep_from = self._received - round(self.live.max_lag * SAMPLE_RATE)
        unread = keep_from - self._processed
        out: list[Segment] = []
        if unread > 0:
            # What the last hypothesis heard becomes final first: its words must not be lost,
            # and reading them again would only put the stream further behind.
            out = self._finalize(self._committed + self._tentative)
            self._trim(keep_from)
            self._processed = keep_from
            self._counts.dropped_seconds += unread / SAMPLE_RATE
            self.dropped.append(((keep_from - unread) / SAMPLE_RATE, keep_from / SAMPLE_RATE))
            logger.warning("live stream behind by more than %.1f s: dropped %.2f s of audio "
                           "(%.2f s in total)", self.live.max_lag, unread / SAMPLE_RATE,
                           self._counts.dropped_seconds)
        return out

    def _append(self, chunk: AudioChunk) -> None:
        self._pieces.append(chunk.samples)
        self._received += len(chunk.samples)

    def _flatten(self) -> None:
        if self._pieces:
            self._buffer = np.concatenate([self._buffer, *self._pieces])
            self._pieces = []

    # -- an update: plan (VAD, which audio to transcribe), model call, apply ---------------
    def _call(self, until: int, eof: bool, partial: bool) -> tuple[_Plan, WindowText | None]:
        plan = self._plan(until, eof, partial)
        if plan.window is None:
            return plan, None
        (result,) = self.runner.transcribe([plan.window], prompts=[plan.prompt],
                                           prompt_limit=self.live.prompt_tokens)
        return plan, result

    def _plan(self, until: int, eof: bool, partial: bool) -> _Plan:
        self._flatten()
        self._processed = max(self._processed, until)
        self._counts.updates += 1
        audio = self._buffer[: max(until - self._buffer_start, 0)]
        speech = [(s, e) for s, e in self._speech.regions(audio, self._buffer_start)
                  if self._buffer_start + e > self._final_end]
        plan = _Plan(until, eof, partial, silent=not speech)
        if not speech:
            return plan
        plan.overflow = len(audio) > round(WINDOW_LIMIT * SAMPLE_RATE)
        plan.done = eof or len(audio) - speech[-1][1] >= self.live.finalize_silence * SAMPLE_RATE
        end = (min(len(audio), speech[-1][1] + round(0.2 * SAMPLE_RATE)) if plan.done
               else len(audio))
        audio = audio[: min(end, round(WINDOW_LIMIT * SAMPLE_RATE))]
        if self.runner.language is None and len(audio) < LANGUAGE_DETECTION_AUDIO * SAMPLE_RATE:
            # Whisper guesses a language from half a second of speech badly, and the first
            # guess sticks for the whole stream: wait for enough audio to decide.
            return plan
        origin = self._buffer_start
        plan.pauses = tuple(((origin + e) / SAMPLE_RATE, (origin + s) / SAMPLE_RATE)
                            for (_, e), (s, _) in itertools.pairwise(speech)
                            if s - e >= PAUSE * SAMPLE_RATE and s <= len(audio))
        plan.speech_end = (origin + min(speech[-1][1], len(audio))) / SAMPLE_RATE
        opens = origin + self._spare_context(len(audio))
        plan.window = SpeechWindow(self._counts.model_calls, audio[opens - origin:],
                                   ((opens, origin + len(audio)),))
        self._counts.model_calls += 1
        # Prompt with final text whose audio is not in the window: text that is still
        # audible makes Whisper skip those words and misplace the rest.
        plan.prompt = cue_text([w for w in self._final_words
                                if w.end <= opens / SAMPLE_RATE]) or None
        return plan

    def _spare_context(self, length: int) -> int:
        """Samples of final audio at the buffer's start to leave out of a window of
        ``length``: the context that does not fit the encoder size the new audio needs.

        The encoder's cost steps up with its input size (tiny.en on two cores: 54 ms at
        10 s, 184 ms at 21 s), so context never pushes a window into the next size; it
        keeps at least :data:`RETRY_CONTEXT` seconds.
        """
        new = self._buffer_start + length - self._final_end
        fits = round(fitting_window(new / SAMPLE_RATE + RETRY_CONTEXT) * SAMPLE_RATE)
        return max(0, length - fits)

    def _apply(self, plan: _Plan, result: WindowText | None) -> list[Segment]:
        until = plan.until
        if plan.silent:
            out = self._finalize(self._committed + self._tentative)
            # Nothing new was said: keep only a little audio, a word may start at the edge.
            self._trim(until - round(0.3 * SAMPLE_RATE))
            self._counts.skipped_silent += 1
            return out
        words = result.words if result is not None and not result.is_silence else []
        if plan.done and not plan.overflow:
            out = self._finalize(self._agree(words, commit_all=True))
            self._trim_after_final()
            return out
        if plan.cut_short and not plan.overflow:
            return self._partial() if plan.partial else []
        return self._advance(plan, words)

    def _advance(self, plan: _Plan, words: list[Word]) -> list[Segment]:
        """Commit what two hypotheses agree on, and finalise up to where a final may end."""
        until = plan.until
        pace = self._pacer.pace
        heard = until / SAMPLE_RATE
        committed = self._agree(words, commit_all=False, horizon=heard - pace.holdback,
                                opening_horizon=heard - OPENING_HOLDBACK)
        committed += self._before_pause(plan.pauses)
        # Where a final may end: a sentence end, a clause end a second or more into the
        # final (shorter ones would make flickering two-word cues), or (when the committed
        # words already span max_final seconds) anywhere, so committed words do not wait long.
        sentence_ends = [i for i, w in enumerate(committed)
                         if ends_sentence(w.text)
                         or (ends_clause(w.text) and w.end - committed[0].start >= 1.0)]
        if committed and committed[-1].end - committed[0].start >= pace.max_final:
            sentence_ends.append(len(committed) - 1)
        pending = (until - max(self._final_end, self._buffer_start)) / SAMPLE_RATE
        if plan.overflow:
            committed, self._tentative = committed + self._tentative, []
            cut = len(committed)
        elif sentence_ends:
            cut = sentence_ends[-1] + 1
        elif pending > pace.max_buffer and committed:
            cut = len(committed)
        elif pending > pace.max_buffer:
            # Nothing agreed for a whole buffer: take the hypothesis but its last word.
            cut = max(len(self._tentative) - 1, 0)
            committed, self._tentative = self._tentative[:cut], self._tentative[cut:]
        else:
            cut = 0
        out = []
        if cut:
            rest = committed[cut:]
            out += self._finalize(committed[:cut], keep_tentative=True)
            self._committed = rest
            self._trim_after_final()
        else:
            self._committed = committed
        if plan.partial:
            out += self._partial()
        return out

    def _before_pause(self, pauses: tuple[tuple[float, float], ...]) -> list[Word]:
        """Tentative words up to a sentence or clause end that a heard pause follows.

        The model heard those words with the pause and the speech after it: a second
        hypothesis rarely changes them, so waiting for one would only add an update's delay
        to the finals where readers notice it most, at the end of a sentence. A word the
        model was unsure of (under :data:`SURE`) still waits for agreement, and so does a
        stream's opening (:data:`OPENING_WORDS`), which one hypothesis reads badly.
        """
        tentative = self._tentative
        if self._opening_left > 0:
            return []
        for i in range(len(tentative) - 2, -1, -1):
            word, after = tentative[i], tentative[i + 1]
            if not (ends_sentence(word.text) or ends_clause(word.text)):
                continue
            if min(w.probability for w in tentative[: i + 1]) < SURE:
                return []
            if any(start - PAUSE_SLACK <= word.end and after.start >= end - PAUSE_SLACK
                   and word.end <= end for start, end in pauses):
                self._tentative = tentative[i + 1:]
                return tentative[: i + 1]
        return []

    def _agree(self, words: list[Word], *, commit_all: bool, horizon: float = math.inf,
               opening_horizon: float = math.inf) -> list[Word]:
        """Committed words after LocalAgreement-2 between this hypothesis and the last: those
        that end before ``horizon``, or before ``opening_horizon`` for a stream's first
        :data:`OPENING_WORDS` words."""
        committed = list(self._committed)
        new = _after(words, *self._context())
        if commit_all:
            self._tentative = []
            return committed + new
        opening = self._opening_left
        agreed = 0
        for old, cur in zip(self._tentative, new, strict=False):
            limit = opening_horizon if agreed < opening else horizon
            if _norm(old) != _norm(cur) or not _norm(cur) or cur.end > limit:
                break
            agreed += 1
        self._tentative = new[agreed:]
        return committed + new[:agreed]

    @property
    def _opening_left(self) -> int:
        """How many of the stream's first :data:`OPENING_WORDS` words are not committed yet."""
        return OPENING_WORDS - self._final_word_count - len(self._committed)

    def _context(self) -> tuple[list[Word], float]:
        """The last committed words (final or not) and where they end, in seconds."""
        before = (self._final_tail + self._committed)[-5:]
        last_end = (self._committed[-1].end if self._committed
                    else self._final_end / SAMPLE_RATE)
        return before, last_end

    def _finalize(self, words: list[Word], *, keep_tentative: bool = False) -> list[Segment]:
        self._committed, self._last_partial = [], ""
        if not keep_tentative:
            self._tentative = []
        self._final_word_count += len(words)
        if words:
            self._final_end = max(self._final_end, round(words[-1].end * SAMPLE_RATE))
            self._final_tail = (self._final_tail + words)[-5:]
            self._final_words = (self._final_words + words)[-80:]
        out = []
        for cue in split_cues(words, max_chars=self.options.max_cue_chars,
                              max_duration=self.options.max_cue_duration,
                              language=self.runner.language):
            text = cue_text(cue)
            if not text:
                continue
            norm = " ".join(_norm(w) for w in cue)
            if len(cue) >= 3 and self._finals_text and norm == self._finals_text[-1]:
                self._counts.dropped_repeats += 1
                logger.debug("dropped a repeated final: %r", text)
                continue
            self._finals_text.append(norm)
            del self._finals_text[:-8]
            out.append(self._segment(cue, is_final=True))
            self._next_index += 1
            self._counts.finals += 1
        return out

    def _partial(self) -> list[Segment]:
        # Unconfirmed words are shown up to the first one near the audio's edge that the
        # model was unsure of: on the shared English clips two in three of those were
        # changed by the next hypothesis, against one in ten of the rest.
        edge = self._processed / SAMPLE_RATE - UNSURE_EDGE
        unsure = next((i for i, w in enumerate(self._tentative)
                       if w.probability < SURE and w.end > edge), len(self._tentative))
        words = self._committed + self._tentative[:unsure]
        text = cue_text(words)
        if not words or text == self._last_partial:
            return []
        self._last_partial = text
        self._counts.partials += 1
        segment = self._segment(words, is_final=False)
        segment.metadata["committed_words"] = len(self._committed)
        return [segment]

    def _segment(self, words: list[Word], *, is_final: bool) -> Segment:
        # Word times are accurate to about a tenth of a second; a final never starts before
        # the previous one ended.
        floor = self._last_final_end
        words = [w if w.start >= floor else Word(floor, max(w.end, floor), w.text, w.probability)
                 for w in words]
        if self._sentence_ended:
            # The hypothesis this came from may have read on past the sentence end the last
            # final kept ("lies, thy self" after "lies."): the next sentence still starts with
            # a capital.
            words[0] = _capitalised(words[0])
        if is_final:
            self._last_final_end = words[-1].end
            self._sentence_ended = ends_sentence(words[-1].text)
            self._observe_latency(words[-1].end)
        return Segment(
            self._next_index, words[0].start, max(words[-1].end, words[0].start), cue_text(words),
            tuple(words), language=self.runner.language,
            language_probability=self.runner.language_probability, is_final=is_final,
            metadata={"audio_received": round(self._processed / SAMPLE_RATE, 3)},
        )

    def _observe_latency(self, end: float) -> None:
        """Record how long after the audio of a final's last word arrived the final went out
        (``live.final_latency``, the latency histogram's ``final`` on ``/metrics``)."""
        sample = round(end * SAMPLE_RATE)
        arrivals = self._arrivals
        while len(arrivals) > 1 and arrivals[0][0] < sample:
            arrivals.popleft()
        if arrivals:
            latency = anyio.current_time() - arrivals[0][1]
            timings.observe("live.final_latency", latency)
            self._latencies.append(latency)

    def _trim_after_final(self) -> None:
        # Keep some already-final audio: the model hears the words before the next ones,
        # which short utterances need ("ask not" alone is easily misheard).
        self._trim(self._final_end - round(self._pacer.pace.context * SAMPLE_RATE))

    def _trim(self, sample: int) -> None:
        """Drop buffered audio before stream position ``sample``."""
        self._flatten()
        cut = min(max(sample - self._buffer_start, 0), len(self._buffer))
        self._buffer = self._buffer[cut:]
        self._buffer_start += cut
