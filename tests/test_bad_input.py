"""Bad input: a typed error or a correct result, never a hang or a library's raw traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from voicesub_stream import Engine, LiveOptions, Segment, Settings, TranscribeOptions
from voicesub_stream.errors import (
    AudioDecodeError,
    ConfigError,
    ModelNotFoundError,
    SourceError,
    SourceNotFoundError,
    UnsupportedSourceError,
    VoicesubError,
)
from voicesub_stream.testing import assert_no_leaks, resource_snapshot

from .helpers import encode, pcm_frames

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


async def collect(engine: Engine, source: Any, **kw: Any) -> list[Segment]:
    async with engine.transcribe_stream(source, **kw) as stream:
        return [seg async for seg in stream]


async def test_empty_file_is_an_audio_decode_error(engine: Engine, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    before = resource_snapshot()
    with pytest.raises(AudioDecodeError):
        await collect(engine, empty)
    await assert_no_leaks(before)


async def test_text_file_is_an_audio_decode_error(engine: Engine, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("These are meeting notes, not audio.\n" * 50)
    with pytest.raises(AudioDecodeError, match=r"notes\.txt"):
        await collect(engine, text)


async def test_missing_path_is_source_not_found(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError):
        await collect(engine, tmp_path / "nope.flac")


async def test_random_bytes_give_a_typed_error_or_nothing(engine: Engine) -> None:
    noise = np.random.default_rng(7).bytes(64_000)
    outcome: object
    try:
        outcome = await collect(engine, noise)
    except VoicesubError as exc:
        outcome = exc
    assert isinstance(outcome, (AudioDecodeError, list))


@pytest.mark.parametrize("suffix", [".flac", ".mp3"])
async def test_truncated_file_yields_what_was_readable(
    engine: Engine, espeak_audio: np.ndarray, tmp_path: Path, suffix: str
) -> None:
    whole = encode(espeak_audio, tmp_path / f"clip{suffix}")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    segments = await collect(engine, cut)
    text = " ".join(s.text for s in segments).lower()
    assert "journey" in text  # the second sentence lies inside the first 60 %
    assert segments[-1].end < len(espeak_audio) / 16_000 * 0.75


async def test_zero_length_pcm_stream_gives_no_segments(engine: Engine) -> None:
    async def nothing() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b""

    assert await collect(engine, nothing(), sample_rate=16_000) == []


async def test_silence_gives_no_segments(engine: Engine) -> None:
    assert await collect(engine, np.zeros(16_000 * 5, np.float32)) == []


@pytest.mark.parametrize("source", [42, {"path": "a.wav"}, object()])
async def test_unknown_source_type_is_unsupported(engine: Engine, source: Any) -> None:
    with pytest.raises(UnsupportedSourceError):
        await collect(engine, source)


async def test_bad_frame_mid_stream_fails_after_delivering_earlier_speech(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    async def frames() -> AsyncIterator[Any]:
        async for frame in pcm_frames(espeak_audio, 3200):
            yield frame
        yield "not audio"

    received: list[Segment] = []

    async def consume() -> None:
        async with engine.transcribe_stream(frames()) as stream:
            async for seg in stream:
                received.append(seg)

    with pytest.raises(UnsupportedSourceError, match="str"):
        await consume()
    # Every sentence spoken before the bad frame came out before the error.
    assert "money" in " ".join(s.text for s in received).lower()


@pytest.mark.parametrize("failure", [RuntimeError("device gone"),
                                     ConnectionResetError(104, "Connection reset by peer")])
@pytest.mark.parametrize("live", [None, LiveOptions(policy="block")], ids=["file", "live"])
async def test_a_failing_source_yields_its_speech_then_a_source_error(
    engine: Engine, espeak_audio: np.ndarray, failure: Exception, live: LiveOptions | None
) -> None:
    async def frames() -> AsyncIterator[bytes]:
        async for frame in pcm_frames(espeak_audio, 3200):
            yield frame
        raise failure

    received: list[Segment] = []
    before = resource_snapshot()
    async def consume() -> None:
        async with engine.transcribe_stream(frames(), live=live) as stream:
            async for seg in stream:
                received.append(seg)

    with pytest.raises(SourceError, match=type(failure).__name__) as caught:
        await consume()
    assert caught.value.__cause__ is failure
    assert "money" in " ".join(s.text for s in received if s.is_final).lower()
    await assert_no_leaks(before)


async def test_unknown_model_offline_fails_fast_naming_what_was_tried(engine: Engine) -> None:
    with pytest.raises(ModelNotFoundError, match="tried") as info:
        await collect(engine, np.zeros(16_000, np.float32), model="small")
    assert "offline" in str(info.value)


async def test_unknown_model_online_fails_with_a_clear_message(tmp_path: Path) -> None:
    settings = Settings.load(model="voicesub-tests/no-such-model", device="cpu",
                             cache_dir=tmp_path, offline=False)
    async with Engine(settings) as engine:
        with pytest.raises(ModelNotFoundError, match="no-such-model"):
            await collect(engine, np.zeros(16_000, np.float32))


async def test_model_directory_without_weights_is_not_found(
    engine: Engine, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match=r"model\.bin"):
        await collect(engine, np.zeros(16_000, np.float32), model=str(tmp_path))


async def test_a_background_copy_that_cannot_load_fails_files_only(
    settings: Settings, espeak_audio: np.ndarray, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicesub_stream.errors import ModelLoadError
    from voicesub_stream.models import _registry

    real = _registry.load_whisper

    def load(path: str, **kw: Any) -> Any:
        if kw.get("background"):
            raise RuntimeError("out of memory")
        return real(path, **kw)

    monkeypatch.setattr(_registry, "load_whisper", load)
    async with Engine(settings) as engine:
        if not engine.scheduler.runs_apart("batch"):
            pytest.skip("batch work has no copy of its own here")
        before = resource_snapshot()
        with pytest.raises(ModelLoadError, match=r"background copy.*out of memory"):
            await collect(engine, espeak_audio)
        await assert_no_leaks(before)
        # Live streams run on the model itself, which loaded.
        finals = [s for s in await collect(engine, espeak_audio, live=LiveOptions())
                  if s.is_final]
        assert finals


def test_invalid_options_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        TranscribeOptions(beam_size=0)
    with pytest.raises(ConfigError):
        TranscribeOptions(task="summarise")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        TranscribeOptions(priority="urgent")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Settings.load(device="tpu")
    with pytest.raises(ConfigError):
        Settings.load(compute_type="int3")


def test_bad_environment_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICESUB_MAX_LOADED_MODELS", "zero")
    with pytest.raises(ConfigError, match="max_loaded_models"):
        Settings.load()


async def test_engine_refuses_streams_when_not_running(settings: Settings) -> None:
    from voicesub_stream.errors import StreamClosedError

    engine = Engine(settings)
    with pytest.raises(StreamClosedError):
        engine.transcribe_stream(np.zeros(10, np.float32))
