"""Model calls on a Ray cluster (``VOICESUB_EXECUTOR=ray``), for more than one machine.

Only the model call leaves the engine. Scheduling, priorities, cross-stream batching,
admission and the live pace controller stay where they are; a :class:`RayRunner` looks to
the stages exactly like a :class:`~voicesub_stream.models.WhisperRunner`, and a batch of
windows (several live streams' updates, or a file's windows) is one actor call, so Ray adds
one hop per batch, not one per window.

Each actor of the :class:`RayPool` holds a model registry of its own (an LRU, loaded on
first use) and answers one call at a time, on one CPU thread, or on a GPU where the
cluster has GPUs. The pool keeps one actor per such slot of the cluster and follows it as
nodes join and leave.

- **An actor that dies mid-call** (its node lost, ``ray.kill``, out of memory) is dropped
  and replaced, and the call runs again on another actor. A call is a pure function of its
  windows and of what the stream carried into it (its language), so the stream gets exactly
  the answer it would have had: nothing lost, nothing repeated. A call that outlives
  :data:`MAX_ATTEMPTS` actors fails with :class:`~voicesub_stream.errors.WorkerCrashedError`
  (a call that kills every actor it meets should not take the cluster down).
- **A cancelled call** (the stream ended, its client left) is cancelled on the actor with
  ``ray.cancel``: a call still queued never runs, and a running one stops before its next
  windows. The actor takes no other call until it has stopped, so cancelled work never
  oversubscribes a core.
- **Engines on one cluster share it.** Actors are named by what they run, so a second
  engine (another server) uses the first one's instead of asking for a second set; the last
  engine to leave stops them. Each engine reports its live load to a ledger actor and counts
  the others' before it admits a stream (:class:`AdmissionLedger`), so the cluster's capacity
  is admitted once, not once per server.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio.from_thread

from .._stats import counter
from .._types import Word
from ..errors import ConfigError, TranscriptionError, VoicesubError, WorkerCrashedError
from ..models import WindowText
from ..models._whisper import SharedCallRunner

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

    from .._config import ModelConfig, TranscribeOptions
    from .._types import SpeechWindow

__all__ = ("ClusterStatistics", "RayPool", "RayRunner")

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Actors one call may be tried on before it fails."""
CPU_CHUNK = 2
"""Windows a CPU actor decodes at a time between checks for cancellation (on one core,
batching more windows saves nothing: the encoder's cost per window grows about as much as
the decoder's shrinks)."""
POLL = 0.05
"""Seconds between a waiting call's checks for cancellation."""
START_TIMEOUT = 120.0
"""Seconds the pool waits for its first actors (each loads Python and CTranslate2)."""
NAMESPACE = "voicesub"
"""The Ray namespace of the named actors engines on one cluster share."""
LEDGER = "voicesub-admission"
LEDGER_TIMEOUT = 2.0
"""Seconds an engine waits for the admission ledger before it goes on with what it knew."""
STALE = 15.0
"""Seconds after which an engine that stopped reporting its live load no longer counts."""


@dataclass(frozen=True, slots=True)
class _Stream:
    options: TranscribeOptions
    language: str | None
    language_probability: float | None


@dataclass(frozen=True, slots=True)
class RemoteCall:
    """One model call as plain data: the streams taking part and their windows."""

    model: str
    streams: list[_Stream]
    items: list[tuple[int, SpeechWindow, str | None]]
    """(stream, window, prompt) for each window, ``stream`` an index into ``streams``."""
    prompt_limit: int | None


@dataclass(frozen=True, slots=True)
class Answer:
    """What an actor returns for a :class:`RemoteCall`, as plain data."""

    languages: list[tuple[str | None, float | None]]
    results: list[tuple[str, list[tuple[float, float, str, float]], float, float, float]]
    seconds: float
    """Time the actor spent on the call."""


class ModelActor:
    """The body of one Ray actor: a model registry, one call at a time."""

    def __init__(self, config: ModelConfig) -> None:
        from ..models import ModelRegistry

        self.registry = ModelRegistry(config)

    def ready(self) -> int:
        return os.getpid()

    def multilingual(self, model: str) -> bool:
        return bool(self.registry.get(self.registry.key_for(model)).is_multilingual)

    def transcribe(self, call: RemoteCall) -> Answer | None:
        """Answer ``call``, or ``None`` if it was cancelled before its last windows."""
        import ray

        from ..models import WhisperRunner

        started = time.perf_counter()
        model = self.registry.get(self.registry.key_for(call.model))
        runners = []
        for stream in call.streams:
            runner = WhisperRunner(model, stream.options)
            if stream.language is not None:  # found by an earlier call of its stream
                runner.language = stream.language
                runner.language_probability = stream.language_probability
            runners.append(runner)
        context = ray.get_runtime_context()
        chunk = len(call.items) if model.key.device == "cuda" else CPU_CHUNK
        results: list[WindowText] = []
        for start in range(0, len(call.items), chunk):
            if context.is_canceled():
                return None
            part = call.items[start:start + chunk]
            results += runners[part[0][0]].transcribe_together(
                [(runners[i], window, prompt) for i, window, prompt in part],
                prompt_limit=call.prompt_limit)
        return Answer(
            [(r.language, r.language_probability) for r in runners],
            [(r.text, [(w.start, w.end, w.text, w.probability) for w in r.words],
              r.avg_logprob, r.no_speech_prob, r.model_seconds) for r in results],
            time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class ClusterStatistics:
    """The Ray actor pool: its size against the cluster, and what happened to its calls."""

    address: str
    """The cluster's address (a local one this engine started, or the one it joined)."""
    actors: int
    """Actors ready for calls."""
    starting: int
    """Actors asked for and not ready yet (waiting for resources, or loading)."""
    target: int
    """Actors the cluster's resources hold, at the pool's last look (the engine looks every
    5 s): one per ``cpus_per_actor`` CPUs (per GPU)."""
    busy: int
    cpus_per_actor: float
    gpus_per_actor: float
    calls: int = counter()
    retried: int = counter()
    """Calls run again on another actor after theirs died."""
    actors_lost: int = counter()
    cancelled: int = counter()
    audio_bytes: int = counter()
    """Bytes of audio sent to actors (the network a cluster's driver needs)."""
    mean_overhead_ms: float | None = None
    """A call's round trip beyond the actor's own time: Ray's cost per call."""


@dataclass(eq=False)
class _Actor:
    handle: Any
    slot: int
    pid: int = 0


class AdmissionLedger:
    """The body of the named actor that keeps the live load of every engine on a cluster, so
    that a stream one full engine would refuse is not admitted by another."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # engine -> (cores, reported at, the kind of actors it uses)
        self.loads: dict[str, tuple[float, float, str]] = {}

    def report(self, engine: str, load: float, kind: str = "") -> float:
        """Record ``engine``'s load; answer the others' (engines silent for :data:`STALE`
        seconds, closed or gone, no longer count). Every kind of actor shares the cores."""
        now = self.clock()
        self.loads = {e: v for e, v in self.loads.items() if now - v[1] < STALE}
        self.loads[engine] = (load, now, kind)
        return sum(v[0] for e, v in self.loads.items() if e != engine)

    def engines(self) -> int:
        """Engines that still count, of any kind."""
        now = self.clock()
        return sum(now - at < STALE for _, at, _ in self.loads.values())

    def forget(self, engine: str) -> int:
        """``engine`` leaves; answer how many engines still use its kind of actors."""
        _, _, kind = self.loads.pop(engine, (0.0, 0.0, ""))
        now = self.clock()
        return sum(now - at < STALE and k == kind for _, at, k in self.loads.values())


class RayPool:
    """Ray actors holding models, one call each at a time; thread-safe.

    :param config: how actors find and load models (their device and threads are set here)
    :param address: the cluster to join; ``None``: a running one, else a new local one
    :param threads_per_call: CPU threads (and Ray CPUs) per actor
    :param actors: a fixed number of actors (default: one per slot of the cluster, following
        it as it changes)
    :param ray_cpus: Ray CPUs each actor reserves (default ``threads_per_call``)
    :param actor: the actors' class (:class:`ModelActor`; a benchmark may stand in one that
        replays recorded answers) and ``actor_args``, what it takes after the model config
    :raises ConfigError: Ray is not installed, or the cluster cannot be reached
    """

    def __init__(self, config: ModelConfig, *, address: str | None = None,
                 threads_per_call: int = 1, device: str = "auto", actors: int | None = None,
                 ray_cpus: float | None = None, actor: type = ModelActor,
                 actor_args: tuple[Any, ...] = ()) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("executor 'ray' needs Ray: pip install "
                              "'voicesub-stream[ray]'") from exc
        self._ray: Any = ray
        # Connected here (joining a cluster, or starting a local one): disconnected, and a
        # local cluster stopped, on close. A connection the application made is left alone.
        self._connected = not ray.is_initialized()
        if self._connected:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"could not reach the Ray cluster at {address!r}: {exc}"
                                  ) from exc
        self.address = str(self._ray.get_runtime_context().gcs_address)
        gpus = self._ray.cluster_resources().get("GPU", 0) if device != "cpu" else 0
        self.gpus_per_actor = 1.0 if gpus else 0.0
        self.cpus_per_actor = float(threads_per_call)
        self._config = replace(config, device="cuda" if gpus else "cpu",
                               cpu_threads=threads_per_call, model_workers=1)
        self._actor_args = actor_args
        self._fixed = actors
        self._actor_class: Any = ray.remote(actor)
        # Engines on one cluster with the same actors share them: actor i of a kind is
        # named, so a second engine finds the first one's instead of starting its own, and
        # detached, so it outlives the engine that started it; the last engine to leave
        # stops them (see close).
        self._actor_options = {"num_cpus": self.cpus_per_actor if ray_cpus is None else ray_cpus,
                               "num_gpus": self.gpus_per_actor, "max_concurrency": 1,
                               "namespace": NAMESPACE, "get_if_exists": True,
                               "lifetime": "detached"}
        kind = repr((actor.__module__, actor.__qualname__, self._config, self._actor_options,
                     actor_args))
        self._name = f"voicesub-{hashlib.sha256(kind.encode()).hexdigest()[:12]}"
        self.engine_id = uuid.uuid4().hex
        self._ledger: Any = None
        self._others = self._load = 0.0
        self._target = 0  # as of the last resize: statistics() asks the cluster nothing
        self._lock = threading.Lock()
        self._idle: queue.Queue[_Actor] = queue.Queue()
        self._ready: list[_Actor] = []
        self._starting: dict[Any, _Actor] = {}  # readiness ref -> actor
        self._draining: dict[Any, _Actor] = {}  # cancelled call's ref -> its actor
        self._busy: set[_Actor] = set()  # in a call, or stopping a cancelled one
        self.calls = self.retried = self.actors_lost = self.cancelled = self.audio_bytes = 0
        self._overhead = 0.0
        self.recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=10_000)
        """(actor seconds, windows) of the latest calls."""
        self._multilingual: dict[str, bool] = {}
        self._closed = False
        self.resize()
        self._await_start()
        self.others_load(0.0)  # counted among the cluster's engines from now on

    # -- size ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Actors ready for calls."""
        with self._lock:
            return len(self._ready)

    def target(self) -> int:
        """Actors the cluster's resources hold now (or the fixed number asked for)."""
        if self._fixed is not None:
            return self._fixed
        resources = self._ray.cluster_resources()
        if self.gpus_per_actor:
            return max(1, int(resources.get("GPU", 0) // self.gpus_per_actor))
        return max(1, int(resources.get("CPU", 0) // self.cpus_per_actor))

    def resize(self) -> int:
        """Start or stop actors to match the cluster (nodes come and go); collect actors
        that became ready; tell the ledger this engine is still here. Returns the actors
        ready now; never blocks on a new actor."""
        self.publish_load(self._load)
        target = self._target = self.target()
        with self._lock:
            held = {a.slot for a in [*self._ready, *self._starting.values()]}
            for slot in range(target):
                if slot not in held:
                    handle = self._actor_class.options(
                        name=f"{self._name}-{slot}", **self._actor_options,
                    ).remote(self._config, *self._actor_args)
                    self._starting[handle.ready.remote()] = _Actor(handle, slot)
            for ref in [r for r, a in self._starting.items() if a.slot >= target]:
                self._ray.kill(self._starting.pop(ref).handle)
        idle = []
        while True:
            try:
                idle.append(self._idle.get_nowait())
            except queue.Empty:
                break
        for actor in idle:  # busy actors past the target stay until the next look
            if actor.slot < target:
                self._idle.put(actor)
                continue
            with self._lock:
                self._ready.remove(actor)
            self._ray.kill(actor.handle)
        self._collect(timeout=0)
        return self.size

    def _await_start(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while self._starting and time.monotonic() < deadline:
            self._collect(timeout=1.0)
        if not self.size:
            self.close()
            raise ConfigError(f"no Ray actor started within {START_TIMEOUT:.0f} s (the "
                              f"cluster has {self._ray.cluster_resources()})")

    def _collect(self, timeout: float) -> None:
        """Move actors whose start finished into the pool (those that failed are dropped)."""
        with self._lock:
            refs = list(self._starting)
        if not refs:
            return
        done, _ = self._ray.wait(refs, num_returns=len(refs), timeout=timeout,
                                 fetch_local=True)
        for ref in done:
            with self._lock:
                actor = self._starting.pop(ref, None)
            if actor is None:
                continue
            try:
                actor.pid = self._ray.get(ref)
            except self._ray.exceptions.RayError as exc:
                logger.warning("a Ray actor failed to start: %s", exc)
                continue
            with self._lock:
                self._ready.append(actor)
            self._idle.put(actor)

    # -- calls --------------------------------------------------------------------------

    def call(self, call: RemoteCall) -> Answer:
        """Answer ``call`` on an idle actor; blocking (call it from a worker thread). In an
        AnyIO worker thread, cancelling the task that waits cancels the call on its actor.

        :raises WorkerCrashedError: actors kept dying under this call, or none is left
        :raises TranscriptionError: the model failed on the actor
        """
        exceptions = self._ray.exceptions
        for attempt in range(1, MAX_ATTEMPTS + 1):
            actor = self._take()
            started = time.perf_counter()
            ref = actor.handle.transcribe.remote(call)
            try:
                answer: Answer = self._wait(ref)
            except (exceptions.RayActorError, exceptions.ActorUnavailableError) as exc:
                self._lose(actor, exc)
                if attempt < MAX_ATTEMPTS:
                    with self._lock:
                        self.retried += 1
                    logger.warning("Ray actor %d died during a call; trying another", actor.pid)
                continue
            except exceptions.RayTaskError as exc:
                self._give_back(actor)
                raise _model_error(exc, f"model call on Ray actor {actor.pid}") from exc
            except BaseException:  # cancelled here: the actor stops, then takes calls again
                self._drain(ref, actor)
                raise
            self._give_back(actor)
            assert answer is not None  # only a cancelled call answers None
            with self._lock:
                self.calls += 1
                self.audio_bytes += sum(window.audio.nbytes for _, window, _ in call.items)
                self._overhead += time.perf_counter() - started - answer.seconds
                self.recent.append((answer.seconds, len(call.items)))
            return answer
        raise WorkerCrashedError(f"{MAX_ATTEMPTS} Ray actors died during one model call")

    def multilingual(self, model: str) -> bool:
        """Whether ``model`` reads other languages than English (loaded on an actor to
        find out; remembered): a stream of an English-only model is English from the
        start, as in this process."""
        if model not in self._multilingual:
            handles = self.handles()
            if not handles:
                raise WorkerCrashedError("no Ray actor is left to load the model")
            ref = handles[0].multilingual.remote(model)
            try:
                self._multilingual[model] = bool(self._wait(ref))
            except self._ray.exceptions.RayTaskError as exc:
                raise _model_error(exc, f"loading {model!r} on a Ray actor") from exc
        return self._multilingual[model]

    def warm(self, model: str) -> None:
        """Load ``model`` on every ready actor now, not on its first call."""
        multilingual = self._ray.get([h.multilingual.remote(model) for h in self.handles()])
        self._multilingual[model] = bool(multilingual and multilingual[0])

    def _wait(self, ref: Any) -> Any:
        cancellable = True
        while True:
            done, _ = self._ray.wait([ref], timeout=POLL)
            if done:
                return self._ray.get(ref)
            if cancellable:
                try:
                    anyio.from_thread.check_cancelled()
                except RuntimeError:  # not an AnyIO worker thread: nothing can cancel it
                    cancellable = False

    def _take(self) -> _Actor:
        while not self._closed:
            self._reclaim()
            with contextlib.suppress(queue.Empty):
                actor = self._idle.get(timeout=POLL)
                with self._lock:
                    self._busy.add(actor)
                return actor
            with self._lock:
                empty = not (self._ready or self._starting or self._draining)
            if empty:
                break
            self._collect(timeout=0)
            with contextlib.suppress(RuntimeError):  # not an AnyIO worker thread
                anyio.from_thread.check_cancelled()
        raise WorkerCrashedError("no Ray actor is left to answer the call")

    def _give_back(self, actor: _Actor) -> None:
        with self._lock:
            self._busy.discard(actor)
        self._idle.put(actor)

    def _drain(self, ref: Any, actor: _Actor) -> None:
        self._ray.cancel(ref)
        with self._lock:
            self.cancelled += 1
            self._draining[ref] = actor

    def _reclaim(self) -> None:
        """Actors whose cancelled call has stopped take calls again."""
        with self._lock:
            refs = list(self._draining)
        if not refs:
            return
        done, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        for ref in done:
            with self._lock:
                actor = self._draining.pop(ref)
            self._give_back(actor)

    def _lose(self, actor: _Actor, why: BaseException) -> None:
        with self._lock:
            self._busy.discard(actor)
            self.actors_lost += 1
            if actor in self._ready:
                self._ready.remove(actor)
        logger.warning("Ray actor %d lost: %s", actor.pid, str(why).splitlines()[0])
        with contextlib.suppress(Exception):
            self._ray.kill(actor.handle)
        if not self._closed:
            self.resize()  # a replacement, if the cluster still has room for it

    # -- admission across the cluster ---------------------------------------------------

    def others_load(self, own: float) -> float:
        """Report this engine's live load (cores) to the cluster's ledger and return the
        other engines' (blocking; on no answer, the last one known)."""
        self._load = own
        try:
            self._others = float(self._ray.get(
                self._ledger_handle().report.remote(self.engine_id, own, self._name),
                timeout=LEDGER_TIMEOUT))
        except (self._ray.exceptions.RayActorError, self._ray.exceptions.GetTimeoutError,
                self._ray.exceptions.ActorUnavailableError) as exc:
            logger.warning("admission ledger unavailable (%s); using the last figure",
                           type(exc).__name__)
            self._ledger = None  # found or started again next time
        return self._others

    def publish_load(self, own: float) -> None:
        """Tell the ledger this engine's live load now, without waiting."""
        self._load = own
        with contextlib.suppress(Exception):
            self._ledger_handle().report.remote(self.engine_id, own, self._name)

    def _ledger_handle(self) -> Any:
        if self._ledger is None:
            self._ledger = self._ray.remote(AdmissionLedger).options(
                name=LEDGER, namespace=NAMESPACE, get_if_exists=True, num_cpus=0,
                max_concurrency=1, lifetime="detached").remote()
        return self._ledger

    def statistics(self) -> ClusterStatistics:
        """The pool's figures, from what it holds: no request to the cluster, so a monitor
        may ask every second from the event loop."""
        self._reclaim()
        with self._lock:
            return ClusterStatistics(
                self.address, len(self._ready), len(self._starting), self._target,
                len(self._busy), self.cpus_per_actor, self.gpus_per_actor, self.calls,
                self.retried, self.actors_lost, self.cancelled, self.audio_bytes,
                round(1000 * self._overhead / self.calls, 2) if self.calls else None)

    def pids(self) -> list[int]:
        with self._lock:
            return [a.pid for a in self._ready]

    def handles(self, *, busy: bool = False) -> list[Any]:
        """The ready actors' handles, or only those in a call (to inspect or, in tests, to
        kill one)."""
        with self._lock:
            return [a.handle for a in self._ready if not busy or a in self._busy]

    def close(self) -> None:
        """Leave the pool: this engine's load leaves the ledger; the last engine using these
        actors stops them (and the ledger, when no engine is left at all). If this pool connected to
        Ray it disconnects (stopping a local cluster it started); a connection the
        application made is left open."""
        self._closed = True
        with self._lock:
            actors = self._ready + list(self._starting.values()) + list(self._draining.values())
            self._ready, self._starting, self._draining = [], {}, {}
        remaining, engines = 0, 0
        with contextlib.suppress(Exception):
            ledger = self._ledger_handle()
            remaining = self._ray.get(ledger.forget.remote(self.engine_id),
                                      timeout=LEDGER_TIMEOUT)
            engines = self._ray.get(ledger.engines.remote(), timeout=LEDGER_TIMEOUT)
        if not remaining:
            handles = [a.handle for a in actors] + ([] if engines else [self._ledger_handle()])
            for handle in handles:
                with contextlib.suppress(Exception):
                    self._ray.kill(handle)
            # Gone before this returns, so that a pool started next finds no dying actor
            # under the same name.
            for handle in handles:
                with contextlib.suppress(Exception):
                    self._ray.get(handle.__ray_ready__.remote(), timeout=START_TIMEOUT)
        if self._connected:
            self._ray.shutdown()


def _model_error(exc: Any, what: str) -> VoicesubError:
    """What an actor raised, as raised there when it is one of ours (a model not found,
    say), else as a :class:`~voicesub_stream.errors.TranscriptionError`."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, VoicesubError):
        return cause
    return TranscriptionError(f"{what}: {cause!r}")


class RayRunner(SharedCallRunner):
    """The :class:`~voicesub_stream.models.WhisperRunner` interface, on a :class:`RayPool`."""

    def __init__(self, pool: RayPool, model: str, options: TranscribeOptions, *,
                 multilingual: bool = True) -> None:
        self.pool = pool
        self.model = model
        self.options = options
        # Detected per stream from the actors' answers; English-only models read English.
        self.language: str | None = options.language if multilingual else "en"
        self.language_probability: float | None = 1.0 if self.language else None
        o = options
        self.batch_key: Hashable | None = ("ray", id(pool), model, o.task, o.beam_size,
                                           o.word_timestamps, o.initial_prompt)

    def transcribe_together(self, items: Sequence[tuple[Any, SpeechWindow, str | None]], *,
                            prompt_limit: int | None = None) -> list[WindowText]:
        """Windows of this and other runners with this :attr:`batch_key`, as one actor call
        (each item is (runner, window, prompt)).

        :raises TranscriptionError: the model failed
        :raises WorkerCrashedError: actors kept dying under the call
        """
        runners: list[RayRunner] = []
        position: dict[int, int] = {}
        for runner, _, _ in items:
            if id(runner) not in position:
                position[id(runner)] = len(runners)
                runners.append(runner)
        answer = self.pool.call(RemoteCall(
            self.model,
            [_Stream(r.options, r.language, r.language_probability) for r in runners],
            [(position[id(runner)], window, prompt) for runner, window, prompt in items],
            prompt_limit))
        for runner, (language, probability) in zip(runners, answer.languages, strict=True):
            runner.language, runner.language_probability = language, probability
        return [WindowText(window, text, [Word(*w) for w in words], logprob, no_speech, seconds)
                for (_, window, _), (text, words, logprob, no_speech, seconds)
                in zip(items, answer.results, strict=True)]

    def translate(self, results: list[WindowText]) -> list[str]:
        """English for each result: see :meth:`~voicesub_stream.models.WhisperRunner.translate`."""
        if self.language == "en":
            return [r.text for r in results]
        english = RayRunner(self.pool, self.model,
                            self.options.with_changes(task="translate", word_timestamps=False))
        english.language = self.language
        return [r.text for r in english.transcribe([r.window for r in results])]
