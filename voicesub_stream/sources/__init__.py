"""Audio sources: anything we can turn into a stream of 16 kHz mono :class:`AudioChunk`.

Accepted: a path or URL (decoded by PyAV), ``bytes`` of a container file, a numpy array, and
async iterables of raw PCM ``bytes`` or numpy frames. Decoding runs in worker threads one chunk
at a time, so a long file is never held in memory whole and the event loop never blocks.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import anyio
import anyio.to_thread
import numpy as np

from .._timing import timer
from .._types import SAMPLE_RATE, AudioChunk
from ..errors import ConfigError, UnsupportedSourceError
from ._decode import (
    PcmResampler,
    container_duration,
    decode_chunks,
    open_container,
    read_audio,
)
from ._mic import microphone

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = (
    "AudioInput",
    "AudioSource",
    "PacedSource",
    "microphone",
    "open_source",
    "paced",
    "probe_duration",
    "read_audio",
)

AudioInput: TypeAlias = Union[
    str,
    "os.PathLike[str]",
    bytes,
    bytearray,
    memoryview,
    "npt.NDArray[Any]",
    AsyncIterable[bytes],
    AsyncIterable["npt.NDArray[Any]"],
]

CHUNK_SECONDS = 1.0
"""Decoded sources are cut into chunks this long: small enough to keep memory flat and
cancellation prompt, large enough that the per-chunk thread hop costs nothing."""

CLOSE_TIMEOUT = 5.0
"""Seconds a caller's frame iterator gets to finish its own cleanup when the stream stops."""

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class AudioSource:
    """One opened input. Iterate :meth:`chunks` once; ``duration`` is known for files."""

    def __init__(self, source: AudioInput, *, sample_rate: int | None, channels: int) -> None:
        if channels < 1:
            raise ConfigError(f"channels must be >= 1, got {channels}")
        if sample_rate is not None and not 1000 <= sample_rate <= 384_000:
            raise ConfigError(f"sample_rate out of range: {sample_rate}")
        self._source = source
        self.sample_rate = sample_rate
        self.channels = channels
        self.duration: float | None = None
        if isinstance(source, np.ndarray):
            frames = source.shape[0] if source.ndim else 0
            self.duration = frames / (sample_rate or SAMPLE_RATE)

    @property
    def realtime(self) -> bool:
        """Whether the audio arrives as it is spoken (an async iterator: a socket, a
        microphone) rather than as fast as it can be read (a file, bytes, an array)."""
        return isinstance(self._source, AsyncIterable)

    async def content_hash(self) -> str | None:
        """SHA-256 of the input's bytes (plus how raw samples are to be read), or ``None``
        for inputs that cannot be read twice: URLs and iterators. The cache keys on it."""
        src = self._source
        if isinstance(src, (str, os.PathLike)) and not _is_url(src):
            return await anyio.to_thread.run_sync(_hash_file, os.fspath(src))
        if isinstance(src, (bytes, bytearray, memoryview)):
            return hashlib.sha256(src).hexdigest()
        if isinstance(src, np.ndarray):
            digest = hashlib.sha256(np.ascontiguousarray(src).tobytes())
            digest.update(f"{src.dtype}{src.shape}{self.sample_rate}{self.channels}".encode())
            return digest.hexdigest()
        return None

    def chunks(self) -> AsyncGenerator[AudioChunk, None]:
        """The source as 16 kHz mono chunks with stream timestamps.

        :raises UnsupportedSourceError: not a kind of source we can read
        :raises SourceNotFoundError: a path that does not exist
        :raises AudioDecodeError: unreadable or corrupt audio
        """
        src = self._source
        if isinstance(src, (str, os.PathLike)):
            return self._container(os.fspath(src), is_url=_is_url(src))
        if isinstance(src, (bytes, bytearray, memoryview)):
            return self._container(bytes(src), is_url=False)
        if isinstance(src, np.ndarray):
            return self._frames(_single(src))
        if isinstance(src, AsyncIterable):
            return self._frames(src)
        raise UnsupportedSourceError(
            f"cannot read audio from {type(src).__name__}: expected a path, URL, bytes, numpy "
            "array, or an async iterable of PCM bytes / numpy frames"
        )

    async def _container(
        self, target: str | bytes, *, is_url: bool
    ) -> AsyncGenerator[AudioChunk, None]:
        container = await anyio.to_thread.run_sync(lambda: open_container(target, is_url=is_url))
        gen = decode_chunks(container, int(CHUNK_SECONDS * SAMPLE_RATE))
        try:
            self.duration = container_duration(container)
            position = 0
            while True:
                with timer("stage.decode"):
                    samples = await anyio.to_thread.run_sync(next, gen, None)
                if samples is None:
                    break
                yield AudioChunk(samples, position / SAMPLE_RATE)
                position += len(samples)
        finally:
            # No thread can be inside the decoder here: it only runs within the awaited
            # run_sync above, which finishes before cancellation is delivered.
            gen.close()
            container.close()

    async def _frames(self, frames: AsyncIterable[Any]) -> AsyncGenerator[AudioChunk, None]:
        rate = self.sample_rate or SAMPLE_RATE
        resampler = PcmResampler(rate, self.channels)
        iterator = aiter(frames)
        try:
            async with aclosing(self._convert(iterator, resampler)) as converted:
                async for chunk in converted:
                    yield chunk
        finally:
            # Close the caller's generator now, not whenever it is garbage collected, so its
            # own cleanup (a socket, a device) runs when the stream stops.
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    await aclose()

    async def _convert(
        self, frames: AsyncIterator[Any], resampler: PcmResampler
    ) -> AsyncGenerator[AudioChunk, None]:
        leftover = b""
        position = 0
        max_samples = int(CHUNK_SECONDS * SAMPLE_RATE) * 4
        async for frame in frames:
            if isinstance(frame, (bytes, bytearray, memoryview)):
                data = leftover + bytes(frame)
                usable = len(data) - len(data) % (2 * self.channels)
                leftover = data[usable:]
                pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
            elif isinstance(frame, np.ndarray):
                pcm = _as_float_interleaved(frame, self.channels)
            else:
                raise UnsupportedSourceError(
                    f"audio frames must be bytes or numpy arrays, got {type(frame).__name__}"
                )
            out = resampler.push(pcm)
            for start in range(0, len(out), max_samples):  # oversized frames are split
                piece = out[start : start + max_samples]
                yield AudioChunk(piece, position / SAMPLE_RATE)
                position += len(piece)
        tail = resampler.flush()
        if len(tail):
            yield AudioChunk(tail, position / SAMPLE_RATE)


class PacedSource(AudioSource):
    """Another source fed at real-time pace (or ``speed`` times it), as a microphone would.

    Audio up to stream time *t* becomes available *t / speed* seconds after the first chunk.
    :meth:`fed_at` tells when a stream time was fed, which is how latency is measured. A
    consumer that falls behind gets the late chunks at once, as from a real device's buffer.
    """

    def __init__(self, inner: AudioSource, *, speed: float = 1.0, chunk: float = 0.1) -> None:
        if speed <= 0:
            raise ConfigError(f"speed must be positive, got {speed}")
        super().__init__(inner._source, sample_rate=inner.sample_rate, channels=inner.channels)
        self.inner = inner
        self.speed = speed
        self._chunk = max(round(chunk * SAMPLE_RATE), 1)
        self._fed: list[tuple[float, float]] = []  # (stream seconds fed up to, monotonic time)

    @property
    def realtime(self) -> bool:
        return True

    def chunks(self) -> AsyncGenerator[AudioChunk, None]:
        return self._paced()

    def fed_at(self, stream_time: float) -> float | None:
        """``time.monotonic()`` when audio up to ``stream_time`` had been fed, if it has."""
        i = bisect.bisect_left(self._fed, (stream_time, -math.inf))
        return self._fed[i][1] if i < len(self._fed) else None

    async def _paced(self) -> AsyncGenerator[AudioChunk, None]:
        started: float | None = None
        async with aclosing(self.inner.chunks()) as chunks:
            async for chunk in chunks:
                self.duration = self.inner.duration
                for i in range(0, len(chunk.samples), self._chunk):
                    piece = AudioChunk(chunk.samples[i : i + self._chunk],
                                       chunk.start + i / SAMPLE_RATE)
                    now = time.monotonic()
                    started = now if started is None else started
                    delay = started + piece.end / self.speed - now
                    if delay > 0:
                        await anyio.sleep(delay)
                    self._fed.append((piece.end, time.monotonic()))
                    yield piece


def paced(source: AudioInput | AudioSource, *, speed: float = 1.0, chunk: float = 0.1,
          sample_rate: int | None = None, channels: int = 1) -> PacedSource:
    """Feed ``source`` in real time (``speed`` > 1 for a time-compressed rehearsal)."""
    inner = open_source(source, sample_rate=sample_rate, channels=channels)
    return PacedSource(inner, speed=speed, chunk=chunk)


def open_source(
    source: AudioInput | AudioSource, *, sample_rate: int | None = None, channels: int = 1
) -> AudioSource:
    """Wrap ``source``; nothing is opened until :meth:`AudioSource.chunks` is iterated.

    ``sample_rate`` and ``channels`` describe raw PCM and numpy input (default 16 kHz mono);
    container formats carry their own.
    """
    if isinstance(source, AudioSource):
        return source
    return AudioSource(source, sample_rate=sample_rate, channels=channels)


def probe_duration(path: str | os.PathLike[str]) -> float | None:
    """Duration of a media file in seconds, from its headers (None when it does not say)."""
    container = open_container(os.fspath(path), is_url=_is_url(path))
    try:
        return container_duration(container)
    finally:
        container.close()


def _is_url(source: str | os.PathLike[str]) -> bool:
    return _URL.match(os.fspath(source)) is not None


def _hash_file(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return None  # reading it for real will raise the right error
    return digest.hexdigest()


async def _single(array: npt.NDArray[Any]) -> AsyncIterator[npt.NDArray[Any]]:
    yield array


def _as_float_interleaved(frame: npt.NDArray[Any], channels: int) -> npt.NDArray[np.float32]:
    if frame.ndim == 2:
        if frame.shape[1] != channels:
            raise ConfigError(
                f"frame has {frame.shape[1]} channels but the stream was opened with {channels}"
            )
    elif frame.ndim != 1:
        raise UnsupportedSourceError(f"audio frames must be 1-D or 2-D, got shape {frame.shape}")
    if frame.dtype == np.int16:
        data = frame.astype(np.float32) / 32768.0
    elif frame.dtype == np.int32:
        data = frame.astype(np.float32) / 2_147_483_648.0
    elif np.issubdtype(frame.dtype, np.floating):
        data = frame.astype(np.float32, copy=False)
    else:
        raise UnsupportedSourceError(f"unsupported sample type {frame.dtype}")
    return np.ascontiguousarray(data.reshape(-1))
