"""The owner of every stream: :class:`Engine`, and :func:`transcribe_stream` on a default one.

An engine holds what streams share (loaded models, the scheduler that gates model work,
cross-stream batching, the result cache, translators, the metrics sampler) and one task group
in which every stream's pipeline runs. The module-level :func:`transcribe_stream` goes
through the same path, on a default engine that each event loop starts on first use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import logging
import sys
import weakref
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.lowlevel import RunVar

from ._admission import Admission, AdmissionStatistics
from ._config import LiveOptions, Settings, TranscribeOptions
from ._pipeline import Pipeline, Services
from ._stats import counter
from ._stream import SegmentStream
from .cache import Cache, make_cache
from .errors import StreamClosedError, VoicesubError
from .executors import ClusterStatistics, ProcessPool, ProcessRunner, RayPool, RayRunner
from .models import (
    ExecutionPlan,
    ModelKey,
    ModelRegistry,
    cuda_device_count,
    execution_plan,
    live_update_seconds,
    load_vad,
)
from .models._registry import pick_device
from .monitoring import MemoryManager, Monitor, build_report, default_rules, limit_malloc_arenas
from .scheduler import Scheduler, auto_workers
from .sources import AudioInput, AudioSource, open_source
from .stages import StreamBatcher
from .translation import Translators

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
    from types import TracebackType
    from typing import Self

    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectSendStream
    from typing_extensions import Unpack

    from ._admission import Ticket
    from ._config import OptionChanges
    from ._pipeline import StreamStatistics
    from ._types import Segment
    from .cache import CacheStatistics
    from .models import RegistryStatistics, Runner
    from .scheduler import SchedulerStatistics
    from .stages import BatchingStatistics
    from .translation import Translator

__all__ = ("Engine", "EngineActivity", "EngineStatistics", "default_engine",
           "transcribe_stream")

logger = logging.getLogger(__name__)

CLUSTER_CHECK = 5.0
"""Seconds between looks at the Ray cluster's size (``executor="ray"``)."""


@dataclass(frozen=True, slots=True)
class FileResult:
    """One file of :meth:`Engine.transcribe_many`: its segments and, if it failed, why (the
    segments are then those of the audio before the failure)."""

    source: AudioInput
    segments: list[Segment]
    error: VoicesubError | None = None
    statistics: StreamStatistics | None = None
    """How far it got, failed or not (``None`` if it never started)."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    running: bool
    models: RegistryStatistics
    scheduler: SchedulerStatistics
    batching: BatchingStatistics | None
    cache: CacheStatistics | None
    execution: ExecutionPlan
    """Threads per model call and calls at once, and why (chosen from the machine unless
    pinned by settings)."""
    admission: AdmissionStatistics
    """Live streams admitted, refused and degraded, and the capacity they are counted against."""
    cluster: ClusterStatistics | None = None
    """The Ray actors model calls run on (``executor="ray"``)."""
    streams_started: int = counter(name="streams")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class EngineActivity:
    """What the engine is doing now."""

    streams: int
    scheduler_running: int
    scheduler_queued: int
    queues: dict[str, int]
    """Items waiting in front of each kind of stage, summed over the streams."""


class Engine:
    """Long-lived owner of models and of every stream's tasks.

    ::

        async with Engine(Settings.load(model="tiny.en")) as engine:
            async for seg in engine.transcribe_stream("talk.mp3"):
                ...

    Leaving the ``async with`` cancels streams still running and, unless a ``registry`` was
    passed in, unloads the models this engine loaded. Custom translators are registered by
    name (``translators={"mine": MyTranslator()}``) and chosen with ``translator="mine"``;
    the engine does not close them. With ``executor="ray"`` in the settings, model calls run
    on a pool of Ray actors the engine starts on entry and stops on exit; a
    :class:`~voicesub_stream.executors.RayPool` passed as ``cluster`` is used instead, and
    left running.
    """

    def __init__(
        self, settings: Settings | None = None, *, registry: ModelRegistry | None = None,
        cache: Cache | Literal["settings"] | None = "settings",
        translators: Mapping[str, Translator] | None = None,
        cluster: RayPool | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        scheduling = self.settings.scheduling()
        self._owns_registry = registry is None
        self.registry = registry or ModelRegistry(self.settings.models())
        # Transcription results, keyed by audio content and every output-changing option.
        # Built from the settings (CACHE_TYPE) unless one is passed in, which we then leave
        # open on exit for its owner.
        self._owns_cache = cache == "settings"
        self.cache: Cache | None = make_cache(self.settings.cache()) if cache == "settings" \
            else cache
        # Model calls on Ray: a pool passed in (left open for its owner), or one started on
        # entry from the settings (executor="ray").
        self._executor = "ray" if cluster is not None else scheduling.executor
        self._owns_ray = cluster is None
        self._ray: RayPool | None = cluster
        device = pick_device(self.registry.config.device)
        batching = _batches_pay(scheduling.stream_batching, device, self._executor)
        plan = execution_plan(self.registry.config, device)
        self.execution = dataclasses.replace(
            plan, shared_calls=batching,
            # Only calls made in this process can be given a low CPU priority.
            background_calls=plan.background_calls if self._executor == "threads" else 0)
        self.scheduler = _make_scheduler(self.settings, self.execution)
        self.admission = _make_admission(self.settings, self.execution, self.scheduler,
                                         self._admission_changed)
        self.batcher = (StreamBatcher(self.scheduler, window=scheduling.batch_window,
                                      max_batch=scheduling.stream_batch_size)
                        if batching else None)
        if self.settings.malloc_arenas is not None:  # before this engine starts any thread
            limit_malloc_arenas(self.settings.malloc_arenas)
        self.translators = Translators(self.settings.translation(), custom=translators)
        self.monitor = _make_monitor(self) if self.settings.enable_performance_monitoring else None
        self._pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()
        self._pools: dict[ModelKey, ProcessPool] = {}
        self._pool_lock = anyio.Lock()
        self._calibration_lock = anyio.Lock()
        self._services = Services(
            registry=self.registry, scheduler=self.scheduler, translators=self.translators,
            cache=self.cache, batcher=self.batcher,
            translate_timeout=self.settings.translate_timeout,
            pooled_runner=self._pooled_runner if self._executor != "threads" else None)
        self._tg: TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._closed = False
        self.streams_started = 0

    async def __aenter__(self) -> Self:
        if self._closed or self._tg is not None:
            raise StreamClosedError("an Engine can be entered only once")
        if self._ray is None and self._executor == "ray":
            await self._join_cluster()
        if self._ray is not None:
            self._fit_to_cluster(self._ray)
        async with AsyncExitStack() as stack:
            if self.batcher is not None:  # entered first, so it closes after the streams
                await stack.enter_async_context(self.batcher)
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            if self.monitor is not None:
                stack.enter_context(self.monitor.memory)
                self._tg.start_soon(self.monitor.run, name="voicesub monitor")
            if self._ray is not None:
                self._tg.start_soon(self._follow_cluster, self._ray, name="voicesub cluster")
            self._exit_stack = stack.pop_all()
        # Silero is process-wide and small; loading it now keeps it off the first stream's path.
        await anyio.to_thread.run_sync(load_vad)
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
                raise group.exceptions[0] from group.exceptions[0].__cause__
            raise
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await self._close_resources()

    async def _close_resources(self) -> None:
        for pool in self._pools.values():
            await anyio.to_thread.run_sync(pool.close)
        self._pools.clear()
        if self._ray is not None and self._owns_ray:
            await anyio.to_thread.run_sync(self._ray.close)
            self._ray = None
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
        **changes: Unpack[OptionChanges],
    ) -> SegmentStream:
        """Start transcribing ``source``; iterate the result for segments.

        Keyword ``changes`` override fields of ``options`` (``model=``, ``language=``,
        ``beam_size=``, ...).

        :raises StreamClosedError: the engine is not running
        :raises ConfigError: an option has an invalid value, or names an unknown translator
        """
        if self._tg is None:
            raise StreamClosedError("Engine is not running: use 'async with Engine() as engine'")
        opts = _options(options, changes)
        self._check(opts)
        return SegmentStream(open_source(source, sample_rate=sample_rate, channels=channels),
                             opts, self._launch)

    async def transcribe_many(
        self,
        sources: Iterable[AudioInput],
        *,
        options: TranscribeOptions | None = None,
        concurrency: int | None = None,
        **changes: Unpack[OptionChanges],
    ) -> AsyncIterator[FileResult]:
        """Transcribe many files (a media library), yielding each one's result as it ends.

        ``concurrency`` files run at once (default: as many as model calls may run at once,
        so each file's windows keep a call busy). Files run at batch priority unless the
        options say otherwise, so live streams on this engine keep their latency. A file
        that fails gives a result with its ``error`` and the segments it got before the
        failure; the others go on. Leaving the loop cancels the files still running: at once
        inside ``contextlib.aclosing(engine.transcribe_many(...))``, else when the generator
        is collected.

        :raises ConfigError: an option has an invalid value (before any file starts)
        """
        if self._tg is None:
            raise StreamClosedError("Engine is not running: use 'async with Engine() as engine'")
        opts = _options(options, changes)
        self._check(opts)
        width = concurrency or self.execution.concurrent_calls
        send, receive = anyio.create_memory_object_stream[FileResult](width)
        scope = anyio.CancelScope()

        async def one(source: AudioInput, slots: anyio.Semaphore) -> None:
            segments: list[Segment] = []
            error, stream = None, None
            try:
                stream = self.transcribe_stream(source, options=opts)
                async with stream:
                    async for segment in stream:
                        segments.append(segment)
            except VoicesubError as exc:
                error = exc
            finally:
                slots.release()
            statistics = stream.statistics() if stream is not None else None
            await send.send(FileResult(source, segments, error, statistics))

        async def run_all() -> None:
            with scope:
                async with send, anyio.create_task_group() as tg:
                    slots = anyio.Semaphore(width)
                    for source in sources:
                        await slots.acquire()
                        tg.start_soon(one, source, slots)

        self._tg.start_soon(run_all, name="voicesub transcribe_many")
        try:
            async with receive:
                async for result in receive:
                    yield result
        finally:
            scope.cancel()

    def _check(self, options: TranscribeOptions) -> None:
        """Refuse, before anything runs, options this engine cannot serve.

        :raises ConfigError: an unknown translator, or one that never reaches the target
        """
        if options.translate_to is not None:
            self.translators.validate(options.translator, options.translate_to)

    def statistics(self) -> EngineStatistics:
        """Streams started and the figures of every shared component."""
        return EngineStatistics(
            streams_started=self.streams_started, running=self._tg is not None,
            models=self.registry.statistics(), scheduler=self.scheduler.statistics(),
            batching=self.batcher.statistics() if self.batcher is not None else None,
            cache=self.cache.statistics() if self.cache is not None else None,
            execution=self.execution, admission=self.admission.statistics(),
            cluster=self._ray.statistics() if self._ray is not None else None)

    def performance_report(self) -> dict[str, Any]:
        """Resource history summary, function timings, engine figures, alerts and
        recommendations (each naming the number behind it), as JSON-ready data."""
        return build_report(self.monitor, self.statistics().to_dict())

    def activity(self) -> EngineActivity:
        """What the engine is doing now: streams, model calls, items waiting in channels."""
        queues: dict[str, int] = {}
        streams = 0
        for pipeline in list(self._pipelines):
            if pipeline.done.is_set():
                continue
            streams += 1
            for name, n in pipeline.backlog().items():
                queues[name] = queues.get(name, 0) + n
        return EngineActivity(streams, self.scheduler.running, self.scheduler.queued, queues)

    async def warm_up(self, model: str | None = None) -> None:
        """Load ``model`` (the default when None), time one live update of it, and load the
        copy batch work runs on where there is one
        (:meth:`~voicesub_stream.models.LoadedModel.replica`), so that the first streams of
        either kind wait for none of it: a server does this before it takes clients (a
        refusal is then answered at once, and the timing is not slowed by file work already
        running). With worker processes or Ray actors the workers load their own copy and
        nothing is done here.

        :raises ModelNotFoundError: the name resolves to no model
        :raises ModelLoadError: CTranslate2 could not load it
        """
        key = self.registry.key_for(model)
        await self._calibrate(key)
        if self.scheduler.runs_apart("batch"):
            loaded = await anyio.to_thread.run_sync(self.registry.get, key)
            await anyio.to_thread.run_sync(functools.partial(loaded.replica, background=True))

    async def can_admit_live(self, model: str | None = None,
                             live: LiveOptions | None = None) -> None:
        """Check that one more live stream of ``model`` would be admitted now (a session that
        opens a stream per utterance asks before it starts); nothing is reserved.

        :raises OverloadedError: the engine's live streams fill its capacity
        """
        key = self.registry.key_for(model)
        await self._calibrate(key)
        (await self._admit(key.name, live or LiveOptions(), adaptive=True)).release()

    def running_streams(self) -> list[StreamStatistics]:
        """The figures of every stream running now (a dashboard's list of live streams)."""
        return [p.statistics() for p in list(self._pipelines) if not p.done.is_set()]

    async def _launch(self, source: AudioSource, options: TranscribeOptions,
                      send: MemoryObjectSendStream[Segment]) -> Pipeline:
        """Start a stream's pipeline in this engine's task group (a live stream only once
        admitted).

        :raises OverloadedError: the engine's live streams fill its capacity
        """
        if self._tg is None:
            raise StreamClosedError("Engine is closed")
        ticket = None
        if options.live is not None:
            key = self.registry.key_for(options.model)
            await self._calibrate(key)
            model = key.name
            adaptive = options.live.resolved_policy(realtime=source.realtime) == "adaptive"
            ticket = await self._admit(model, options.live, adaptive=adaptive)
        pipeline = Pipeline(self._services, source, options, send, ticket=ticket)
        self.streams_started += 1
        self._pipelines.add(pipeline)
        self._tg.start_soon(pipeline.run, name="voicesub stream")
        return pipeline

    async def _admit(self, model: str, live: LiveOptions, *, adaptive: bool) -> Ticket:
        """Admission of one live stream; on a Ray cluster with what the other engines there
        run counted too (asked of the cluster's ledger first).

        :raises OverloadedError: the live streams fill the capacity
        """
        if self._ray is not None:
            self.admission.others = await anyio.to_thread.run_sync(self._ray.others_load,
                                                                   self.admission.load())
        return self.admission.admit(model, live, adaptive=adaptive)

    def _admission_changed(self, slots: int) -> None:
        """Live streams were admitted or ended: the model calls kept free of batch work,
        and, on a Ray cluster, the load the other engines count."""
        self.scheduler.reserve(slots)
        if self._ray is not None:
            self._ray.publish_load(self.admission.load())

    async def _calibrate(self, key: ModelKey) -> None:
        """Time one live update of the model before its first live stream is admitted
        (loading the model, which that stream needs anyway): streams arriving meanwhile wait
        for it, then are admitted or refused at once."""
        if not self.admission.needs_calibration(key.name) or self._executor != "threads":
            return
        async with self._calibration_lock:
            if self.admission.needs_calibration(key.name):
                loaded = await anyio.to_thread.run_sync(self.registry.get, key)
                seconds = await anyio.to_thread.run_sync(functools.partial(
                    live_update_seconds, loaded, calls=self.execution.concurrent_calls))
                self.admission.calibrate(key.name, seconds)

    async def _join_cluster(self) -> None:
        """Connect to the Ray cluster and start the actor pool; calls at once, the live
        capacity and the execution plan follow its size from then on."""
        config = self.registry.config
        threads = config.cpu_threads if isinstance(config.cpu_threads, int) and \
            config.cpu_threads > 0 else 1
        self._ray = await anyio.to_thread.run_sync(functools.partial(
            RayPool, config, address=self.settings.scheduling().ray_address,
            threads_per_call=threads, device=config.device))

    def _fit_to_cluster(self, pool: RayPool) -> None:
        size = max(1, pool.size)
        gpu = bool(pool.gpus_per_actor)
        threads = 1 if gpu else int(pool.cpus_per_actor)
        kind = "GPU" if gpu else f"{threads} CPU{'s' if threads > 1 else ''}"
        self.execution = ExecutionPlan(threads, size, f"Ray: {size} actor"
                                       f"{'s' if size > 1 else ''} of {kind} each, one call "
                                       f"at a time, on the cluster at {pool.address}",
                                       shared_calls=self.batcher is not None)
        if self.scheduler.workers != size:
            self.scheduler.resize(size)
        self.admission.cores = size * threads
        self.admission.threads_per_call = threads
        self.admission.device = "cuda" if gpu else "cpu"
        self.scheduler.reserve(self.admission.slots_needed())

    async def _follow_cluster(self, pool: RayPool) -> None:
        """Grow and shrink the actor pool with the cluster (nodes join and leave)."""
        while True:
            await anyio.sleep(CLUSTER_CHECK)
            try:
                await anyio.to_thread.run_sync(pool.resize)
            except Exception as exc:  # the cluster unreachable for now: calls say so
                logger.warning("could not look at the Ray cluster: %s", exc)
                continue
            self._fit_to_cluster(pool)
            self.admission.others = await anyio.to_thread.run_sync(pool.others_load,
                                                                   self.admission.load())

    async def _pooled_runner(self, key: ModelKey, options: TranscribeOptions) -> Runner:
        """A runner on the Ray actors, or on the worker processes for ``key`` (started on
        first use)."""
        if self._ray is not None:
            multilingual = await anyio.to_thread.run_sync(self._ray.multilingual, key.name)
            return RayRunner(self._ray, key.name, options, multilingual=multilingual)
        async with self._pool_lock:
            if key not in self._pools:
                # One model call per worker process, on the threads the plan gives a call.
                config = dataclasses.replace(self.registry.config,
                                             cpu_threads=self.execution.threads_per_call,
                                             model_workers=1)
                self._pools[key] = await anyio.to_thread.run_sync(
                    ProcessPool, config, key, self.scheduler.workers)
            return ProcessRunner(self._pools[key], options)


def transcribe_stream(
    source: AudioInput | AudioSource,
    *,
    options: TranscribeOptions | None = None,
    sample_rate: int | None = None,
    channels: int = 1,
    engine: Engine | None = None,
    **changes: Unpack[OptionChanges],
) -> SegmentStream:
    """Transcribe ``source`` into subtitle segments as the audio arrives.

    ``async for seg in transcribe_stream("talk.mp3", model="tiny.en")`` or, for guaranteed
    cleanup, ``async with transcribe_stream(...) as segments``. With ``live=True`` (or a
    :class:`LiveOptions`) partial segments arrive too, replaced by later partials and
    finally by the final segment with the same index.

    Without an ``engine`` the stream runs on :func:`default_engine`, the running event loop's
    own, so models stay loaded between streams and every stream goes through one path.

    :param source: path, URL, container bytes, numpy array, or async iterable of PCM bytes /
        numpy frames
    :param sample_rate: rate of raw PCM / numpy input (default 16000)
    :param channels: channel count of raw PCM / numpy input (interleaved)
    :raises ConfigError: an option has an invalid value
    """
    if engine is not None:
        return engine.transcribe_stream(source, options=options, sample_rate=sample_rate,
                                        channels=channels, **changes)
    return SegmentStream(open_source(source, sample_rate=sample_rate, channels=channels),
                         _options(options, changes), _launch_on_default)


def transcribe(
    source: AudioInput | AudioSource,
    *,
    options: TranscribeOptions | None = None,
    sample_rate: int | None = None,
    channels: int = 1,
    settings: Settings | None = None,
    **changes: Unpack[OptionChanges],
) -> list[Segment]:
    """Transcribe ``source`` whole and return its segments (live streams: the finals), for
    scripts and notebooks: ``segments = transcribe("talk.mp3", model="tiny.en")``.

    It blocks until the transcription ends, on an engine of its own that it closes after.
    Called where an event loop already runs (a notebook cell), it runs in a thread of its
    own; from async code use :func:`transcribe_stream`, which never blocks the loop.

    :raises ConfigError: an option has an invalid value
    """
    opts = _options(options, changes)

    async def run() -> list[Segment]:
        async with Engine(settings) as engine, engine.transcribe_stream(
                source, options=opts, sample_rate=sample_rate, channels=channels) as stream:
            return [seg async for seg in stream if seg.is_final]

    if not _in_event_loop():
        return anyio.run(run)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="voicesub") as pool:
        return pool.submit(anyio.run, run).result()


def _in_event_loop() -> bool:
    """Whether this thread runs an asyncio or trio event loop (a notebook's, say)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = sys.modules.get("trio")
        if trio is None:
            return False
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            return False
    return True


async def _launch_on_default(source: AudioSource, options: TranscribeOptions,
                             send: MemoryObjectSendStream[Segment]) -> Pipeline:
    engine = await default_engine()
    engine._check(options)
    return await engine._launch(source, options, send)


def _options(options: TranscribeOptions | None,
             changes: Mapping[str, object]) -> TranscribeOptions:
    fields = dict(changes)
    if isinstance(fields.get("live"), bool):  # live=True is the common spelling of LiveOptions()
        fields["live"] = LiveOptions() if fields["live"] else None
    return (options or TranscribeOptions()).with_changes(**fields)


# -- the default engine of each event loop ----------------------------------------------------

class _DefaultEngine:
    def __init__(self) -> None:
        self.ready = anyio.Event()
        self.engine: Engine | None = None
        self.error: BaseException | None = None
        self.task: object = None  # keeps an asyncio host task referenced

    async def host(self) -> None:
        try:
            async with Engine() as engine:
                self.engine = engine
                self.ready.set()
                await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # settings or start-up failed: every stream hears why
            self.error = exc
            logger.exception("the default engine failed")
        finally:
            self.engine = None
            self.ready.set()


_default = RunVar[_DefaultEngine]("voicesub_default_engine")


async def default_engine() -> Engine:
    """The running event loop's default :class:`Engine`, started on first use.

    Module-level :func:`transcribe_stream` calls share it. It is built from
    :meth:`Settings.load` (the ``VOICESUB_*`` environment) and runs in a task of the event
    loop itself (an asyncio task, or a trio system task), not in the caller's task, so it
    outlives the stream that started it. It lives as long as the event loop: when
    ``asyncio.run`` or ``trio.run`` ends, it is cancelled with the loop's other remaining
    tasks, which cancels its streams, unloads its models and closes its cache. For control
    over when that happens, use an ``async with Engine()`` block instead.

    :raises ConfigError: the environment holds a bad setting
    :raises StreamClosedError: the default engine has ended (the event loop is shutting down)
    """
    holder = _default.get(None)
    if holder is None:
        holder = _DefaultEngine()
        _default.set(holder)
        holder.task = _spawn_system_task(holder.host)
    await holder.ready.wait()
    if holder.engine is None:
        if holder.error is not None:
            raise holder.error
        raise StreamClosedError("the event loop's default engine has ended")
    return holder.engine


def _spawn_system_task(host: Callable[[], Awaitable[None]]) -> object:
    """Run ``host`` as a task of the event loop itself, outside any caller's task group."""
    import asyncio

    loop = anyio.lowlevel.current_token().native_token
    if isinstance(loop, asyncio.AbstractEventLoop):
        async def main() -> None:
            await host()

        return loop.create_task(main(), name="voicesub default engine")
    import trio  # the one other backend anyio runs on

    return trio.lowlevel.spawn_system_task(host, name="voicesub default engine")


# -- building an engine's parts from its settings ---------------------------------------------

def _make_monitor(engine: Engine) -> Monitor:
    s = engine.settings
    caches = [engine.cache] if engine.cache is not None else []
    memory = MemoryManager(threshold=s.memory_threshold, registry=engine.registry,
                           caches=caches, profiling=s.enable_memory_profiling,
                           trim_interval=s.malloc_trim_interval)

    def activity() -> dict[str, Any]:
        return dataclasses.asdict(engine.activity())

    return Monitor(interval=s.metrics_interval,
                   save_to=s.metrics_path if s.save_performance_metrics else None,
                   rules=default_rules(memory_threshold=s.memory_threshold),
                   adaptive=s.adaptive_monitoring, memory=memory, engine_stats=activity)


def _batches_pay(setting: bool | Literal["auto"], device: str, executor: str) -> bool:
    """Whether live windows of several streams share model calls. Not on a CPU, where a
    shared call saves little compute and answers none of its windows before all of them.
    On one machine a window cost the same alone or in company (tiny.en, one thread: beam-2
    decoder 50-51 ms a window from one window a call to eight), and 12 streams forced past
    admission had final p95 2.22-2.27 s unbatched against 2.47-2.86 s batched. On a slower
    one a shared call saved 14-19 % of the compute, yet with 8-16 streams offered p95 was
    1.86-1.96 s in calls of their own against 2.18-2.61 s shared, at the same number
    admitted. A GPU decodes a batch for little more than one window, and a call to a Ray
    actor costs 5-7 ms on its own."""
    if setting != "auto":
        return setting
    return device == "cuda" or executor == "ray"


def _make_admission(settings: Settings, plan: ExecutionPlan, scheduler: Scheduler,
                    on_change: Callable[[int], None]) -> Admission:
    device = pick_device(settings.models().device)
    # On a GPU a call occupies a device, not the CPU threads that feed it.
    threads = 1 if device == "cuda" else plan.threads_per_call
    return Admission(cores=scheduler.workers * threads, threads_per_call=threads,
                     device=device, on_change=on_change)


def _make_scheduler(settings: Settings, plan: ExecutionPlan) -> Scheduler:
    config = settings.scheduling()
    workers = config.max_workers
    if workers == "auto":
        workers = auto_workers(device=pick_device(settings.models().device),
                               model_workers=plan.concurrent_calls,
                               cpu_threads=plan.threads_per_call, gpus=cuda_device_count(),
                               process_pool=config.executor == "processes")
    return Scheduler(workers, max_wait=config.max_wait,
                     background_workers=workers if plan.background_calls else 0)
