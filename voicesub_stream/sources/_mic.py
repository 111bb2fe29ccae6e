"""Microphone input through sounddevice (PortAudio), extra ``mic``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import anyio

from .._types import SAMPLE_RATE
from ..errors import DeviceError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as exc:
        raise DeviceError(
            "microphone input needs the 'mic' extra: pip install 'voicesub-stream[mic]'"
        ) from exc
    except OSError as exc:  # sounddevice imports but cannot load libportaudio
        raise DeviceError(f"PortAudio is not available ({exc}); on Debian: "
                          "apt-get install libportaudio2") from exc
    return sounddevice


async def microphone(
    *, device: int | str | None = None, sample_rate: int = SAMPLE_RATE, channels: int = 1,
    block: float = 0.1, max_queue: float = 30.0,
) -> AsyncGenerator[npt.NDArray[np.float32], None]:
    """Frames of float32 audio from an input device, as they are captured.

    PortAudio calls back on its own thread; frames cross to the event loop through a bounded
    queue of ``max_queue`` seconds. If the consumer falls that far behind, new frames are
    dropped and counted in a warning rather than growing memory without bound.

    :raises DeviceError: no sounddevice/PortAudio, no such device, or it cannot be opened
    """
    sd = _sounddevice()
    loop = asyncio.get_running_loop()
    send, receive = anyio.create_memory_object_stream[Any](max(int(max_queue / block), 1))
    dropped = 0

    def put(frame: npt.NDArray[np.float32]) -> None:
        nonlocal dropped
        try:
            send.send_nowait(frame)
        except anyio.WouldBlock:
            dropped += 1
            logger.warning("microphone queue full: dropped %.1f s of audio so far",
                           dropped * block)
        except anyio.ClosedResourceError:
            pass

    def callback(indata: Any, frames: int, time: Any, status: Any) -> None:
        if status:
            logger.warning("audio input status: %s", status)
        loop.call_soon_threadsafe(put, indata.copy())

    try:
        stream = sd.InputStream(samplerate=sample_rate, channels=channels, dtype="float32",
                                blocksize=round(sample_rate * block), device=device,
                                callback=callback)
        stream.start()
    except (sd.PortAudioError, ValueError) as exc:
        send.close()
        receive.close()
        raise DeviceError(f"cannot open audio input {device or '(default)'}: {exc}") from exc
    try:
        async with receive:
            async for frame in receive:
                yield frame.reshape(-1) if channels == 1 else frame
    finally:
        stream.stop()
        stream.close()
        send.close()
