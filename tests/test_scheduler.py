"""The priority scheduler: order, aging, cancellation, the bound, statistics."""

from __future__ import annotations

import anyio
import pytest

from voicesub_stream._config import cpu_count
from voicesub_stream.errors import ConfigError
from voicesub_stream.scheduler import Scheduler, auto_workers


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def hold(scheduler: Scheduler, release: anyio.Event, started: anyio.Event,
               priority: str = "batch") -> None:
    async def job() -> None:
        started.set()
        await release.wait()

    await scheduler.run(job, priority=priority)


async def wait_queued(scheduler: Scheduler, n: int) -> None:
    with anyio.fail_after(5):
        while scheduler.statistics().queued < n:  # noqa: ASYNC110 - polls public stats
            await anyio.sleep(0.001)


async def test_waiting_jobs_run_by_priority() -> None:
    scheduler = Scheduler(1)
    order: list[str] = []
    release, started = anyio.Event(), anyio.Event()

    async def record(name: str) -> None:
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, scheduler, release, started)
        await started.wait()
        jobs = [("batch", "batch"), ("interactive", "interactive"), ("live", "live"),
                ("numeric-5", 5)]
        for queued, (name, priority) in enumerate(jobs, 1):
            tg.start_soon(lambda n=name, p=priority: scheduler.run(lambda: record(n),
                                                                   priority=p))
            await wait_queued(scheduler, queued)  # enqueued in this order
        release.set()
    assert order == ["live", "numeric-5", "interactive", "batch"]


async def test_a_batch_job_never_waits_past_max_wait() -> None:
    clock = Clock()
    scheduler = Scheduler(1, max_wait=2.0, clock=clock)
    order: list[str] = []

    async def record(name: str) -> None:
        order.append(name)

    for waited, expected in [(1.0, ["live", "batch"]), (2.5, ["batch", "live"])]:
        order.clear()
        release, started = anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold, scheduler, release, started)
            await started.wait()
            tg.start_soon(lambda: scheduler.run(lambda: record("batch"), priority="batch"))
            await wait_queued(scheduler, 1)
            clock.now += waited
            tg.start_soon(lambda: scheduler.run(lambda: record("live"), priority="live"))
            await wait_queued(scheduler, 2)
            release.set()
        assert order == expected, waited
    waits = scheduler.statistics().classes["batch"]
    assert waits.wait_p95 == pytest.approx(2.5)


async def test_cancelling_a_waiting_job_removes_it_at_once() -> None:
    scheduler = Scheduler(1)
    release, started = anyio.Event(), anyio.Event()
    ran: list[str] = []

    async def record() -> None:
        ran.append("x")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, scheduler, release, started)
        await started.wait()
        with anyio.CancelScope() as scope:
            tg.start_soon(lambda: scheduler.run(record))
            await wait_queued(scheduler, 1)
            scope.cancel()
        inner = anyio.CancelScope()

        async def cancellable() -> None:
            with inner:
                await scheduler.run(record)

        tg.start_soon(cancellable)
        await wait_queued(scheduler, 2)
        inner.cancel()
        await anyio.sleep(0.01)
        stats = scheduler.statistics()
        assert stats.queued == 1  # gone the moment it was cancelled
        assert stats.classes["batch"].cancelled == 1
        release.set()
    assert ran == ["x"]  # the other waiting job still ran


async def test_cancelling_a_running_job_frees_its_slot() -> None:
    scheduler = Scheduler(1)
    release, started = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, scheduler, release, started)
        await started.wait()
        tg.cancel_scope.cancel()
    assert scheduler.statistics().running == 0
    assert await scheduler.run(_value) == 42
    assert scheduler.statistics().classes["batch"].cancelled == 1


async def _value() -> int:
    return 42


async def test_the_bound_is_never_exceeded_and_failures_release_slots() -> None:
    scheduler = Scheduler(3)
    active = peak = 0

    async def job(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.005)
        active -= 1
        if i % 7 == 0:
            raise ValueError(i)
        return i

    async def guarded(i: int) -> int | None:
        try:
            return await job(i)
        except ValueError:
            return None

    results = await scheduler.run_tasks_async([lambda i=i: guarded(i) for i in range(40)])
    assert peak == 3
    assert scheduler.peak_running == 3
    assert results == [None if i % 7 == 0 else i for i in range(40)]
    failing = [lambda: job(7), lambda: job(1)]
    with pytest.raises(ExceptionGroup):
        await scheduler.run_with_priority(failing, ["live", "batch"])
    stats = scheduler.statistics()
    assert stats.running == 0
    assert stats.classes["live"].failed == 1


async def test_sync_work_runs_in_a_worker_thread() -> None:
    import threading

    scheduler = Scheduler(2)
    name = await scheduler.run_sync(lambda: threading.current_thread().name, priority="live")
    assert name != threading.main_thread().name


async def test_resizing_admits_waiting_jobs() -> None:
    scheduler = Scheduler(1)
    release, started = anyio.Event(), anyio.Event()
    second = anyio.Event()

    async def mark() -> None:
        second.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, scheduler, release, started)
        await started.wait()
        tg.start_soon(lambda: scheduler.run(mark))
        await wait_queued(scheduler, 1)
        scheduler.resize(2)
        with anyio.fail_after(5):
            await second.wait()  # admitted while the first still holds its slot
        release.set()


def test_bad_priorities_and_sizes_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        Scheduler(0)
    with pytest.raises(ConfigError):
        anyio.run(lambda: Scheduler(1).run(_value, priority="urgent"))


def test_auto_workers_follow_the_hardware() -> None:
    assert auto_workers(device="cuda", model_workers=2, cpu_threads=0, gpus=2) == 4
    assert auto_workers(device="cpu", model_workers=1, cpu_threads=0, gpus=0) == 1
    assert auto_workers(device="cpu", model_workers=1, cpu_threads=1, gpus=0) == 1
    # one core per call, a model that runs as many calls as there are cores
    cores = cpu_count()
    assert auto_workers(device="cpu", model_workers=cores, cpu_threads=1, gpus=0) == cores
    assert auto_workers(device="cpu", model_workers=1, cpu_threads=1, gpus=0,
                        process_pool=True) == cores


async def test_reserved_slots_stay_free_of_batch_work_but_take_live_work() -> None:
    scheduler = Scheduler(2)
    scheduler.reserve(5)
    assert scheduler.reserved == 1  # batch work always keeps one slot
    assert (scheduler.slots_for("batch"), scheduler.slots_for("live")) == (1, 2)
    assert scheduler.keep_short("batch")
    assert not scheduler.keep_short("live")
    release, started = anyio.Event(), anyio.Event()
    ran: list[str] = []

    async def record(name: str) -> None:
        ran.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, scheduler, release, started)  # a batch job holds its one slot
        await started.wait()
        tg.start_soon(lambda: scheduler.run(lambda: record("second batch"), priority="batch"))
        await wait_queued(scheduler, 1)
        await scheduler.run(lambda: record("live"), priority="live")  # the reserved slot
        assert ran == ["live"]
        assert scheduler.statistics().queued == 1
        scheduler.reserve(0)  # the live streams ended: the slot is batch work's again
        assert not scheduler.keep_short("batch")
        with anyio.fail_after(5):
            while ran != ["live", "second batch"]:  # noqa: ASYNC110 - polls its own list
                await anyio.sleep(0.001)
        release.set()
    assert scheduler.running == 0


async def test_batch_work_with_slots_of_its_own_never_holds_back_better_work() -> None:
    # The engine's choice where batch calls run at the lowest CPU priority: the kernel keeps
    # them out of the way, so they neither take nor wait for the other slots.
    scheduler = Scheduler(1, background_workers=1)
    scheduler.reserve(1)
    assert scheduler.runs_apart("batch")
    assert not scheduler.runs_apart("interactive")
    assert (scheduler.slots_for("batch"), scheduler.slots_for("live")) == (1, 1)
    assert not scheduler.keep_short("batch")
    assert scheduler.statistics().background_workers == 1
    release, started = anyio.Event(), anyio.Event()
    ran: list[str] = []

    async def record(name: str) -> None:
        ran.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, scheduler, release, started)  # a batch job holds its own slot
        await started.wait()
        tg.start_soon(lambda: scheduler.run(lambda: record("second batch"), priority="batch"))
        await wait_queued(scheduler, 1)
        await scheduler.run(lambda: record("live"), priority="live")  # not behind either
        await scheduler.run(lambda: record("interactive"), priority="interactive")
        assert ran == ["live", "interactive"]
        assert scheduler.statistics().queued == 1  # the second batch job waits for the first
        release.set()
    assert ran == ["live", "interactive", "second batch"]
    assert scheduler.running == 0
    with pytest.raises(ConfigError):
        Scheduler(1, background_workers=-1)
