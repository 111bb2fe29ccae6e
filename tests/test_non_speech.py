"""No invented text: sound that is not speech gives no words, in file and in live mode."""

from __future__ import annotations

import numpy as np
import pytest

from voicesub_stream import Engine, LiveOptions
from voicesub_stream._text import word_error_rate

from .conftest import SENTENCES

pytestmark = pytest.mark.speech

RATE = 16_000


def _at(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """``signal`` scaled to an RMS level of ``dbfs``."""
    rms = float(np.sqrt(np.mean(signal**2))) or 1.0
    return (signal * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def _band(noise: np.ndarray, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(len(noise), 1 / RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, len(noise))


def _pink(noise: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(len(noise), 1 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, len(noise))


def _chords(seconds: float) -> np.ndarray:
    """Triads with their overtones, a new one every two seconds, each struck and decaying."""
    t = np.arange(round(2.0 * RATE)) / RATE
    progression = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6),
                   (196.0, 246.9, 293.7)]
    bars = []
    for i in range(round(seconds / 2)):
        chord = sum(np.sin(2 * np.pi * f * k * t) / k for f in progression[i % 4]
                    for k in (1, 2, 3))
        bars.append(chord * np.exp(-1.5 * t))
    return np.concatenate(bars)


def signal(kind: str, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(3)
    white = rng.standard_normal(round(seconds * RATE))
    if kind == "silence":
        return np.zeros(round(seconds * RATE), np.float32)
    if kind == "white noise":
        return _at(white, -30)
    if kind == "pink noise":
        return _at(_pink(white), -25)
    if kind == "440 Hz tone":
        return _at(np.sin(2 * np.pi * 440 * np.arange(len(white)) / RATE), -12)
    if kind == "speech-band noise, -10 dBFS":
        return _at(_band(white, 300, 3400), -10)
    if kind == "chords":
        return _at(_chords(seconds), -16)
    raise ValueError(kind)


KINDS = ["silence", "white noise", "pink noise", "440 Hz tone", "speech-band noise, -10 dBFS",
         "chords"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_minute_of_non_speech_gives_no_words(engine: Engine, kind: str) -> None:
    async with engine.transcribe_stream(signal(kind, 60.0)) as stream:
        segments = [seg async for seg in stream]
    assert [s.text for s in segments] == []


@pytest.mark.parametrize("kind", KINDS)
async def test_live_mode_invents_nothing_either(engine: Engine, kind: str) -> None:
    async with engine.transcribe_stream(signal(kind, 15.0), live=LiveOptions()) as stream:
        segments = [seg async for seg in stream]
    assert [s.text for s in segments] == []


async def test_a_minute_of_silence_after_speech_adds_nothing(engine: Engine,
                                                            espeak_audio: np.ndarray) -> None:
    speech_end = len(espeak_audio) / RATE
    audio = np.concatenate([espeak_audio, signal("silence", 60.0)])
    for live in (None, LiveOptions()):
        async with engine.transcribe_stream(audio, live=live) as stream:
            finals = [seg async for seg in stream if seg.is_final]
        assert word_error_rate(SENTENCES, " ".join(s.text for s in finals)) <= 0.3
        assert finals[-1].end <= speech_end + 1.0
