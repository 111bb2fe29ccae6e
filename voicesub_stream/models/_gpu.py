"""GPU facts, asked of the driver at most every 30 s (NVML calls take milliseconds)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

GPU_INFO_TTL = 30.0


@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int
    name: str
    memory_total: int
    memory_used: int
    utilization: float | None = None

    @property
    def memory_free(self) -> int:
        return self.memory_total - self.memory_used


def cuda_device_count() -> int:
    """CUDA devices CTranslate2 can use (0 without a GPU or a CUDA build)."""
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:
        return 0


_lock = threading.Lock()
_cache: tuple[float, tuple[GpuInfo, ...]] | None = None


def gpu_info(*, max_age: float = GPU_INFO_TTL) -> tuple[GpuInfo, ...]:
    """Per-device memory and utilisation, cached for ``max_age`` seconds; ``()`` without a GPU."""
    global _cache
    with _lock:
        now = time.monotonic()
        if _cache is not None and now - _cache[0] < max_age:
            return _cache[1]
        info = _query()
        _cache = (now, info)
        return info


def _query() -> tuple[GpuInfo, ...]:
    try:
        import pynvml  # nvidia-ml-py, extra "gpu"
    except ImportError:
        return _query_torch()
    try:
        pynvml.nvmlInit()
    except Exception:
        return ()
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            out.append(GpuInfo(i, name if isinstance(name, str) else name.decode(),
                               int(mem.total), int(mem.used), float(util.gpu)))
        return tuple(out)
    finally:
        pynvml.nvmlShutdown()


def _query_torch() -> tuple[GpuInfo, ...]:
    try:
        import torch
    except ImportError:
        return ()
    if not torch.cuda.is_available():
        return ()
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append(GpuInfo(i, torch.cuda.get_device_name(i), int(total), int(total - free)))
    return tuple(out)
