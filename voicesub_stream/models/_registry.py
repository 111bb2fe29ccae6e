"""Loaded Whisper models: an LRU of at most N, loaded lazily, once, from any thread."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._config import cpu_count
from .._stats import counter
from ..errors import ModelLoadError
from ._gpu import cuda_device_count
from ._resolve import resolve_model
from ._whisper import background_calls_supported, load_whisper

if TYPE_CHECKING:
    from .._config import ModelConfig
    from ._whisper import WhisperModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModelStatistics:
    name: str
    device: str
    compute_type: str
    leases: int
    load_seconds: float
    background_copy: bool = False
    """Whether its background copy for batch work (:meth:`LoadedModel.replica`) is loaded."""


@dataclass(frozen=True, slots=True)
class RegistryStatistics:
    loaded: tuple[LoadedModelStatistics, ...]
    capacity: int
    loads: int = counter()
    evictions: int = counter()


@dataclass(frozen=True, slots=True)
class ModelKey:
    """What makes two loaded models different."""

    name: str
    device: str
    compute_type: str


@dataclass(eq=False)
class LoadedModel:
    key: ModelKey
    path: str
    whisper: WhisperModel
    load_seconds: float
    leases: int = 0
    last_used: float = field(default_factory=time.monotonic)
    plan: ExecutionPlan | None = None
    """How its calls use the machine; with ``background_calls``, batch work gets a copy."""
    background: WhisperModel | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_multilingual(self) -> bool:
        return bool(self.whisper.model.is_multilingual)

    def replica(self, *, background: bool) -> WhisperModel:
        """The model a call runs on (blocking on first use of the background copy).

        Where the plan has ``background_calls``, batch work runs on a second copy of the
        weights whose threads have the lowest CPU priority, loaded when the first batch call
        comes: the kernel then gives the cores to live calls first, the moment they want
        them, and the file has the rest. A CTranslate2 model's threads take calls in turn,
        so the two kinds of work cannot have two priorities on one copy.

        :raises ModelLoadError: the background copy could not be loaded
        """
        plan = self.plan
        if not background or plan is None or not plan.background_calls:
            return self.whisper
        with self._lock:
            if self.background is None:
                started = time.perf_counter()
                try:
                    self.background = load_whisper(
                        self.path, device=self.key.device, compute_type=self.key.compute_type,
                        cpu_threads=plan.threads_per_call, num_workers=plan.background_calls,
                        background=True)
                except Exception as exc:
                    raise ModelLoadError(f"could not load a background copy of "
                                         f"{self.key.name!r} from {self.path}: {exc}") from exc
                logger.info("loaded a background copy of %s for batch work in %.2fs",
                            self.key.name, time.perf_counter() - started)
            return self.background


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if cuda_device_count() > 0 else "cpu"


@dataclass(frozen=True, slots=True)
class ExecutionPlan:
    """How model calls use the machine: threads per call, calls at once, and why."""

    threads_per_call: int
    concurrent_calls: int
    reason: str
    shared_calls: bool = False
    """Whether live windows of several streams share model calls: on a GPU and on Ray actors,
    not on a CPU, where a window costs the same alone or in company."""
    background_calls: int = 0
    """Batch-priority calls at once on a copy of the model whose threads have the lowest CPU
    priority (on CPU under Linux, in this process); 0: batch work takes turns with the rest
    for the same calls."""


def execution_plan(config: ModelConfig, device: str) -> ExecutionPlan:
    """Threads per model call and calls at once, from the cores this process may use.

    On CPU, CTranslate2 on two threads is only ~1.2x faster than on one, so single-thread
    calls side by side, one per core, do ~1.7x the work of one call over every core: for
    several live streams, and for a file whose windows the transcription stage splits over
    the calls (measured with ``voicesub bench file`` and ``bench live``). ``cpu_threads`` /
    ``model_workers`` set explicitly pin either number. On CPU under Linux, batch work gets
    as many calls again on its own copy of the model, at the lowest CPU priority
    (:meth:`LoadedModel.replica`).
    """
    cores = cpu_count()
    plan = _plan(config, device, cores)
    if background_calls_supported(device):
        return dataclasses.replace(plan, background_calls=plan.concurrent_calls)
    return plan


def _plan(config: ModelConfig, device: str, cores: int) -> ExecutionPlan:
    if device == "cuda":
        threads = cores if config.cpu_threads == "auto" else config.cpu_threads or cores
        workers = 1 if config.model_workers == "auto" else config.model_workers
        return ExecutionPlan(threads, workers, "GPU: the device runs the calls; CPU threads "
                                               "only feed it")
    if config.cpu_threads == "auto" and config.model_workers == "auto":
        if cores == 1:
            return ExecutionPlan(1, 1, "one core: one call at a time")
        return ExecutionPlan(1, cores, f"{cores} cores: single-thread calls side by side do "
                                       "more work than one call over every core")
    threads = cores if config.cpu_threads == "auto" else config.cpu_threads or cores
    workers = (max(1, cores // threads) if config.model_workers == "auto"
               else config.model_workers)
    return ExecutionPlan(threads, workers, "set: cpu_threads / model_workers")


def pick_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    # int8 is CTranslate2's fastest CPU path; float16 is the standard GPU choice.
    return "float16" if device == "cuda" else "int8"


class ModelRegistry:
    """Thread-safe LRU of loaded models keyed by (name, device, compute_type).

    Two threads asking for the same missing model load it once: the second waits on a
    per-key lock while other keys load in parallel (double-checked locking). Models in use
    (leased) are never evicted; if every loaded model is in use the registry holds one more
    than its capacity until a lease ends.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._capacity = config.max_loaded_models
        self._models: OrderedDict[ModelKey, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[ModelKey, threading.Lock] = {}
        self.loads = 0
        self.evictions = 0

    def key_for(self, name: str | None) -> ModelKey:
        device = pick_device(self.config.device)
        return ModelKey(
            name or self.config.model,
            device,
            pick_compute_type(self.config.compute_type, device),
        )

    def acquire(self, key: ModelKey) -> LoadedModel:
        """Load (if needed) and lease a model; it cannot be evicted until :meth:`release`.

        Blocking: call it from a worker thread.
        """
        return self.get(key, lease=True)

    def release(self, model: LoadedModel) -> None:
        with self._lock:
            model.leases -= 1
            model.last_used = time.monotonic()
            victims = self._pop_victims()
        self._unload(victims)

    def get(self, key: ModelKey, *, lease: bool = False) -> LoadedModel:
        """Return the loaded model for ``key``, loading it first if needed.

        :raises ModelNotFoundError: the name resolves to no model
        :raises ModelLoadError: CTranslate2 could not load it
        """
        with self._lock:
            model = self._touch(key, lease)
            if model is not None:
                return model
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:  # second check: another thread may have loaded it meanwhile
                model = self._touch(key, lease)
            if model is not None:
                return model
            model = self._load(key)
            with self._lock:
                model.leases += lease
                self._models[key] = model
                victims = self._pop_victims(keep=key)
        self._unload(victims)
        return model

    def _touch(self, key: ModelKey, lease: bool) -> LoadedModel | None:
        """The loaded model for ``key``, marked most recently used (hold ``_lock``)."""
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
            model.leases += lease
        return model

    def loaded(self) -> list[ModelKey]:
        with self._lock:
            return list(self._models)

    def evict(self, key: ModelKey) -> bool:
        """Unload ``key`` now if it is loaded and unused. Returns whether it was unloaded."""
        with self._lock:
            model = self._models.get(key)
            if model is None or model.leases:
                return False
            del self._models[key]
        self._unload([model])
        return True

    def clear(self) -> None:
        with self._lock:
            victims = list(self._models.values())
            self._models.clear()
        self._unload(victims)

    def statistics(self) -> RegistryStatistics:
        with self._lock:
            loaded = tuple(LoadedModelStatistics(k.name, k.device, k.compute_type, m.leases,
                                                 round(m.load_seconds, 3),
                                                 m.background is not None)
                           for k, m in self._models.items())
        return RegistryStatistics(loaded, self._capacity, self.loads, self.evictions)

    def _pop_victims(self, keep: ModelKey | None = None) -> list[LoadedModel]:
        """Unused models to drop, least recently used first, until within capacity."""
        victims: list[LoadedModel] = []
        for key in list(self._models):
            if len(self._models) <= self._capacity:
                break
            if self._models[key].leases == 0 and key != keep:
                victims.append(self._models.pop(key))
        return victims

    def _unload(self, victims: list[LoadedModel]) -> None:
        for model in victims:
            self.evictions += 1
            logger.info("unloading model %s (%s)", model.key.name, model.key.device)
            # unload_model frees the weights now instead of whenever the last reference dies.
            for whisper in (model.whisper, model.background):
                if whisper is not None:
                    with contextlib.suppress(Exception):
                        whisper.model.unload_model()
            del model
        if victims:
            gc.collect()
            _empty_cuda_cache()

    def _load(self, key: ModelKey) -> LoadedModel:
        path = resolve_model(key.name, cache_dir=self.config.cache_dir,
                             offline=self.config.offline)
        started = time.perf_counter()
        try:
            plan = execution_plan(self.config, key.device)
            whisper = load_whisper(path, device=key.device, compute_type=key.compute_type,
                                   cpu_threads=plan.threads_per_call,
                                   num_workers=plan.concurrent_calls)
        except Exception as exc:
            raise ModelLoadError(f"could not load {key.name!r} from {path}: {exc}") from exc
        elapsed = time.perf_counter() - started
        self.loads += 1
        logger.info("loaded model %s from %s in %.2fs", key.name, path, elapsed)
        return LoadedModel(key, path, whisper, elapsed, plan=plan)


def _empty_cuda_cache() -> None:
    try:
        import torch  # optional extra "gpu"
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
