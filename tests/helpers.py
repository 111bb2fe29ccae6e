"""Audio fixtures built in the tests themselves, and a poll for state with no event."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import anyio
import av
import numpy as np

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from voicesub_stream import AudioChunk, Segment
    from voicesub_stream.stages._live import LiveTranscriber

CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "mp3", ".ogg": "libopus"}


def encode(audio: np.ndarray, path: Path, rate: int = 16_000, layout: str = "mono") -> Path:
    """Encode 16 kHz mono float32 ``audio`` into ``path`` (codec by suffix) with PyAV."""
    channels = 2 if layout == "stereo" else 1
    with av.open(str(path), "w") as out:
        stream = out.add_stream(CODECS[path.suffix], rate=rate)
        stream.layout = layout
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        samples = np.repeat(audio[None, :], channels, 0).T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples.astype(np.float32), format="flt",
                                           layout=layout)
        frame.sample_rate = 16_000
        frame.pts = 0
        for f in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


async def pcm_frames(audio: np.ndarray, frame_bytes: int) -> AsyncIterator[bytes]:
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    for i in range(0, len(data), frame_bytes):
        yield data[i : i + frame_bytes]


async def numpy_frames(audio: np.ndarray, size: int) -> AsyncIterator[np.ndarray]:
    for i in range(0, len(audio), size):
        yield audio[i : i + size]


async def drive_live_stage(stage: LiveTranscriber, audio: np.ndarray, *, speed: float,
                           buffer: int,
                           on_chunk: Callable[[AudioChunk], None] | None = None,
                           ) -> list[Segment]:
    """Feed ``audio`` to a live stage at ``speed`` times real time, through a channel of
    ``buffer`` chunks; every segment it sent. ``on_chunk`` sees each chunk before it goes."""
    import anyio

    from voicesub_stream import AudioChunk, Segment, paced

    send_a, recv_a = anyio.create_memory_object_stream[AudioChunk](buffer)
    send_s, recv_s = anyio.create_memory_object_stream[Segment](10_000)
    source = paced(audio, speed=speed)

    async def feed() -> None:
        async with send_a:
            async for chunk in source.chunks():
                if on_chunk is not None:
                    on_chunk(chunk)
                await send_a.send(chunk)

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        tg.start_soon(stage.run, recv_a, send_s)
    async with recv_s:
        return [s async for s in recv_s]


@contextlib.contextmanager
def live_update_cost(seconds: float) -> Iterator[None]:
    """Count every model's live updates at ``seconds`` core-seconds until some are measured
    (prior and calibration alike): tests of admission fill an engine with one stream, tests
    of other things keep admission out of their way whatever the machine's speed."""
    from unittest import mock

    import voicesub_stream._admission as module

    def calibrate(self: module.Admission, model: str, update_seconds: float) -> None:
        self._calibrated.add(model)
        self._costs.setdefault(model, seconds)

    prior = dict.fromkeys(module.PRIOR_UPDATE_SECONDS, seconds)
    with mock.patch.dict(module.PRIOR_UPDATE_SECONDS, prior), \
            mock.patch.object(module.Admission, "calibrate", calibrate):
        yield


async def until(condition: Callable[[], object], seconds: float = 60.0) -> None:
    """Poll ``condition`` until it holds, for state with no event to wait on (a Ray pool's)."""
    deadline = anyio.current_time() + seconds
    while not condition():
        assert anyio.current_time() < deadline, "the condition never held"
        await anyio.sleep(0.01)
