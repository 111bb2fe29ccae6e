"""The Engine's monitor: a sampler task beside the streams, alerts, memory manager, history."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import orjson

from .._timing import Timings, timings
from ._alerts import Alerts, default_rules
from ._memory import MemoryManager
from ._sampler import Probe, Sample, SampleHistory

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._alerts import Alert, AlertRule

logger = logging.getLogger(__name__)

__all__ = ("Monitor",)

HISTORY = 3600
"""Samples kept in memory: an hour at the default 1 s interval."""


class Monitor:
    """Samples resources every ``interval`` seconds while :meth:`run` runs (the Engine runs it
    in its task group), keeps the last :data:`HISTORY` samples, evaluates alerts and lets the
    memory manager act. ``save_to`` appends every sample to a JSONL file."""

    def __init__(self, *, interval: float = 1.0, save_to: Path | None = None,
                 rules: list[AlertRule] | None = None, adaptive: bool = False,
                 memory: MemoryManager | None = None,
                 engine_stats: Callable[[], dict[str, Any]] | None = None,
                 registry: Timings = timings, probe: Callable[[], Probe] = Probe) -> None:
        self.interval = interval
        self.save_to = save_to
        self.alerts = Alerts(rules if rules is not None else default_rules(), adaptive=adaptive)
        self.memory = memory or MemoryManager()
        self.timings = registry
        self.history = SampleHistory(HISTORY)
        self.samples_taken = 0
        self.running = False
        self._engine_stats = engine_stats or dict
        self._probe_factory = probe
        self._subscribers: list[MemoryObjectSendStream[Alert]] = []
        self._sample_subscribers: list[MemoryObjectSendStream[Sample]] = []
        self.alerts.add_hook(self._publish)

    @property
    def latest(self) -> Sample | None:
        return self.history.latest

    def on_alert(self, hook: Callable[[Alert], object]) -> None:
        """Call ``hook(alert)`` (in the event loop) whenever an alert fires or clears."""
        self.alerts.add_hook(hook)

    def subscribe(self, buffer: int = 64) -> MemoryObjectReceiveStream[Alert]:
        """A receive stream of alert events: ``async with monitor.subscribe() as alerts``.

        It ends when the monitor stops. A subscriber that falls ``buffer`` alerts behind
        misses the newer ones (logged), so a slow reader never holds up sampling."""
        send, receive = anyio.create_memory_object_stream[Any](buffer)
        self._subscribers.append(send)
        return receive

    def subscribe_samples(self, buffer: int = 8) -> MemoryObjectReceiveStream[Sample]:
        """A receive stream of every sample as it is taken (what a live dashboard draws).

        Like :meth:`subscribe`: it ends when the monitor stops, and a subscriber ``buffer``
        samples behind misses the newer ones."""
        send, receive = anyio.create_memory_object_stream[Sample](buffer)
        self._sample_subscribers.append(send)
        return receive

    async def run(self) -> None:
        """Sample until cancelled."""
        probe = await anyio.to_thread.run_sync(self._probe_factory)
        out = None
        if self.save_to is not None:
            self.save_to.parent.mkdir(parents=True, exist_ok=True)
            out = await anyio.open_file(self.save_to, "ab")
        self.running = True
        try:
            next_at = anyio.current_time() + self.interval
            while True:
                await anyio.sleep_until(next_at)
                # How late this task woke up: time other callbacks held the event loop.
                lag = max(anyio.current_time() - next_at, 0.0)
                next_at += self.interval * max(1, math.ceil(lag / self.interval))
                sample = await self.sample(probe, lag)
                if out is not None:
                    await out.write(orjson.dumps(sample.to_dict()) + b"\n")
                    await out.flush()
        finally:
            self.running = False
            for subscribers in (self._subscribers, self._sample_subscribers):
                for send in subscribers:
                    send.close()
            if out is not None:
                with anyio.CancelScope(shield=True):
                    await out.aclose()

    async def sample(self, probe: Probe, lag: float = 0.0) -> Sample:
        """Take one sample now and act on it (also used by tests and benchmarks)."""
        engine = self._engine_stats()  # read here, in the loop that owns that state
        slowest = self.timings.take_window_max()

        def read() -> Sample:
            self.memory.trim_native()  # first, so the sample shows what is really in use
            return probe.read(loop_lag=lag, engine=engine, slowest=slowest)

        sample = await anyio.to_thread.run_sync(read)
        self.process(sample)
        return sample

    def process(self, sample: Sample) -> None:
        self.history.append(sample)
        self.samples_taken += 1
        self.alerts.evaluate(sample)
        self.memory.check(sample)
        _send_all(self._sample_subscribers, sample, "a sample", logging.DEBUG)

    def _publish(self, alert: Alert) -> None:
        _send_all(self._subscribers, alert, alert.rule, logging.WARNING)


def _send_all(subscribers: list[MemoryObjectSendStream[Any]], item: object, what: str,
              level: int) -> None:
    for send in list(subscribers):
        try:
            send.send_nowait(item)
        except anyio.WouldBlock:
            logger.log(level, "a monitor subscriber is full; dropped %s", what)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            send.close()  # the subscriber went away
            subscribers.remove(send)
