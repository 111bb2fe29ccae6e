"""Feed raw 16-bit PCM as it arrives: here a file decoded by PyAV to 8 kHz and sent in 20 ms
frames, the way a socket or a phone bridge would deliver them.

    python examples/pcm_stream.py voicesub_stream/data/welcome.flac
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator  # noqa: TC003

import anyio
import anyio.lowlevel
import av

from voicesub_stream import transcribe_stream


async def pcm_frames(path: str, rate: int = 8_000) -> AsyncIterator[bytes]:
    """20 ms frames of s16le mono at ``rate``, like a telephony stream."""
    with av.open(path) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        pcm = b"".join(
            out.to_ndarray().astype("<i2").tobytes()
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        )
    step = rate // 50 * 2
    for i in range(0, len(pcm), step):
        yield pcm[i : i + step]
        await anyio.lowlevel.checkpoint()  # a real source would wait for the network here


async def main(path: str) -> None:
    async with transcribe_stream(pcm_frames(path), sample_rate=8_000, model="tiny.en") as segs:
        async for seg in segs:
            print(f"{seg.start:6.2f}-{seg.end:6.2f} {seg.text}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
