"""Translation stage: segments in, the same segments with ``translation`` set out.

Whatever segments are already waiting go to the backend as one batch of lines (a cue is a
sentence or a piece of one), through the engine's scheduler at the stream's priority. Every
line is looked up in the cache first, so a repeated line (common in subtitles) reaches the
backend once. A backend that fails, times out or has no model for the pair never stops the
stream: its segments go out untranslated with the reason in ``metadata["translation_error"]``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._timing import timer
from .._types import Segment
from ..errors import TranslationError
from ..subtitles._cues import ends_sentence, spread
from ..translation import base_language
from ._base import SEGMENT_BUFFER, Stage, receive_waiting

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ..cache import Cache
    from ..scheduler import Scheduler
    from ..translation import Translator, Translators

__all__ = ("TranslationStage", "TranslationStatistics")

logger = logging.getLogger(__name__)

MAX_HELD = 8
"""Cues a sentence may span before it is translated anyway (text without punctuation)."""
PARTIAL_INTERVAL = 1.0
"""Seconds between translated partials of one stream (partials change faster than that)."""




@dataclass(frozen=True, slots=True)
class TranslationStatistics:
    segments: int
    translated: int
    cache_hits: int
    cache_misses: int
    backend_calls: int
    failures: int
    seconds: float
    hit_ratio: float | None


@dataclass
class _Counters:
    segments: int = 0
    translated: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    backend_calls: int = 0
    failures: int = 0
    seconds: float = 0.0

    @property
    def hit_ratio(self) -> float | None:
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else None


class TranslationStage(Stage[Segment, Segment, TranslationStatistics]):
    """Stage: :class:`Segment` in, translated :class:`Segment` out, order kept."""

    input_buffer = SEGMENT_BUFFER

    def __init__(self, translators: Translators, scheduler: Scheduler, *, target: str,
                 backend: str = "auto", cache: Cache | None = None,
                 priority: str | int = "batch", partials: bool = False,
                 batch_size: int = 16, timeout: float = 10.0,
                 whole_sentences: bool = True) -> None:
        self.translators = translators
        self.scheduler = scheduler
        self.target = target
        self.backend = backend
        self.cache = cache
        self.priority = priority
        self.partials = partials
        self.batch_size = batch_size
        self.timeout = timeout
        self.whole_sentences = whole_sentences
        self._counts = _Counters()
        translators.validate(backend, target)  # a bad name fails at the start, not per line
        self._last_partial = -float("inf")

    def statistics(self) -> TranslationStatistics:
        c = self._counts
        return TranslationStatistics(c.segments, c.translated, c.cache_hits, c.cache_misses,
                                     c.backend_calls, c.failures, round(c.seconds, 3),
                                     c.hit_ratio)

    async def run(self, receive: MemoryObjectReceiveStream[Segment],
                  send: MemoryObjectSendStream[Segment]) -> None:
        async with receive, send:
            held: list[Segment] = []
            eof = False
            while not eof:
                batch, eof = await receive_waiting(receive, self.batch_size)
                ready, held = self._sentences(held + batch, flush=eof)
                for segment in await self.translate(ready):
                    await send.send(segment)

    def _sentences(self, segments: list[Segment], *,
                   flush: bool) -> tuple[list[Segment], list[Segment]]:
        """Split off the segments that end a sentence, with all before them; the rest wait
        for their sentence's end (file mode only: live finals never wait)."""
        if not self.whole_sentences or flush:
            return segments, []
        cut = 0
        for i, seg in enumerate(segments):
            if not seg.is_final or ends_sentence(seg.text):
                cut = i + 1
        if len(segments) - cut >= MAX_HELD:  # no punctuation for a long while: stop waiting
            cut = len(segments)
        return segments[:cut], segments[cut:]

    async def translate(self, segments: list[Segment]) -> list[Segment]:
        """``segments`` with translations (or the reason there is none) filled in."""
        out = list(segments)
        for source, idx in self._by_language(out).items():
            group = [segments[i] for i in idx]
            for i, translated in zip(idx, await self._translate_group(group, source),
                                     strict=True):
                out[i] = translated
        return out

    def _by_language(self, out: list[Segment]) -> dict[str, list[int]]:
        """Indices of the segments to translate, by source language; segments already in
        the target language get their own text as translation in ``out``."""
        groups: dict[str, list[int]] = {}
        now = anyio.current_time()
        for i, seg in enumerate(out):
            if seg.translation is not None:  # translated upstream (Whisper's translate task)
                continue
            if not seg.is_final:
                if not self.partials or now - self._last_partial < PARTIAL_INTERVAL:
                    continue
                self._last_partial = now
            self._counts.segments += 1
            source = seg.language or "en"
            if base_language(source) == base_language(self.target):
                out[i] = dataclasses.replace(seg, translation=seg.text)
            else:
                groups.setdefault(source, []).append(i)
        return groups

    async def _translate_group(self, segments: list[Segment], source: str) -> list[Segment]:
        # A sentence cut into several cues is translated whole, then spread back over its
        # cues: word order differs between languages, fragments translate badly.
        units = (_units(segments) if self.whole_sentences
                 else [[k] for k in range(len(segments))])
        texts = [" ".join(segments[k].text.strip() for k in unit) for unit in units]
        try:
            whole = await self._lines(texts, source)
        except TranslationError as exc:
            self._counts.failures += 1
            logger.warning("translation %s->%s failed: %s", source, self.target, exc)
            return [dataclasses.replace(seg, metadata={**seg.metadata,
                                                       "translation_error": str(exc)})
                    for seg in segments]
        out = list(segments)
        for unit, line in zip(units, whole, strict=True):
            pieces = spread(line, [segments[k].text for k in unit])
            for k, piece in zip(unit, pieces, strict=True):
                out[k] = dataclasses.replace(segments[k], translation=piece)
                self._counts.translated += 1
        return out

    async def _lines(self, texts: list[str], source: str) -> list[str]:
        translator = self.translators.choose(self.backend, source, self.target)
        if translator is None:
            raise TranslationError(f"no translator for {source}->{self.target} "
                                   f"(backend {self.backend})")
        keys = [self._key(t, source, translator) for t in texts]
        found: dict[str, Any] = {}
        if self.cache is not None:
            found = await self.cache.get_many(set(keys))
        missing = [t for t, k in zip(texts, keys, strict=True) if k not in found]
        self._counts.cache_hits += len(texts) - len(missing)
        self._counts.cache_misses += len(missing)
        todo = list(dict.fromkeys(missing))  # a line repeated in the batch is asked once
        if todo:
            call = functools.partial(translator.translate, todo, source=source,
                                     target=self.target)
            started = anyio.current_time()
            self._counts.backend_calls += 1
            try:
                with anyio.fail_after(self.timeout), timer("stage.translate"):
                    # Abandoned on timeout: a hung backend must not hold the stream.
                    lines = await self.scheduler.run(
                        lambda: anyio.to_thread.run_sync(call, abandon_on_cancel=True),
                        priority=self.priority)
            except TimeoutError:
                raise TranslationError(f"{translator.name} took longer than "
                                       f"{self.timeout:g} s") from None
            except TranslationError:
                raise
            except Exception as exc:  # a backend bug must not end the stream either
                raise TranslationError(f"{translator.name} failed: {exc!r}") from exc
            finally:
                self._counts.seconds += anyio.current_time() - started
            if len(lines) != len(todo):
                raise TranslationError(f"{translator.name} returned {len(lines)} lines for "
                                       f"{len(todo)}")
            key_of = dict(zip(texts, keys, strict=True))
            fresh = {key_of[t]: line for t, line in zip(todo, lines, strict=True)}
            found.update(fresh)
            if self.cache is not None:
                await self.cache.set_many(fresh)
        return [str(found[k]) for k in keys]

    def _key(self, text: str, source: str, translator: Translator) -> str:
        described = "\x1f".join((" ".join(text.split()), base_language(source),
                                 self.target, translator.model_id))
        return f"translation:{hashlib.sha256(described.encode()).hexdigest()[:32]}"


def _units(segments: list[Segment]) -> list[list[int]]:
    """Indices of ``segments`` grouped into sentences (a partial is a unit of its own)."""
    units: list[list[int]] = []
    current: list[int] = []
    for k, seg in enumerate(segments):
        if not seg.is_final:
            if current:
                units.append(current)
                current = []
            units.append([k])
            continue
        current.append(k)
        if ends_sentence(seg.text) or len(current) >= MAX_HELD:
            units.append(current)
            current = []
    if current:
        units.append(current)
    return units

