"""The exceptions voicesub_stream raises, all under one root.

::

    VoicesubError
    ├── ConfigError (ValueError)             bad option or environment value
    ├── SourceError                          the audio could not be read
    │   ├── UnsupportedSourceError (TypeError)   not a kind of source we know how to read
    │   ├── SourceNotFoundError (FileNotFoundError)  a path that does not exist
    │   ├── AudioDecodeError                 bytes that are not (complete) audio
    │   └── DeviceError                      no microphone, or no PortAudio to reach one
    ├── ModelError
    │   ├── ModelNotFoundError (LookupError) a name that resolves to no model here
    │   └── ModelLoadError                   the model exists but would not load
    ├── TranscriptionError                   the model failed while running
    │   └── WorkerCrashedError               a model worker process died during the job
    ├── TranslationError                     a translation backend failed or lacks the pair
    ├── StreamClosedError                    a stream or engine used after it was closed
    ├── OverloadedError                      the engine is full: a live stream was refused
    └── StageTimeoutError (TimeoutError)     a pipeline stage took longer than allowed

Third-party errors are translated at the boundary (``raise AudioDecodeError(...) from exc``)
so callers never need to import PyAV or CTranslate2 to handle failures.
"""

from __future__ import annotations

__all__ = (
    "AudioDecodeError",
    "ConfigError",
    "DeviceError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OverloadedError",
    "SourceError",
    "SourceNotFoundError",
    "StageTimeoutError",
    "StreamClosedError",
    "TranscriptionError",
    "TranslationError",
    "UnsupportedSourceError",
    "VoicesubError",
    "WorkerCrashedError",
)


class VoicesubError(Exception):
    """Base class of every error raised by voicesub_stream."""


class ConfigError(VoicesubError, ValueError):
    """An option or environment variable has a value we cannot use."""


class SourceError(VoicesubError):
    """The audio source could not be opened or read."""


class UnsupportedSourceError(SourceError, TypeError):
    """The object passed as a source is not a kind of source we can read."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A source path does not exist."""


class AudioDecodeError(SourceError):
    """The source is not audio, holds no audio stream, or is corrupt beyond recovery."""


class DeviceError(SourceError):
    """An audio input device could not be opened (none present, PortAudio or extra missing)."""


class ModelError(VoicesubError):
    """Base class of model resolution and loading errors."""


class ModelNotFoundError(ModelError, LookupError):
    """No model matches the requested name; the message lists what was tried."""


class ModelLoadError(ModelError):
    """The model files were found but CTranslate2 could not load them."""


class TranscriptionError(VoicesubError):
    """The speech model raised while transcribing a window."""


class WorkerCrashedError(TranscriptionError):
    """A model worker process died mid-job; that job failed and the worker was replaced."""


class TranslationError(VoicesubError):
    """A translation backend failed, timed out, or has no model for the language pair.

    A stream does not fail with it: the segment goes out untranslated, with the reason in
    ``metadata["translation_error"]``.
    """


class StreamClosedError(VoicesubError):
    """A stream or engine was used after it had been closed."""


class OverloadedError(VoicesubError):
    """The engine's live streams already fill its capacity, so a new one was refused at once
    rather than slowing every admitted stream down. ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StageTimeoutError(VoicesubError, TimeoutError):
    """A pipeline stage did not finish within its time limit."""
