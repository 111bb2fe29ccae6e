"""faster-whisper, in one place: loading, Silero VAD, decoding windows, and batches of them.

This is the package's only importer of faster-whisper (the benchmarks' faster-whisper
baselines aside). Everything above it sees :class:`WhisperRunner` (one stream's model calls),
:class:`WhisperBatch` (windows of several streams in as few model calls as their options
allow) and :class:`WindowText` (what a window said).

Each batch is encoded (one call on a GPU, a call per window on a CPU) and decoded by one
batched ``generate`` (faster-whisper's ``BatchedInferencePipeline.forward``) without
timestamp tokens, then aligned to words: that is the batched pipeline's fast path, and the
word times then cut the text into subtitle-sized cues, which a 30 s window without
timestamps would not give.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .._timing import timer
from .._types import SAMPLE_RATE, Word
from ..errors import TranscriptionError

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    import numpy.typing as npt
    from faster_whisper import WhisperModel as WhisperModel

    from .._config import TranscribeOptions
    from .._types import SpeechWindow
    from ._registry import LoadedModel

__all__ = ("Runner", "SpeechDetector", "WhisperBatch", "WhisperRunner", "WindowText",
           "download_model", "load_vad", "load_whisper", "speech_regions", "speech_timestamps")

logger = logging.getLogger(__name__)

# Whisper's own rule for "this window was silence": both high no-speech and low confidence.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0

ENCODER_BATCH = 1
"""The most windows one encoder call takes on CPU (see ``PromptedPipeline._encode``)."""
FULL_FRAMES = 3000
"""Whisper's trained input: 30 s of 10 ms mel frames."""
MIN_FRAMES = 1000
SHORT_FRAMES = 2100
ENCODER_MARGIN = 100
"""English windows and live updates are encoded at 10 s or 21 s when they and a second of
silence fit, else at 30 s, not all padded to 30 s: the encoder's cost grows faster than
linearly with length and the decoder's cross-attention shrinks with it. Shorter than 10 s
looped on short clips; windows whose output still looks looped are re-decoded at full length
(see :func:`looks_looped`). Files in other languages are encoded at the whole 30 s Whisper
was trained on: with base over the shared clips that took Spanish from 11.7 % to 10.1 % and
French from 22.1 % to 19.9 %, for 18 % more time over the corpus, where English changed by
0.2 points."""


# -- loading ---------------------------------------------------------------------------------

def load_whisper(path: str, *, device: str, compute_type: str, cpu_threads: int,
                 num_workers: int, background: bool = False) -> WhisperModel:
    """A CTranslate2 Whisper model from a local directory (blocking).

    ``background``: its calls run at the lowest CPU priority
    (see :func:`background_calls_supported`).
    """
    from faster_whisper import WhisperModel as WhisperModel

    limit_blas_threads()
    if not background:
        return WhisperModel(path, device=device, compute_type=compute_type,
                            cpu_threads=cpu_threads, num_workers=num_workers,
                            local_files_only=True)
    loaded: list[WhisperModel] = []
    failed: list[BaseException] = []

    def load() -> None:
        # Threads inherit the priority of the thread that starts them: CTranslate2 starts
        # its workers (and their OpenMP teams) from this one, which lives only to load.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)
            loaded.append(load_whisper(path, device=device, compute_type=compute_type,
                                       cpu_threads=cpu_threads, num_workers=num_workers))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=load, name="voicesub background model load")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return loaded[0]


LOWEST_PRIORITY = 19
"""The nice value of background model calls: the kernel gives a core to such a thread only
while no thread of ordinary priority wants it."""


def background_calls_supported(device: str) -> bool:
    """Whether batch work can run on its own model threads at the lowest CPU priority: on
    CPU under Linux, where a thread has a priority of its own.

    A file beside live streams then takes only the CPU time they leave, whenever they leave
    it, with no core set aside for either: two single-thread live-sized updates took
    0.25 s each alone, 0.51 s beside two 30 s windows of ordinary priority, and 0.24 s beside
    the same two at the lowest priority (tiny.en, 2 cores).
    """
    return device == "cpu" and sys.platform == "linux" and hasattr(os, "setpriority")


BLAS_THREADS_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
"""Environment variables that set numpy's BLAS threads; where one is set, it wins."""


@functools.cache
def limit_blas_threads() -> None:
    """Keep numpy's BLAS (OpenBLAS, MKL) on one thread in a process that runs model calls.

    faster-whisper computes mel features with numpy, whose BLAS starts a thread per core and
    keeps them spinning between calls. Beside CTranslate2's own threads that spinning took a
    core away: 8 live streams of tiny.en on two cores spent 26 % of the process's CPU in it,
    and features cost 9.6 ms a window instead of 4.0. One BLAS thread is enough for a
    80 x 201 matrix product. :data:`BLAS_THREADS_ENV` in the environment win.
    """
    if any(v in os.environ for v in BLAS_THREADS_ENV):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    logger.debug("numpy's BLAS limited to one thread")


def download_model(name: str, *, cache_dir: str | None, local_only: bool) -> str:
    """A faster-whisper model name or Hub repo id as a local directory (blocking)."""
    from faster_whisper.utils import download_model as fw_download

    return str(fw_download(name, local_files_only=local_only, cache_dir=cache_dir))


def load_vad() -> None:
    """Load Silero (process-wide and small) so that the first stream does not wait for it."""
    from faster_whisper.vad import get_vad_model

    get_vad_model()


VAD_FRAME = 512
"""Samples Silero judges at a time (32 ms at 16 kHz)."""
_VAD_CONTEXT = 64
_VAD_STATE = (2, 1, 1, 128)


class SpeechDetector:
    """Silero's speech probability for each 512-sample frame of one stream, read as the
    audio arrives.

    Silero is a recurrent model: each frame's probability depends on its LSTM state as well
    as on the 64 samples before the frame. Reading the same audio from a fresh state at
    another start gives other probabilities (by up to 0.2 on speech, and by up to 0.9 when
    every frame starts fresh), so a stream keeps its state here from frame to frame, and the
    probabilities of a stream read in pieces are those of the whole read at once.
    """

    def __init__(self) -> None:
        self.frames = 0
        """Frames judged so far."""
        self._state = np.zeros(_VAD_STATE, np.float32)
        self._context = np.zeros(_VAD_CONTEXT, np.float32)

    def __call__(self, audio: npt.NDArray[np.float32], *,
                 keep: bool = True) -> npt.NDArray[np.float32]:
        """The probabilities of ``audio``'s frames, the audio following what came before (a
        last frame that is not whole is padded with silence). With ``keep=False`` the
        stream's state stays as it was: the caller will read this audio again once more of
        it has arrived."""
        from faster_whisper.vad import get_vad_model

        if not len(audio):
            return np.zeros(0, np.float32)
        if len(audio) % VAD_FRAME:
            audio = np.pad(audio, (0, VAD_FRAME - len(audio) % VAD_FRAME))
        frames = audio.reshape(-1, VAD_FRAME)
        before = np.concatenate([self._context[None], frames[:-1, -_VAD_CONTEXT:]])
        out, h, c = get_vad_model().session.run(
            None, {"input": np.concatenate([before, frames], axis=1),
                   "h": self._state[0], "c": self._state[1]})
        if keep:
            self.frames += len(frames)
            self._state = np.stack([h, c])
            self._context = frames[-1, -_VAD_CONTEXT:].copy()
        return np.asarray(out, np.float32).reshape(-1)


def speech_regions(probs: npt.NDArray[np.float32], length: int, *, threshold: float,
                   min_silence_ms: int, speech_pad_ms: int,
                   min_speech_ms: int = 0) -> list[tuple[int, int]]:
    """Speech regions as (start, end) samples of audio ``length`` long whose frames had
    ``probs``: faster-whisper's ``get_speech_timestamps`` rule (speech from a frame at or over
    ``threshold`` until ``min_silence_ms`` under ``threshold - 0.15``, regions shorter than
    ``min_speech_ms`` dropped, each padded by ``speech_pad_ms`` and neighbours that close
    meeting halfway), applied to probabilities read beforehand."""
    rate = SAMPLE_RATE // 1000  # samples per ms
    min_silence, pad = min_silence_ms * rate, speech_pad_ms * rate
    min_speech = min_speech_ms * rate
    below = max(threshold - 0.15, 0.01)
    regions: list[list[int]] = []
    start: int | None = None
    quiet: int | None = None  # where the silence inside the current region began
    for i, prob in enumerate(probs):
        at = i * VAD_FRAME
        if prob >= threshold:
            quiet = None
            if start is None:
                start = at
                continue
        if start is not None and prob < below:
            quiet = at if quiet is None else quiet
            if at - quiet >= min_silence:
                if quiet - start > min_speech:
                    regions.append([start, quiet])
                start = quiet = None
    if start is not None and length - start > min_speech:
        regions.append([start, length])
    _pad(regions, pad, length)
    return [(s, e) for s, e in regions]


def _pad(regions: list[list[int]], pad: int, length: int) -> None:
    """Widen speech regions by ``pad`` samples each side; neighbours closer than two pads meet
    halfway between them."""
    for i, region in enumerate(regions):
        if i == 0:
            region[0] = max(0, region[0] - pad)
        if i + 1 < len(regions):
            following = regions[i + 1]
            gap = following[0] - region[1]
            if gap < 2 * pad:
                region[1] += gap // 2
                following[0] = max(0, following[0] - gap // 2)
            else:
                region[1] = min(length, region[1] + pad)
                following[0] = max(0, following[0] - pad)
        else:
            region[1] = min(length, region[1] + pad)


def speech_timestamps(audio: npt.NDArray[np.float32], *, threshold: float,
                      min_silence_ms: int, speech_pad_ms: int, min_speech_ms: int = 0,
                      max_speech_s: float = float("inf")) -> list[tuple[int, int]]:
    """Silero's speech regions in ``audio`` as (start, end) sample positions."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(threshold=threshold, min_speech_duration_ms=min_speech_ms,
                      max_speech_duration_s=max_speech_s,
                      min_silence_duration_ms=min_silence_ms, speech_pad_ms=speech_pad_ms)
    return [(int(s["start"]), int(s["end"])) for s in get_speech_timestamps(audio, opts)]


# -- one window's answer ---------------------------------------------------------------------

@dataclass
class WindowText:
    """What the model heard in one window (word times on the stream clock)."""

    window: SpeechWindow
    text: str
    words: list[Word]
    avg_logprob: float
    no_speech_prob: float
    model_seconds: float = 0.0
    """This window's share of its model call's time (the call's time over its windows)."""

    @property
    def is_silence(self) -> bool:
        """Whisper's own rule: a high no-speech probability and low confidence together."""
        return self.no_speech_prob > NO_SPEECH_THRESHOLD and self.avg_logprob < LOGPROB_THRESHOLD


class Runner(Protocol):
    """What the stages need of a model: :class:`WhisperRunner` in this process, or a runner
    on worker processes or Ray actors (``voicesub_stream.executors``). Methods block: call
    them from a worker thread."""

    options: TranscribeOptions
    language: str | None
    language_probability: float | None
    batch_key: Hashable | None
    """Runners with equal keys can answer windows of several streams in one model call
    (:meth:`transcribe_together`); ``None``: this runner never shares a call."""

    def transcribe_together(self, items: Sequence[tuple[Any, SpeechWindow, str | None]], *,
                            prompt_limit: int | None = None) -> list[WindowText]:
        """One call for windows of several runners with this one's :attr:`batch_key`: each
        item is (runner, window, prompt)."""

    def transcribe(self, windows: list[SpeechWindow], *,
                   prompts: Sequence[str | None] | None = None,
                   prompt_limit: int | None = None) -> list[WindowText]: ...

    def translate(self, results: list[WindowText]) -> list[str]: ...


class SharedCallRunner:
    """A runner whose own windows are one :meth:`transcribe_together` call of its own."""

    def transcribe(self, windows: list[SpeechWindow], *,
                   prompts: Sequence[str | None] | None = None,
                   prompt_limit: int | None = None) -> list[WindowText]:
        """Transcribe ``windows`` as one batch.

        ``prompts`` (one per window) override the options' initial prompt; with
        ``prompt_limit`` only a prompt's last ``prompt_limit`` tokens are used, so that the
        prompts of streams past their first sentences have one length and share a batch. A
        shorter prompt is cut to a power of two tokens (none under four); windows with
        prompts of other lengths go to the model in their own group.

        :raises TranscriptionError: the model failed
        """
        return self.transcribe_together(
            [(self, window, prompt)
             for window, prompt in zip(windows, prompts or [None] * len(windows), strict=True)],
            prompt_limit=prompt_limit)

    def transcribe_together(self, items: Sequence[tuple[Any, SpeechWindow, str | None]], *,
                            prompt_limit: int | None = None) -> list[WindowText]:
        raise NotImplementedError


class WhisperRunner(SharedCallRunner):
    """One stream's model calls: its options and the language found for it.

    Runners of different streams that share a model and decoding options (equal
    :attr:`batch_key`) can answer their windows in one model call: :class:`WhisperBatch`.
    """

    def __init__(self, model: LoadedModel, options: TranscribeOptions, *,
                 background: bool = False) -> None:
        self.model = model
        self.options = options
        self.background = background
        """Whether its calls run on the model's background copy (:meth:`LoadedModel.replica`):
        batch work, on a CPU that gives it the lowest priority."""
        self.language: str | None = options.language
        self.language_probability: float | None = 1.0 if options.language else None
        if not model.is_multilingual:
            if self.language not in (None, "en"):
                logger.warning("model %s is English-only; ignoring language=%r",
                               model.key.name, self.language)
            self.language, self.language_probability = "en", 1.0
        o = options
        self.batch_key: Hashable | None = (id(model), background, o.task, o.beam_size,
                                           o.word_timestamps, o.initial_prompt)

    def transcribe_together(self, items: Sequence[tuple[Any, SpeechWindow, str | None]], *,
                            prompt_limit: int | None = None) -> list[WindowText]:
        """Windows of this and other runners with this :attr:`batch_key`, as one
        :class:`WhisperBatch`: each item is (runner, window, prompt).

        :raises TranscriptionError: the model failed
        """
        batch = WhisperBatch(self.model, self.options, prompt_limit=prompt_limit,
                             background=self.background)
        for runner, window, prompt in items:
            batch.add(runner, window, prompt)
        return batch.run()

    def translate(self, results: list[WindowText]) -> list[str]:
        """English for each of ``results``: its own text when the stream is English, else its
        window decoded again with Whisper's translate task (from the audio, in the language
        already found for this stream).

        :raises TranscriptionError: the model failed
        """
        if self.language == "en":
            return [r.text for r in results]
        english = WhisperRunner(self.model, self.options.with_changes(
            task="translate", word_timestamps=False), background=self.background)
        english.language = self.language
        return [r.text for r in english.transcribe([r.window for r in results])]

    def detect_language(self, features: Any) -> None:
        """Find this stream's language from a window's mel features (the first one)."""
        whisper = self.model.replica(background=self.background)
        lang, prob, _ = whisper.detect_language(features=features)
        self.language, self.language_probability = lang, float(prob)
        logger.info("detected language %s (p=%.2f)", lang, prob)


@dataclass(eq=False)
class _Item:
    runner: WhisperRunner
    window: SpeechWindow
    prompt: str | None
    features: Any = None
    tokens: tuple[int, ...] = ()
    output: list[dict[str, Any]] | None = None


class WhisperBatch:
    """Windows of one or more streams, answered by one model in as few calls as possible.

    The runners must share a :attr:`~WhisperRunner.batch_key` (same model, same decoding
    options). Windows go to the model in groups that share a language, an encoder length and
    a prompt length (CTranslate2 batches prompts of one length only). All of these are chosen
    per window, never from its company, which is what keeps a window's text the same whether
    it was batched with others or not.
    """

    def __init__(self, model: LoadedModel, options: TranscribeOptions, *,
                 prompt_limit: int | None = None, background: bool = False) -> None:
        self.model = model
        self.whisper = model.replica(background=background)
        self.options = options
        self.prompt_limit = prompt_limit
        self._items: list[_Item] = []

    def add(self, runner: WhisperRunner, window: SpeechWindow, prompt: str | None) -> None:
        self._items.append(_Item(runner, window, prompt))

    def run(self) -> list[WindowText]:
        """Every added window's answer, in the order added (blocking).

        :raises TranscriptionError: the model failed
        """
        if not self._items:
            return []
        started = time.perf_counter()
        try:
            with timer("model.call"):
                self._decode_all()
        except Exception as exc:
            raise TranscriptionError(f"model {self.model.key.name!r} failed: {exc}") from exc
        share = (time.perf_counter() - started) / len(self._items)
        return [self._collect(item, share) for item in self._items]

    def _decode_all(self) -> None:
        whisper = self.whisper
        tokenizers: dict[str | None, Any] = {}
        groups: dict[tuple[str | None, int, int], list[_Item]] = {}
        for item in self._items:
            item.features = whisper.feature_extractor(item.window.audio)[..., :-1]
            if item.runner.language is None:
                item.runner.detect_language(item.features)
            language = item.runner.language
            if language not in tokenizers:
                tokenizers[language] = self._tokenizer(language)
            item.tokens = self._prompt_tokens(tokenizers[language], item.prompt)
            frames = (encoder_frames(item.features.shape[-1])
                      if language == "en" or self.options.live is not None else FULL_FRAMES)
            groups.setdefault((language, frames, len(item.tokens)), []).append(item)
        for (language, frames, _), items in groups.items():
            self._forward(tokenizers[language], items, frames, language)
            if frames < FULL_FRAMES:
                # A shortened encoder input occasionally sends the decoder into a loop;
                # redo those windows the way Whisper was trained, padded to 30 s.
                redo = [i for i in items if looks_looped(i.output or [], i.window.duration)]
                if redo:
                    logger.debug("re-decoding %d window(s) at 30 s", len(redo))
                    self._forward(tokenizers[language], redo, FULL_FRAMES, language)

    def _tokenizer(self, language: str | None) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        whisper = self.whisper
        return Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual,
                         task=self.options.task, language=language)

    def _prompt_tokens(self, tokenizer: Any, prompt: str | None) -> tuple[int, ...]:
        text = prompt or self.options.initial_prompt
        limit = self.prompt_limit
        if not text or limit == 0:
            return ()
        tokens = tokenizer.encode(" " + text.strip())
        if limit is None:
            return tuple(tokens[-(self.whisper.max_length // 2 - 1):])
        # Shorter prompts are cut to a power of two from four up, so young streams fall into
        # few groups; under four tokens, none.
        if len(tokens) >= limit:
            return tuple(tokens[-limit:])
        size = 1 << (len(tokens).bit_length() - 1)
        return tuple(tokens[-size:]) if size >= 4 else ()

    def _forward(self, tokenizer: Any, items: list[_Item], frames: int,
                 language: str | None) -> None:
        """Decode ``items`` at encoder size ``frames``. A shortened input writes at most its
        :func:`token_budget`: past that it counts as looped and is decoded again at 30 s,
        where the budget is twice that (for languages whose words take many tokens)."""
        from faster_whisper.audio import pad_or_trim

        batch = np.stack([pad_or_trim(i.features, frames) for i in items])
        metadata = [{"offset": 0.0, "duration": i.window.duration, "segments": []}
                    for i in items]
        # A fresh pipeline object per call: it keeps per-call state (last_speech_timestamp).
        pipeline = _prompted_pipeline()(self.whisper, [i.tokens for i in items],
                                        (2 if frames == FULL_FRAMES else 1)
                                        * max(token_budget(i.window.duration) for i in items))
        outputs = pipeline.forward(batch, tokenizer, metadata, self._fw_options(language))
        for item, output in zip(items, outputs, strict=True):
            item.output = output

    def _collect(self, item: _Item, model_seconds: float) -> WindowText:
        window, parts = item.window, item.output or []
        words = [Word(window.stream_time(w["start"]), window.stream_time(w["end"], is_end=True),
                      w["word"], float(w["probability"]))
                 for part in parts for w in part.get("words") or ()]
        text = "".join(p["text"] for p in parts).strip()
        avg_logprob = float(parts[0]["avg_logprob"]) if parts else 0.0
        no_speech = float(parts[0]["no_speech_prob"]) if parts else 1.0
        return WindowText(window, text, words, avg_logprob, no_speech, model_seconds)

    def _fw_options(self, language: str | None) -> Any:
        from faster_whisper.transcribe import TranscriptionOptions

        o = self.options
        return TranscriptionOptions(
            beam_size=o.beam_for(language), best_of=5, patience=1.0, length_penalty=1.0,
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


def encoder_frames(frames: int) -> int:
    """The encoder input size for a window of ``frames`` mel frames: one of a few fixed sizes,
    chosen from the window alone, so a window's text never depends on which other windows
    shared its batch (never past Whisper's 30 s input: a 30 s window is encoded at exactly
    that)."""
    for size in (MIN_FRAMES, SHORT_FRAMES):
        if frames + ENCODER_MARGIN <= size:
            return size
    return FULL_FRAMES


def fitting_window(seconds: float) -> float:
    """The longest window encoded at the same input size as one of ``seconds``: a window may
    grow to this at no cost in encoder time."""
    return (encoder_frames(math.ceil(seconds * 100)) - ENCODER_MARGIN) / 100


LIVE_UPDATE_TOKENS = 24
"""Tokens one calibration update writes: a live update at the economical pace reads about
9 s of speech (5 s of context and the audio since the last final), some 24 tokens of
English."""


def live_update_seconds(model: LoadedModel, *, calls: int) -> float:
    """Wall seconds of one live update on ``model``'s own threads while ``calls`` run at once:
    what a cold engine knows of the machine's speed before any live update has run.

    The update is timed whole, as the live stage makes it: one encoder pass over the 10 s
    input, a beam-2 decoder with a 64-token prompt that writes :data:`LIVE_UPDATE_TOKENS`
    tokens (the end token suppressed, so silence costs what speech does), and the word
    alignment. The encoder alone is no measure of it: the decoder is a long run of small
    steps, whose cost differs between machines far more than the encoder's (an update
    cost 3.2 encoder passes on one two-core machine and 4.6 on another). The calls run side
    by side, as under load, where they slow each other down. The quickest of four rounds
    after one that warms the caches counts: a round slowed by anything else the machine
    does (a file decoding beside it, a cold page cache) would size the engine for fewer
    streams than it serves (on one cold start the quicker of two rounds still came out
    30 % above the other starts' figure, and 12 streams offered got 4 places, not 6-7).
    """
    from concurrent.futures import ThreadPoolExecutor

    from faster_whisper.tokenizer import Tokenizer

    whisper = model.whisper
    tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual,
                          task="transcribe", language="en")
    features = np.zeros((1, whisper.model.n_mels, MIN_FRAMES), np.float32)
    prompt = [tokenizer.sot_prev, *tokenizer.encode(" the") * 64, *tokenizer.sot_sequence,
              tokenizer.no_timestamps]

    def update() -> float:
        started = time.perf_counter()
        encoded = whisper.encode(features)
        result = whisper.model.generate(
            encoded, [prompt], beam_size=2, max_length=len(prompt) + LIVE_UPDATE_TOKENS,
            suppress_tokens=[-1, tokenizer.eot], return_scores=True,
            return_no_speech_prob=True)
        whisper.model.align(encoded, tokenizer.sot_sequence, [result[0].sequences_ids[0]],
                            MIN_FRAMES // 2)
        return time.perf_counter() - started

    calls = max(calls, 1)
    with ThreadPoolExecutor(calls, thread_name_prefix="voicesub calibration") as pool:
        rounds = [sum(pool.map(lambda _: update(), range(calls))) / calls for _ in range(5)]
    return min(rounds[1:])


def token_budget(duration: float) -> int:
    """The most tokens Whisper may write for ``duration`` seconds of audio: more than any
    speech holds (about three a second), and one past what counts as a loop, so a loop is
    cut there and recognised (:func:`looks_looped`). Without the cap a loop runs to the
    448-token limit: 5.2 s instead of 0.5 s for a batch of two 9 s windows on one core."""
    return math.floor(10 + 8 * duration) + 1


def looks_looped(parts: list[dict[str, Any]], duration: float) -> bool:
    """Repetition loops show as too many tokens for the audio or highly compressible text."""
    from faster_whisper.transcribe import get_compression_ratio

    tokens = sum(len(p["tokens"]) for p in parts)
    text = "".join(p["text"] for p in parts)
    return tokens > 10 + 8 * duration or (len(text) > 40 and get_compression_ratio(text) > 2.4)


@functools.cache
def _prompted_pipeline() -> type[Any]:
    """The pipeline class, built on first use: faster-whisper is imported lazily."""
    from faster_whisper.transcribe import BatchedInferencePipeline

    # faster-whisper ships no type information: its classes are Any to mypy.
    class PromptedPipeline(BatchedInferencePipeline):  # type: ignore[misc]
        """faster-whisper's batched forward pass, with each window's own prompt tokens."""

        def __init__(self, model: Any, prompts: list[tuple[int, ...]],
                     max_new_tokens: int) -> None:
            super().__init__(model)
            self.prompts = prompts
            self.max_new_tokens = max_new_tokens

        def generate_segment_batched(self, features: Any, tokenizer: Any,
                                     options: Any) -> tuple[Any, list[dict[str, Any]]]:
            whisper = self.model
            prompts = [whisper.get_prompt(tokenizer, previous_tokens=list(p),
                                          without_timestamps=True) for p in self.prompts]
            encoder_output = self._encode(features)
            results = whisper.model.generate(
                encoder_output, prompts, beam_size=options.beam_size,
                patience=options.patience, length_penalty=options.length_penalty,
                max_length=min(whisper.max_length,
                               max(map(len, prompts)) + self.max_new_tokens),
                suppress_blank=options.suppress_blank,
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

        def _encode(self, features: Any) -> Any:
            """The encoder's output for a batch of windows. On CPU each window is encoded
            on its own and the outputs joined: CTranslate2's encoder gains nothing from a
            batch there and loses to it as the batch outgrows the caches. One thread, tiny.en
            int8, 10 s inputs: 48 ms a window alone, 62 ms a window in a call of two and
            80-88 ms in calls of four or eight, with the same output to the bit. The decoder
            still gets the whole batch at once."""
            whisper = self.model
            if len(features) <= ENCODER_BATCH or whisper.model.device != "cpu":
                return whisper.encode(features)
            import ctranslate2

            parts = [np.asarray(whisper.encode(features[i : i + ENCODER_BATCH]))
                     for i in range(0, len(features), ENCODER_BATCH)]
            # A StorageView made from an array borrows its memory: keep the array for the
            # pipeline's word alignment, which reads the encoder output after generate.
            self._encoded = np.concatenate(parts)
            return ctranslate2.StorageView.from_array(self._encoded)

    return PromptedPipeline
