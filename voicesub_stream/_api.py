"""The public entry points: :class:`Engine` owns the tasks, :class:`SegmentStream` is one stream.

Pipelines of one stream (channel sizes are the most items a stage may run ahead)::

    file:  source ──AudioChunk(1 s)[8]──▶ VAD chunker ──SpeechWindow(≤20 s)[batch_size]──▶
               transcriber ──Segment[32]──▶ consumer
    live:  source ──AudioChunk[8; 4096 unless policy "block"]──▶ live transcriber
               ──Segment[32]──▶ consumer

Every model call goes through the engine's :class:`~voicesub_stream.scheduler.Scheduler`; a
file stream whose audio and options were transcribed before is answered from the cache.

All stage tasks run in the task group of the stream's owner, never in the consumer's task, so
the consumer may stop iterating at any point: closing the stream cancels its stages, and errors
travel down the output channel to surface at the consumer's ``__anext__``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import threading
import weakref
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread
from anyio import create_memory_object_stream

from ._config import LiveOptions, Settings, TranscribeOptions
from ._types import AudioChunk, Segment
from ._version import __version__
from .cache import Cache, make_cache
from .errors import StreamClosedError, VoicesubError
from .executors import ProcessPool, ProcessRunner
from .models import LoadedModel, ModelKey, ModelRegistry, cuda_device_count
from .models._registry import pick_device
from .monitoring import MemoryManager, Monitor, build_report, default_rules, limit_malloc_arenas
from .scheduler import Scheduler, auto_workers
from .sources import AudioInput, AudioSource, open_source
from .stages._batcher import StreamBatcher
from .stages._live import LiveTranscriber
from .stages._transcriber import Runner, Transcriber, WhisperRunner
from .stages._translate import TranslationStage
from .stages._vad import SpeechWindow, VadChunker
from .translation import Translators, configured

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import TracebackType
    from typing import Self

    from anyio.abc import ObjectSendStream, TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

logger = logging.getLogger(__name__)

AUDIO_BUFFER = 8
"""Decoded 1 s chunks allowed ahead of the VAD: decoding stays a few seconds ahead, no more."""
LIVE_BACKLOG = 4096
"""Chunks a live stream under ``drop-oldest`` / ``skip-partials`` may queue (the stage drains
all of them each update and applies its policy, so the queue stays short in practice)."""
SEGMENT_BUFFER = 32
"""Finished segments waiting for a slow consumer before transcription pauses."""


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


class Engine:
    """Long-lived owner of models and of every stream's tasks.

    ::

        async with Engine(Settings.load(model="tiny.en")) as engine:
            async for seg in engine.transcribe_stream("talk.mp3"):
                ...

    Leaving the ``async with`` cancels streams still running and, unless a ``registry`` was
    passed in, unloads the models this engine loaded.
    """

    def __init__(
        self, settings: Settings | None = None, *, registry: ModelRegistry | None = None,
        cache: Cache | Literal["settings"] | None = "settings",
    ) -> None:
        self.settings = settings or Settings.load()
        self._owns_registry = registry is None
        self.registry = registry or ModelRegistry(self.settings)
        # Transcription results, keyed by audio content and every output-changing option.
        # Built from the settings (CACHE_TYPE) unless one is passed in, which we then leave
        # open on exit for its owner.
        self._owns_cache = cache == "settings"
        self.cache: Cache | None = make_cache(self.settings) if cache == "settings" else cache
        self.scheduler = _make_scheduler(self.settings)
        self.batcher = (StreamBatcher(self.scheduler, window=self.settings.batch_window,
                                      max_batch=self.settings.stream_batch_size)
                        if self.settings.stream_batching else None)
        if self.settings.malloc_arenas is not None:  # before this engine starts any thread
            limit_malloc_arenas(self.settings.malloc_arenas)
        self.monitor = _make_monitor(self) if self.settings.enable_performance_monitoring else None
        self._pipelines: weakref.WeakSet[_Pipeline] = weakref.WeakSet()
        self.translators = Translators(configured(self.settings))
        self._pools: dict[ModelKey, ProcessPool] = {}
        self._pool_lock = anyio.Lock()
        self._tg: TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._closed = False
        self.streams_started = 0

    async def __aenter__(self) -> Self:
        if self._closed or self._tg is not None:
            raise StreamClosedError("an Engine can be entered only once")
        async with AsyncExitStack() as stack:
            if self.batcher is not None:  # entered first, so it closes after the streams
                await stack.enter_async_context(self.batcher)
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            if self.monitor is not None:
                stack.enter_context(self.monitor.memory)
                self._tg.start_soon(self.monitor.run, name="voicesub monitor")
            self._exit_stack = stack.pop_all()
        # Silero is process-wide and small; loading it now keeps it off the first stream's path.
        await anyio.to_thread.run_sync(_load_vad)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closed = True
        assert self._tg is not None
        assert self._exit_stack is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._exit_stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The body's own error comes back wrapped by the task group; hand it back as raised.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                for pool in self._pools.values():
                    await anyio.to_thread.run_sync(pool.close)
                self._pools.clear()
                if self._owns_cache and self.cache is not None:
                    await self.cache.aclose()
                if self._owns_registry:
                    await anyio.to_thread.run_sync(self.registry.clear)
                await anyio.to_thread.run_sync(self.translators.close)

    def transcribe_stream(
        self,
        source: AudioInput | AudioSource,
        *,
        options: TranscribeOptions | None = None,
        sample_rate: int | None = None,
        channels: int = 1,
        **changes: Any,
    ) -> SegmentStream:
        """Start transcribing ``source``; iterate the result for final segments.

        Keyword ``changes`` override fields of ``options`` (``model=``, ``language=``,
        ``beam_size=``, ...).

        :raises StreamClosedError: the engine is not running
        """
        if self._tg is None:
            raise StreamClosedError("Engine is not running: use 'async with Engine() as engine'")
        opts = _options(options, changes)
        stream = SegmentStream(self, open_source(source, sample_rate=sample_rate,
                                                 channels=channels), opts)
        self.streams_started += 1
        self._pipelines.add(stream._pipeline)
        return stream

    def statistics(self) -> dict[str, Any]:
        """Streams started and the model registry's figures, for monitoring."""
        return {"streams_started": self.streams_started,
                "running": self._tg is not None,
                "models": self.registry.statistics(),
                "scheduler": self.scheduler.statistics(),
                "batching": self.batcher.statistics() if self.batcher is not None else None,
                "cache": self.cache.statistics() if self.cache is not None else None}

    def performance_report(self) -> dict[str, Any]:
        """Resource history summary, function timings, engine figures, alerts and
        recommendations (each naming the number behind it), as JSON-ready data."""
        return build_report(self.monitor, self.statistics())

    def activity(self) -> dict[str, Any]:
        """What the engine is doing now: streams, model calls, items waiting in channels."""
        queues: dict[str, int] = {}
        streams = 0
        for pipeline in list(self._pipelines):
            if pipeline.done.is_set() or not pipeline.queues:
                continue
            streams += 1
            used = {name: q.statistics().current_buffer_used
                    for name, q in pipeline.queues.items()}
            used["segments"] = pipeline.send.statistics().current_buffer_used
            for name, n in used.items():
                queues[name] = queues.get(name, 0) + n
        return {"streams": streams, "scheduler_running": self.scheduler.running,
                "scheduler_queued": self.scheduler.queued, "queues": queues}

    async def _pool(self, key: ModelKey) -> ProcessPool:
        """The worker processes for ``key`` (USE_PROCESS_POOL), started on first use."""
        async with self._pool_lock:
            if key not in self._pools:
                self._pools[key] = await anyio.to_thread.run_sync(
                    ProcessPool, self.settings, key, self.scheduler.workers)
            return self._pools[key]

    def _spawn(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._tg is None:
            raise StreamClosedError("Engine is closed")
        self._tg.start_soon(run, name="voicesub stream")


class SegmentStream:
    """An async iterator of final :class:`Segment` objects, and an async context manager.

    ``async with`` guarantees its tasks are cancelled and waited for on exit. A bare
    ``async for`` that breaks early cancels them when the stream is garbage collected (at
    once in CPython); the cancellation then completes in the background.
    """

    def __init__(self, engine: Engine | None, source: AudioSource,
                 options: TranscribeOptions) -> None:
        send, self._receive = create_memory_object_stream[Segment | _Failure](SEGMENT_BUFFER)
        # The running tasks reference only the pipeline, never this object, so dropping the
        # last reference to a stream really lets it be collected (and cancelled).
        self._pipeline = _Pipeline(engine, source, options, send)
        self._started = False
        self._closed = False

    @property
    def source(self) -> AudioSource:
        return self._pipeline.source

    @property
    def options(self) -> TranscribeOptions:
        return self._pipeline.options

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Segment:
        if self._closed:
            raise StopAsyncIteration
        self._ensure_started()
        try:
            item = await self._receive.receive()
        except anyio.EndOfStream:
            await self.aclose()
            raise StopAsyncIteration from None
        if isinstance(item, _Failure):
            await self.aclose()
            raise item.error
        return item

    async def __aenter__(self) -> Self:
        self._ensure_started()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the stream's work and wait until its tasks and threads have finished."""
        if self._closed:
            return
        self._closed = True
        self._pipeline.scope.cancel()
        self._receive.close()
        if not self._started:
            self._pipeline.send.close()
        else:
            with anyio.CancelScope(shield=True):
                await self._pipeline.done.wait()

    def __del__(self) -> None:
        if not self._closed:
            self._pipeline.scope.cancel()
            self._receive.close()
            if not self._started:
                self._pipeline.send.close()

    def statistics(self) -> dict[str, Any]:
        """Progress figures for this stream (audio seen, speech found, model time)."""
        return self._pipeline.statistics()

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            self._pipeline.start()


class _Pipeline:
    """The task side of a :class:`SegmentStream`: its stages and its cancel scope."""

    def __init__(self, engine: Engine | None, source: AudioSource, options: TranscribeOptions,
                 send: MemoryObjectSendStream[Segment | _Failure]) -> None:
        self.engine = engine
        self.source = source
        self.options = options
        self.send = send
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.host: asyncio.Task[None] | None = None
        self.chunker: VadChunker | None = None
        self.transcriber: Transcriber | None = None
        self.live: LiveTranscriber | None = None
        self.translation: TranslationStage | None = None
        self.cache_result: str | None = None  # "hit", "miss", or None when not cached
        self.queues: dict[str, MemoryObjectReceiveStream[Any]] = {}

    def start(self) -> None:
        if self.engine is not None:
            self.engine._spawn(self.run)
        else:
            # No engine: the stream owns this one task, with a task group for its stages inside.
            self.host = asyncio.get_running_loop().create_task(self.run())

    def statistics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"duration": self.source.duration, "cache": self.cache_result}
        if self.chunker:
            out["audio_seconds"] = round(self.chunker.audio_seconds, 3)
            out["speech_seconds"] = round(self.chunker.speech_seconds, 3)
        if self.transcriber:
            s = self.transcriber.stats
            out.update(language=self.transcriber.runner.language, windows=s.windows,
                       batches=s.batches, dropped_silent=s.dropped_silent,
                       model_seconds=round(s.model_seconds, 3))
        if self.translation:
            t = self.translation.stats
            out["translation"] = {**vars(t), "seconds": round(t.seconds, 3),
                                  "hit_ratio": t.hit_ratio}
        if self.live:
            out.update(language=self.live.runner.language,
                       audio_seconds=round(self.live.received_seconds, 3),
                       **{k: round(v, 3) if isinstance(v, float) else v
                          for k, v in vars(self.live.stats).items()})
        return out

    async def run(self) -> None:
        send = self.send
        try:
            with self.scope:
                async with send:
                    try:
                        await self._stages(send)
                    except VoicesubError as exc:
                        await send.send(_Failure(exc))
                    except ExceptionGroup as group:
                        await send.send(_Failure(_first_error(group)))
                    except Exception as exc:  # the user's own source iterator failed
                        await send.send(_Failure(exc))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # consumer went away: nobody left to tell
        finally:
            self.done.set()

    async def _stages(self, out: MemoryObjectSendStream[Segment | _Failure]) -> None:
        if self.options.translate_to is None:
            await self._transcription(out)
            return
        # Transcription -> translation. If transcription fails, what it finished still goes
        # through translation to the consumer before the error does.
        send, receive = create_memory_object_stream[Segment](SEGMENT_BUFFER)
        self.translation = self._translation_stage()
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.translation.run, receive, out.clone())
            async with send:
                try:
                    await self._transcription(send)  # type: ignore[arg-type]
                except Exception as exc:
                    failure = exc
        if failure is not None:
            raise failure

    def _translation_stage(self) -> TranslationStage:
        o = self.options
        assert o.translate_to is not None
        if self.engine is not None:
            translators, cache = self.engine.translators, self.engine.cache
        else:
            translators, cache = default_translators(), default_cache()
        settings, _ = self._settings_and_registry()
        return TranslationStage(
            translators, self._scheduler(), target=o.translate_to, backend=o.translator,
            cache=cache, priority=self._priority, partials=o.translate_partials,
            whole_sentences=o.live is None, timeout=settings.translate_timeout)

    @property
    def _priority(self) -> str | int:
        """The stream's scheduler priority: as given, else live or batch by its mode."""
        if self.options.priority is not None:
            return self.options.priority
        return "live" if self.options.live is not None else "batch"

    def _scheduler(self) -> Scheduler:
        if self.engine is not None:
            return self.engine.scheduler
        return _default_scheduler(self._settings_and_registry()[0])

    async def _transcription(self, out: MemoryObjectSendStream[Segment | _Failure]) -> None:
        settings, registry = self._settings_and_registry()
        key = registry.key_for(self.options.model)
        cache = self.engine.cache if self.engine is not None else default_cache()
        cache_key = None
        if cache is not None and self.options.live is None:
            cache_key = await self._cache_key(key)
        if cache_key is not None and cache is not None:
            hit = await cache.get(cache_key)
            if hit is not None:
                self.cache_result = "hit"
                for data in hit["segments"]:
                    await out.send(Segment.from_dict(data))
                return
            self.cache_result = "miss"
            done: list[Segment] = []
            await self._run_model(settings, registry, key, _Tee(out, done))
            # Only a complete, error-free run is stored (a failure raised above).
            await cache.set(cache_key, {"segments": [s.to_dict(exact=True) for s in done]})
            return
        await self._run_model(settings, registry, key, out)

    async def _cache_key(self, model: ModelKey) -> str | None:
        content = await self.source.content_hash()
        if content is None:
            return None
        o = self.options
        described = json.dumps({
            "model": [model.name, model.device, model.compute_type], "language": o.language,
            "task": o.task, "beam": o.beam_size, "words": o.word_timestamps,
            "prompt": o.initial_prompt, "vad": dataclasses.asdict(o.vad),
            "cue": [o.max_cue_chars, o.max_cue_duration],
            "pcm": [self.source.sample_rate, self.source.channels], "version": __version__,
        }, sort_keys=True)
        return f"transcript:{content}:{hashlib.sha256(described.encode()).hexdigest()[:32]}"

    async def _run_model(self, settings: Settings, registry: ModelRegistry, key: ModelKey,
                         out: MemoryObjectSendStream[Segment | _Failure] | _Tee) -> None:
        model: LoadedModel | None = None
        runner: Runner
        if settings.use_process_pool and self.engine is not None:
            runner = ProcessRunner(await self.engine._pool(key), self.options)
        else:
            if settings.use_process_pool:
                _warn_once("USE_PROCESS_POOL needs an Engine to own the worker processes; "
                           "streams without one run their model calls in threads")
            model = await anyio.to_thread.run_sync(registry.acquire, key)
            runner = WhisperRunner(model, self.options)
        source_error: list[BaseException] = []
        try:
            scheduler = self._scheduler()
            live = self.options.live
            # Under "block" a slow model holds the source back. The other policies decide
            # themselves what to do with a backlog, so the source must never wait on them.
            size = AUDIO_BUFFER if live is None or live.policy == "block" else LIVE_BACKLOG
            audio_send, audio_recv = create_memory_object_stream[AudioChunk](size)
            self.queues["audio"] = audio_recv
            if live is not None:
                self.live = LiveTranscriber(
                    runner, scheduler, self.options, live,
                    priority=self._priority,
                    batcher=self.engine.batcher if self.engine is not None else None)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._read_source, audio_send, source_error)
                    tg.start_soon(self.live.run, audio_recv, out.clone())  # type: ignore[arg-type]
            else:
                await self._file_stages(runner, scheduler, audio_send, audio_recv, out,
                                        source_error)
        finally:
            if model is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(registry.release, model)
        if source_error:
            # Everything decoded before the failure has been transcribed and delivered above.
            raise source_error[0]

    async def _file_stages(self, runner: Runner, scheduler: Scheduler,
                           audio_send: MemoryObjectSendStream[AudioChunk],
                           audio_recv: MemoryObjectReceiveStream[AudioChunk],
                           out: MemoryObjectSendStream[Segment | _Failure] | _Tee,
                           source_error: list[BaseException]) -> None:
        self.chunker = VadChunker(self.options.vad)
        self.transcriber = Transcriber(runner, scheduler,
                                       priority=self._priority,
                                       translator=self._whisper_translator(runner))
        win_send, win_recv = create_memory_object_stream[SpeechWindow](self.options.batch_size)
        self.queues["windows"] = win_recv
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_source, audio_send, source_error)
            tg.start_soon(self.chunker.run, audio_recv, win_send)
            tg.start_soon(self.transcriber.run, win_recv, out.clone())  # type: ignore[arg-type]

    def _whisper_translator(self, runner: Runner) -> Runner | None:
        """With ``translator="whisper"``, a runner of the same model with the translate task."""
        o = self.options
        if o.translate_to is None or o.translator != "whisper":
            return None  # (options already refused a target other than English)
        english = o.with_changes(task="translate", word_timestamps=False)
        if isinstance(runner, ProcessRunner):
            return ProcessRunner(runner.pool, english)
        assert isinstance(runner, WhisperRunner)
        return WhisperRunner(runner.model, english)

    async def _read_source(self, send: ObjectSendStream[AudioChunk],
                           error: list[BaseException]) -> None:
        async with send, aclosing(self.source.chunks()) as chunks:
            try:
                async for chunk in chunks:
                    await send.send(chunk)
            except VoicesubError as exc:
                error.append(exc)

    def _settings_and_registry(self) -> tuple[Settings, ModelRegistry]:
        if self.engine is not None:
            return self.engine.settings, self.engine.registry
        return default_settings(), default_registry()


def transcribe_stream(
    source: AudioInput | AudioSource,
    *,
    options: TranscribeOptions | None = None,
    sample_rate: int | None = None,
    channels: int = 1,
    engine: Engine | None = None,
    **changes: Any,
) -> SegmentStream:
    """Transcribe ``source`` into final subtitle segments as the audio arrives.

    ``async for seg in transcribe_stream("talk.mp3", model="tiny.en")`` or, for guaranteed
    cleanup, ``async with transcribe_stream(...) as segments``. With ``live=True`` (or a
    :class:`LiveOptions`) partial segments arrive too, replaced by later partials and
    finally by the final segment with the same index. Without an ``engine`` the
    stream runs on the process-wide model registry (models stay loaded between streams).

    :param source: path, URL, container bytes, numpy array, or async iterable of PCM bytes /
        numpy frames
    :param sample_rate: rate of raw PCM / numpy input (default 16000)
    :param channels: channel count of raw PCM / numpy input (interleaved)
    :raises ConfigError: an option has an invalid value
    """
    if engine is not None:
        return engine.transcribe_stream(source, options=options, sample_rate=sample_rate,
                                        channels=channels, **changes)
    opts = _options(options, changes)
    return SegmentStream(None, open_source(source, sample_rate=sample_rate, channels=channels),
                         opts)


def _options(options: TranscribeOptions | None, changes: dict[str, Any]) -> TranscribeOptions:
    live = changes.get("live")
    if isinstance(live, bool):  # live=True is the common spelling of LiveOptions()
        changes = {**changes, "live": LiveOptions() if live else None}
    return (options or TranscribeOptions()).with_changes(**changes)


_defaults_lock = threading.Lock()
_default: dict[str, Any] = {}


def default_settings() -> Settings:
    with _defaults_lock:
        if "settings" not in _default:
            _default["settings"] = Settings.load()
        return _default["settings"]  # type: ignore[no-any-return]


def default_registry() -> ModelRegistry:
    """The process-wide registry used by streams that run without an :class:`Engine`."""
    settings = default_settings()
    with _defaults_lock:
        if "registry" not in _default:
            _default["registry"] = ModelRegistry(settings)
        return _default["registry"]  # type: ignore[no-any-return]


_loop_schedulers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Scheduler] = (
    weakref.WeakKeyDictionary())


def _make_monitor(engine: Engine) -> Monitor:
    s = engine.settings
    caches = [engine.cache] if engine.cache is not None else []
    memory = MemoryManager(threshold=s.memory_threshold, registry=engine.registry,
                           caches=caches, profiling=s.enable_memory_profiling,
                           trim_interval=s.malloc_trim_interval)
    return Monitor(interval=s.metrics_interval,
                   save_to=s.metrics_path if s.save_performance_metrics else None,
                   rules=default_rules(memory_threshold=s.memory_threshold),
                   adaptive=s.adaptive_monitoring, memory=memory, engine_stats=engine.activity)


def _make_scheduler(settings: Settings) -> Scheduler:
    workers = settings.max_workers
    if workers == "auto":
        device = pick_device(settings.device)
        workers = auto_workers(device=device, model_workers=settings.model_workers,
                               cpu_threads=settings.cpu_threads, gpus=cuda_device_count(),
                               process_pool=settings.use_process_pool)
    return Scheduler(workers, max_wait=settings.scheduler_max_wait)


def _default_scheduler(settings: Settings) -> Scheduler:
    # Engine-less streams of one event loop share one scheduler, as an Engine's streams do.
    loop = asyncio.get_running_loop()
    if loop not in _loop_schedulers:
        _loop_schedulers[loop] = _make_scheduler(settings)
    return _loop_schedulers[loop]


class _Tee:
    """A send stream that also keeps what it sends (to cache a completed transcription)."""

    def __init__(self, out: MemoryObjectSendStream[Segment | _Failure],
                 kept: list[Segment]) -> None:
        self.out, self.kept = out, kept

    def clone(self) -> _Tee:
        return _Tee(self.out.clone(), self.kept)

    async def send(self, segment: Segment) -> None:
        await self.out.send(segment)
        self.kept.append(segment)

    async def aclose(self) -> None:
        await self.out.aclose()

    async def __aenter__(self) -> _Tee:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def default_translators() -> Translators:
    """The process-wide translators of streams that run without an :class:`Engine`."""
    settings = default_settings()  # before the lock: it takes the lock itself
    with _defaults_lock:
        if "translators" not in _default:
            _default["translators"] = Translators(configured(settings))
        return _default["translators"]  # type: ignore[no-any-return]


def default_cache() -> Cache | None:
    """Streams without an Engine share a process-wide memory cache (when CACHE_TYPE is
    memory): shared backends hold connections bound to one event loop, an Engine's job."""
    settings = default_settings()
    with _defaults_lock:
        if "cache" not in _default:
            _default["cache"] = (make_cache(settings) if settings.cache_type == "memory"
                                 else None)
        return _default["cache"]  # type: ignore[no-any-return]


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def _load_vad() -> None:
    from faster_whisper.vad import get_vad_model

    get_vad_model()


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error a caller should see from a stage failure, not the group around it."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc  # type: ignore[no-any-return]
    return group


