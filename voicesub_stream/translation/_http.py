"""Translation servers over HTTP: LibreTranslate's API and OpenAI-compatible chat completions.

Calls are blocking (the pipeline runs them in a worker thread through the scheduler) on one
pooled ``httpx.Client`` per backend, at most ``concurrency`` at a time. Connection errors,
timeouts, 429 and 5xx answers are retried ``retries`` times with exponential backoff; other
4xx answers and replies that do not parse fail at once. Every failure is a
:class:`~voicesub_stream.errors.TranslationError`, which the stage turns into an untranslated
segment with the reason attached.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import TranslationError
from ._base import Translator, base_language

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx

__all__ = ("LibreTranslateTranslator", "OpenAITranslator")

logger = logging.getLogger(__name__)


class _Retry(Exception):
    pass


class _HttpTranslator(Translator):
    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 10.0,
                 retries: int = 2, backoff: float = 0.5, concurrency: int = 4) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._limit = threading.BoundedSemaphore(concurrency)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _post(self, path: str, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> Any:
        import httpx

        client = self._http()
        last = ""
        with self._limit:
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    response = client.post(f"{self.url}{path}", json=payload, headers=headers)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _Retry(f"HTTP {response.status_code}")
                    if response.status_code >= 400:
                        raise TranslationError(f"{self.name}: HTTP {response.status_code}: "
                                               f"{response.text[:200]}")
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise TranslationError(f"{self.name}: reply is not JSON") from exc
                except (_Retry, httpx.TransportError) as exc:
                    last = str(exc) or type(exc).__name__
                    logger.info("%s: %s (attempt %d of %d)", self.name, last, attempt + 1,
                                self.retries + 1)
        raise TranslationError(f"{self.name}: {last} after {self.retries + 1} attempts")

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                try:
                    import httpx
                except ImportError as exc:
                    raise TranslationError("HTTP translation needs httpx: pip install "
                                           "'voicesub-stream[translate]'") from exc
                self._client = httpx.Client(timeout=self.timeout)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class LibreTranslateTranslator(_HttpTranslator):
    """A LibreTranslate server (``POST /translate`` with a list of lines)."""

    name = "libretranslate"

    def __init__(self, url: str, *, languages: Sequence[str] | None = None,
                 **options: Any) -> None:
        super().__init__(url, **options)
        self.languages = {base_language(c) for c in languages} if languages else None

    @property
    def model_id(self) -> str:
        return f"libretranslate:{self.url}"

    def supports(self, source: str, target: str) -> bool:
        if self.languages is None:
            return True  # the server knows; an unsupported pair comes back as an error
        return base_language(source) in self.languages and base_language(target) in self.languages

    def translate(self, texts: Sequence[str], *, source: str, target: str) -> list[str]:
        payload: dict[str, Any] = {"q": list(texts), "source": base_language(source),
                                   "target": base_language(target), "format": "text"}
        if self.api_key:
            payload["api_key"] = self.api_key
        reply = self._post("/translate", payload)
        lines = reply.get("translatedText") if isinstance(reply, dict) else None
        if isinstance(lines, str) and len(texts) == 1:
            lines = [lines]
        if not (isinstance(lines, list) and len(lines) == len(texts)
                and all(isinstance(x, str) for x in lines)):
            raise TranslationError(f"{self.name}: malformed reply {str(reply)[:200]}")
        return lines


class OpenAITranslator(_HttpTranslator):
    """Any OpenAI-compatible chat-completions API (OpenAI, vLLM, llama.cpp, Ollama, ...).

    The lines go as one JSON array and must come back as one, same length, same order.
    """

    name = "openai"

    def __init__(self, url: str, *, model: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.model = model

    @property
    def model_id(self) -> str:
        return f"openai:{self.url}:{self.model}"

    def supports(self, source: str, target: str) -> bool:
        return True  # a language model has no fixed pair list

    def translate(self, texts: Sequence[str], *, source: str, target: str) -> list[str]:
        system = (f"Translate subtitles from language '{base_language(source)}' to "
                  f"'{target}'. The user sends a JSON array of lines; answer with only a JSON "
                  "array of the translated lines, same length, same order.")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        reply = self._post("/chat/completions", {
            "model": self.model, "temperature": 0,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": json.dumps(list(texts),
                                                                ensure_ascii=False)}],
        }, headers)
        try:
            content = reply["choices"][0]["message"]["content"]
            lines = json.loads(content.strip().removeprefix("```json").strip("`\n "))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise TranslationError(f"{self.name}: malformed reply {str(reply)[:200]}") from exc
        if not (isinstance(lines, list) and len(lines) == len(texts)
                and all(isinstance(x, str) for x in lines)):
            raise TranslationError(f"{self.name}: expected {len(texts)} lines, got "
                                   f"{str(lines)[:200]}")
        return lines
