"""The engine's one gate for model work: priorities, a bound on concurrency, no starvation.

Every model call (a batch of file windows, a live update) asks the :class:`Scheduler` for a
slot. At most ``workers`` run at once; when a slot frees, the waiting job with the best
*effective* priority gets it. Priority classes are ``live`` (0) before ``interactive`` (10)
before ``batch`` (20), or any number (lower goes first). A waiting job's effective priority
improves linearly with its wait, by the whole live-to-batch gap every ``max_wait`` seconds, so
a batch job that has waited ``max_wait`` goes before even a fresh live job: batch work is
delayed, never starved. A job cancelled while it waits leaves the queue at once.

Batch work may instead have slots of its own (``background_workers``): the engine gives it
those on a CPU where its model calls run at the lowest CPU priority, so that the kernel, not
the scheduler, keeps it out of the way of better work, at the granularity of a time slice
rather than of a whole call. Otherwise slots can be reserved (:meth:`reserve`) for work
better than ``batch``: while live streams run, the engine keeps the slots they need free of
batch work, so a long file makes a live update wait for a core only behind one short call
(batch work keeps at least one slot).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from ._config import cpu_count
from ._stats import counter, percentiles
from ._timing import timings
from .errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("PRIORITIES", "ClassStatistics", "Scheduler", "SchedulerStatistics", "auto_workers",
           "priority_value")

logger = logging.getLogger(__name__)

T = TypeVar("T")
PRIORITIES = {"live": 0, "interactive": 10, "batch": 20}
_GAP = PRIORITIES["batch"] - PRIORITIES["live"]


def auto_workers(*, device: str, model_workers: int, cpu_threads: int, gpus: int,
                 process_pool: bool = False) -> int:
    """``MAX_WORKERS=auto``: what the hardware can run at once without oversubscribing.

    On a GPU, each device runs ``model_workers`` calls. On CPU, CTranslate2 already spreads
    one call over ``cpu_threads`` cores, so concurrency beyond cores // threads only queues;
    in one process a model also runs at most ``model_workers`` calls at once (a process pool
    has a model per worker).
    """
    if device == "cuda":
        return max(gpus, 1) * model_workers
    fit = max(1, cpu_count() // (cpu_threads or cpu_count()))
    return fit if process_pool else max(1, min(model_workers, fit))


def priority_value(priority: str | int) -> int:
    if isinstance(priority, int):
        return priority
    try:
        return PRIORITIES[priority]
    except KeyError:
        raise ConfigError(f"unknown priority {priority!r}; use one of {sorted(PRIORITIES)} "
                          "or a number (lower runs first)") from None


@dataclass(frozen=True, slots=True)
class ClassStatistics:
    """One priority class: jobs waiting and running now, outcomes so far, waits for a slot."""

    queued: int
    running: int
    completed: int = counter()
    failed: int = counter()
    cancelled: int = counter()
    wait_p50: float | None = None
    wait_p95: float | None = None


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    workers: int
    running: int
    queued: int
    peak_running: int
    classes: dict[str, ClassStatistics]
    background_workers: int = 0
    """Slots of batch work's own, beside ``workers`` (0: it shares them)."""


@dataclass
class _ClassStats:
    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def snapshot(self) -> ClassStatistics:
        p50, p95 = percentiles(self.waits, 0.5, 0.95)
        return ClassStatistics(self.queued, self.running, self.completed, self.failed,
                               self.cancelled, p50, p95)


class _Waiter:
    __slots__ = ("enqueued", "event", "label", "order", "priority")

    @property
    def background(self) -> bool:
        return self.priority >= PRIORITIES["batch"]

    def __init__(self, priority: int, label: str, enqueued: float, order: int) -> None:
        self.priority, self.label, self.enqueued, self.order = priority, label, enqueued, order
        self.event = anyio.Event()


class Scheduler:
    """Priority-ordered admission of model work, at most ``workers`` jobs at a time.

    One per :class:`~voicesub_stream.Engine` (and one per event loop for streams without
    one). ``statistics()`` reports each priority class: queued, running, completed, failed,
    cancelled, and wait p50/p95 in seconds.
    """

    def __init__(self, workers: int = 1, *, max_wait: float = 10.0, background_workers: int = 0,
                 clock: Callable[[], float] = anyio.current_time) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        if background_workers < 0:
            raise ConfigError(f"background_workers must be >= 0, got {background_workers}")
        if max_wait <= 0:
            raise ConfigError(f"max_wait must be positive, got {max_wait}")
        self.workers = workers
        self.background_workers = background_workers
        """Slots of batch-priority work's own (0: it shares ``workers``)."""
        self.max_wait = max_wait
        self._clock = clock
        self._running = 0
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()
        self._stats: dict[str, _ClassStats] = {}
        self._background = 0  # running jobs of batch priority or worse
        self.reserved = 0
        self.peak_running = 0

    # -- running work -------------------------------------------------------------------
    async def run_sync(self, func: Callable[..., T], *args: Any,
                       priority: str | int = "batch") -> T:
        """Run ``func(*args)`` in a worker thread once the scheduler admits it."""
        return await self.run(lambda: anyio.to_thread.run_sync(func, *args), priority=priority)

    async def run(self, job: Callable[[], Awaitable[T]], *,
                  priority: str | int = "batch") -> T:
        """Await ``job()`` once admitted; the slot is held until it returns or raises."""
        label = priority if isinstance(priority, str) else f"p{priority}"
        stats = self._stats.setdefault(label, _ClassStats())
        value = priority_value(priority)
        await self._acquire(value, label, stats)
        stats.running += 1
        self.peak_running = max(self.peak_running, self._running)
        try:
            result = await job()
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                stats.cancelled += 1
            else:
                stats.failed += 1
            raise
        else:
            stats.completed += 1
            return result
        finally:
            stats.running -= 1
            self._release(value)

    async def run_tasks_async(self, tasks: list[Callable[[], Awaitable[T]]], *,
                              priority: str | int = "batch") -> list[T]:
        """Run every task through the scheduler concurrently; results in task order.

        Each task already holds a slot while it runs: it must not itself wait for this
        scheduler (``run``/``run_sync`` inside it would wait for a slot its caller holds).
        """
        return await self.run_with_priority(tasks, [priority] * len(tasks))

    async def run_with_priority(self, tasks: list[Callable[[], Awaitable[T]]],
                                priorities: list[str | int]) -> list[T]:
        """Like :meth:`run_tasks_async`, each task with its own priority."""
        if len(tasks) != len(priorities):
            raise ConfigError("tasks and priorities differ in length")
        results: list[Any] = [None] * len(tasks)

        async def one(i: int) -> None:
            results[i] = await self.run(tasks[i], priority=priorities[i])

        async with anyio.create_task_group() as tg:
            for i in range(len(tasks)):
                tg.start_soon(one, i)
        return results

    def resize(self, workers: int) -> None:
        """Change the bound at run time."""
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._admit_waiting()

    def reserve(self, slots: int) -> None:
        """Keep ``slots`` of the workers for jobs better than ``batch`` priority (at most all
        but one: batch work is slowed, never stopped)."""
        self.reserved = max(0, min(slots, self.workers - 1))
        self._admit_waiting()

    def slots_for(self, priority: str | int) -> int:
        """How many jobs of ``priority`` may run at once now."""
        if self.runs_apart(priority):
            return self.background_workers
        if priority_value(priority) >= PRIORITIES["batch"]:
            return self.workers - self.reserved
        return self.workers

    def runs_apart(self, priority: str | int) -> bool:
        """Whether jobs of ``priority`` have slots of their own (``background_workers``): a
        job that does must run its model call at the lowest CPU priority."""
        return self.background_workers > 0 and priority_value(priority) >= PRIORITIES["batch"]

    def keep_short(self, priority: str | int) -> bool:
        """Whether jobs of ``priority`` should be kept short now: slots are reserved for
        better work, which may need the core a long batch job holds (a live stream's
        update waits at most one short job for a second core)."""
        return (self.reserved > 0 and not self.runs_apart(priority)
                and priority_value(priority) >= PRIORITIES["batch"])

    @property
    def running(self) -> int:
        """Jobs holding a slot now."""
        return self._running

    @property
    def queued(self) -> int:
        """Jobs waiting for a slot now."""
        return len(self._waiting)

    def statistics(self) -> SchedulerStatistics:
        return SchedulerStatistics(self.workers, self._running, len(self._waiting),
                                   self.peak_running,
                                   {k: v.snapshot() for k, v in self._stats.items()},
                                   self.background_workers)

    # -- admission ------------------------------------------------------------------------
    async def _acquire(self, priority: int, label: str, stats: _ClassStats) -> None:
        now = self._clock()
        background = priority >= PRIORITIES["batch"]
        if self._fits(background) and not any(
                self._same_slots(w.background, background) for w in self._waiting):
            self._running += 1
            self._background += background
            self._waited(label, stats, 0.0)
            return
        waiter = _Waiter(priority, label, now, next(self._order))
        self._waiting.append(waiter)
        stats.queued += 1
        self._admit_waiting()  # a free slot the waiting batch jobs may not take
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter in self._waiting:  # cancelled while waiting: leave the queue now
                self._waiting.remove(waiter)
                stats.queued -= 1
                stats.cancelled += 1
            else:  # admitted in the same instant it was cancelled: give the slot back
                self._release(priority)
            raise
        self._waited(label, stats, self._clock() - waiter.enqueued)

    @staticmethod
    def _waited(label: str, stats: _ClassStats, seconds: float) -> None:
        stats.waits.append(seconds)
        timings.observe(f"scheduler.wait.{label}", seconds)

    def _release(self, priority: int) -> None:
        self._running -= 1
        self._background -= priority >= PRIORITIES["batch"]
        self._admit_waiting()

    def _fits(self, background: bool) -> bool:
        """Whether a job (of batch priority or worse: ``background``) may start now."""
        if self.background_workers:
            if background:
                return self._background < self.background_workers
            return self._running - self._background < self.workers
        if self._running >= self.workers:
            return False
        return not background or self._background < self.workers - self.reserved

    def _same_slots(self, a: bool, b: bool) -> bool:
        """Whether jobs of these two kinds (background or not) compete for slots."""
        return a == b or not self.background_workers

    def _admit_waiting(self) -> None:
        while self._waiting and self._admit_next():
            pass

    def _admit_next(self) -> bool:
        """Admit the waiting job with the best effective priority that may run now."""
        now = self._clock()
        rate = _GAP / self.max_wait

        def effective(w: _Waiter) -> tuple[float, int]:
            return (w.priority - (now - w.enqueued) * rate, w.order)

        eligible = [w for w in self._waiting if self._fits(w.background)]
        if not eligible:
            return False
        waiter = min(eligible, key=effective)
        self._waiting.remove(waiter)
        self._stats[waiter.label].queued -= 1
        self._running += 1
        self._background += waiter.background
        waiter.event.set()
        return True
