from __future__ import annotations

import inspect

import pytest

import voicesub_stream
from voicesub_stream import errors


def test_every_public_name_is_exported_and_exists() -> None:
    for name in voicesub_stream.__all__:
        assert hasattr(voicesub_stream, name), name
    public = {n for n in dir(voicesub_stream) if not n.startswith("_")}
    modules = {n for n in public if inspect.ismodule(getattr(voicesub_stream, n))}
    assert public - modules - {"__version__"} <= set(voicesub_stream.__all__)


def test_every_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.VoicesubError), name


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.StageTimeoutError, TimeoutError),
        (errors.SourceNotFoundError, FileNotFoundError),
        (errors.ConfigError, ValueError),
        (errors.UnsupportedSourceError, TypeError),
        (errors.ModelNotFoundError, LookupError),
    ],
)
def test_errors_also_match_the_builtin_callers_expect(error: type, builtin: type) -> None:
    assert issubclass(error, builtin)


def test_error_tree_is_drawn_in_the_module_docstring() -> None:
    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert name in errors.__doc__, name


def test_a_misspelt_option_is_named_with_the_closest_one() -> None:
    with pytest.raises(errors.ConfigError, match="unknown option 'modle'; did you mean 'model'"):
        voicesub_stream.transcribe_stream("talk.mp3", modle="tiny.en")
    with pytest.raises(errors.ConfigError, match="unknown option 'colour'; the options are"):
        voicesub_stream.TranscribeOptions().with_changes(colour="blue")


@pytest.mark.speech
def test_transcribe_returns_the_segments_in_a_script_and_inside_an_event_loop(
        espeak_audio: object, settings: voicesub_stream.Settings) -> None:
    import anyio

    segments = voicesub_stream.transcribe(espeak_audio, settings=settings)
    assert len(segments) >= 2
    assert all(isinstance(s, voicesub_stream.Segment) and s.is_final for s in segments)
    assert "journey" in " ".join(s.text for s in segments).lower()

    async def notebook_cell() -> list[voicesub_stream.Segment]:
        return voicesub_stream.transcribe(espeak_audio, settings=settings)  # a loop runs

    assert [s.text for s in anyio.run(notebook_cell)] == [s.text for s in segments]


def test_the_keyword_options_are_spelled_out_as_the_options_fields() -> None:
    import dataclasses
    import typing

    from voicesub_stream._config import OptionChanges

    fields = {f.name for f in dataclasses.fields(voicesub_stream.TranscribeOptions)}
    assert set(typing.get_type_hints(OptionChanges)) == fields
