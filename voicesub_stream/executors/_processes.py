"""Model calls in worker processes (``VOICESUB_EXECUTOR=processes``), a model crash isolated
from the server.

Each worker process loads its model once and keeps it. A job goes to one idle worker over a
pipe and the calling thread blocks on the answer (so to the pipeline a pooled runner looks
exactly like :class:`~voicesub_stream.models.WhisperRunner`). If the worker dies mid-job, or
gives no answer within the job's deadline (a hung or stopped process), only that job fails,
with :class:`~voicesub_stream.errors.WorkerCrashedError`, and a fresh worker takes the old
one's place. The job is not retried: a job that killed one worker would kill the next. A
worker that died while idle is replaced before it is handed work, so it fails nothing.
Threads remain the default: CTranslate2 releases the GIL, so processes pay memory (one model
per worker) for isolation, not speed.

Only plain data crosses the pipe: the model's :class:`~voicesub_stream.ModelConfig` and key
once, then per job the stream's options (plain data by design), its language, and the
windows' samples. A job that cannot be sent fails with
:class:`~voicesub_stream.errors.TranscriptionError` and its worker goes back to the pool.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._types import Word
from ..errors import TranscriptionError, WorkerCrashedError
from ..models import WindowText

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence
    from multiprocessing.connection import Connection

    from .._config import ModelConfig, TranscribeOptions
    from .._types import SpeechWindow
    from ..models import ModelKey

__all__ = ("ProcessPool", "ProcessRunner")

logger = logging.getLogger(__name__)

DEADLINE = 20.0
"""Seconds any job may take before its worker counts as hung, plus :data:`DEADLINE_PER_AUDIO`
for each second of audio in it (a working model is faster than real time; large models on
a small CPU come closest)."""
DEADLINE_PER_AUDIO = 2.0


@dataclass(frozen=True)
class _Job:
    options: TranscribeOptions
    language: str | None
    windows: list[SpeechWindow]
    prompts: Sequence[str | None] | None
    prompt_limit: int | None


def _worker_main(conn: Connection, config: ModelConfig, key: ModelKey) -> None:
    """A worker process: load the model once, then answer jobs until the pipe closes."""
    from ..models import ModelRegistry, WhisperRunner

    model = ModelRegistry(config).get(key)
    conn.send(("ready", None))
    while True:
        try:
            job: _Job = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        try:
            runner = WhisperRunner(model, job.options)
            if job.language is not None:
                runner.language = job.language
            results = runner.transcribe(job.windows, prompts=job.prompts,
                                        prompt_limit=job.prompt_limit)
            conn.send(("ok", (runner.language, runner.language_probability,
                              [(r.text, [(w.start, w.end, w.text, w.probability)
                                         for w in r.words], r.avg_logprob, r.no_speech_prob,
                                r.model_seconds)
                               for r in results])))
        except BaseException as exc:  # reported to the caller, the worker lives on
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, ctx: Any, config: ModelConfig, key: ModelKey) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, config, key),
                                   daemon=True, name="voicesub-model-worker")
        self.process.start()
        child.close()
        status, _ = self.conn.recv()  # blocks until the model is loaded
        if status != "ready":  # pragma: no cover - the worker only ever says ready
            raise TranscriptionError("model worker failed to start")

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def close(self) -> None:
        self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():  # a stopped or stuck worker
            self.kill()

    def kill(self) -> None:
        self.process.kill()  # SIGKILL ends a stopped process too
        self.process.join()


class ProcessPool:
    """``workers`` processes, each holding one loaded model ``key``; thread-safe.

    A job's deadline is ``deadline`` seconds plus ``deadline_per_audio`` for each second of
    audio it carries.
    """

    def __init__(self, config: ModelConfig, key: ModelKey, workers: int, *,
                 deadline: float = DEADLINE,
                 deadline_per_audio: float = DEADLINE_PER_AUDIO) -> None:
        self._ctx = mp.get_context("spawn")  # never fork a process holding model threads
        self._config, self.key = config, key
        self.deadline, self.deadline_per_audio = deadline, deadline_per_audio
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self.replaced = 0
        for _ in range(workers):
            self._add()

    def _add(self) -> None:
        worker = _Worker(self._ctx, self._config, self.key)
        with self._lock:
            self._all.append(worker)
        self._idle.put(worker)

    def _replace(self, worker: _Worker, why: str) -> None:
        code = worker.process.exitcode
        with self._lock:
            self._all.remove(worker)
        worker.kill()
        self.replaced += 1
        logger.warning("model worker %d %s (exit code %s); starting another", worker.pid, why,
                       code)
        self._add()

    def _take(self) -> _Worker:
        """An idle worker that is alive: one that died while idle is replaced first."""
        while True:
            worker = self._idle.get()
            if worker.process.is_alive():
                return worker
            self._replace(worker, "died while idle")

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._all]

    def call(self, job: _Job) -> tuple[str | None, float | None, list[Any]]:
        """Run ``job`` on an idle worker; blocking (call it from a worker thread).

        :raises WorkerCrashedError: the worker died during the job, or gave no answer by its
            deadline (either way it has been replaced)
        :raises TranscriptionError: the model raised in the worker
        """
        worker = self._take()
        try:
            # Pickled here, first, so that a job that cannot be sent leaves the worker idle
            # and its pipe clean (Connection.send would fail halfway through a message).
            message = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            self._idle.put(worker)
            raise TranscriptionError(f"a model job could not be sent to a worker "
                                     f"process: {exc!r}") from exc
        deadline = self.deadline + self.deadline_per_audio * sum(w.duration
                                                                 for w in job.windows)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            worker.process.kill()

        # A hung worker is killed at the deadline, which ends a blocked send or receive here.
        hung = threading.Timer(deadline, expire)
        hung.daemon = True
        hung.start()
        try:
            worker.conn.send_bytes(message)
            status, payload = worker.conn.recv()
        except (EOFError, OSError) as exc:
            why = (f"gave no answer within {deadline:.0f} s" if timed_out.is_set()
                   else "died during the job")
            self._replace(worker, why)
            raise WorkerCrashedError(f"model worker {worker.pid} {why}") from exc
        finally:
            hung.cancel()
        self._idle.put(worker)
        if status == "error":
            raise TranscriptionError(f"model worker: {payload}")
        language, probability, results = payload
        return language, probability, results

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()


class ProcessRunner:
    """The :class:`~voicesub_stream.models.WhisperRunner` interface, run in a pool."""

    def __init__(self, pool: ProcessPool, options: TranscribeOptions) -> None:
        self.pool = pool
        self.options = options
        self.batch_key: Hashable | None = None  # a worker answers one stream at a time
        # Set by the worker's answers: detected per stream, or "en" for English-only models.
        self.language: str | None = options.language
        self.language_probability: float | None = 1.0 if options.language else None

    def transcribe(self, windows: list[SpeechWindow], *,
                   prompts: Sequence[str | None] | None = None,
                   prompt_limit: int | None = None) -> list[WindowText]:
        language, probability, results = self.pool.call(
            _Job(self.options, self.language, windows, prompts, prompt_limit))
        self.language, self.language_probability = language, probability
        return [WindowText(window, text, [Word(*w) for w in words], logprob, no_speech, seconds)
                for window, (text, words, logprob, no_speech, seconds)
                in zip(windows, results, strict=True)]

    def transcribe_together(self, items: Sequence[tuple[Any, SpeechWindow, str | None]], *,
                            prompt_limit: int | None = None) -> list[WindowText]:
        """This runner's own windows (with no :attr:`batch_key`, nothing else asks)."""
        return self.transcribe([window for _, window, _ in items],
                               prompts=[prompt for _, _, prompt in items],
                               prompt_limit=prompt_limit)

    def translate(self, results: list[WindowText]) -> list[str]:
        """English for each result: see :meth:`~voicesub_stream.models.WhisperRunner.translate`."""
        if self.language == "en":
            return [r.text for r in results]
        english = ProcessRunner(self.pool, self.options.with_changes(task="translate",
                                                                     word_timestamps=False))
        english.language = self.language
        return [r.text for r in english.transcribe([r.window for r in results])]
