"""The consumer's handle on one stream: :class:`SegmentStream`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from ._pipeline import Pipeline, StreamStatistics
from ._types import Segment
from .stages import SEGMENT_BUFFER

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Self

    from anyio.streams.memory import MemoryObjectSendStream

    from ._config import TranscribeOptions
    from .sources import AudioSource

    Launcher = Callable[[AudioSource, TranscribeOptions, MemoryObjectSendStream[Segment]],
                        Awaitable[Pipeline]]

__all__ = ("SegmentStream",)


class SegmentStream:
    """An async iterator of :class:`Segment` objects, and an async context manager.

    Nothing runs until the first ``__anext__`` or ``async with``. The stream's tasks run in
    its engine's task group (for module-level calls, the event loop's default engine), never
    in the consumer's task. ``async with`` guarantees they are cancelled and waited for on
    exit. A bare ``async for`` that breaks early cancels them when the stream is garbage
    collected (at once in CPython); the cancellation then completes in the background.
    Segments finished before a failure are delivered first, then the error is raised, and
    raised again by any later ``__anext__``. A stream its engine closed before the audio
    ended raises :class:`~voicesub_stream.errors.StreamClosedError`.
    """

    def __init__(self, source: AudioSource, options: TranscribeOptions,
                 launch: Launcher) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Segment](SEGMENT_BUFFER)
        self._source = source
        self._options = options
        self._launch = launch  # starts the pipeline in its engine's task group
        # The running tasks reference only the pipeline, never this object, so dropping the
        # last reference to a stream really lets it be collected (and cancelled).
        self._pipeline: Pipeline | None = None
        self._started = False
        self._closed = False
        self._error: Exception | None = None

    @property
    def source(self) -> AudioSource:
        return self._source

    @property
    def options(self) -> TranscribeOptions:
        return self._options

    @property
    def degraded(self) -> bool:
        """Whether the engine, too full for a full live stream, admitted this one degraded
        (finals only, at a longer step) because its options accept that."""
        ticket = self._pipeline.ticket if self._pipeline is not None else None
        return ticket is not None and ticket.degraded

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Segment:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise StopAsyncIteration
        await self._start()
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            error = self._pipeline.error if self._pipeline is not None else None
            await self.aclose()
            if isinstance(error, Exception):
                # Every later call hears it too: a failed or cut stream never looks ended.
                self._error = error
            if error is not None:
                raise error from error.__cause__  # its own cause, not EndOfStream
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the stream's work and wait until its tasks and threads have finished."""
        if self._closed:
            return
        self._closed = True
        self._receive.close()
        if self._pipeline is None:
            self._send.close()
            return
        self._pipeline.scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._pipeline.done.wait()

    def __del__(self) -> None:
        if not self._closed:
            self._receive.close()
            if self._pipeline is not None:
                self._pipeline.scope.cancel()
            else:
                self._send.close()

    def statistics(self) -> StreamStatistics:
        """Progress figures for this stream (audio read, speech found, model time)."""
        if self._pipeline is None:
            return StreamStatistics(duration=self._source.duration, language=None,
                                    audio_seconds=0.0, model_seconds=0.0, cache=None)
        return self._pipeline.statistics()

    async def _start(self) -> None:
        if self._started:
            if self._error is not None:
                raise self._error
            return
        self._started = True
        try:
            self._pipeline = await self._launch(self._source, self._options, self._send)
        except BaseException as exc:
            # Refused (the engine is full or closed): nothing runs, and every later call
            # hears the same reason rather than an empty stream.
            self._error = exc if isinstance(exc, Exception) else None
            self._closed = True
            self._send.close()
            self._receive.close()
            raise
