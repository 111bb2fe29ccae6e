"""The translator interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType
    from typing import Self

__all__ = ("Translator", "base_language")


def base_language(code: str) -> str:
    """``"pt-BR"`` -> ``"pt"``, ``"EN"`` -> ``"en"``: backends are chosen by base language."""
    return code.replace("_", "-").split("-")[0].lower()


class Translator(ABC):
    """Text in one language to text in another, a batch of lines per call.

    ``translate`` is blocking and thread-safe: the pipeline calls it through the engine's
    scheduler, in a worker thread, at the stream's priority. Backends that talk to a server
    do their own async I/O behind the same call.
    """

    name: str = "translator"
    from_audio: bool = False
    """Translates from the audio in the transcription stage rather than from the text."""

    @property
    def model_id(self) -> str:
        """What, besides the backend, decides the output (part of every cache key)."""
        return self.name

    @abstractmethod
    def supports(self, source: str, target: str) -> bool:
        """Whether this backend translates ``source`` to ``target`` (ISO 639-1 codes)."""

    @abstractmethod
    def translate(self, texts: Sequence[str], *, source: str, target: str) -> list[str]:
        """Translate each line; raises :class:`~voicesub_stream.errors.TranslationError`."""

    def reaches(self, target: str) -> bool:
        """Whether this backend, as installed and configured, translates into ``target`` from
        some language (``auto`` refuses a target none reaches before any work is done)."""
        return True

    def validate(self, target: str) -> None:  # noqa: B027 - most backends take any target
        """Refuse, with :class:`~voicesub_stream.errors.ConfigError`, a target this backend
        can never translate into (checked when a stream starts, not per line)."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing
        """Release models or connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
