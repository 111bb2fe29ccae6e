"""PyAV decoding and resampling to 16 kHz mono float32, one chunk at a time."""

from __future__ import annotations

import io
import logging
import os
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from .._types import SAMPLE_RATE
from ..errors import AudioDecodeError, SourceNotFoundError, StageTimeoutError

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    import numpy.typing as npt

logger = logging.getLogger(__name__)

# Seconds to wait for a network source to open, then for each read, before giving up.
URL_TIMEOUTS = (15.0, 30.0)


def open_container(target: str | bytes, *, is_url: bool = False) -> Any:
    """Open a path, URL or in-memory container with PyAV, mapping its errors to ours.

    :raises SourceNotFoundError: the path does not exist
    :raises AudioDecodeError: not a media file, or no audio stream in it
    """
    try:
        if isinstance(target, bytes):
            container = av.open(io.BytesIO(target), mode="r")
        else:
            container = av.open(target, mode="r", timeout=URL_TIMEOUTS if is_url else None)
    except FileNotFoundError as exc:  # av.error.FileNotFoundError subclasses both
        raise SourceNotFoundError(f"no such audio file: {target!r}") from exc
    except av.error.ExitError as exc:  # FFmpeg's interrupt callback: our timeout fired
        raise StageTimeoutError(
            f"{_describe(target)} did not answer within {URL_TIMEOUTS[0]:.0f} s"
        ) from exc
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AudioDecodeError(f"cannot open {_describe(target)} as media: {exc}") from exc
    if not container.streams.audio:
        container.close()
        raise AudioDecodeError(f"{_describe(target)} holds no audio stream")
    return container


def container_duration(container: Any) -> float | None:
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return float(container.duration / av.time_base)
    return None


def decode_chunks(
    container: Any, chunk_samples: int
) -> Generator[npt.NDArray[np.float32], None, None]:
    """Yield mono float32 chunks of ``chunk_samples`` (the last may be shorter).

    Corrupt packets are skipped and counted, the way ffmpeg's command line does it, so a file
    damaged in the middle still yields everything readable. A file that yields nothing but
    errors raises :class:`AudioDecodeError`.
    """
    damage = _Damage()
    produced = 0
    for chunk in _rechunk(_decoded(container, damage), chunk_samples):
        produced += len(chunk)
        yield chunk
    if damage.count:
        if produced == 0:
            raise AudioDecodeError(f"no decodable audio ({damage.count} corrupt packets): "
                                   f"{damage.last}")
        logger.warning("skipped %d corrupt packet(s) while decoding: %s", damage.count,
                       damage.last)


class _Damage:
    """Corrupt packets skipped while decoding one container."""

    def __init__(self) -> None:
        self.count = 0
        self.last: Exception | None = None

    def note(self, exc: Exception) -> None:
        self.count += 1
        self.last = exc


def _decoded(container: Any, damage: _Damage) -> Iterator[npt.NDArray[np.float32]]:
    """The first audio stream, resampled to 16 kHz mono float32, in pieces as decoded."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    stream = container.streams.audio[0]

    def frames() -> Iterator[Any]:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.ExitError:
                raise
            except (av.FFmpegError, ValueError) as exc:
                damage.note(exc)
        yield None  # flush the resampler

    try:
        for frame in frames():
            for out in resampler.resample(frame):
                yield np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1)
    except av.error.ExitError as exc:
        raise StageTimeoutError(
            f"the source stopped sending data for {URL_TIMEOUTS[1]:.0f} s"
        ) from exc
    except (av.FFmpegError, ValueError) as exc:
        damage.note(exc)


def _rechunk(pieces: Iterator[npt.NDArray[np.float32]],
             size: int) -> Iterator[npt.NDArray[np.float32]]:
    """``pieces`` joined and cut again into runs of ``size`` samples (the last may be short)."""
    pending: list[npt.NDArray[np.float32]] = []
    pending_len = 0
    for piece in pieces:
        pending.append(piece)
        pending_len += len(piece)
        while pending_len >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            rest = joined[size:]
            pending, pending_len = ([rest], len(rest)) if len(rest) else ([], 0)
    if pending_len:
        yield np.concatenate(pending)


class PcmResampler:
    """Stateful converter from interleaved PCM (s16 or float) at any rate to 16 kHz mono float32."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self._layout = {1: "mono", 2: "stereo"}.get(channels) or f"{channels}c"
        self._passthrough = sample_rate == SAMPLE_RATE and channels == 1
        self._resampler = None if self._passthrough else av.AudioResampler(
            format="flt", layout="mono", rate=SAMPLE_RATE
        )
        self._pts = 0

    def push(self, interleaved: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._passthrough:
            return interleaved
        frame = av.AudioFrame.from_ndarray(
            interleaved.reshape(1, -1), format="flt", layout=self._layout
        )
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        self._pts += len(interleaved) // self.channels
        return self._drain(frame)

    def flush(self) -> npt.NDArray[np.float32]:
        return np.zeros(0, np.float32) if self._passthrough else self._drain(None)

    def _drain(self, frame: Any) -> npt.NDArray[np.float32]:
        assert self._resampler is not None
        outs = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(outs) if outs else np.zeros(0, np.float32)


def read_audio(path: str | os.PathLike[str]) -> npt.NDArray[np.float32]:
    """A whole file decoded to 16 kHz mono float32 (blocking; for clips that fit in memory)."""
    container = open_container(os.fspath(path))
    try:
        pieces = list(decode_chunks(container, SAMPLE_RATE))
    finally:
        container.close()
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def _describe(target: str | bytes) -> str:
    return f"{len(target)} bytes" if isinstance(target, bytes) else repr(target)
