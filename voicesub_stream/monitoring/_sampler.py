"""What the metrics sampler measures: one :class:`Sample` per interval, from psutil and NVML."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil

from ..models import gpu_info

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Sample:
    """Resource use over the last interval. Rates are per second; CPU is percent of one core
    for the process and percent of the machine for the system."""

    time: float
    process_cpu: float
    system_cpu: float
    rss: int
    memory_percent: float
    disk_read_rate: float
    disk_write_rate: float
    net_sent_rate: float
    net_recv_rate: float
    loop_lag: float
    threads: int
    gpus: tuple[dict[str, Any], ...] = ()
    engine: dict[str, Any] = field(default_factory=dict)
    slowest: dict[str, float] = field(default_factory=dict)
    """The longest call of each timed function during the interval (seconds)."""

    @property
    def disk_rate(self) -> float:
        return self.disk_read_rate + self.disk_write_rate

    @property
    def gpu_memory_percent(self) -> float | None:
        used = [100 * g["memory_used"] / g["memory_total"] for g in self.gpus
                if g.get("memory_total")]
        return max(used) if used else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        return cls(**{**data, "gpus": tuple(data.get("gpus") or ())})


class Probe:
    """Reads the counters; each :meth:`read` reports rates since the previous one.

    Blocking (psutil and NVML calls take around a millisecond): the sampler calls it in a
    worker thread.
    """

    def __init__(self, *, gpu: Callable[[], tuple[Any, ...]] = gpu_info) -> None:
        self._process = psutil.Process(os.getpid())
        self._gpu = gpu
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._last = time.monotonic()
        self._disk = _disk_counters()
        self._net = _net_counters()

    def read(self, *, loop_lag: float = 0.0, engine: dict[str, Any] | None = None,
             slowest: dict[str, float] | None = None) -> Sample:
        now = time.monotonic()
        elapsed = max(now - self._last, 1e-6)
        disk, net = _disk_counters(), _net_counters()
        rates = [(b - a) / elapsed for a, b in zip(self._disk + self._net, disk + net,
                                                   strict=True)]
        self._last, self._disk, self._net = now, disk, net
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            cpu = self._process.cpu_percent(None)
            threads = self._process.num_threads()
        return Sample(
            time=time.time(), process_cpu=cpu, system_cpu=psutil.cpu_percent(None), rss=rss,
            memory_percent=psutil.virtual_memory().percent,
            disk_read_rate=rates[0], disk_write_rate=rates[1],
            net_sent_rate=rates[2], net_recv_rate=rates[3], loop_lag=loop_lag, threads=threads,
            gpus=tuple(asdict(g) for g in self._gpu()), engine=engine or {},
            slowest=slowest or {},
        )


def _disk_counters() -> tuple[int, int]:
    io = psutil.disk_io_counters()
    return (io.read_bytes, io.write_bytes) if io is not None else (0, 0)


def _net_counters() -> tuple[int, int]:
    io = psutil.net_io_counters()
    return (io.bytes_sent, io.bytes_recv) if io is not None else (0, 0)


class SampleHistory:
    """The last ``maxlen`` samples' numbers, in one array allocated up front.

    A ring of :class:`Sample` objects would grow by about a kilobyte a sample until it is
    full, an hour after start, which reads as a leak in any RSS trend taken in that hour. The
    report and the alerts need only the numbers; the newest whole sample is :attr:`latest`.
    """

    FIELDS = ("time", "process_cpu", "system_cpu", "rss", "memory_percent", "disk_read_rate",
              "disk_write_rate", "net_sent_rate", "net_recv_rate", "loop_lag", "threads",
              "scheduler_queued", "gpu_memory_percent")

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._rows = np.full((maxlen, len(self.FIELDS)), np.nan)
        self._next = 0
        self._count = 0
        self.latest: Sample | None = None

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> SampleHistory:
        history = cls(max(len(samples), 1))
        for sample in samples:
            history.append(sample)
        return history

    def __len__(self) -> int:
        return self._count

    def append(self, sample: Sample) -> None:
        gpu = sample.gpu_memory_percent
        self._rows[self._next] = (
            sample.time, sample.process_cpu, sample.system_cpu, sample.rss,
            sample.memory_percent, sample.disk_read_rate, sample.disk_write_rate,
            sample.net_sent_rate, sample.net_recv_rate, sample.loop_lag, sample.threads,
            sample.engine.get("scheduler_queued", 0), np.nan if gpu is None else gpu)
        self._next = (self._next + 1) % self.maxlen
        self._count = min(self._count + 1, self.maxlen)
        self.latest = sample

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """One field over the kept samples, oldest first (a copy)."""
        values = self._rows[:, self.FIELDS.index(name)]
        if self._count < self.maxlen:
            return values[: self._count].copy()
        return np.concatenate([values[self._next:], values[: self._next]])
