"""Serving under load: the live pace controller and admission control.

The mechanisms are driven by a model whose time per call the test sets (``FakeRunner``'s
delay) or by the update cost admission is told; one test runs real paced streams on the
engine's defaults. No test measures wall-clock speed: the figures live in ``voicesub bench
concurrency``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
import numpy as np
import pytest

from voicesub_stream import (
    AudioChunk,
    Engine,
    LiveOptions,
    Segment,
    Settings,
    TranscribeOptions,
    paced,
)
from voicesub_stream._admission import Admission
from voicesub_stream._text import word_error_rate
from voicesub_stream.errors import OverloadedError, VoicesubError
from voicesub_stream.scheduler import Scheduler
from voicesub_stream.stages import ECONOMICAL, PaceController, paces
from voicesub_stream.stages._live import LiveTranscriber
from voicesub_stream.testing import FakeRunner, assert_no_leaks, resource_snapshot

from .conftest import SENTENCES
from .helpers import drive_live_stage, live_update_cost

# -- the pace controller ----------------------------------------------------------------

def test_the_pace_rises_when_answers_are_slow_and_falls_after_quick_ones() -> None:
    pacer = PaceController(LiveOptions(), adaptive=True)
    assert pacer.pace == paces(LiveOptions())[0]
    for _ in range(3):
        pacer.observe(0.9 * pacer.pace.step, backlog=0.5)
    assert pacer.pace.level == 1
    for _ in range(3):  # a slow answer right after a change is not yet a trend
        pacer.observe(0.9 * pacer.pace.step, backlog=0.5)
    assert pacer.pace.level == ECONOMICAL
    # Past the economical pace only answers slower than one and a half steps (the stream
    # falls behind) go to finals only.
    for _ in range(10):
        pacer.observe(0.7 * pacer.pace.step, backlog=0.5)
    assert pacer.pace.level == ECONOMICAL
    for _ in range(3):
        pacer.observe(2.0 * pacer.pace.step, backlog=2.0)
    top = paces(LiveOptions())[-1]
    assert pacer.pace == top
    assert not top.partials
    for _ in range(40):
        pacer.observe(0.01, backlog=0.5)
    assert pacer.pace.level == 0
    assert pacer.changes == 6


def test_a_fixed_policy_keeps_the_options_as_given() -> None:
    pacer = PaceController(LiveOptions(policy="block"), adaptive=False, lowest=3)
    for _ in range(20):
        pacer.observe(5.0, backlog=10.0)
    assert pacer.pace.level == 0
    assert pacer.pace.step == LiveOptions().step


def test_the_ladder_never_costs_more_than_the_callers_options() -> None:
    live = LiveOptions(step=2.0, context=0.5, max_buffer=4.0, partials=False)
    for pace in paces(live):
        assert pace.step >= live.step
        assert pace.context <= live.context
        assert pace.max_buffer <= live.max_buffer
        assert not pace.partials


def test_auto_policy_is_adaptive_only_for_real_time_sources() -> None:
    live = LiveOptions()
    assert live.policy == "auto"
    assert live.resolved_policy(realtime=True) == "adaptive"
    assert live.resolved_policy(realtime=False) == "block"
    assert LiveOptions(policy="block").resolved_policy(realtime=True) == "block"


async def _stage_run(audio: np.ndarray, runner: FakeRunner, speed: float,
                     slow_until: float | None = None) -> tuple[list[Segment], LiveTranscriber]:
    stage = LiveTranscriber(runner, Scheduler(1), TranscribeOptions(),  # type: ignore[arg-type]
                            LiveOptions(), realtime=True)

    def ease(chunk: AudioChunk) -> None:
        if slow_until is not None and chunk.start >= slow_until:
            runner.delay = 0.0  # the load eases

    segments = await drive_live_stage(stage, audio, speed=speed, buffer=stage.input_buffer,
                                      on_chunk=ease)
    return segments, stage


@pytest.mark.speech
async def test_a_slow_model_moves_the_stream_to_cheaper_paces_and_loses_nothing(
    espeak_audio: np.ndarray,
) -> None:
    audio = np.tile(espeak_audio, 3)
    duration = len(audio) / 16_000
    # Each call takes longer than a step of audio arrives in: a fixed pace would fall behind
    # without bound.
    fixed = LiveTranscriber(FakeRunner(delay=0.4), Scheduler(1), TranscribeOptions(),  # type: ignore[arg-type]
                            LiveOptions(policy="block"))
    assert fixed.policy == "block"
    segments, stage = await _stage_run(audio, FakeRunner(delay=0.4), speed=4,
                                       slow_until=duration / 2)
    stats = stage.statistics()
    assert stats.policy == "adaptive"
    assert stats.pace_changes >= 2  # it climbed while slow, and came down once it eased
    assert stats.dropped_seconds == 0
    finals = [s for s in segments if s.is_final]
    assert finals
    assert finals[-1].end >= duration - 1.5
    # Every update took everything received: far fewer calls than steps of audio.
    assert stats.model_calls < duration / LiveOptions().step


# -- admission ------------------------------------------------------------------------

def admission(cost: float) -> Admission:
    adm = Admission(cores=2, threads_per_call=1, device="cpu")
    adm._costs["tiny.en"] = cost  # what earlier streams measured
    return adm


def test_admission_refuses_once_full_and_admits_again_when_a_stream_ends() -> None:
    adm = admission(0.38)  # 0.38 core-seconds per 1 s update: four streams fit in 1.6 cores
    tickets = [adm.admit("tiny.en", LiveOptions()) for _ in range(4)]
    with pytest.raises(OverloadedError, match="at capacity") as refused:
        adm.admit("tiny.en", LiveOptions())
    assert refused.value.retry_after > 0
    assert isinstance(refused.value, VoicesubError)
    tickets[0].release()
    tickets[0].release()  # releasing twice counts once
    tickets.append(adm.admit("tiny.en", LiveOptions()))
    stats = adm.statistics()
    assert (stats.live_streams, stats.admitted, stats.refused) == (4, 5, 1)
    assert int(stats.models["tiny.en"].streams) == 4


def test_a_stream_that_accepts_less_is_admitted_degraded() -> None:
    adm = admission(0.42)  # three full streams fit (1.26 of 1.6 cores), a fourth would not
    for _ in range(3):
        adm.admit("tiny.en", LiveOptions())
    with pytest.raises(OverloadedError, match="degraded"):
        adm.admit("tiny.en", LiveOptions())
    degraded = adm.admit("tiny.en", LiveOptions(accept_degraded=True))
    assert degraded.degraded
    assert degraded.lowest_pace == len(paces(LiveOptions())) - 1
    stats = adm.statistics()
    assert (stats.degraded_streams, stats.degraded, stats.refused) == (1, 1, 1)


def test_the_first_stream_is_admitted_whatever_it_costs() -> None:
    adm = admission(100.0)
    adm.admit("tiny.en", LiveOptions())
    with pytest.raises(OverloadedError):
        adm.admit("tiny.en", LiveOptions())


def test_a_timed_update_sizes_the_capacity_before_any_update_is_measured() -> None:
    from voicesub_stream._admission import PRIOR_UPDATE_SECONDS

    adm = Admission(cores=2, threads_per_call=1, device="cpu")
    assert adm.needs_calibration("tiny.en")
    adm.calibrate("tiny.en", 0.26)  # a machine slower than the prior's
    assert not adm.needs_calibration("tiny.en")
    cost = adm.statistics().models["tiny.en"]
    assert cost.calibrated
    assert not cost.measured
    assert cost.update_seconds == pytest.approx(0.26)
    assert cost.update_seconds > PRIOR_UPDATE_SECONDS["tiny"]
    fit = math.floor(adm.capacity / cost.update_seconds)  # one update a second each
    assert fit < math.floor(adm.capacity / PRIOR_UPDATE_SECONDS["tiny"])
    for _ in range(fit):
        adm.admit("tiny.en", LiveOptions())
    with pytest.raises(OverloadedError):
        adm.admit("tiny.en", LiveOptions())
    ticket = adm._tickets[0]
    for _ in range(200):
        ticket.observe(0.05, pace=ECONOMICAL)
    assert adm.statistics().models["tiny.en"].measured  # measured updates take over
    assert adm.statistics().models["tiny.en"].update_seconds == pytest.approx(0.05, rel=0.05)


def test_measured_updates_replace_the_prior() -> None:
    adm = Admission(cores=2, threads_per_call=1, device="cpu")
    ticket = adm.admit("tiny.en", LiveOptions())
    assert not adm.statistics().models["tiny.en"].measured
    ticket.observe(0.05, pace=0)  # the stream's own pace is not what capacity counts
    assert not adm.statistics().models["tiny.en"].measured
    for _ in range(200):
        ticket.observe(0.05, pace=ECONOMICAL)
    cost = adm.statistics().models["tiny.en"]
    assert cost.measured
    assert cost.update_seconds == pytest.approx(0.05, rel=0.05)


def metric_families(engine: Engine) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    from voicesub_stream.server import render_metrics

    body, _ = render_metrics(engine)
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


async def refuse_and_readmit(engine: Engine, audio: np.ndarray) -> None:
    async with engine.transcribe_stream(paced(audio, speed=4), live=True) as first:
        refused = engine.transcribe_stream(paced(audio), live=True)
        with pytest.raises(OverloadedError):
            await refused.__aenter__()
        with pytest.raises(OverloadedError):  # asked again, it says the same
            await refused.__anext__()
        with pytest.raises(OverloadedError):  # iterating without ``async with``: the same
            async for _ in engine.transcribe_stream(paced(audio), live=True):
                pass
        assert [s async for s in first if s.is_final]
    # The first stream ended: there is room again.
    async with engine.transcribe_stream(paced(audio, speed=4), live=True) as again:
        assert [s async for s in again if s.is_final]


@pytest.mark.speech
async def test_a_refused_stream_fails_at_its_start_and_leaks_nothing(
    settings: Settings, espeak_audio: np.ndarray,
) -> None:
    before = resource_snapshot()
    with live_update_cost(10.0):
        async with Engine(settings) as engine:
            await refuse_and_readmit(engine, espeak_audio)
            stats = engine.statistics().admission
            families = metric_families(engine)
    assert families["voicesub_admission_refused"].samples[0].value == stats.refused
    assert families["voicesub_admission_admitted"].samples[0].value == stats.admitted
    assert families["voicesub_admission_capacity"].samples[0].value == stats.capacity
    (cost,) = families["voicesub_admission_models_update_seconds"].samples
    assert cost.labels == {"model": "tiny.en"}
    assert stats.refused >= 2
    assert stats.live_streams == 0
    await assert_no_leaks(before)


@pytest.mark.speech
async def test_a_warmed_up_engine_answers_the_first_streams_from_its_timed_update(
    settings: Settings, espeak_audio: np.ndarray,
) -> None:
    async with Engine(settings) as engine:
        await engine.warm_up()
        cost = engine.statistics().admission.models["tiny.en"]
        assert cost.calibrated
        assert not cost.measured
        assert cost.update_seconds > 0
        (loaded,) = engine.statistics().models.loaded
        assert loaded.name == "tiny.en"
        # Batch work's copy, where the engine keeps one, is loaded too.
        assert loaded.background_copy == engine.scheduler.runs_apart("batch")
        await engine.warm_up()  # timed once per model
        assert engine.statistics().admission.models["tiny.en"] == cost
        # A stream now starts without timing anything.
        async with engine.transcribe_stream(paced(espeak_audio[:16_000]),
                                            live=LiveOptions()) as stream:
            async for _ in stream:
                pass
        assert engine.statistics().admission.admitted == 1


@pytest.mark.speech
async def test_three_paced_streams_on_the_defaults_all_finish_with_finals(
    settings: Settings, espeak_audio: np.ndarray,
) -> None:
    # tiny.en, the model the serving targets are set for: three live streams of base (0.6
    # core-s an update) do not fit two cores, and a cold engine knows it. On a machine too
    # slow for three full tiny.en streams the third is served degraded (finals only), which
    # a client asks for with accept_degraded; everything else is the defaults.
    live = LiveOptions(accept_degraded=True)

    async def one(engine: Engine, out: list[str]) -> None:
        async with engine.transcribe_stream(paced(espeak_audio), live=live) as stream:
            out.extend([s.text async for s in stream if s.is_final])
            assert stream.statistics().live is not None
            assert stream.statistics().live.policy == "adaptive"

    texts: list[list[str]] = [[], [], []]
    async with Engine(settings) as engine:
        async with anyio.create_task_group() as tg:
            for out in texts:
                tg.start_soon(one, engine, out)
        stats = engine.statistics().admission
    assert stats.admitted == 3
    assert stats.refused == 0
    assert stats.models["tiny.en"].calibrated  # sized for this machine before the first
    for out in texts:
        assert word_error_rate(SENTENCES, " ".join(out)) <= 0.3


@pytest.mark.speech
async def test_file_work_keeps_off_the_model_calls_live_streams_need(
    settings: Settings, espeak_audio: np.ndarray,
) -> None:
    # Where batch calls run on their own low-priority copy of the model (CPU, Linux), the
    # file has slots of its own; elsewhere it keeps off the slots the live stream needs.
    async with Engine(settings) as engine:
        scheduler = engine.scheduler
        apart = scheduler.runs_apart("batch")
        assert apart == (engine.execution.background_calls > 0)
        assert scheduler.reserved == 0
        async with engine.transcribe_stream(paced(espeak_audio, speed=4), live=True) as live:
            assert scheduler.reserved == min(1, scheduler.workers - 1)
            if apart:
                assert scheduler.slots_for("batch") == scheduler.background_workers
                assert not scheduler.keep_short("batch")
            else:
                assert scheduler.slots_for("batch") == scheduler.workers - scheduler.reserved
                assert scheduler.keep_short("batch") == (scheduler.reserved > 0)
            async with engine.transcribe_stream(espeak_audio) as file:
                segments = [s async for s in file]
                calls = file.statistics().transcription
            finals = [s async for s in live if s.is_final]
        assert scheduler.reserved == 0  # the live stream ended: every call is free again
        assert not scheduler.keep_short("batch")
        (model,) = engine.statistics().models.loaded
        assert model.background_copy == apart
    assert calls is not None
    if not apart:
        assert calls.batches == calls.windows  # one window per call beside a live stream
    assert word_error_rate(SENTENCES, " ".join(s.text for s in segments)) <= 0.3
    assert word_error_rate(SENTENCES, " ".join(s.text for s in finals)) <= 0.3


# -- the server --------------------------------------------------------------------------

async def test_a_full_server_closes_1013_with_a_reason_and_retry_after(
    espeak_audio: np.ndarray,
) -> None:
    from websockets.asyncio.client import connect

    from .test_server import drain, running_server

    pcm = (np.clip(espeak_audio, -1, 1) * 32767).astype("<i2").tobytes()
    with live_update_cost(10.0), running_server(retry_after=3) as address:
        async with connect(f"ws://{address}/v1/stream") as first:
            await first.send(json.dumps({}))
            assert json.loads(await first.recv()) == {"type": "admitted", "degraded": False}
            await first.send(pcm[:32000])
            async with connect(f"ws://{address}/v1/stream") as second:
                await second.send(json.dumps({"accept_degraded": True}))
                messages: list[dict[str, Any]] = await drain(second)
            assert second.close_code == 1013
            assert "OverloadedError" in (second.close_reason or "")
            assert messages[-1]["type"] == "error"
            assert messages[-1]["retry_after"] >= 3
            await first.send(json.dumps({"type": "stop"}))
            events = await drain(first)
        assert events[-1]["type"] == "stats"


def test_an_overloaded_request_is_503_with_retry_after() -> None:
    from voicesub_stream.server import ServerSettings
    from voicesub_stream.server._app import _failure

    response = _failure(OverloadedError("full", retry_after=12.0),
                        ServerSettings.load(retry_after=5))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "12"
    assert json.loads(response.body)["error"]["type"] == "server_busy"
