from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pysubs2
import pytest

from voicesub_stream import Segment, Word
from voicesub_stream.errors import ConfigError
from voicesub_stream.subtitles import (
    PROFILES,
    SubtitleProfile,
    awrite_subtitles,
    check_subtitles,
    render_subtitles,
    wrap_lines,
    write_subtitles,
)
from voicesub_stream.subtitles._cues import cue_text, split_cues

if TYPE_CHECKING:
    from pathlib import Path

SEGMENTS = [
    Segment(0, 0.5, 2.25, "Hello there, and welcome to the show about streaming speech."),
    Segment(1, 2.5, 4.0, "Ünïcödé «quotes» & <angle> brackets"),
    Segment(2, 3661.2, 3663.0, "Past the hour."),
]


@pytest.mark.parametrize(
    ("fmt", "angle"), [("srt", "‹angle›"), ("vtt", "&lt;angle&gt;")]
)
def test_subtitles_parse_back_with_the_same_cues(fmt: str, angle: str) -> None:
    subs = pysubs2.SSAFile.from_string(render_subtitles(SEGMENTS, fmt))
    assert len(subs) == len(SEGMENTS)
    assert check_subtitles(list(subs), PROFILES["netflix"]) == []
    for event, seg in zip(subs, SEGMENTS, strict=True):
        # Timed to be read: up early and longer where the text needs it, never off its
        # speech by more than the profile's 1.5 s.
        assert abs(event.start - seg.start * 1000) <= 1500
        assert event.end >= min(seg.end * 1000, subs[-1].start)
        # Spoken "<angle>" must not turn into a markup tag that players hide.
        expected = seg.text.replace("<angle>", angle)
        if fmt == "vtt":
            expected = expected.replace(" & ", " &amp; ")
        assert event.plaintext.replace("\n", " ") == expected


def test_json_keeps_every_field() -> None:
    data = json.loads(render_subtitles(SEGMENTS, "json"))
    assert [d["text"] for d in data] == [s.text for s in SEGMENTS]
    assert data[2]["start"] == 3661.2


def test_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        render_subtitles(SEGMENTS, "docx")


def test_long_cues_wrap_into_two_balanced_lines() -> None:
    lines = wrap_lines(SEGMENTS[0].text)
    assert len(lines) == 2
    assert all(len(line) <= 42 for line in lines)
    assert " ".join(lines) == SEGMENTS[0].text
    assert wrap_lines("short") == ["short"]


def test_a_custom_profile_sets_line_width_line_count_and_reading_speed() -> None:
    text = SEGMENTS[0].text
    lines = wrap_lines(text, 24, 3, "en")
    assert lines == ["Hello there,", "and welcome to the show", "about streaming speech."]
    assert all(len(line) <= 24 for line in lines)
    assert " ".join(lines) == text
    assert len(wrap_lines(text, 24, 1)) == 1  # one line: however long
    # 60 characters in 1.75 s read at 34 a second; at 17 a second the cue needs 3.5 s: it
    # comes up early, into the gap before it, and stays up until just before the next cue.
    fast = [Segment(0, 1.5, 3.25, text), Segment(1, 4.0, 5.0, "Next."),
            Segment(2, 6.1, 6.2, "Last cue, alone at the end.")]
    profile = PROFILES["netflix"].with_changes(max_line=24, max_lines=3, max_cps=17.0)
    assert profile.name == "custom"
    subs = pysubs2.SSAFile.from_string(render_subtitles(fast, "srt", profile=profile))
    assert [(e.start, e.end) for e in subs] == [(387, 3916), (4000, 5000), (6100, 7688)]
    assert subs[0].plaintext.splitlines() == lines
    assert check_subtitles(list(subs), profile) == []
    with pytest.raises(ConfigError):
        SubtitleProfile(max_cps=0)


async def test_sync_and_async_writers_write_the_same_file(tmp_path: Path) -> None:
    write_subtitles(SEGMENTS, tmp_path / "a.vtt")
    await awrite_subtitles(SEGMENTS, tmp_path / "b.vtt")
    assert (tmp_path / "a.vtt").read_text() == (tmp_path / "b.vtt").read_text()
    assert (tmp_path / "a.vtt").read_text().startswith("WEBVTT")


def words(*spec: tuple[float, float, str]) -> list[Word]:
    return [Word(s, e, t, 1.0) for s, e, t in spec]


def test_cues_end_at_sentences_and_pauses() -> None:
    ws = words((0, 0.5, " One"), (0.5, 1.2, " sentence."), (1.3, 1.8, " Then"),
               (1.8, 2.6, " more"), (4.0, 4.5, " after"), (4.5, 5.6, " pause"))
    cues = split_cues(ws, max_chars=84, max_duration=7.0)
    assert [[w.text for w in c] for c in cues] == [
        [" One", " sentence."], [" Then", " more"], [" after", " pause"]]


def test_a_cue_that_begins_inside_a_hyphenated_word_shows_no_hyphen() -> None:
    # Whisper writes "self-love" as " self" and "-love"; a live final may end at " self".
    assert cue_text(words((0, 0.4, "-love"), (0.4, 0.8, " to"), (0.8, 1.2, " stop"))) \
        == "love to stop"
    assert cue_text(words((0, 0.4, " his"), (0.4, 0.8, " self"), (0.8, 1.2, "-love"))) \
        == "his self-love"
    assert cue_text(words((0, 0.4, " -5"), (0.4, 0.8, " degrees"))) == "-5 degrees"


def test_a_very_short_sentence_joins_the_cue_before_it() -> None:
    ws = words((0, 0.5, " Is"), (0.5, 1.0, " it"), (1.0, 1.6, " ready?"),
               (1.8, 2.2, " Yes."))
    cues = split_cues(ws, max_chars=84, max_duration=7.0)
    assert [[w.text for w in c] for c in cues] == [[" Is", " it", " ready?", " Yes."]]


def test_a_long_sentence_becomes_balanced_cues_at_its_pauses() -> None:
    spec = [(i * 0.5, i * 0.5 + 0.4, f" w{i:02d}" + ("," if i == 9 else "")) for i in range(20)]
    cues = split_cues(words(*spec), max_chars=40, max_duration=60.0)
    assert cues[0][-1].text == " w09,"  # the comma near the middle, not the 40th character
    assert sum(len(c) for c in cues) == 20
    assert all(len("".join(w.text for w in c).strip()) <= 40 for c in cues)
    assert min(len(c) for c in cues) >= 4  # no orphaned last word


def test_a_cue_too_long_for_its_lines_is_cut_at_a_word_by_the_word_times() -> None:
    texts = ["A", "journey", "of", "a", "thousand", "miles,", "begins", "with", "a", "step."]
    words = tuple(Word(i * 0.5, i * 0.5 + 0.4, f" {t}", 0.9) for i, t in enumerate(texts))
    cue = Segment(0, 0.0, 4.9, "A journey of a thousand miles, begins with a step.", words)
    subs = pysubs2.SSAFile.from_string(render_subtitles(
        [cue], "srt", profile=SubtitleProfile(max_line=20, max_lines=1)))
    assert all(len(e.plaintext) <= 20 for e in subs)
    assert " ".join(e.plaintext for e in subs) == cue.text
    assert subs[0].start == 0
    assert subs[-1].end == 4900
    starts = [e.start for e in subs]
    assert starts == sorted(starts)
    assert any(e.plaintext.endswith("miles,") for e in subs)  # cut at the clause end
