"""Cross-stream batching: live windows of concurrent streams share model calls."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

from voicesub_stream import Engine, LiveOptions, Settings, paced
from voicesub_stream._text import word_error_rate
from voicesub_stream.models import ModelRegistry, WhisperRunner, WindowText
from voicesub_stream.scheduler import Scheduler
from voicesub_stream.stages import SpeechWindow
from voicesub_stream.stages._batcher import StreamBatcher
from voicesub_stream.testing import speak

from .helpers import live_update_cost

if TYPE_CHECKING:
    from collections.abc import Iterator

    from voicesub_stream.models import LoadedModel

LINES = ("Please call Stella and ask her to bring these things with her from the store.",
         "The birch canoe slid on the smooth planks.",
         "Glue the sheet to the dark blue background.")
PROMPTS = ("It was a bright cold day in April, and the clocks were striking thirteen.",
           None,
           "Call me Ishmael. Some years ago, never mind how long precisely, I went to sea.")


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    from faster_whisper.audio import decode_audio

    directory = tmp_path_factory.mktemp("lines")
    return [np.asarray(decode_audio(str(speak(text, directory / f"{i}.wav"))), np.float32)
            for i, text in enumerate(LINES)]


@pytest.fixture(scope="module")
def model(settings: Settings) -> Iterator[LoadedModel]:
    registry = ModelRegistry(settings.models())
    yield registry.get(registry.key_for("tiny.en"))
    registry.clear()


def windows(lines: list[np.ndarray]) -> list[SpeechWindow]:
    return [SpeechWindow(i, audio, ((0, len(audio)),)) for i, audio in enumerate(lines)]


async def test_batched_windows_get_the_text_they_get_alone(
    model: LoadedModel, lines: list[np.ndarray], settings: Settings
) -> None:
    from voicesub_stream import TranscribeOptions

    options = TranscribeOptions()
    alone = [WhisperRunner(model, options).transcribe([w], prompts=[p], prompt_limit=8)[0].text
             for w, p in zip(windows(lines), PROMPTS, strict=True)]
    runners = [WhisperRunner(model, options) for _ in lines]  # three streams, one model
    scheduler = Scheduler(1)
    texts: list[str] = [""] * len(lines)
    async with StreamBatcher(scheduler, window=5.0) as batcher:

        async def stream(i: int, window: SpeechWindow) -> None:
            async with batcher.member(runners[i], prompt_limit=8):
                result = await batcher.transcribe(runners[i], window, PROMPTS[i],
                                                  prompt_limit=8, priority="live")
                texts[i] = result.text

        async with anyio.create_task_group() as tg:
            for i, window in enumerate(windows(lines)):
                tg.start_soon(stream, i, window)
    assert batcher.statistics().sizes == {3: 1}  # one model call for the three streams
    assert texts == alone  # and each stream got back its own window's text, unchanged
    # ... and it is that window's speech. How tiny.en spells a name or two of synthetic speech
    # varies between machines, so the check is the word error rate pooled over the three
    # lines, with room to spare, and a word it gets on every run.
    assert word_error_rate(" ".join(LINES), " ".join(texts)) <= 0.5, texts
    assert "smooth" in texts[1]


def test_a_batch_encoded_in_parts_is_decoded_as_one(
    model: LoadedModel, lines: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicesub_stream import TranscribeOptions
    from voicesub_stream.models import _whisper

    runner = WhisperRunner(model, TranscribeOptions())
    many = windows(lines * 2)  # more windows than one encoder call takes
    assert len(many) > _whisper.ENCODER_BATCH

    def answers() -> list[tuple[str, list[tuple[str, float, float]]]]:
        return [(r.text, [(w.text, w.start, w.end) for w in r.words])
                for r in runner.transcribe(many)]

    in_parts = answers()
    monkeypatch.setattr(_whisper, "ENCODER_BATCH", len(many))
    assert in_parts == answers()  # the same text and word times as one encoder call gives
    assert "smooth" in in_parts[1][0]


async def test_a_lone_stream_never_waits_for_company(
    model: LoadedModel, lines: list[np.ndarray]
) -> None:
    from voicesub_stream import TranscribeOptions

    runner = WhisperRunner(model, TranscribeOptions())
    async with StreamBatcher(Scheduler(1), window=600.0) as batcher, \
            batcher.member(runner, prompt_limit=None):
        with anyio.fail_after(60):  # far below the 600 s collection window
            result = await batcher.transcribe(runner, windows(lines)[1], None,
                                              prompt_limit=None, priority="live")
    assert "smooth" in result.text


async def test_waiting_requests_are_served_by_priority_and_leave_when_cancelled(
    model: LoadedModel, lines: list[np.ndarray]
) -> None:
    from voicesub_stream import TranscribeOptions

    scheduler = Scheduler(1)
    runners = [WhisperRunner(model, TranscribeOptions()) for _ in range(3)]
    order: list[str] = []
    release = anyio.Event()
    async with StreamBatcher(scheduler, window=0.0, max_batch=1) as batcher:

        async def hold() -> None:
            await scheduler.run(release.wait, priority="live")

        async def ask(i: int, priority: str, scope: anyio.CancelScope) -> None:
            with scope:
                await batcher.transcribe(runners[i], windows(lines)[i], None,
                                         prompt_limit=None, priority=priority)
                order.append(priority)

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(ask, 0, "batch", anyio.CancelScope())
            await anyio.wait_all_tasks_blocked()
            doomed = anyio.CancelScope()
            tg.start_soon(ask, 1, "interactive", doomed)  # cancelled below, while it waits
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(ask, 2, "live", anyio.CancelScope())
            await anyio.wait_all_tasks_blocked()
            doomed.cancel()
            await anyio.wait_all_tasks_blocked()
            release.set()
    # The batch request led the group's queue, yet the live one went first; the cancelled
    # one never reached the model.
    assert order == ["live", "batch"]
    assert batcher.statistics().windows == 2


async def test_live_streams_batched_in_one_engine_give_the_unbatched_finals(
    settings: Settings, lines: list[np.ndarray]
) -> None:
    gap = np.zeros(8000, np.float32)
    clips = [np.concatenate([a, gap, b, gap]) for a, b in ((lines[0], lines[1]),
                                                          (lines[2], lines[0]),
                                                          (lines[1], lines[2]))]

    async def run(s: Settings) -> tuple[list[list[str]], dict[str, Any] | None]:
        finals: list[list[str]] = [[] for _ in clips]
        async with Engine(s) as engine:

            async def one(i: int) -> None:
                # A fixed pace: the text must not depend on how fast answers came back.
                async with engine.transcribe_stream(paced(clips[i], speed=4),
                                                    live=LiveOptions(policy="block")) as stream:
                    finals[i] = [seg.text async for seg in stream if seg.is_final]

            async with anyio.create_task_group() as tg:
                for i in range(len(clips)):
                    tg.start_soon(one, i)
            return finals, engine.statistics().batching

    # Three fixed-pace streams are counted at their own 0.5 s step: admission must not
    # refuse the third on a slow machine, this is about batching.
    with live_update_cost(0.05):
        batched, stats = await run(settings.model_copy(update={"stream_batching": True}))
        unbatched, none = await run(settings)  # on a CPU, streams do not share calls
    assert none is None
    assert stats is not None
    assert max(stats.sizes) > 1
    # A batch of windows runs other matrix kernels than a lone window, so a word's time can
    # move by a frame and a final split a word earlier or later. The words must agree.
    for together, alone in zip(batched, unbatched, strict=True):
        assert word_error_rate(" ".join(alone), " ".join(together)) <= 0.1, (together, alone)
    assert "store" in " ".join(batched[0])
    assert "smooth" in " ".join(batched[2])


def test_streams_share_calls_by_default_only_where_that_pays(settings: Settings) -> None:
    # On a CPU a window costs the same alone or batched: sharing a call only delays answers.
    engine = Engine(settings)
    assert engine.batcher is None
    assert not engine.statistics().execution.shared_calls  # the choice shows in statistics
    forced = Engine(settings.model_copy(update={"stream_batching": True}))
    assert forced.batcher is not None
    assert forced.statistics().execution.shared_calls


class _Recorder:
    """A runner that answers at once and records its calls' sizes and overlap."""

    batch_key = "recorder"

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.active = self.most_active = 0
        self._lock = threading.Lock()

    def transcribe_together(self, items: list[tuple[Any, SpeechWindow, str | None]], *,
                            prompt_limit: int | None = None) -> list[WindowText]:
        with self._lock:
            self.sizes.append(len(items))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(0.2)
        with self._lock:
            self.active -= 1
        return [WindowText(window, "", [], 0.0, 0.0) for _, window, _ in items]


@pytest.mark.parametrize(("workers", "calls"), [(1, [4]), (2, [2, 2])])
async def test_waiting_windows_are_shared_out_over_the_free_calls(
    lines: list[np.ndarray], workers: int, calls: list[int]
) -> None:
    # One long call would leave a core idle while its windows wait for each other's
    # decoding: with a second slot free, the windows go in two calls side by side.
    runner = _Recorder()
    async with StreamBatcher(Scheduler(workers), window=60.0) as batcher:

        async def stream(window: SpeechWindow) -> None:
            async with batcher.member(runner, prompt_limit=None):  # type: ignore[arg-type]
                await anyio.wait_all_tasks_blocked()  # every stream is a member first
                await batcher.transcribe(runner, window, None,  # type: ignore[arg-type]
                                         prompt_limit=None, priority="live")

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for window in windows(lines + lines[:1]):
                    tg.start_soon(stream, window)
    assert sorted(runner.sizes) == calls
    assert runner.most_active == len(calls)
