"""The VAD chunker on real (espeak-ng) speech fed in small pieces."""

from __future__ import annotations

import itertools

import anyio
import numpy as np

from voicesub_stream import AudioChunk, VadOptions
from voicesub_stream.stages import SpeechWindow, VadChunker

RATE = 16_000


async def chunk_windows(audio: np.ndarray, options: VadOptions, piece: int = 5_920
                        ) -> list[SpeechWindow]:
    send_a, recv_a = anyio.create_memory_object_stream[AudioChunk](4)
    send_w, recv_w = anyio.create_memory_object_stream[SpeechWindow](100)

    async def feed() -> None:
        async with send_a:
            for i in range(0, len(audio), piece):
                await send_a.send(AudioChunk(audio[i : i + piece], i / RATE))

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        tg.start_soon(VadChunker(options).run, recv_a, send_w)
    async with recv_w:
        return [w async for w in recv_w]


def check_layout(windows: list[SpeechWindow], max_window: float) -> None:
    regions = [r for w in windows for r in w.regions]
    assert regions == sorted(regions)
    for (_, end), (start, _) in itertools.pairwise(regions):
        assert end <= start  # no sample is transcribed twice
    for w in windows:
        assert w.duration <= max_window + 1e-9
        assert len(w.audio) == sum(e - s for s, e in w.regions)
    assert [w.index for w in windows] == list(range(len(windows)))


async def test_silence_between_utterances_is_cut_out(espeak_audio: np.ndarray) -> None:
    gap = np.zeros(3 * RATE, np.float32)
    audio = np.concatenate([espeak_audio, gap, espeak_audio])
    windows = await chunk_windows(audio, VadOptions())
    check_layout(windows, 20.0)
    middle = len(espeak_audio) + len(gap) // 2
    assert not any(s <= middle < e for w in windows for s, e in w.regions)
    speech = sum(w.duration for w in windows)
    assert 2 * len(espeak_audio) / RATE * 0.7 < speech < len(audio) / RATE - 2.0


async def test_long_speech_is_packed_into_bounded_windows(espeak_audio: np.ndarray) -> None:
    audio = np.tile(espeak_audio, 6)  # ~58 s
    windows = await chunk_windows(audio, VadOptions(max_window=15.0))
    check_layout(windows, 15.0)
    assert len(windows) >= 4
    assert windows[-1].end > len(audio) / RATE - 1.5  # the tail was not lost at EOF


async def test_window_times_map_back_to_the_stream_clock(espeak_audio: np.ndarray) -> None:
    gap = np.zeros(2 * RATE, np.float32)
    audio = np.concatenate([espeak_audio[: 3 * RATE], gap, espeak_audio[: 3 * RATE]])
    (window,) = await chunk_windows(audio, VadOptions())
    assert len(window.regions) == 2
    (s0, e0), (s1, _) = window.regions
    first_len = (e0 - s0) / RATE
    assert window.stream_time(0.0) == s0 / RATE
    assert window.stream_time(first_len, is_end=True) == e0 / RATE
    assert window.stream_time(first_len) == s1 / RATE
    assert window.stream_time(first_len + 0.5) == (s1 / RATE) + 0.5


async def test_without_vad_everything_is_transcribed_in_fixed_windows() -> None:
    audio = np.zeros(45 * RATE, np.float32)
    windows = await chunk_windows(audio, VadOptions(enabled=False, max_window=20.0))
    check_layout(windows, 20.0)
    assert sum(w.duration for w in windows) == 45.0
