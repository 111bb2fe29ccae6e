"""Cross-stream batching: live windows of many streams answered by one model call.

Each live update asks :meth:`StreamBatcher.transcribe` for one window. Requests of runners
with one :attr:`~voicesub_stream.models.Runner.batch_key` (same model, same decoding options)
join a group; one batch task per group waits for a scheduler slot and, once admitted, takes
its share of the waiting requests (best priority first, at most ``max_batch``): all of them
when no other slot is free, else an even share over the free slots, whose calls take the
rest beside it. A call is a :class:`~voicesub_stream.models.WhisperBatch` here, or one call
of a Ray actor. Company is therefore free while the model is busy: requests pile up behind
the running calls. When the model is idle, a request waits at most ``window`` seconds
for the other streams of its group, and not at all when it is the group's only stream, so a
lone stream is never slowed down.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from .._stats import counter
from ..errors import StreamClosedError
from ..scheduler import priority_value
from ._base import even_share

if TYPE_CHECKING:
    from collections.abc import Hashable
    from types import TracebackType
    from typing import Self

    from anyio.abc import TaskGroup

    from ..models import Runner, WindowText
    from ..scheduler import Scheduler
    from ._vad import SpeechWindow

__all__ = ("BatchingStatistics", "StreamBatcher")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchingStatistics:
    batches: int = counter()
    windows: int = counter()
    mean_batch: float | None = None
    sizes: dict[int, int] = field(default_factory=dict)
    """How many model calls had each number of windows."""


@dataclass(eq=False)
class _Request:
    runner: Runner
    window: SpeechWindow
    prompt: str | None
    priority: str | int
    done: anyio.Event = field(default_factory=anyio.Event)
    result: WindowText | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Group:
    prompt_limit: int | None
    members: int = 0
    pending: list[_Request] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)
    leader: bool = False  # a batch task is waiting to take the pending requests


class StreamBatcher:
    """Shares model calls between live streams; an async context manager owning its tasks."""

    def __init__(self, scheduler: Scheduler, *, window: float = 0.02,
                 max_batch: int = 8) -> None:
        self.scheduler = scheduler
        self.window = window
        self.max_batch = max_batch
        self._groups: dict[Hashable, _Group] = {}
        self._tg: TaskGroup | None = None
        self.batches = 0
        self.windows = 0
        self.sizes: Counter[int] = Counter()

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            # The body's own exception passes through untouched, never wrapped in a group.
            await self._tg.__aexit__(None, None, None)
            return None
        finally:
            self._tg = None
            for group in self._groups.values():  # streams still waiting hear why
                for r in group.pending:
                    r.error = StreamClosedError("the engine closed")
                    r.done.set()
                group.pending.clear()

    def member(self, runner: Runner, *, prompt_limit: int | None) -> _Membership:
        """Count a live stream in its group while it runs (``async with``): a request waits
        for company only while its group has other members."""
        return _Membership(self, runner, prompt_limit)

    async def transcribe(self, runner: Runner, window: SpeechWindow, prompt: str | None, *,
                         prompt_limit: int | None, priority: str | int) -> WindowText:
        """``runner``'s answer for ``window``, computed together with other streams' windows.

        :raises TranscriptionError: the model failed (every request of that call gets it)
        """
        if runner.batch_key is None or self._tg is None:
            (result,) = await self.scheduler.run_sync(
                lambda: runner.transcribe([window], prompts=[prompt],
                                          prompt_limit=prompt_limit), priority=priority)
            return result
        group = self._group(runner, prompt_limit)
        request = _Request(runner, window, prompt, priority)
        group.pending.append(request)
        group.arrived.set()
        if not group.leader:
            group.leader = True
            self._tg.start_soon(self._lead, group)
        try:
            await request.done.wait()
        except BaseException:
            if request in group.pending:  # cancelled before its call: leave the queue now
                group.pending.remove(request)
            raise
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def statistics(self) -> BatchingStatistics:
        return BatchingStatistics(
            self.batches, self.windows,
            round(self.windows / self.batches, 2) if self.batches else None,
            dict(sorted(self.sizes.items())))

    def _group(self, runner: Runner, prompt_limit: int | None) -> _Group:
        key = (runner.batch_key, prompt_limit)
        if key not in self._groups:
            self._groups[key] = _Group(prompt_limit)
        return self._groups[key]

    async def _lead(self, group: _Group, *, company: bool = True) -> None:
        """Wait briefly for company (unless told not to), then for a slot; then run whatever
        is waiting."""
        if company and self.window > 0:
            with anyio.move_on_after(self.window):
                while 0 < len(group.pending) < min(group.members, self.max_batch):
                    group.arrived = anyio.Event()
                    await group.arrived.wait()
        if not group.pending:  # every request was cancelled meanwhile
            group.leader = False
            return
        best = min(group.pending, key=lambda r: priority_value(r.priority)).priority
        await self.scheduler.run(lambda: self._call(group), priority=best)

    async def _call(self, group: _Group) -> None:
        group.pending.sort(key=lambda r: priority_value(r.priority))
        take = self._share(len(group.pending))
        batch = group.pending[:take]
        del group.pending[:take]
        group.leader = bool(group.pending)
        if group.pending and self._tg is not None:  # the rest go in a call of their own
            self._tg.start_soon(functools.partial(self._lead, group, company=False))
        if not batch:
            return
        self.batches += 1
        self.windows += len(batch)
        self.sizes[len(batch)] += 1

        try:
            await anyio.to_thread.run_sync(_answer, batch, group.prompt_limit)
        finally:
            for r in batch:
                if r.result is None and r.error is None:
                    r.error = StreamClosedError("the engine closed")
                r.done.set()

    def _share(self, pending: int) -> int:
        """How many of ``pending`` requests this call takes: an even share over the slots
        free now, this call's among them, so that idle devices, actors or cores take the rest
        in calls of their own beside it rather than all of it waiting for one long call.
        Requests that wait for a busy one join the next call that frees instead."""
        idle = max(0, self.scheduler.workers - self.scheduler.running)
        return even_share(pending, idle + 1, most=self.max_batch)


def _answer(batch: list[_Request], prompt_limit: int | None) -> None:
    """One model call for ``batch`` (in a worker thread). Results are stored here, in the
    thread, so they reach their streams even if the awaiting task is cancelled meanwhile."""
    try:
        results = batch[0].runner.transcribe_together(
            [(r.runner, r.window, r.prompt) for r in batch], prompt_limit=prompt_limit)
    except Exception as exc:
        for r in batch:
            r.error = exc
    else:
        for r, result in zip(batch, results, strict=True):
            r.result = result


class _Membership:
    def __init__(self, batcher: StreamBatcher, runner: Runner,
                 prompt_limit: int | None) -> None:
        self._group = (batcher._group(runner, prompt_limit)
                       if runner.batch_key is not None else None)

    async def __aenter__(self) -> None:
        if self._group is not None:
            self._group.members += 1

    async def __aexit__(self, *exc_info: object) -> None:
        if self._group is not None:
            self._group.members -= 1
            self._group.arrived.set()  # a leader waiting for this member stops waiting
