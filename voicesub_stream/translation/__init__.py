"""Translation backends for subtitles in the viewer's language.

The pipeline's translation stage (``translate_to=``) picks a :class:`Translator` per language
pair, calls it through the engine's scheduler and caches every line. ``whisper`` is the one
backend that works from the audio: the transcription stage asks the model for English.
"""

from ._base import Translator, base_language
from ._ct2 import CTranslate2Translator, language_token
from ._fast import FastTranslator
from ._http import LibreTranslateTranslator, OpenAITranslator
from ._registry import BACKENDS, Translators, backends
from ._whisper import WhisperTranslator

__all__ = (
    "BACKENDS",
    "CTranslate2Translator",
    "FastTranslator",
    "LibreTranslateTranslator",
    "OpenAITranslator",
    "Translator",
    "Translators",
    "WhisperTranslator",
    "backends",
    "base_language",
    "language_token",
)
