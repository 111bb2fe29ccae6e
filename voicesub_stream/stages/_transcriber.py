"""Transcription stage: batches of speech windows through faster-whisper in a worker thread.

Each batch is one encoder call and one batched ``generate`` (faster-whisper's
``BatchedInferencePipeline.forward``), decoded without timestamp tokens and aligned to words
afterwards: that is the batched pipeline's fast path, and the word times then cut the text into
subtitle-sized cues, which a 30 s window without timestamps would not give.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
import numpy as np

from .._types import Segment, Word
from ..errors import TranscriptionError

if TYPE_CHECKING:
    from anyio.abc import ObjectSendStream
    from anyio.streams.memory import MemoryObjectReceiveStream

    from .._config import TranscribeOptions
    from ..models import LoadedModel
    from ..scheduler import Scheduler
    from ._vad import SpeechWindow

logger = logging.getLogger(__name__)

# Whisper's own rule for "this window was silence": both high no-speech and low confidence.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0

FULL_FRAMES = 3000
"""Whisper's trained input: 30 s of 10 ms mel frames."""
MIN_FRAMES = 1000
ENCODER_MARGIN = 100
"""Windows are encoded at 10 s or at the longest window plus 1 s of silence, not padded to
30 s: the encoder's cost grows faster than linearly with length and the decoder's
cross-attention shrinks with it. Shorter than 10 s looped on short clips; windows whose output
still looks looped are re-decoded at full length (see ``_looks_looped``)."""

SENTENCE_END = re.compile(r"[.!?。！？…]['\")\]]*$")
CLAUSE_END = re.compile(r"[,;:、，；：]$")


@dataclass
class _WindowText:
    window: SpeechWindow
    text: str
    words: list[Word]
    avg_logprob: float
    no_speech_prob: float


@dataclass
class TranscriberStats:
    windows: int = 0
    batches: int = 0
    dropped_silent: int = 0
    model_seconds: float = 0.0


class Runner(Protocol):
    """What the stages need of a model: :class:`WhisperRunner` in this process, or the
    process pool's runner (``voicesub_stream.executors``)."""

    options: TranscribeOptions
    language: str | None
    language_probability: float | None

    def transcribe(self, windows: list[SpeechWindow], *,
                   prompt: str | None = None) -> list[_WindowText]: ...


class WhisperRunner:
    """Blocking model calls for one stream; every method runs in a worker thread."""

    def __init__(self, model: LoadedModel, options: TranscribeOptions) -> None:
        from faster_whisper.transcribe import BatchedInferencePipeline

        self.model = model
        self.options = options
        self._whisper = model.whisper
        self._pipeline_cls = BatchedInferencePipeline
        self.redecoded = 0
        self.language: str | None = options.language
        self.language_probability: float | None = 1.0 if options.language else None
        if not model.is_multilingual:
            if self.language not in (None, "en"):
                logger.warning("model %s is English-only; ignoring language=%r",
                               model.key.name, self.language)
            self.language, self.language_probability = "en", 1.0

    def features(self, window: SpeechWindow) -> Any:
        return self._whisper.feature_extractor(window.audio)[..., :-1]

    def transcribe(self, windows: list[SpeechWindow], *,
                   prompt: str | None = None) -> list[_WindowText]:
        """Transcribe ``windows`` as one batch; ``prompt`` overrides the options' initial prompt.

        :raises TranscriptionError: the model failed
        """
        try:
            feats = [self.features(w) for w in windows]
            if self.language is None:
                lang, prob, _ = self._whisper.detect_language(features=feats[0])
                self.language, self.language_probability = lang, float(prob)
                logger.info("detected language %s (p=%.2f)", lang, prob)
            outputs: list[list[dict[str, Any]]] = [[] for _ in windows]
            groups: dict[int, list[int]] = {}
            for i, f in enumerate(feats):
                groups.setdefault(self._encoder_frames(f.shape[-1]), []).append(i)
            for frames, idx in groups.items():
                for i, out in zip(idx, self._forward([windows[i] for i in idx],
                                                     [feats[i] for i in idx], frames, prompt),
                                  strict=True):
                    outputs[i] = out
                if frames < FULL_FRAMES:
                    # A shortened encoder input occasionally sends the decoder into a loop;
                    # redo those windows the way Whisper was trained, padded to 30 s.
                    redo = [i for i in idx if _looks_looped(outputs[i], windows[i].duration)]
                    if redo:
                        logger.debug("re-decoding %d window(s) at 30 s", len(redo))
                        again = self._forward([windows[i] for i in redo],
                                              [feats[i] for i in redo], FULL_FRAMES, prompt)
                        for i, out in zip(redo, again, strict=True):
                            outputs[i] = out
                        self.redecoded += len(redo)
        except Exception as exc:
            raise TranscriptionError(f"model {self.model.key.name!r} failed: {exc}") from exc
        return [self._collect(w, out) for w, out in zip(windows, outputs, strict=True)]

    def _encoder_frames(self, frames: int) -> int:
        """Encoder input length for a window of ``frames`` mel frames.

        One of a few fixed sizes, chosen from the window alone, so a window's text never
        depends on which other windows shared its batch.
        """
        window_max = round(self.options.vad.max_window * 100) + ENCODER_MARGIN
        for size in (MIN_FRAMES, window_max, FULL_FRAMES):
            if frames + ENCODER_MARGIN <= size:
                return size + size % 2  # the encoder's strided conv halves the length
        return FULL_FRAMES

    def _forward(self, windows: list[SpeechWindow], feats: list[Any], frames: int,
                 prompt: str | None) -> list[list[dict[str, Any]]]:
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        tokenizer = Tokenizer(
            self._whisper.hf_tokenizer,
            self._whisper.model.is_multilingual,
            task=self.options.task,
            language=self.language,
        )
        batch = np.stack([pad_or_trim(f, frames) for f in feats])
        metadata = [{"offset": 0.0, "duration": w.duration, "segments": []} for w in windows]
        # A fresh pipeline object per call: it keeps per-call state (last_speech_timestamp).
        outputs: list[list[dict[str, Any]]] = self._pipeline_cls(self._whisper).forward(
            batch, tokenizer, metadata, self._fw_options(prompt)
        )
        return outputs

    def _collect(self, window: SpeechWindow, parts: list[dict[str, Any]]) -> _WindowText:
        words: list[Word] = []
        for part in parts:
            for w in part.get("words") or ():
                words.append(Word(
                    window.stream_time(w["start"]),
                    window.stream_time(w["end"], is_end=True),
                    w["word"],
                    float(w["probability"]),
                ))
        text = "".join(p["text"] for p in parts).strip()
        avg_logprob = float(parts[0]["avg_logprob"]) if parts else 0.0
        no_speech = float(parts[0]["no_speech_prob"]) if parts else 1.0
        return _WindowText(window, text, words, avg_logprob, no_speech)

    def _fw_options(self, prompt: str | None = None) -> Any:
        from faster_whisper.transcribe import TranscriptionOptions

        o = self.options
        return TranscriptionOptions(
            beam_size=o.beam_size, best_of=5, patience=1.0, length_penalty=1.0,
            repetition_penalty=1.0, no_repeat_ngram_size=0, log_prob_threshold=LOGPROB_THRESHOLD,
            no_speech_threshold=NO_SPEECH_THRESHOLD, compression_ratio_threshold=2.4,
            condition_on_previous_text=False, prompt_reset_on_temperature=0.5,
            temperatures=[0.0], initial_prompt=prompt or o.initial_prompt, prefix=None,
            suppress_blank=True, suppress_tokens=[-1], without_timestamps=True,
            max_initial_timestamp=1.0, word_timestamps=o.word_timestamps,
            prepend_punctuations="\"'“¿([{-", append_punctuations="\"'.。,，!！?？:：”)]}、",
            multilingual=False, max_new_tokens=None, clip_timestamps="0",
            hallucination_silence_threshold=None, hotwords=None,
        )


def _looks_looped(parts: list[dict[str, Any]], duration: float) -> bool:
    """Repetition loops show as too many tokens for the audio or highly compressible text."""
    from faster_whisper.transcribe import get_compression_ratio

    tokens = sum(len(p["tokens"]) for p in parts)
    text = "".join(p["text"] for p in parts)
    return tokens > 10 + 8 * duration or (len(text) > 40 and get_compression_ratio(text) > 2.4)


def split_cues(
    words: list[Word], *, max_chars: int, max_duration: float, max_gap: float = 1.0
) -> list[list[Word]]:
    """Cut a window's words into subtitle cues.

    Cues end at sentence ends and at pauses longer than ``max_gap``. A sentence too long for
    one cue (``max_chars`` / ``max_duration``) is halved recursively where the speaker paused
    longest, a clause end (comma, semicolon) counting as a long pause and lopsided halves
    counting against a break, so a long sentence becomes balanced cues, not a full cue and an
    orphaned last word. A very short sentence joins the cue before it when both fit together.
    """
    phrases: list[list[Word]] = []
    phrase: list[Word] = []
    for word in words:
        if phrase and word.start - phrase[-1].end > max_gap:
            phrases.append(phrase)
            phrase = []
        phrase.append(word)
        if SENTENCE_END.search(word.text.strip()):
            phrases.append(phrase)
            phrase = []
    if phrase:
        phrases.append(phrase)

    def fits(cue: list[Word]) -> bool:
        return (len(cue_text(cue)) <= max_chars
                and cue[-1].end - cue[0].start <= max_duration)

    def split(cue: list[Word]) -> list[list[Word]]:
        if len(cue) < 2 or fits(cue):
            return [cue]
        cut = _best_break(cue)
        return split(cue[:cut]) + split(cue[cut:])

    cues: list[list[Word]] = []
    for phrase in phrases:
        for piece in split(phrase):
            prev = cues[-1] if cues else None
            if (prev is not None and piece[-1].end - piece[0].start < 1.0
                    and piece[0].start - prev[-1].end <= max_gap and fits(prev + piece)):
                prev.extend(piece)
            else:
                cues.append(piece)
    return cues


def cue_text(words: list[Word]) -> str:
    return "".join(w.text for w in words).strip()


def _best_break(words: list[Word]) -> int:
    """Index at which to cut ``words`` in two: a long pause near the middle."""
    total = len(cue_text(words))

    def score(i: int) -> float:
        clause = 0.5 if CLAUSE_END.search(words[i - 1].text.strip()) else 0.0
        pause = min(words[i].start - words[i - 1].end, 1.0)
        imbalance = abs(2 * len(cue_text(words[:i])) - total) / max(total, 1)
        return clause + pause - imbalance

    return max(range(1, len(words)), key=score)


class Transcriber:
    """Stage: :class:`SpeechWindow` in, final :class:`Segment` out."""

    def __init__(
        self, runner: Runner, scheduler: Scheduler, *, priority: str | int = "batch",
        first_index: int = 0,
    ) -> None:
        self.runner = runner
        self.scheduler = scheduler
        self.priority = priority
        self.stats = TranscriberStats()
        self._next_index = first_index

    async def run(
        self,
        receive: MemoryObjectReceiveStream[SpeechWindow],
        send: ObjectSendStream[Segment],
    ) -> None:
        async with receive, send:
            async for first in receive:
                batch = [first]
                # Take whatever else is already waiting, never wait for more: a lone window
                # (the first one, or a live stream's) goes straight to the model.
                while len(batch) < self.runner.options.batch_size:
                    try:
                        batch.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                started = anyio.current_time()
                results = await self.scheduler.run_sync(self.runner.transcribe, batch,
                                                        priority=self.priority)
                elapsed = anyio.current_time() - started
                self.stats.model_seconds += elapsed
                logger.debug("batch of %d window(s), %.1f s of speech, took %.3f s", len(batch),
                             sum(w.duration for w in batch), elapsed)
                self.stats.batches += 1
                self.stats.windows += len(batch)
                for result in results:
                    for segment in self._segments(result):
                        await send.send(segment)

    def _segments(self, result: _WindowText) -> list[Segment]:
        if result.no_speech_prob > NO_SPEECH_THRESHOLD and result.avg_logprob < LOGPROB_THRESHOLD:
            self.stats.dropped_silent += 1
            logger.debug("dropped window %d as silence (no_speech=%.2f logprob=%.2f)",
                         result.window.index, result.no_speech_prob, result.avg_logprob)
            return []
        if not result.text:
            return []
        opts = self.runner.options
        common: dict[str, Any] = {
            "language": self.runner.language,
            "language_probability": self.runner.language_probability,
            "avg_logprob": result.avg_logprob,
            "no_speech_prob": result.no_speech_prob,
        }
        if not result.words:
            groups: list[tuple[float, float, str, tuple[Word, ...]]] = [
                (result.window.start, result.window.end, result.text, ())
            ]
        else:
            groups = [
                (cue[0].start, cue[-1].end, cue_text(cue), tuple(cue))
                for cue in split_cues(result.words, max_chars=opts.max_cue_chars,
                                      max_duration=opts.max_cue_duration)
            ]
        segments = []
        for start, end, text, words in groups:
            if not text:
                continue
            segments.append(Segment(self._next_index, start, max(end, start), text, words,
                                    **common))
            self._next_index += 1
        return segments
