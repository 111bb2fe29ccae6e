"""Streaming behaviour: cleanup, cancellation, backpressure, errors, a free event loop.

Every test here runs twice, under asyncio and under trio (anyio's pytest plugin).
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest

import voicesub_stream
from voicesub_stream import Engine, Segment, Settings, transcribe_stream
from voicesub_stream.errors import StreamClosedError, TranscriptionError
from voicesub_stream.scheduler import Scheduler
from voicesub_stream.stages import SpeechWindow, Transcriber
from voicesub_stream.testing import FakeRunner, assert_no_leaks, resource_snapshot

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = [pytest.mark.speech, pytest.mark.anyio]


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
async def engine(anyio_backend: str, settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(settings) as engine:
        yield engine


@pytest.fixture(scope="module")
async def default_engine(anyio_backend: str) -> Engine:
    """The event loop's default engine, started before any leak check looks."""
    return await voicesub_stream.default_engine()


# What the pipeline may hold at once, in seconds of audio: 8 s of read-ahead, the VAD's
# 30 s scan step plus an open region, 8 queued and 8 outstanding 20 s windows, and the 32
# segments waiting for the consumer, each at most a 7 s cue.
IN_FLIGHT_BOUND = 8 + 2 * 30 + 2 * 8 * 20 + 32 * 7
SHORT_CALLS = 2
"""Windows per model call in the tests that leave a stream early: what cleanup waits for is
the model call already running (a thread cannot be interrupted), and the cleanup checks need
no long one."""


class CountingSource:
    """``repeats`` copies of a clip as async numpy frames, counting what was pulled."""

    def __init__(self, audio: np.ndarray, repeats: int, frame: int = 8000) -> None:
        self.audio, self.repeats, self.frame = audio, repeats, frame
        self.pulled = 0
        self.finished = False

    @property
    def total(self) -> int:
        return len(self.audio) * self.repeats

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        try:
            for _ in range(self.repeats):
                for i in range(0, len(self.audio), self.frame):
                    piece = self.audio[i : i + self.frame]
                    self.pulled += len(piece)
                    yield piece
        finally:
            self.finished = True


async def test_leaving_async_with_early_cancels_upstream_and_leaks_nothing(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    source = CountingSource(espeak_audio, repeats=200)  # ~32 min of speech
    before = resource_snapshot()
    async with engine.transcribe_stream(source.__aiter__(), batch_size=SHORT_CALLS) as stream:
        async for _ in stream:
            break
    assert source.finished  # the source generator was closed, not left suspended
    assert source.pulled / 16_000 < IN_FLIGHT_BOUND
    await assert_no_leaks(before)


async def test_bare_async_for_break_cleans_up(engine: Engine, espeak_audio: np.ndarray) -> None:
    source = CountingSource(espeak_audio, repeats=200)
    before = resource_snapshot()
    async for _ in engine.transcribe_stream(source.__aiter__(), batch_size=SHORT_CALLS):
        break
    gc.collect()
    # As without an engine (below): the finaliser waits for the model call already running.
    await assert_no_leaks(before, within=30.0)
    assert source.finished
    assert source.pulled / 16_000 < IN_FLIGHT_BOUND


@pytest.mark.usefixtures("default_engine")
async def test_engineless_stream_runs_and_cleans_up(espeak_wav: Path) -> None:
    before = resource_snapshot()
    async with transcribe_stream(espeak_wav, model="tiny.en") as stream:
        segments = [seg async for seg in stream]
    assert "journey" in " ".join(s.text for s in segments).lower()
    await assert_no_leaks(before)


@pytest.mark.usefixtures("default_engine")
async def test_engineless_bare_break_cleans_up(espeak_audio: np.ndarray) -> None:
    source = CountingSource(espeak_audio, repeats=40)
    before = resource_snapshot()
    async for _ in transcribe_stream(source.__aiter__(), model="tiny.en",
                                     batch_size=SHORT_CALLS):
        break
    gc.collect()
    # A bare break leaves the stream to its finaliser, which waits for the model call already
    # running in its thread (a batch of 30 s windows; a thread cannot be interrupted): on a
    # loaded two-core machine that call alone can take more than the default 5 s.
    await assert_no_leaks(before, within=30.0)
    assert source.finished


async def test_cancelling_the_consumer_stops_the_stream(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    source = CountingSource(espeak_audio, repeats=40)
    before = resource_snapshot()
    with anyio.CancelScope() as scope:
        async with engine.transcribe_stream(source.__aiter__(),
                                            batch_size=SHORT_CALLS) as stream:
            async for _ in stream:
                scope.cancel()
                await anyio.sleep(1)  # cancelled here
    assert scope.cancelled_caught
    await assert_no_leaks(before)
    assert source.finished


async def test_slow_consumer_bounds_audio_in_flight(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    source = CountingSource(espeak_audio, repeats=200)  # ~32 min of speech
    async with engine.transcribe_stream(source.__aiter__()) as stream:
        await stream.__anext__()
        # Stop reading. The pipeline fills its bounded buffers, then waits.
        previous = -1
        while source.pulled != previous:
            previous = source.pulled
            await anyio.sleep(1.5)
        stalled_at = source.pulled
    assert stalled_at < source.total
    assert stalled_at / 16_000 < IN_FLIGHT_BOUND


async def test_event_loop_keeps_ticking_during_transcription(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    ticks: list[float] = []
    speech = np.tile(espeak_audio, 8)  # ~80 s: several model calls

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        started = time.perf_counter()
        async with engine.transcribe_stream(speech) as stream:
            segments = [seg async for seg in stream]
            model_seconds = stream.statistics().model_seconds
        elapsed = time.perf_counter() - started
        tg.cancel_scope.cancel()
    assert segments
    gaps = np.diff(ticks)
    # The model ran for most of the time; had it run on the loop, one gap would span it.
    assert model_seconds > 0.5 * elapsed
    assert gaps.max() < 0.25 * model_seconds, gaps.max()


async def test_a_closed_stream_stops_iterating(engine: Engine, espeak_wav: Path) -> None:
    stream = engine.transcribe_stream(espeak_wav)
    await stream.aclose()
    assert [seg async for seg in stream] == []


async def test_closed_engine_refuses_new_streams(settings: object, espeak_wav: Path) -> None:
    async with Engine(settings) as engine:  # type: ignore[arg-type]
        pass
    with pytest.raises(StreamClosedError):
        engine.transcribe_stream(espeak_wav)


async def test_leaving_the_engine_cancels_its_running_streams(
    settings: object, espeak_audio: np.ndarray
) -> None:
    source = CountingSource(espeak_audio, repeats=40)
    before = resource_snapshot()
    async with Engine(settings) as engine:  # type: ignore[arg-type]
        stream = engine.transcribe_stream(source.__aiter__(), batch_size=SHORT_CALLS)
        await stream.__anext__()
    # The consumer never closed its stream; the engine cancelled it, so iterating gives at
    # most the segments already queued, and then says the stream was cut, not that the
    # audio ended.
    rest: list[Segment] = []

    async def drain() -> None:
        async for seg in stream:
            rest.append(seg)

    with pytest.raises(StreamClosedError, match="engine closed before the stream ended"):
        await drain()
    assert len(rest) <= 32
    with pytest.raises(StreamClosedError):  # and says so again
        await stream.__anext__()
    await assert_no_leaks(before)
    assert source.finished


# -- the transcription stage on its own, with a fake model -----------------------------

def window(index: int, seconds: float = 2.0) -> SpeechWindow:
    start = index * 160_000
    length = int(seconds * 16_000)
    return SpeechWindow(index, np.zeros(length, np.float32), ((start, start + length),))


async def run_stage(runner: FakeRunner, windows: list[SpeechWindow],
                    scheduler: Scheduler | None = None) -> list[Segment]:
    send_w, recv_w = anyio.create_memory_object_stream[SpeechWindow](len(windows))
    send_s, recv_s = anyio.create_memory_object_stream[Segment](100)
    for w in windows:
        send_w.send_nowait(w)
    send_w.close()
    out: list[Segment] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(Transcriber(runner, scheduler or Scheduler(1)).run, recv_w, send_s)
        async with recv_s:
            async for seg in recv_s:
                out.append(seg)
    return out


async def test_stage_batches_waiting_windows_up_to_batch_size() -> None:
    from voicesub_stream import TranscribeOptions

    runner = FakeRunner(TranscribeOptions(batch_size=4))
    segments = await run_stage(runner, [window(i) for i in range(10)])
    assert runner.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [s.index for s in segments] == list(range(len(segments)))
    assert [s.text for s in segments][:2] == ["window 0.", "window 1."]


async def test_concurrent_calls_split_the_windows_and_keep_their_order() -> None:
    from voicesub_stream import TranscribeOptions

    class FirstIsSlow(FakeRunner):
        """The first call takes longest, so later calls finish before it."""

        first_done = 0.0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.started: dict[int, float] = {}

        def transcribe(self, windows: list[SpeechWindow], **kw: Any) -> Any:
            self.started[windows[0].index] = time.monotonic()
            if windows[0].index == 0:
                time.sleep(0.3)
                self.first_done = time.monotonic()
            return super().transcribe(windows, **kw)

    runner = FirstIsSlow(TranscribeOptions(batch_size=8), delay=0.02)
    segments = await run_stage(runner, [window(i) for i in range(8)], Scheduler(2))
    # The waiting windows were split over the two calls, not taken whole by the first.
    assert max(len(b) for b in runner.batches) <= 4
    assert sorted(i for b in runner.batches for i in b) == list(range(8))
    # The other core went on with the rest while the first call was still running: a call
    # that ends frees its slot, even though its segments wait for the first call's.
    assert all(t < runner.first_done for i, t in runner.started.items() if i), runner.started
    # Segments go out in window order with consecutive indices, whichever call ended first.
    assert [s.text for s in segments] == [f"window {i}." for i in range(8)]
    assert [s.index for s in segments] == list(range(len(segments)))


async def test_stage_error_arrives_after_every_earlier_segment() -> None:
    from voicesub_stream import TranscribeOptions

    runner = FakeRunner(TranscribeOptions(batch_size=1), fail_on_window=3)
    got: list[str] = []
    send_w, recv_w = anyio.create_memory_object_stream[SpeechWindow](10)
    send_s, recv_s = anyio.create_memory_object_stream[Segment](100)
    for i in range(6):
        send_w.send_nowait(window(i))
    send_w.close()

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(Transcriber(runner, Scheduler(1)).run, recv_w, send_s)
            async with recv_s:
                async for seg in recv_s:
                    got.append(seg.text)

    with pytest.raises(ExceptionGroup) as info:
        await run()
    assert info.group_contains(TranscriptionError)
    assert got == ["window 0.", "window 1.", "window 2."]


async def test_model_calls_never_exceed_the_scheduler_bound() -> None:
    runner = FakeRunner(delay=0.02)
    limiter = Scheduler(2)

    async def one(offset: int) -> None:
        send_w, recv_w = anyio.create_memory_object_stream[SpeechWindow](10)
        send_s, recv_s = anyio.create_memory_object_stream[Segment](100)
        for i in range(5):
            send_w.send_nowait(window(offset + i))
        send_w.close()
        async with anyio.create_task_group() as tg:
            tg.start_soon(Transcriber(runner, limiter).run, recv_w, send_s)
            async with recv_s:
                async for _ in recv_s:
                    await anyio.lowlevel.checkpoint()

    runner.options = runner.options.with_changes(batch_size=1)
    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(one, n * 100)
    assert runner.max_active == 2


async def test_engine_statistics_count_streams_and_models(settings: object,
                                                          espeak_wav: Path) -> None:
    async with Engine(settings) as engine:  # type: ignore[arg-type]
        async with engine.transcribe_stream(espeak_wav) as stream:
            _ = [seg async for seg in stream]
        stats = engine.statistics()
    assert stats.streams_started == 1
    assert stats.running is True
    assert [m.name for m in stats.models.loaded] == ["tiny.en"]


async def test_live_and_file_streams_share_the_engine_scheduler(
    settings: object, espeak_audio: np.ndarray, espeak_wav: Path
) -> None:
    from voicesub_stream import paced

    async with Engine(settings) as engine:  # type: ignore[arg-type]
        async def file_run() -> None:
            async with engine.transcribe_stream(espeak_wav) as stream:
                _ = [seg async for seg in stream]

        async def live_run() -> None:
            async with engine.transcribe_stream(paced(espeak_audio, speed=50),
                                                live=True) as stream:
                _ = [seg async for seg in stream]

        async with anyio.create_task_group() as tg:
            tg.start_soon(file_run)
            tg.start_soon(live_run)
        classes = engine.statistics().scheduler.classes
    assert classes["live"].completed > 0
    assert classes["batch"].completed > 0
    assert engine.scheduler.peak_running <= engine.scheduler.workers


async def test_segments_before_a_source_failure_come_first_then_the_error(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    from voicesub_stream.errors import AudioDecodeError

    async def failing() -> AsyncIterator[np.ndarray]:
        for i in range(0, len(espeak_audio), 8000):
            yield espeak_audio[i : i + 8000]
        raise AudioDecodeError("the feed broke")

    segments: list[Segment] = []

    async def consume() -> None:
        async for seg in engine.transcribe_stream(failing()):
            segments.append(seg)

    before = resource_snapshot()
    with pytest.raises(AudioDecodeError, match="the feed broke"):
        await consume()
    # Everything decoded before the failure was transcribed and delivered first.
    assert "journey" in " ".join(s.text for s in segments).lower()
    await assert_no_leaks(before)


def test_the_module_level_api_runs_under_trio_and_ends_with_the_run(espeak_wav: Path) -> None:
    import subprocess
    import sys

    program = f"""
import threading, anyio
from voicesub_stream import transcribe_stream

async def main():
    async with transcribe_stream({str(espeak_wav)!r}, model="tiny.en") as stream:
        return " ".join([seg.text async for seg in stream])

print(anyio.run(main, backend="trio"))
# The run's default engine ended with the run: no thread of it is left (trio keeps its own
# idle worker threads cached for reuse).
print(sorted(t.name for t in threading.enumerate()
             if t is not threading.main_thread() and not t.name.startswith("Trio thread")))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, check=True)
    text, threads = done.stdout.strip().splitlines()[-2:]
    assert "journey" in text.lower()
    assert threads == "[]"
