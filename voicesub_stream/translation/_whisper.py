"""Whisper's own translate task as a translation backend (``translator="whisper"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError, TranslationError
from ._base import Translator, base_language

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("WhisperTranslator",)


class WhisperTranslator(Translator):
    """English from the audio itself: file windows are decoded a second time with Whisper's
    translate task in the transcription stage, and their English is spread over the cues.

    Text cannot be translated this way, so lines that reach :meth:`translate` (live finals,
    or speech the model gave no English for) go out untranslated, with the reason.
    """

    name = "whisper"
    from_audio = True

    def supports(self, source: str, target: str) -> bool:
        return base_language(target) == "en"

    def reaches(self, target: str) -> bool:
        return base_language(target) == "en"

    def validate(self, target: str) -> None:
        if not self.reaches(target):
            raise ConfigError("Whisper's translate task translates into English only; use "
                              f"another translator for {target!r}")

    def translate(self, texts: Sequence[str], *, source: str, target: str) -> list[str]:
        raise TranslationError("Whisper's translate task gave no English for this speech "
                               "(it translates file windows, from the audio)")
