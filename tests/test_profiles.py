"""Subtitle profiles: line breaks at phrase boundaries, cues timed to be read, the checker,
and our own output on real speech keeping every profile."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pysubs2
import pytest

from voicesub_stream import Segment, Word
from voicesub_stream.errors import ConfigError
from voicesub_stream.subtitles import (
    PROFILES,
    CueTimer,
    LiveSubtitleWriter,
    SubtitleProfile,
    check_subtitles,
    get_profile,
    render_subtitles,
    wrap_lines,
)
from voicesub_stream.subtitles._cues import breaks_phrase

if TYPE_CHECKING:
    from pathlib import Path

    from voicesub_stream import Engine

NETFLIX = PROFILES["netflix"]


def cues_of(text: str) -> list[pysubs2.SSAEvent]:
    return list(pysubs2.SSAFile.from_string(text))


def spoken(text: str, start: float, seconds_per_word: float, index: int = 0) -> Segment:
    """A segment with evenly timed words."""
    words = tuple(Word(start + i * seconds_per_word, start + (i + 0.9) * seconds_per_word,
                       f" {w}", 0.9) for i, w in enumerate(text.split()))
    return Segment(index, words[0].start, words[-1].end, text, words, language="en")


@pytest.mark.parametrize(("text", "language"), [
    ("She walked all the way down to the river and sat on the bank for an hour", "en"),
    ("Yesterday I finally met John Smith at the station near the old market", "en"),
    ("Ayer caminamos por la orilla del río hasta llegar a la casa de mi abuela", "es"),
    ("Nous avons marché le long de la rivière jusqu'à la maison de ma grand-mère", "fr"),
])
def test_lines_break_at_phrase_boundaries(text: str, language: str) -> None:
    lines = wrap_lines(text, 42, 2, language)
    assert len(lines) == 2
    assert " ".join(lines) == text
    assert all(len(line) <= 42 for line in lines)
    left, right = lines[0].split()[-1], lines[1].split()[0]
    assert breaks_phrase(left, right, language) is None, lines


def test_a_line_breaks_after_a_clause_when_that_fits() -> None:
    lines = wrap_lines("When the rain stopped, we went outside to look at the garden", 42, 2,
                       "en")
    assert lines[0] == "When the rain stopped,"


def test_function_words_and_names_are_not_broken_after() -> None:
    assert breaks_phrase("the", "house", "en")
    assert breaks_phrase("de", "la", "es")
    assert breaks_phrase("John", "Smith", "en")
    assert breaks_phrase("house,", "and", "en") is None
    assert breaks_phrase("Haus", "Berlin", "de") is None  # German capitalises every noun
    assert breaks_phrase("I", "Went", "en") is None
    assert breaks_phrase("Paris", "I'm", "en") is None


def test_profiles_and_custom_changes() -> None:
    assert (NETFLIX.max_line, NETFLIX.max_cps, NETFLIX.max_duration) == (42, 20.0, 7.0)
    assert get_profile("netflix-children").max_cps == 17.0
    bbc = get_profile("bbc")
    assert (bbc.max_line, bbc.max_wpm, bbc.max_cps) == (37, 180.0, None)
    assert NETFLIX.min_gap == 0.084  # two frames at 24 fps, rounded up to the millisecond
    zh = NETFLIX.for_language("zh")
    assert (zh.max_line, zh.max_cps) == (32, 9.0)  # 16 full-width characters
    assert bbc.for_language("zh") is bbc
    assert NETFLIX.with_changes(max_line=42) is NETFLIX
    assert NETFLIX.with_changes(max_line=30).name == "custom"
    with pytest.raises(ConfigError, match="choose one of"):
        get_profile("itv")
    with pytest.raises(ConfigError):
        SubtitleProfile(max_duration=0.5)


def test_short_cues_stay_up_long_enough_and_short_gaps_close() -> None:
    cues = [Segment(0, 1.0, 1.3, "Yes."), Segment(1, 2.0, 3.5, "Then we went home."),
            Segment(2, 3.7, 4.9, "It was late."), Segment(3, 9.0, 9.2, "Bye.")]
    timed = CueTimer(NETFLIX).times((c, c.text) for c in cues)
    assert [(c.start, c.end) for c in timed] == [
        (1.0, 1.916),   # held up to its minimum 5/6 s and into the short gap, to 2 frames
        (2.0, 3.616),   # a 0.2 s gap closed to two frames
        (3.7, 4.9),     # a long gap left open
        (9.0, 9.833)]   # the minimum duration
    assert check_subtitles(cues_of(render_subtitles(timed, "srt")), NETFLIX) == []


def test_fast_speech_is_shown_readably_within_the_sync_limit() -> None:
    """Speech at 25 characters a second for a while, with pauses around it: the cues take
    time from the pauses, coming up early and staying up late, but never more than the
    profile's sync limit off their speech."""
    text = "we have to be quick about this one"  # 34 characters
    cues = [Segment(i, 3.0 + 1.4 * i, 4.36 + 1.4 * i, text) for i in range(4)]
    timed = CueTimer(NETFLIX).times((c, c.text) for c in cues)
    for cue, spoken_cue in zip(timed, cues, strict=True):
        assert cue.end - cue.start >= 34 / 20 - 1e-3
        assert abs(cue.start - spoken_cue.start) <= NETFLIX.sync + 1e-6
    assert timed[0].start < cues[0].start  # up early, into the pause before
    for a, b in itertools.pairwise(timed):
        assert b.start - a.end == pytest.approx(NETFLIX.min_gap, abs=1e-6)
    assert check_subtitles(cues_of(render_subtitles(timed, "srt")), NETFLIX) == []


def test_live_cues_are_timed_one_cue_behind() -> None:
    timer = CueTimer(NETFLIX)
    first = Segment(0, 1.0, 1.3, "Yes.")
    assert list(timer.push(first, first.text)) == []  # its end waits for the next cue
    (settled,) = timer.push(Segment(1, 2.0, 3.5, "Then we went home."), "Then we went home.")
    assert (settled.start, settled.end) == (1.0, 1.916)
    (last,) = timer.flush()
    assert (last.start, last.end) == (2.0, 3.5)
    assert list(timer.flush()) == []


async def test_the_live_writer_keeps_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "live.srt"
    cues = [spoken("Good evening and welcome to the late news from the studio "
                   "in the middle of the city centre", 0.5, 0.2),
            spoken("Yes.", 6.0, 0.2, 1), spoken("Thank you.", 6.4, 0.3, 2)]
    async with LiveSubtitleWriter(path) as writer:
        for cue in cues:
            await writer.write(cue)
        # Each cue is written once the next has arrived: the file is valid all along.
        assert len(pysubs2.load(str(path))) == writer.cues >= 1
    events = list(pysubs2.load(str(path)))
    assert check_subtitles(events, NETFLIX) == []
    assert " ".join(e.plaintext.replace("\n", " ") for e in events) == " ".join(
        c.text for c in cues)


BAD = """1
00:00:01,000 --> 00:00:01,500
Too short and much too fast to read at all

2
00:00:01,550 --> 00:00:09,000
This line is far too long for any screen, so the
next line starts with what ended it

3
00:00:09,200 --> 00:00:10,300
third line
of a cue
that has three
"""


def test_the_checker_names_each_rule_and_cue() -> None:
    found = {(v.cue, v.rule) for v in check_subtitles(cues_of(BAD), NETFLIX, "en")}
    assert found == {(1, "min-duration"), (1, "reading-speed"), (1, "gap"),
                     (2, "line-length"), (2, "line-break"), (2, "max-duration"),
                     (2, "gap-not-closed"), (3, "line-count"), (3, "reading-speed")}
    assert {v.rule for v in check_subtitles(cues_of(BAD), get_profile("bbc"), "en")} >= {
        "reading-speed", "line-length"}


def test_voicesub_check_lists_violations_and_exits_1(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voicesub_stream.cli import app

    bad, good = tmp_path / "bad.srt", tmp_path / "good.vtt"
    bad.write_text(BAD)
    good.write_text(render_subtitles([spoken("A calm and steady voice, reading slowly.",
                                             1.0, 0.45)], "vtt", profile=get_profile("bbc")))
    runner = CliRunner()
    result = runner.invoke(app, ["check", str(bad), "--profile", "netflix"])
    assert result.exit_code == 1
    assert "cue 2: line-length:" in result.output
    assert "9 violation(s)" in result.output
    result = runner.invoke(app, ["check", str(good), "--profile", "bbc"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["check", str(tmp_path / "none.srt")]).exit_code == 2


async def transcribed(engine: Engine, path: Path, **options: object) -> list[Segment]:
    async with engine.transcribe_stream(path, **options) as stream:  # type: ignore[arg-type]
        return [seg async for seg in stream]


@pytest.mark.speech
@pytest.mark.shared_data
async def test_our_subtitles_keep_every_profile_on_shared_speech(engine: Engine,
                                                                 speech_dir: Path) -> None:
    """Every shared English clip up to 35 s with tiny.en, and with base the longest clip up
    to 35 s of each other language but Spanish (whose clips the pooled Spanish accuracy
    test checks the same way); the French one is the fastest speaker of the corpus. Zero
    violations of each profile, read back from the SRT we write. (``voicesub bench
    subtitles`` checks every shared clip, the long readings too.)"""
    from voicesub_stream.bench._wer import corpus

    clips = [c for c in corpus(speech_dir / "manifest.json")
             if c["language"] != "es" and c["duration"] <= 35]
    longest = {c["language"]: c for c in sorted(clips, key=lambda c: c["duration"])}
    checked: set[str] = set()
    for clip in clips:
        if clip["language"] != "en" and clip is not longest[clip["language"]]:
            continue
        model = "tiny.en" if clip["language"] == "en" else "base"
        segments = await transcribed(engine, clip["path"], model=model)
        for name, profile in PROFILES.items():
            srt = render_subtitles(segments, "srt", profile=profile)
            violations = check_subtitles(cues_of(srt), profile, clip["language"])
            assert violations == [], (clip["path"].name, name, [str(v) for v in violations])
        checked.add(clip["language"])
    assert checked == {"en", "de", "fr", "pt", "vi", "zh"}
