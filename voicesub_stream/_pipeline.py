"""One stream's work as data: :func:`plan` lists its stages, :class:`Pipeline` runs them.

::

    file:   SourceReader ─AudioChunk[8]─▶ VadChunker ─SpeechWindow[batch_size]─▶ Transcriber
              ─Segment[32]─▶ CacheRecord ─Segment[32]─▶ TranslationStage ─Segment[32]─▶ you
    cached: CacheReplay ─Segment[32]─▶ TranslationStage ─Segment[32]─▶ you
    live:   SourceReader ─AudioChunk[8 under policy "block", else 4096]─▶ LiveTranscriber
              ─Segment[32]─▶ TranslationStage ─Segment[32]─▶ you

(the cache and translation stages only when a cache is kept and ``translate_to`` is set).
Channel sizes are the most items a stage may run ahead of the next: past them, everything
upstream waits, so memory stays flat however slowly the consumer reads.

Errors travel one way, downstream: a stage that fails closes its output, so the stages after
it finish what they were given, and the first error is raised to the consumer after the last
segment. A stage that stops reading (a failure, or the consumer leaving) breaks the pipe for
the stage before it, which then ends too.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from ._version import __version__
from .errors import StreamClosedError
from .models import WhisperRunner
from .stages import (
    CacheRecord,
    CacheReplay,
    CacheStageStatistics,
    LiveStatistics,
    LiveTranscriber,
    SourceReader,
    SourceStatistics,
    Transcriber,
    TranscriberStatistics,
    TranslationStage,
    TranslationStatistics,
    VadChunker,
    VadStatistics,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._admission import Ticket
    from ._config import TranscribeOptions
    from ._types import Segment
    from .cache import Cache
    from .models import ModelKey, ModelRegistry, Runner
    from .scheduler import Scheduler
    from .sources import AudioSource
    from .stages import Stage, StreamBatcher
    from .translation import Translators

__all__ = ("Pipeline", "Services", "StreamStatistics", "plan")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Services:
    """What a stream's pipeline uses of its engine."""

    registry: ModelRegistry
    scheduler: Scheduler
    translators: Translators
    cache: Cache | None = None
    batcher: StreamBatcher | None = None
    translate_timeout: float = 10.0
    pooled_runner: Callable[[ModelKey, TranscribeOptions], Awaitable[Runner]] | None = None
    """With worker processes (``USE_PROCESS_POOL``): a runner that calls into them."""


@dataclass(frozen=True, slots=True)
class StreamStatistics:
    """One stream's figures so far; a stage's part is ``None`` when the stream has none."""

    duration: float | None
    """The source's length when known up front, else ``None``."""
    language: str | None
    audio_seconds: float
    """Audio read from the source so far."""
    model_seconds: float
    cache: Literal["hit", "miss"] | None
    source: SourceStatistics | None = None
    vad: VadStatistics | None = None
    transcription: TranscriberStatistics | None = None
    live: LiveStatistics | None = None
    translation: TranslationStatistics | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_STATISTICS_FIELDS: dict[type, str] = {
    SourceStatistics: "source", VadStatistics: "vad", TranscriberStatistics: "transcription",
    LiveStatistics: "live", TranslationStatistics: "translation", CacheStageStatistics: "cache"}
"""Which field of :class:`StreamStatistics` each stage's figures fill."""


def priority(options: TranscribeOptions) -> str | int:
    """The stream's scheduler priority: as given, else live or batch by its mode."""
    if options.priority is not None:
        return options.priority
    return "live" if options.live is not None else "batch"


def plan(options: TranscribeOptions, source: AudioSource, services: Services, *,
         runner: Runner | None, replay: Any = None, record: str | None = None,
         ticket: Ticket | None = None) -> list[Stage[Any, Any, Any]]:
    """The stages a stream needs, in data-flow order.

    :param runner: the model calls (``None`` only when ``replay`` answers the stream)
    :param ticket: a live stream's admission (what it is counted to cost, degraded or not)
    :param replay: a cached transcription that answers the stream instead of the model
    :param record: the cache key to store a finished transcription under
    """
    stages: list[Stage[Any, Any, Any]]
    if replay is not None:
        stages = [CacheReplay(replay)]
    elif runner is None:
        raise ValueError("a pipeline without a cached transcription needs a runner")
    elif options.live is not None:
        stages = [SourceReader(source),
                  LiveTranscriber(runner, services.scheduler, options, options.live,
                                  priority=priority(options), batcher=services.batcher,
                                  realtime=source.realtime, ticket=ticket)]
    else:
        stages = [SourceReader(source), VadChunker(options.vad),
                  Transcriber(runner, services.scheduler, priority=priority(options),
                              translate_audio=_audio_translation(options, services.translators))]
        if record is not None and services.cache is not None:
            stages.append(CacheRecord(services.cache, record))
    if options.translate_to is not None:
        stages.append(TranslationStage(
            services.translators, services.scheduler, target=options.translate_to,
            backend=options.translator, cache=services.cache, priority=priority(options),
            partials=options.translate_partials, whole_sentences=options.live is None,
            timeout=services.translate_timeout))
    return stages


def _audio_translation(options: TranscribeOptions,
                       translators: Translators) -> Callable[[str | None], bool] | None:
    """For a file stream, whether its windows in a language are translated from the audio
    (in the transcription stage); ``None`` when none ever are.

    :raises ConfigError: the translator is unknown or never translates into the target
    """
    target = options.translate_to
    if target is None:
        return None
    translators.validate(options.translator, target)
    if not translators.may_translate_audio(options.translator, target):
        return None
    return functools.partial(translators.translates_audio, options.translator, target=target)


class Pipeline:
    """The task side of a stream: it plans the stages, runs them, and reports the outcome.

    Everything it runs lives inside :attr:`scope`, in a task of the engine's task group;
    the consumer's handle only cancels the scope and waits for :attr:`done`.
    """

    def __init__(self, services: Services, source: AudioSource, options: TranscribeOptions,
                 send: MemoryObjectSendStream[Segment], *, ticket: Ticket | None = None) -> None:
        self.services = services
        self.ticket = ticket
        self.source = source
        self.options = options
        self.send = send
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.error: BaseException | None = None
        """The first failure, raised to the consumer after the last segment."""
        self._stages: list[Stage[Any, Any, Any]] = []
        self._channels: list[MemoryObjectReceiveStream[Any]] = []

    async def run(self) -> None:
        try:
            with self.scope:
                async with self.send:
                    try:
                        await self._plan_and_run()
                    except Exception as exc:
                        self.error = exc
                    except BaseException:
                        if not self.scope.cancel_called:
                            # Cancelled from outside, not by the consumer: the engine closed.
                            # The consumer must hear that the stream was cut, not see an end.
                            self.error = StreamClosedError(
                                "the engine closed before the stream ended, "
                                f"{self.statistics().audio_seconds:.1f} s into its audio")
                        raise
        finally:
            if self.ticket is not None:
                self.ticket.release()
            self.done.set()

    def statistics(self) -> StreamStatistics:
        parts: dict[str, Any] = {}
        for stage in self._stages:
            stats = stage.statistics()
            parts[_STATISTICS_FIELDS[type(stats)]] = stats
        model = parts.get("transcription") or parts.get("live")
        source = parts.get("source")
        cache = parts.pop("cache", None)
        return StreamStatistics(
            duration=self.source.duration, language=model.language if model else None,
            audio_seconds=source.audio_seconds if source else 0.0,
            model_seconds=model.model_seconds if model else 0.0,
            cache=cache.result if cache else None, **parts)

    def backlog(self) -> dict[str, int]:
        """Items waiting now in front of each stage, and of the consumer."""
        names = [type(s).__name__ for s in self._stages[1:]]
        waiting = {name: channel.statistics().current_buffer_used
                   for name, channel in zip(names, self._channels, strict=False)}
        waiting["consumer"] = self.send.statistics().current_buffer_used
        return waiting

    async def _plan_and_run(self) -> None:
        services, options = self.services, self.options
        key = services.registry.key_for(options.model)
        record = await self._cache_key(key)
        replay = await services.cache.get(record) if record and services.cache else None
        if replay is not None:
            self._stages = plan(options, self.source, services, runner=None, replay=replay)
            await self._run_stages()
            return
        async with _Lease(services, key, options) as runner:
            self._stages = plan(options, self.source, services, runner=runner, record=record,
                                ticket=self.ticket)
            await self._run_stages()

    async def _run_stages(self) -> None:
        stages = self._stages
        failures: list[BaseException] = []
        first_send, first_receive = anyio.create_memory_object_stream[Any](0)
        first_send.close()  # the first stage reads nothing
        receives: list[MemoryObjectReceiveStream[Any]] = [first_receive]
        sends: list[MemoryObjectSendStream[Any]] = []
        for stage in stages[1:]:
            send, receive = anyio.create_memory_object_stream[Any](stage.input_buffer)
            sends.append(send)
            receives.append(receive)
        # The consumer's channel closes only after every stage has ended (in run()), so the
        # consumer never sees the end before the error behind it.
        sends.append(self.send.clone())
        self._channels = receives[1:]
        async with anyio.create_task_group() as tg:
            for stage, receive, send in zip(stages, receives, sends, strict=True):
                tg.start_soon(_run_stage, stage, receive, send, failures,
                              name=f"voicesub {type(stage).__name__}")
        if failures:
            raise failures[0]
        for stage in stages:
            await stage.completed()

    async def _cache_key(self, model: ModelKey) -> str | None:
        """The transcription's cache key, ``None`` when it is not cacheable (live, no cache,
        or a source without stable content)."""
        if self.services.cache is None or self.options.live is not None:
            return None
        content = await self.source.content_hash()
        if content is None:
            return None
        o = self.options
        # Translations made from the audio are part of the transcription stage's output.
        from_audio = (o.translate_to if o.translate_to is not None and self.services.translators
                      .may_translate_audio(o.translator, o.translate_to) else None)
        described = json.dumps({
            "model": [model.name, model.device, model.compute_type], "language": o.language,
            "translated_from_audio": from_audio,
            "task": o.task, "beam": o.beam_size, "words": o.word_timestamps,
            "prompt": o.initial_prompt, "vad": dataclasses.asdict(o.vad),
            "cue": [o.max_cue_chars, o.max_cue_duration],
            "pcm": [self.source.sample_rate, self.source.channels], "version": __version__,
        }, sort_keys=True)
        return f"transcript:{content}:{hashlib.sha256(described.encode()).hexdigest()[:32]}"


class _Lease:
    """The stream's runner while its stages run: a leased model, or the worker processes."""

    def __init__(self, services: Services, key: ModelKey, options: TranscribeOptions) -> None:
        self.services, self.key, self.options = services, key, options
        self._model: Any = None

    async def __aenter__(self) -> Runner:
        if self.services.pooled_runner is not None:
            return await self.services.pooled_runner(self.key, self.options)
        self._model = await anyio.to_thread.run_sync(self.services.registry.acquire, self.key)
        return WhisperRunner(self._model, self.options, background=self.services.scheduler
                             .runs_apart(priority(self.options)))

    async def __aexit__(self, *exc_info: object) -> None:
        if self._model is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.services.registry.release, self._model)


async def _run_stage(stage: Stage[Any, Any, Any], receive: MemoryObjectReceiveStream[Any],
                     send: MemoryObjectSendStream[Any], failures: list[BaseException]) -> None:
    try:
        await stage.run(receive, send)
    except* (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the stage after this one stopped reading: its reason, if any, is recorded
    except* Exception as group:
        failures.append(_first_error(group))
    finally:
        receive.close()
        send.close()


def _first_error(exc: BaseException) -> BaseException:
    """The error a caller should see, not a task group's (or ``except*``'s) wrapping of it."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions
                 if not isinstance(e, anyio.get_cancelled_exc_class())]
        if not inner:
            break
        exc = inner[0]
    return exc
