"""Configuration: engine settings from the environment, per-stream options as frozen objects.

:class:`Settings` is the edge: it reads the environment once. Each subsystem takes only its
own small frozen config (:class:`ModelConfig`, :class:`CacheConfig`,
:class:`TranslationConfig`, :class:`SchedulerConfig`), filled from the settings here and
nowhere else. Stream options (:class:`TranscribeOptions`) are plain data: they can be
compared, hashed, pickled into a worker process and used in cache keys.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict, get_args

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

Task = Literal["transcribe", "translate"]
BackpressurePolicy = Literal["auto", "adaptive", "block", "drop-oldest", "skip-partials"]
Priority = Literal["live", "interactive", "batch"]
Executor = Literal["threads", "processes", "ray"]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voicesub_stream"


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _env(name: str) -> AliasChoices:
    """``VOICESUB_NAME``, the older bare ``NAME``, or the field name as a keyword."""
    return AliasChoices(f"VOICESUB_{name.upper()}", name.upper(), name)


class Settings(BaseSettings):
    """Engine-wide settings, read from ``VOICESUB_*`` environment variables.

    Bad values raise :class:`~voicesub_stream.errors.ConfigError` when the settings are built
    (use :meth:`load`), not halfway through a stream.
    """

    model_config = SettingsConfigDict(env_prefix="VOICESUB_", frozen=True, extra="forbid")

    model: str = "base"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    cpu_threads: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    """CTranslate2 threads per model call (0: every usable core; ``auto``: see
    ``models.execution_plan``)."""
    model_workers: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """Model calls one loaded model runs at once (``auto``: see ``models.execution_plan``)."""
    max_loaded_models: int = Field(default=3, ge=1)
    max_workers: int | Literal["auto"] = Field(
        default="auto",
        validation_alias=AliasChoices("VOICESUB_MAX_WORKERS", "MAX_WORKERS", "max_workers"))
    scheduler_max_wait: float = Field(default=10.0, gt=0)
    stream_batching: bool | Literal["auto"] = "auto"
    """Live windows of concurrent streams on one model share model calls (``auto``: on a
    GPU and on Ray actors, where a shared call costs less than its windows one by one; not
    on a CPU, where it saves little and keeps each answer waiting for the whole call)."""
    batch_window: float = Field(default=0.02, ge=0.0, le=1.0)
    """Seconds a live window waits for other streams' windows (only while others are live)."""
    stream_batch_size: int = Field(default=8, ge=1)
    executor: Executor = "threads"
    """Where model calls run: this process's threads, worker processes (a model crash
    isolated from the server), or the actors of a Ray cluster (more than one machine)."""
    use_process_pool: bool = Field(
        default=False,
        validation_alias=AliasChoices("VOICESUB_USE_PROCESS_POOL", "USE_PROCESS_POOL",
                                      "use_process_pool"))
    """The older spelling of ``executor="processes"``."""
    ray_address: str = "auto"
    """With ``executor="ray"``: the cluster to join (``ray://host:10001``, ``host:6379``);
    ``auto`` joins the one running here (``RAY_ADDRESS``, or ``ray start``'s) or starts a
    local one."""
    cache_dir: Path = Field(default_factory=default_cache_dir,
                            validation_alias=AliasChoices("VOICESUB_CACHE_DIR", "CACHE_DIR",
                                                          "cache_dir"))
    offline: bool = False
    cache_type: Literal["memory", "file", "redis", "tiered", "aiocache", "none"] = Field(
        default="memory",
        validation_alias=AliasChoices("VOICESUB_CACHE_TYPE", "CACHE_TYPE", "cache_type"))
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("VOICESUB_REDIS_URL", "REDIS_URL",
                                                    "redis_url"))
    cache_url: str | None = Field(
        default=None, validation_alias=_env("cache_url"),
        description="With cache_type 'aiocache': the aiocache URL, e.g. memcached://host:11211")
    cache_ttl: float | None = Field(
        default=7 * 24 * 3600.0, gt=0,
        validation_alias=AliasChoices("VOICESUB_CACHE_TTL", "CACHE_TTL", "cache_ttl"))
    cache_max_size: int = Field(
        default=10_000, ge=1,
        validation_alias=AliasChoices("VOICESUB_CACHE_MAX_SIZE", "CACHE_MAX_SIZE",
                                      "cache_max_size"))
    # Observability (voicesub_stream.monitoring); the older bare names work without the prefix.
    enable_performance_monitoring: bool = Field(
        default=True, validation_alias=_env("enable_performance_monitoring"))
    save_performance_metrics: bool = Field(
        default=False, validation_alias=_env("save_performance_metrics"))
    metrics_path: Path = Field(default=Path("voicesub-metrics.jsonl"),
                               validation_alias=_env("metrics_path"))
    metrics_interval: float = Field(default=1.0, ge=0.05, le=3600,
                                    validation_alias=_env("metrics_interval"))
    memory_threshold: float = Field(default=85.0, gt=0, le=100,
                                    validation_alias=_env("memory_threshold"))
    malloc_arenas: int | None = Field(default=2, ge=1, validation_alias=_env("malloc_arenas"))
    """glibc malloc arenas for the process (None: leave the C library alone)."""
    malloc_trim_interval: float | None = Field(default=60.0, gt=0,
                                               validation_alias=_env("malloc_trim_interval"))
    """Seconds between the monitor's returns of freed C heap pages (None: never)."""
    enable_memory_profiling: bool = Field(
        default=False, validation_alias=_env("enable_memory_profiling"))
    adaptive_monitoring: bool = Field(default=False,
                                      validation_alias=_env("adaptive_monitoring"))
    # Translation servers (voicesub_stream.translation); unset means not offered.
    libretranslate_url: str | None = Field(default=None,
                                           validation_alias=_env("libretranslate_url"))
    libretranslate_api_key: str | None = Field(default=None,
                                               validation_alias=_env("libretranslate_api_key"))
    openai_translate_url: str | None = Field(default=None,
                                             validation_alias=_env("openai_translate_url"))
    openai_translate_model: str = Field(default="gpt-4o-mini",
                                        validation_alias=_env("openai_translate_model"))
    openai_api_key: str | None = Field(default=None, validation_alias=_env("openai_api_key"))
    translate_timeout: float = Field(default=10.0, gt=0,
                                     validation_alias=_env("translate_timeout"))
    ct2_translation_dir: Path | None = Field(default=None,
                                             validation_alias=_env("ct2_translation_dir"))
    """A converted CTranslate2 translation model (offered as backend ``ctranslate2``)."""
    ct2_translation_family: Literal["marian", "nllb", "m2m100"] = Field(
        default="marian", validation_alias=_env("ct2_translation_family"))
    ct2_translation_pair: str | None = Field(default=None,
                                             validation_alias=_env("ct2_translation_pair"))
    """A Marian model's pair, ``en-de``."""

    @field_validator("compute_type")
    @classmethod
    def _known_compute_type(cls, value: str) -> str:
        known = {
            "auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
            "int16", "float16", "bfloat16", "float32",
        }
        if value not in known:
            raise ValueError(f"compute_type must be one of {sorted(known)}")
        return value

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build settings from the environment plus ``overrides``, with a typed error on bad input.

        :raises ConfigError: a value is missing its expected type or range
        """
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(str(exc)) from exc


    def models(self) -> ModelConfig:
        return ModelConfig(model=self.model, device=self.device, compute_type=self.compute_type,
                           cpu_threads=self.cpu_threads, model_workers=self.model_workers,
                           max_loaded_models=self.max_loaded_models, cache_dir=self.cache_dir,
                           offline=self.offline)

    def cache(self) -> CacheConfig:
        return CacheConfig(kind=self.cache_type, directory=self.cache_dir / "cache",
                           redis_url=self.redis_url, url=self.cache_url, ttl=self.cache_ttl,
                           max_size=self.cache_max_size)

    def translation(self) -> TranslationConfig:
        pair = None
        if self.ct2_translation_pair:
            source, sep, target = self.ct2_translation_pair.partition("-")
            if not sep or not source or not target:
                raise ConfigError("VOICESUB_CT2_TRANSLATION_PAIR looks like 'en-de', got "
                                  f"{self.ct2_translation_pair!r}")
            pair = (source, target)
        return TranslationConfig(
            timeout=self.translate_timeout, libretranslate_url=self.libretranslate_url,
            libretranslate_api_key=self.libretranslate_api_key,
            openai_url=self.openai_translate_url, openai_model=self.openai_translate_model,
            openai_api_key=self.openai_api_key, ct2_dir=self.ct2_translation_dir,
            ct2_family=self.ct2_translation_family, ct2_pair=pair,
            ct2_device="cuda" if self.device == "cuda" else "cpu")

    def scheduling(self) -> SchedulerConfig:
        executor = self.executor
        if self.use_process_pool and executor == "threads":
            executor = "processes"
        return SchedulerConfig(max_workers=self.max_workers, max_wait=self.scheduler_max_wait,
                               executor=executor,
                               ray_address=None if self.ray_address == "auto"
                               else self.ray_address,
                               stream_batching=self.stream_batching,
                               batch_window=self.batch_window,
                               stream_batch_size=self.stream_batch_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """What the model registry and the worker processes need to find and load models."""

    model: str = "base"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    cpu_threads: int | Literal["auto"] = "auto"
    model_workers: int | Literal["auto"] = "auto"
    max_loaded_models: int = 3
    cache_dir: Path = field(default_factory=default_cache_dir)
    offline: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """Which result cache an engine keeps (``kind="none"``: none)."""

    kind: Literal["memory", "file", "redis", "tiered", "aiocache", "none"] = "memory"
    directory: Path = field(default_factory=lambda: default_cache_dir() / "cache")
    redis_url: str | None = None
    url: str | None = None
    """The aiocache URL for ``kind="aiocache"``."""
    ttl: float | None = 7 * 24 * 3600.0
    max_size: int = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TranslationConfig:
    """Which translation servers and models an engine offers, beside the built-in ones."""

    timeout: float = 10.0
    libretranslate_url: str | None = None
    libretranslate_api_key: str | None = None
    openai_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_api_key: str | None = None
    ct2_dir: Path | None = None
    ct2_family: Literal["marian", "nllb", "m2m100"] = "marian"
    ct2_pair: tuple[str, str] | None = None
    ct2_device: str = "cpu"


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerConfig:
    """How model work is admitted and where it runs: concurrency, aging, the executor,
    cross-stream batching."""

    max_workers: int | Literal["auto"] = "auto"
    max_wait: float = 10.0
    executor: Executor = "threads"
    ray_address: str | None = None
    """The Ray cluster to join; ``None``: the one running here, else a new local one."""
    stream_batching: bool | Literal["auto"] = "auto"
    batch_window: float = 0.02
    stream_batch_size: int = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class VadOptions:
    """How speech is found and cut into model windows.

    Defaults follow faster-whisper's batched pipeline (160 ms silence splits) so windows end at
    natural pauses, packed up to Whisper's whole 30 s input: on base, 30 s windows gave 6.4 %
    over the shared English clips against 7.3 % for 20 s windows, in less time (fewer, fuller
    calls), and 15.2 % against 15.6 % over the other languages; on tiny.en the two are within
    four words of each other.
    """

    enabled: bool = True
    threshold: float = 0.5
    min_silence_ms: int = 160
    speech_pad_ms: int = 400
    min_speech_ms: int = 0
    max_window: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveOptions:
    """How live mode trades latency for stability.

    Every ``step`` seconds of new audio the growing buffer is transcribed again; words two
    consecutive hypotheses agree on are committed (LocalAgreement-2) and never change. An
    utterance is finalised at ``finalize_silence`` of trailing silence, at a committed
    sentence end, or when more than ``max_buffer`` seconds wait unfinalised. Up to ``context``
    seconds of already-final audio stay in the buffer so the model hears what came before.
    Words ending in the newest ``holdback`` seconds are never committed (a word cut by the
    buffer's edge is easily misheard twice the same way; a stream's first words, heard with
    nothing before them, wait for 1.5 s of audio after them), and committed words are finalised
    once they span ``max_final`` seconds even without a sentence end, so they never wait
    long. Defaults measured with ``voicesub bench live`` (docs/live-mode.md).

    ``policy`` says what happens when the model cannot keep up:

    - ``adaptive``: the stream's pace follows the load. Each update transcribes everything
      received; when answers come back slowly the stream moves to longer steps
      and a shorter buffer, and at the top to finals only, and it returns to these options
      when the load eases. Latency stays bounded and no audio is dropped.
    - ``block``: every step in order, at these options; the output depends on the audio
      alone, latency grows without bound if the model falls behind.
    - ``drop-oldest``: unprocessed audio older than ``max_lag`` is discarded (counted).
    - ``skip-partials``: a backlog over ``max_lag`` is merged into one update, no partial.
    - ``auto`` (the default): ``adaptive`` for sources that arrive in real time (async
      iterators: sockets, microphones, :func:`~voicesub_stream.sources.paced`), ``block``
      for files, bytes and arrays, which are read as fast as they decode.

    A live stream is admitted only while the engine has room for it (docs/server.md, Serving
    under load); otherwise :class:`~voicesub_stream.errors.OverloadedError` is raised at its start.
    With ``accept_degraded`` a stream that no longer fits at full service is admitted at
    finals only and a longer step instead, when that fits.

    The model is prompted with the last ``prompt_tokens`` tokens of final text whose audio
    is not in the window (0: never). Without a prompt Whisper tends to skip a window's opening
    words up to the next sentence start; one prompt length for every stream past its first
    sentences lets windows of concurrent streams share a model call.
    """

    step: float = 0.5
    max_buffer: float = 12.0
    context: float = 5.0
    holdback: float = 0.4
    max_final: float = 3.0
    finalize_silence: float = 0.5
    partials: bool = True
    policy: BackpressurePolicy = "auto"
    max_lag: float = 3.0
    prompt_tokens: int = 64
    accept_degraded: bool = False

    def __post_init__(self) -> None:
        if not 0.05 <= self.step <= 5.0:
            raise ConfigError(f"live step must be between 0.05 and 5 s, got {self.step}")
        if not 2.0 <= self.max_buffer <= 28.0:
            raise ConfigError(f"max_buffer must be between 2 and 28 s, got {self.max_buffer}")
        if self.policy not in get_args(BackpressurePolicy):
            raise ConfigError(f"unknown backpressure policy {self.policy!r}; use one of "
                              f"{', '.join(get_args(BackpressurePolicy))}")
        if self.max_lag < self.step:
            raise ConfigError("max_lag must be at least one step")
        if self.prompt_tokens < 0:
            raise ConfigError(f"prompt_tokens must be >= 0 (0: no prompt), got "
                              f"{self.prompt_tokens}")

    def resolved_policy(self, *, realtime: bool) -> BackpressurePolicy:
        """The policy a source gets: ``auto`` means adaptive for real-time sources."""
        if self.policy != "auto":
            return self.policy
        return "adaptive" if realtime else "block"


class OptionChanges(TypedDict, total=False):
    """The :class:`TranscribeOptions` fields as keyword arguments (``transcribe_stream(path,
    model="tiny.en", language="en")``), spelled out so editors and type checkers know them;
    ``live=True`` stands for ``LiveOptions()``."""

    model: str | None
    language: str | None
    task: Task
    beam_size: int | None
    batch_size: int
    word_timestamps: bool
    initial_prompt: str | None
    vad: VadOptions
    priority: Priority | int | None
    live: LiveOptions | bool | None
    max_cue_chars: int
    max_cue_duration: float
    translate_to: str | None
    translator: str
    translate_partials: bool


WHISPER_LANGUAGES = frozenset((
    'af', 'am', 'ar', 'as', 'az', 'ba', 'be', 'bg', 'bn', 'bo', 'br', 'bs', 'ca', 'cs', 'cy',
    'da', 'de', 'el', 'en', 'es', 'et', 'eu', 'fa', 'fi', 'fo', 'fr', 'gl', 'gu', 'ha', 'haw',
    'he', 'hi', 'hr', 'ht', 'hu', 'hy', 'id', 'is', 'it', 'ja', 'jw', 'ka', 'kk', 'km', 'kn',
    'ko', 'la', 'lb', 'ln', 'lo', 'lt', 'lv', 'mg', 'mi', 'mk', 'ml', 'mn', 'mr', 'ms', 'mt',
    'my', 'ne', 'nl', 'nn', 'no', 'oc', 'pa', 'pl', 'ps', 'pt', 'ro', 'ru', 'sa', 'sd', 'si',
    'sk', 'sl', 'sn', 'so', 'sq', 'sr', 'su', 'sv', 'sw', 'ta', 'te', 'tg', 'th', 'tk', 'tl',
    'tr', 'tt', 'uk', 'ur', 'uz', 'vi', 'yi', 'yo', 'yue', 'zh',
))
"""The language codes Whisper reads (a test holds this to faster-whisper's own list)."""


def language_code(value: object, field: str = "language") -> str | None:
    """``value`` as one of Whisper's language codes (``None``: detect it), case and spaces
    aside.

    :raises ConfigError: anything else, naming ``field``
    """
    if value is None:
        return None
    code = value.strip().lower() if isinstance(value, str) else None
    if code not in WHISPER_LANGUAGES:
        raise ConfigError(f"{field} must be one of Whisper's language codes such as 'en' or "
                          f"'de' (or absent, to detect it), got {value!r}")
    return code


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscribeOptions:
    """What to do with one stream. Everything that changes the output lives here."""

    model: str | None = None
    language: str | None = None
    task: Task = "transcribe"
    beam_size: int | None = None
    """Beam width; ``None``: the engine's choice (:meth:`beam_for`)."""
    batch_size: int = 8
    word_timestamps: bool = True
    initial_prompt: str | None = None
    vad: VadOptions = VadOptions()
    priority: Priority | int | None = None
    """Scheduler priority; ``None`` means ``live`` for live streams, ``batch`` otherwise."""
    live: LiveOptions | None = None
    max_cue_chars: int = 84
    max_cue_duration: float = 7.0
    translate_to: str | None = None
    """Language code to translate finals into (``Segment.translation``); ``None``: no stage."""
    translator: str = "auto"
    """Translation backend by name: ``auto`` picks one that has the pair; ``whisper`` is
    Whisper's own translate task (into English, from the audio); custom translators are
    registered on the engine (``Engine(translators={"mine": MyTranslator()})``)."""
    translate_partials: bool = False
    """Also translate live partials, at most one a second."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", language_code(self.language))
        if self.beam_size is not None and self.beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.task not in ("transcribe", "translate"):
            raise ConfigError(f"task must be 'transcribe' or 'translate', got {self.task!r}")
        if not 1.0 <= self.vad.max_window <= 30.0:
            raise ConfigError("vad.max_window must be between 1 and 30 seconds")
        if self.priority is not None and not isinstance(self.priority, int) and (
            self.priority not in ("live", "interactive", "batch")
        ):
            raise ConfigError(f"priority must be live, interactive, batch or a number, "
                              f"got {self.priority!r}")
        if self.translate_to is not None and not self.translate_to.strip():
            raise ConfigError("translate_to must be a language code such as 'pt' or 'de'")
        if not isinstance(self.translator, str) or not self.translator:
            raise ConfigError("translator must be a backend name; register translator objects "
                              "on the engine: Engine(translators={'name': translator})")

    def beam_for(self, language: str | None) -> int:
        """The beam width for windows in ``language``: ``beam_size`` when set. Otherwise 2 for
        live updates and English, where a wider beam changes nothing (the shared English clips
        gave 7.3 % with beam 2 and with beam 5 on base, 6.4 % and 6.3 % on tiny.en) but costs
        time; 5 elsewhere, where it is worth 1.5 points (17.1 % to 15.6 % pooled over the
        shared German, Spanish, French, Portuguese, Vietnamese and Chinese clips, base, for
        12 % more time)."""
        if self.beam_size is not None:
            return self.beam_size
        return 2 if self.live is not None or language == "en" else 5

    def with_changes(self, **changes: Any) -> TranscribeOptions:
        """A copy with ``changes`` applied.

        :raises ConfigError: a name that is not an option (naming the closest one), or an
            invalid value
        """
        names = [f.name for f in fields(self)]
        for name in changes:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else \
                    f"; the options are {', '.join(names)}"
                raise ConfigError(f"unknown option {name!r}{hint}")
        return replace(self, **changes)
