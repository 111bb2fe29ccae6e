"""Memory manager: clean up before the OS has to kill us.

Above ``threshold`` percent of system memory (or ``rss_limit`` bytes of this process) a
*normal* cleanup runs: a full garbage collection and half of every in-process cache dropped,
least recently used first. Halfway from the threshold to 100 % an *aggressive* cleanup
follows: every loaded model no stream holds is unloaded (least recently used first), the CUDA
caching allocator is emptied when torch is present, and glibc returns freed heap to the OS
(``malloc_trim``). A stream that needs an evicted model loads it again.

Native memory: glibc keeps pages freed by the model's and numpy's large temporary buffers
inside its heaps, and gives each thread its own heap (an *arena*, up to 8 per core), so a long
stream's RSS rises in steps that no Python object explains. The Engine caps the arenas
(:func:`limit_malloc_arenas`) and the monitor hands freed pages back every ``trim_interval``
seconds (:meth:`MemoryManager.trim_native`); ``voicesub bench soak`` measures the result.

Diagnostics: :meth:`MemoryManager.track` keeps weak references to objects by kind (a count
that does not fall is a leak), and with profiling on, :meth:`MemoryManager.top_growth` names
the allocation sites that grew most since profiling started (tracemalloc; it slows
allocation, so it is off unless ``ENABLE_MEMORY_PROFILING`` is set).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import gc
import logging
import os
import threading
import time
import tracemalloc
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import psutil

from .._stats import counter

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType
    from typing import Self

    from ..cache import Cache
    from ..models import ModelRegistry
    from ._sampler import Sample

logger = logging.getLogger(__name__)

__all__ = ("MemoryManager", "MemoryStatistics", "limit_malloc_arenas")

Level = Literal["normal", "aggressive"]


@dataclass(frozen=True, slots=True)
class MemoryStatistics:
    threshold: float
    rss_limit: int | None
    cleanups: dict[str, int]
    """Cleanups run so far, by level (normal, aggressive)."""
    last_cleanup: dict[str, Any] | None
    native_trims: int = counter()
    tracked: dict[str, int] = dataclasses.field(default_factory=dict)
    """Objects held per kind now (loaded models, cache entries)."""
    profiling: bool = False


class MemoryManager:
    """Watches memory use and frees what the engine can spare; a context manager."""

    def __init__(self, *, threshold: float = 85.0, rss_limit: int | None = None,
                 registry: ModelRegistry | None = None, caches: Sequence[Cache] = (),
                 profiling: bool = False, cooldown: float = 10.0,
                 trim_interval: float | None = 60.0) -> None:
        self.threshold = threshold
        self.trim_interval = trim_interval
        self.native_trims = 0
        self._trimmed_at = time.monotonic()
        self._trim_lock = threading.Lock()
        self.rss_limit = rss_limit
        self.registry = registry
        self.caches = list(caches)
        self.profiling = profiling
        self.cooldown = cooldown
        self.cleanups: dict[str, int] = {"normal": 0, "aggressive": 0}
        self.last_cleanup: dict[str, Any] | None = None
        self._last_at = -float("inf")
        self._last_level: Level | None = None
        self._tracked: dict[str, weakref.WeakSet[Any]] = {}
        self._baseline: tracemalloc.Snapshot | None = None
        self._started_tracemalloc = False

    def __enter__(self) -> Self:
        if self.profiling:
            self.start_profiling()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_profiling()

    # -- pressure -----------------------------------------------------------------------
    def pressure(self, sample: Sample) -> Level | None:
        """The cleanup ``sample`` calls for, if any."""
        aggressive_at = self.threshold + (100.0 - self.threshold) / 2
        over_rss = self.rss_limit is not None and sample.rss > self.rss_limit
        if sample.memory_percent >= aggressive_at or (
                over_rss and self.rss_limit is not None and sample.rss > 1.25 * self.rss_limit):
            return "aggressive"
        if sample.memory_percent >= self.threshold or over_rss:
            return "normal"
        return None

    def check(self, sample: Sample) -> dict[str, Any] | None:
        """Clean up if ``sample`` is over a threshold (at most once per ``cooldown``, unless
        the pressure got worse). Returns what the cleanup freed, or ``None``."""
        level = self.pressure(sample)
        if level is None:
            self._last_level = None
            return None
        now = time.monotonic()
        escalated = level == "aggressive" and self._last_level != "aggressive"
        if now - self._last_at < self.cooldown and not escalated:
            return None
        self._last_at, self._last_level = now, level
        logger.warning("memory at %.1f %% (RSS %.0f MB): %s cleanup", sample.memory_percent,
                       sample.rss / 1e6, level)
        return self.cleanup(aggressive=level == "aggressive")

    def cleanup(self, *, aggressive: bool = False) -> dict[str, Any]:
        """Free memory now. Call from the thread that owns the caches (the event loop)."""
        process = psutil.Process()
        before = process.memory_info().rss
        trimmed = sum(cache.trim(0.5) for cache in self.caches)
        collected = gc.collect()
        evicted: list[str] = []
        if aggressive:
            if self.registry is not None:
                for key in self.registry.loaded():  # least recently used first
                    if self.registry.evict(key):
                        evicted.append(key.name)
            _empty_cuda_cache()
            _malloc_trim()
        after = process.memory_info().rss
        level = "aggressive" if aggressive else "normal"
        self.cleanups[level] += 1
        self.last_cleanup = {"level": level, "time": time.time(), "cache_entries": trimmed,
                             "gc_objects": collected, "models_evicted": evicted,
                             "rss_before": before, "rss_after": after}
        logger.info("%s cleanup: %d cache entries, %d objects, models %s, RSS %.0f -> %.0f MB",
                    level, trimmed, collected, evicted or "none", before / 1e6, after / 1e6)
        return self.last_cleanup

    def trim_native(self) -> bool:
        """Return the C heap's free pages to the OS if ``trim_interval`` has passed since the
        last time. Blocking (a few milliseconds on a large heap): the monitor calls it from
        its worker thread. Returns whether it trimmed."""
        if self.trim_interval is None:
            return False
        with self._trim_lock:
            now = time.monotonic()
            if now - self._trimmed_at < self.trim_interval:
                return False
            self._trimmed_at = now
            if not _malloc_trim():
                self.trim_interval = None  # not glibc: nothing to do, ever
                return False
            self.native_trims += 1
            return True

    # -- diagnostics --------------------------------------------------------------------
    def track(self, obj: Any, kind: str | None = None) -> None:
        """Count ``obj`` under ``kind`` while it is alive (weakly referenced)."""
        self._tracked.setdefault(kind or type(obj).__name__, weakref.WeakSet()).add(obj)

    def tracked(self) -> dict[str, int]:
        return {kind: len(objs) for kind, objs in self._tracked.items()}

    def start_profiling(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(10)
            self._started_tracemalloc = True
        self._baseline = tracemalloc.take_snapshot()

    def stop_profiling(self) -> None:
        if self._started_tracemalloc:
            tracemalloc.stop()
            self._started_tracemalloc = False
        self._baseline = None

    def top_growth(self, limit: int = 10) -> list[dict[str, Any]]:
        """Allocation sites that grew most since profiling started (needs profiling on)."""
        if self._baseline is None or not tracemalloc.is_tracing():
            return []
        stats = tracemalloc.take_snapshot().compare_to(self._baseline, "lineno")
        return [{"site": str(s.traceback[0]), "size_diff": s.size_diff,
                 "count_diff": s.count_diff, "size": s.size}
                for s in stats[:limit] if s.size_diff > 0]

    def statistics(self) -> MemoryStatistics:
        return MemoryStatistics(self.threshold, self.rss_limit, dict(self.cleanups),
                                self.last_cleanup, self.native_trims, self.tracked(),
                                self._baseline is not None)


def _empty_cuda_cache() -> None:
    from ..models._registry import _empty_cuda_cache as empty

    empty()


_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for this process; returns whether the cap was applied.

    Arenas already created stay, so this is worth most before the process starts threads.
    ``MALLOC_ARENA_MAX`` in the environment wins; other C libraries are left alone.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    libc = _libc()
    return libc is not None and bool(libc.mallopt(_M_ARENA_MAX, arenas))


def _malloc_trim() -> bool:
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@functools.cache
def _libc() -> Any:
    """glibc, or ``None`` elsewhere (musl, macOS: no ``malloc_trim``/``mallopt`` to call)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both must exist
    except (OSError, AttributeError):
        return None
    return libc
