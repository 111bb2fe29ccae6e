"""Transcription stage: batches of speech windows through faster-whisper in a worker thread.

Each batch is one encoder call and one batched ``generate`` (faster-whisper's
``BatchedInferencePipeline.forward``), decoded without timestamp tokens and aligned to words
afterwards: that is the batched pipeline's fast path, and the word times then cut the text into
subtitle-sized cues, which a 30 s window without timestamps would not give.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
import numpy as np

from .._text import spread
from .._types import Segment, Word
from ..errors import TranscriptionError
from ..monitoring import timer

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

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


def ends_sentence(text: str) -> bool:
    return SENTENCE_END.search(text.strip()) is not None


def ends_clause(text: str) -> bool:
    return CLAUSE_END.search(text.strip()) is not None


@dataclass
class _WindowText:
    window: SpeechWindow
    text: str
    words: list[Word]
    avg_logprob: float
    no_speech_prob: float

    @property
    def is_silence(self) -> bool:
        """Whisper's own rule: a high no-speech probability and low confidence together."""
        return self.no_speech_prob > NO_SPEECH_THRESHOLD and self.avg_logprob < LOGPROB_THRESHOLD


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
                   prompts: Sequence[str | None] | None = None,
                   prompt_limit: int | None = None) -> list[_WindowText]: ...


class WhisperRunner:
    """Blocking model calls for one stream; every method runs in a worker thread.

    Runners of different streams that share a model and decoding options (equal
    :attr:`batch_key`) can answer their windows in one model call: :func:`transcribe_together`.
    """

    def __init__(self, model: LoadedModel, options: TranscribeOptions) -> None:
        self.model = model
        self.options = options
        self._whisper = model.whisper
        self.redecoded = 0
        self.language: str | None = options.language
        self.language_probability: float | None = 1.0 if options.language else None
        if not model.is_multilingual:
            if self.language not in (None, "en"):
                logger.warning("model %s is English-only; ignoring language=%r",
                               model.key.name, self.language)
            self.language, self.language_probability = "en", 1.0
        o = options
        self.batch_key: Hashable = (id(model), o.task, o.beam_size, o.word_timestamps,
                                    o.initial_prompt, o.vad.max_window)

    def features(self, window: SpeechWindow) -> Any:
        return self._whisper.feature_extractor(window.audio)[..., :-1]

    def transcribe(self, windows: list[SpeechWindow], *,
                   prompts: Sequence[str | None] | None = None,
                   prompt_limit: int | None = None) -> list[_WindowText]:
        """Transcribe ``windows`` as one batch.

        ``prompts`` (one per window) override the options' initial prompt; with
        ``prompt_limit`` only a prompt's last ``prompt_limit`` tokens are used, and none
        while it has fewer, so that prompts of different streams have one length and can
        share a batch (see :func:`transcribe_together`).

        :raises TranscriptionError: the model failed
        """
        prompts = prompts or [None] * len(windows)
        return transcribe_together([(self, w, p) for w, p in zip(windows, prompts, strict=True)],
                                   prompt_limit=prompt_limit)

    def _detect_language(self, feats: Any) -> None:
        lang, prob, _ = self._whisper.detect_language(features=feats)
        self.language, self.language_probability = lang, float(prob)
        logger.info("detected language %s (p=%.2f)", lang, prob)

    def _tokenizer(self, language: str | None) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self._whisper.hf_tokenizer, self._whisper.model.is_multilingual,
                         task=self.options.task, language=language)

    def _prompt_tokens(self, tokenizer: Any, prompt: str | None,
                       limit: int | None) -> tuple[int, ...]:
        text = prompt or self.options.initial_prompt
        if not text or limit == 0:
            return ()
        tokens = tokenizer.encode(" " + text.strip())
        if limit is None:
            return tuple(tokens[-(self._whisper.max_length // 2 - 1):])
        return tuple(tokens[-limit:]) if len(tokens) >= limit else ()

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

    def _forward(self, tokenizer: Any, windows: list[SpeechWindow], feats: list[Any],
                 prompts: list[tuple[int, ...]], frames: int) -> list[list[dict[str, Any]]]:
        from faster_whisper.audio import pad_or_trim

        batch = np.stack([pad_or_trim(f, frames) for f in feats])
        metadata = [{"offset": 0.0, "duration": w.duration, "segments": []} for w in windows]
        # A fresh pipeline object per call: it keeps per-call state (last_speech_timestamp).
        pipeline = _prompted_pipeline()(self._whisper, prompts)
        outputs: list[list[dict[str, Any]]] = pipeline.forward(batch, tokenizer, metadata,
                                                               self._fw_options())
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

    def _fw_options(self) -> Any:
        from faster_whisper.transcribe import TranscriptionOptions

        o = self.options
        return TranscriptionOptions(
            beam_size=o.beam_size, best_of=5, patience=1.0, length_penalty=1.0,
            repetition_penalty=1.0, no_repeat_ngram_size=0, log_prob_threshold=LOGPROB_THRESHOLD,
            no_speech_threshold=NO_SPEECH_THRESHOLD, compression_ratio_threshold=2.4,
            condition_on_previous_text=False, prompt_reset_on_temperature=0.5,
            temperatures=[0.0], initial_prompt=None, prefix=None,
            suppress_blank=True, suppress_tokens=[-1], without_timestamps=True,
            max_initial_timestamp=1.0, word_timestamps=o.word_timestamps,
            prepend_punctuations="\"'“¿([{-", append_punctuations="\"'.。,，!！?？:：”)]}、",
            multilingual=False, max_new_tokens=None, clip_timestamps="0",
            hallucination_silence_threshold=None, hotwords=None,
        )


def transcribe_together(requests: Sequence[tuple[WhisperRunner, SpeechWindow, str | None]], *,
                        prompt_limit: int | None = None) -> list[_WindowText]:
    """Answer windows of one or more streams (runners of one :attr:`~WhisperRunner.batch_key`).

    Windows go to the model in groups that share a language, an encoder length and a prompt
    length (CTranslate2 batches prompts of one length only). All of these are chosen per
    window, never from its company, which is what keeps a window's text the same whether it
    was batched with others or not.

    :raises TranscriptionError: the model failed
    """
    if not requests:
        return []
    lead = requests[0][0]
    try:
        with timer("model.call"):
            return _transcribe_together(lead, requests, prompt_limit)
    except Exception as exc:
        raise TranscriptionError(f"model {lead.model.key.name!r} failed: {exc}") from exc


def _transcribe_together(lead: WhisperRunner,
                         requests: Sequence[tuple[WhisperRunner, SpeechWindow, str | None]],
                         prompt_limit: int | None) -> list[_WindowText]:
    feats = [runner.features(window) for runner, window, _ in requests]
    for (runner, _, _), f in zip(requests, feats, strict=True):
        if runner.language is None:
            runner._detect_language(f)
    tokenizers: dict[str | None, Any] = {}
    groups: dict[tuple[str | None, int, int], list[tuple[int, tuple[int, ...]]]] = {}
    for i, (runner, _, prompt) in enumerate(requests):
        if runner.language not in tokenizers:
            tokenizers[runner.language] = lead._tokenizer(runner.language)
        tokens = lead._prompt_tokens(tokenizers[runner.language], prompt, prompt_limit)
        frames = lead._encoder_frames(feats[i].shape[-1])
        groups.setdefault((runner.language, frames, len(tokens)), []).append((i, tokens))
    outputs: list[list[dict[str, Any]]] = [[] for _ in requests]
    for (language, frames, _), items in groups.items():
        tokenizer = tokenizers[language]
        idx = [i for i, _ in items]
        prompts = [t for _, t in items]
        windows = [requests[i][1] for i in idx]
        results = lead._forward(tokenizer, windows, [feats[i] for i in idx], prompts, frames)
        for i, out in zip(idx, results, strict=True):
            outputs[i] = out
        if frames < FULL_FRAMES:
            # A shortened encoder input occasionally sends the decoder into a loop;
            # redo those windows the way Whisper was trained, padded to 30 s.
            redo = [k for k, i in enumerate(idx) if _looks_looped(outputs[i], windows[k].duration)]
            if redo:
                logger.debug("re-decoding %d window(s) at 30 s", len(redo))
                again = lead._forward(tokenizer, [windows[k] for k in redo],
                                      [feats[idx[k]] for k in redo],
                                      [prompts[k] for k in redo], FULL_FRAMES)
                for k, out in zip(redo, again, strict=True):
                    outputs[idx[k]] = out
                lead.redecoded += len(redo)
    return [runner._collect(window, out)
            for (runner, window, _), out in zip(requests, outputs, strict=True)]


@functools.cache
def _prompted_pipeline() -> type[Any]:
    """The pipeline class, built on first use: faster-whisper is imported lazily."""
    from faster_whisper.transcribe import BatchedInferencePipeline

    class PromptedPipeline(BatchedInferencePipeline):  # type: ignore[misc]
        """faster-whisper's batched forward pass, with each window's own prompt tokens."""

        def __init__(self, model: Any, prompts: list[tuple[int, ...]]) -> None:
            super().__init__(model)
            self.prompts = prompts

        def generate_segment_batched(self, features: Any, tokenizer: Any,
                                     options: Any) -> tuple[Any, list[dict[str, Any]]]:
            whisper = self.model
            prompts = [whisper.get_prompt(tokenizer, previous_tokens=list(p),
                                          without_timestamps=True) for p in self.prompts]
            encoder_output = whisper.encode(features)
            results = whisper.model.generate(
                encoder_output, prompts, beam_size=options.beam_size,
                patience=options.patience, length_penalty=options.length_penalty,
                max_length=whisper.max_length, suppress_blank=options.suppress_blank,
                suppress_tokens=options.suppress_tokens, return_scores=True,
                return_no_speech_prob=True, sampling_temperature=options.temperatures[0],
                repetition_penalty=options.repetition_penalty,
                no_repeat_ngram_size=options.no_repeat_ngram_size,
            )
            out = []
            for r in results:
                tokens = r.sequences_ids[0]
                logprob = r.scores[0] * len(tokens) ** options.length_penalty
                out.append({"avg_logprob": logprob / (len(tokens) + 1),
                            "no_speech_prob": r.no_speech_prob, "tokens": tokens})
            return encoder_output, out

    return PromptedPipeline


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
        if ends_sentence(word.text):
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
        clause = 0.5 if ends_clause(words[i - 1].text) else 0.0
        pause = min(words[i].start - words[i - 1].end, 1.0)
        imbalance = abs(2 * len(cue_text(words[:i])) - total) / max(total, 1)
        return clause + pause - imbalance

    return max(range(1, len(words)), key=score)


class Transcriber:
    """Stage: :class:`SpeechWindow` in, final :class:`Segment` out."""

    def __init__(
        self, runner: Runner, scheduler: Scheduler, *, priority: str | int = "batch",
        first_index: int = 0, translator: Runner | None = None,
    ) -> None:
        self.runner = runner
        self.translator = translator  # task="translate": Whisper's own English per window
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
                async with timer("stage.transcribe"):
                    results, english = await self.scheduler.run_sync(self._call, batch,
                                                                     priority=self.priority)
                elapsed = anyio.current_time() - started
                self.stats.model_seconds += elapsed
                logger.debug("batch of %d window(s), %.1f s of speech, took %.3f s", len(batch),
                             sum(w.duration for w in batch), elapsed)
                self.stats.batches += 1
                self.stats.windows += len(batch)
                for result, text in zip(results, english, strict=True):
                    for segment in self._segments(result, text):
                        await send.send(segment)

    def _call(self, batch: list[SpeechWindow]) -> tuple[list[_WindowText], list[str | None]]:
        results = self.runner.transcribe(batch)
        if self.translator is None:
            return results, [None] * len(batch)
        if self.runner.language == "en":
            return results, [r.text for r in results]
        # Same windows again, decoded as English: Whisper's translate task, from the audio.
        self.translator.language = self.runner.language
        return results, [r.text for r in self.translator.transcribe(batch)]

    def _segments(self, result: _WindowText, english: str | None = None) -> list[Segment]:
        if result.is_silence:
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
        groups = [g for g in groups if g[2]]
        translations: list[str | None] = [None] * len(groups)
        if english:  # spread the window's English over its cues
            translations = list(spread(english, [g[2] for g in groups]))
        segments = []
        for (start, end, text, words), translation in zip(groups, translations, strict=True):
            segments.append(Segment(self._next_index, start, max(end, start), text, words,
                                    translation=translation, **common))
            self._next_index += 1
        return segments
