"""Translation backends for subtitles in the viewer's language.

The pipeline's translation stage (``translate_to=``) picks a :class:`Translator` per language
pair, calls it through the engine's scheduler and caches every line.
"""

from ._base import Translator, base_language
from ._ct2 import CTranslate2Translator, language_token
from ._fast import FastTranslator
from ._http import LibreTranslateTranslator, OpenAITranslator
from ._registry import BACKENDS, Translators, configured

__all__ = (
    "BACKENDS",
    "CTranslate2Translator",
    "FastTranslator",
    "LibreTranslateTranslator",
    "OpenAITranslator",
    "Translator",
    "Translators",
    "base_language",
    "configured",
    "language_token",
)
