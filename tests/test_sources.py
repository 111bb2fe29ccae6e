"""Every kind of source yields the same text for the same audio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

from voicesub_stream import Engine, open_source
from voicesub_stream._text import word_error_rate
from voicesub_stream.sources._decode import PcmResampler

from .conftest import SENTENCES
from .helpers import encode, numpy_frames, pcm_frames

if TYPE_CHECKING:
    from pathlib import Path




async def text_of(engine: Engine, source: Any, **kw: Any) -> str:
    async with engine.transcribe_stream(source, **kw) as stream:
        return " ".join([seg.text async for seg in stream])


@pytest.mark.speech
async def test_every_source_kind_gives_the_same_text(
    engine: Engine, espeak_wav: Path, espeak_audio: np.ndarray, tmp_path: Path
) -> None:
    reference = await text_of(engine, espeak_wav)
    assert reference
    variants = {
        "path string": str(espeak_wav),
        "container bytes": await anyio.Path(espeak_wav).read_bytes(),
        "numpy array": espeak_audio,
        # 333 bytes: frames that split samples in half must be stitched back together
        "async PCM bytes": pcm_frames(espeak_audio, 333),
        "async numpy frames": numpy_frames(espeak_audio, 4000),
    }
    stereo = np.repeat(espeak_audio[:, None], 2, axis=1)
    variants["async stereo numpy frames"] = numpy_frames(stereo, 4000)
    for name, source in variants.items():
        text = await text_of(engine, source, channels=2 if "stereo" in name else 1)
        if "PCM" in name or "stereo" in name:
            # 16-bit PCM rounds the samples and a stereo downmix rescales them, which may
            # flip an uncertain word or two.
            assert word_error_rate(SENTENCES, text) <= 0.25, text
        else:  # identical samples, identical text
            assert text == reference, name


@pytest.mark.speech
@pytest.mark.parametrize(
    ("rate", "layout", "max_wer"),
    # 8 kHz loses everything above 4 kHz, and tiny.en hears it: a looser bound.
    [(8_000, "mono", 0.4), (44_100, "stereo", 0.25)],
)
async def test_odd_sample_rates_and_layouts_are_resampled(
    engine: Engine, espeak_audio: np.ndarray, tmp_path: Path, rate: int, layout: str,
    max_wer: float,
) -> None:
    path = encode(espeak_audio, tmp_path / f"clip_{rate}.wav", rate, layout)
    async with engine.transcribe_stream(path) as stream:
        segments = [seg async for seg in stream]
    assert word_error_rate(SENTENCES, " ".join(s.text for s in segments)) <= max_wer
    # Timing survives resampling: the last word ends near the end of the speech.
    assert segments[-1].end == pytest.approx(len(espeak_audio) / 16_000, abs=1.0)


def test_pcm_resampler_turns_44k_stereo_into_16k_mono() -> None:
    resampler = PcmResampler(44_100, 2)
    t = np.arange(44_100) / 44_100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    interleaved = np.repeat(tone[:, None], 2, axis=1).reshape(-1)
    out = np.concatenate([resampler.push(interleaved[: 44_100]),
                          resampler.push(interleaved[44_100:]), resampler.flush()])
    assert out.dtype == np.float32
    assert abs(len(out) - 16_000) <= 32
    spectrum = np.abs(np.fft.rfft(out[:16_000]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2  # 1 Hz bins: the tone survived


async def test_chunks_carry_stream_time(espeak_audio: np.ndarray) -> None:
    chunks = [c async for c in open_source(numpy_frames(espeak_audio, 1234)).chunks()]
    position = 0.0
    for chunk in chunks:
        assert chunk.start == pytest.approx(position)
        position = chunk.end
    assert position == pytest.approx(len(espeak_audio) / 16_000)


async def test_file_source_is_decoded_in_bounded_chunks(espeak_wav: Path) -> None:
    source = open_source(espeak_wav)
    sizes = [len(c.samples) async for c in source.chunks()]
    assert max(sizes) <= 16_000
    assert source.duration == pytest.approx(sum(sizes) / 16_000, abs=0.05)


@pytest.mark.speech
async def test_http_url_is_streamed_like_a_file(
    engine: Engine, espeak_wav: Path, espeak_url: str
) -> None:
    assert await text_of(engine, espeak_url) == await text_of(engine, espeak_wav)


async def test_url_that_never_answers_is_a_stage_timeout(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from voicesub_stream.errors import StageTimeoutError
    from voicesub_stream.sources import _decode

    monkeypatch.setattr(_decode, "URL_TIMEOUTS", (0.5, 0.5))
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/live.mp3"
        with pytest.raises(StageTimeoutError, match="did not answer"):
            await text_of(engine, url)
