"""Function timing: ``@timed("name")`` and ``with timer("name")``, sync or async.

Every observation costs two ``perf_counter_ns`` calls, a lock, a ring-buffer append and a
bucket count (``voicesub bench monitor`` measures it): cheap enough to leave on in every
stage. Each name keeps its count, total and maximum since start, a count per
:data:`BUCKETS` bound since start (what Prometheus histograms are made of), and its latest
4096 durations for p50/p95/p99 in a ring allocated up front (its memory does not creep while
it fills).
"""

from __future__ import annotations

import bisect
import functools
import inspect
import itertools
import threading
from array import array
from dataclasses import dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from ._stats import counter, percentiles

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import TracebackType

__all__ = ("TimingStatistics", "Timings", "timed", "timer", "timings")

P = ParamSpec("P")
R = TypeVar("R")
RECENT = 4096
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
           30.0, 60.0)
"""Upper bounds, in seconds, of the cumulative duration counts: from a timed function's
microseconds to a live final's seconds and a long file's model call."""
_BOUNDS_NS = tuple(round(b * 1e9) for b in BUCKETS)


@dataclass(frozen=True, slots=True)
class TimingStatistics:
    """One name's durations, in seconds."""

    count: int = counter()
    total: float = counter()
    mean: float | None = None
    max: float = 0.0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    buckets: tuple[int, ...] = ()
    """Durations up to each :data:`BUCKETS` bound since start (cumulative)."""


class _Histogram:
    __slots__ = ("count", "in_bucket", "lock", "max_ns", "recent", "total_ns", "window_max_ns")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0
        self.window_max_ns = 0  # longest since the sampler last looked (for alerts)
        self.recent = array("q", bytes(8 * RECENT))  # slot count % RECENT is the next
        self.in_bucket = array("q", bytes(8 * (len(BUCKETS) + 1)))  # the last: past them all

    def observe(self, ns: int) -> None:
        bucket = bisect.bisect_left(_BOUNDS_NS, ns)
        # acquire/release rather than ``with``: this is the hot path of every timed call.
        self.lock.acquire()
        self.in_bucket[bucket] += 1
        self.recent[self.count % RECENT] = ns
        self.count += 1
        self.total_ns += ns
        if ns > self.window_max_ns:
            self.window_max_ns = ns
            if ns > self.max_ns:
                self.max_ns = ns
        self.lock.release()


class Timings:
    """Named duration histograms; thread-safe. The process-wide one is :data:`timings`."""

    def __init__(self) -> None:
        self._histograms: dict[str, _Histogram] = {}
        self._lock = threading.Lock()

    def histogram(self, name: str) -> _Histogram:
        try:
            return self._histograms[name]
        except KeyError:
            with self._lock:
                return self._histograms.setdefault(name, _Histogram())

    def observe(self, name: str, seconds: float) -> None:
        self.histogram(name).observe(round(seconds * 1e9))

    def snapshot(self) -> dict[str, TimingStatistics]:
        """Per name: count, total, mean, max, p50, p95, p99 (seconds)."""
        out: dict[str, TimingStatistics] = {}
        for name, h in list(self._histograms.items()):
            with h.lock:
                recent = h.recent[: min(h.count, RECENT)].tolist()
                count, total, longest = h.count, h.total_ns, h.max_ns
                in_bucket = h.in_bucket.tolist()
            p50, p95, p99 = percentiles(recent, 0.5, 0.95, 0.99)
            out[name] = TimingStatistics(
                count, total / 1e9, total / count / 1e9 if count else None, longest / 1e9,
                None if p50 is None else p50 / 1e9, None if p95 is None else p95 / 1e9,
                None if p99 is None else p99 / 1e9,
                tuple(itertools.accumulate(in_bucket[:-1])))
        return out

    def take_window_max(self) -> dict[str, float]:
        """The longest duration per name since the last call (seconds), then reset."""
        out = {}
        for name, h in list(self._histograms.items()):
            with h.lock:
                if h.window_max_ns:
                    out[name] = h.window_max_ns / 1e9
                    h.window_max_ns = 0
        return out

    def reset(self) -> None:
        with self._lock:
            self._histograms.clear()


timings = Timings()
"""The process-wide timings every ``timed``/``timer`` records into by default."""


class timer:  # lower case: used like a function, ``with timer("decode"):``
    """Time a block: ``with timer("name"):`` or ``async with timer("name"):``."""

    __slots__ = ("_histogram", "_started")

    def __init__(self, name: str, registry: Timings = timings) -> None:
        self._histogram = registry.histogram(name)
        self._started = 0

    def __enter__(self) -> timer:
        self._started = perf_counter_ns()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._histogram.observe(perf_counter_ns() - self._started)

    async def __aenter__(self) -> timer:
        self._started = perf_counter_ns()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._histogram.observe(perf_counter_ns() - self._started)


@overload
def timed(name: str, registry: Timings = ...) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
@overload
def timed(name: Callable[P, R], registry: Timings = ...) -> Callable[P, R]: ...


def timed(name: str | Callable[..., Any], registry: Timings = timings) -> Any:
    """Decorator recording each call's duration under ``name`` (default: the qualified name).

    Works on plain functions and on coroutine functions (the time until the coroutine
    finishes, waits included).
    """
    if callable(name):
        return timed(f"{name.__module__}.{name.__qualname__}", registry)(name)

    histogram = registry.histogram(name)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            coro_func: Callable[..., Coroutine[Any, Any, Any]] = func

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = perf_counter_ns()
                try:
                    return await coro_func(*args, **kwargs)
                finally:
                    histogram.observe(perf_counter_ns() - started)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter_ns()
            try:
                return func(*args, **kwargs)
            finally:
                histogram.observe(perf_counter_ns() - started)

        return wrapper

    return decorate


