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
