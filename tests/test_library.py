"""Many files at once: ``Engine.transcribe_many`` and ``voicesub transcribe DIR``."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pysubs2
import pytest
from typer.testing import CliRunner

from voicesub_stream.cli import app
from voicesub_stream.errors import SourceError

if TYPE_CHECKING:
    from pathlib import Path

    from voicesub_stream import Engine

pytestmark = pytest.mark.speech


@pytest.fixture
def library(tmp_path: Path, espeak_wav: Path) -> Path:
    """A small library: two good files in nested folders, a corrupt one and a text file."""
    root = tmp_path / "library"
    (root / "season1" / "extras").mkdir(parents=True)
    shutil.copy(espeak_wav, root / "season1" / "episode1.wav")
    shutil.copy(espeak_wav, root / "season1" / "extras" / "interview.wav")
    (root / "season1" / "broken.mp3").write_bytes(b"ID3 not really an mp3" * 50)
    (root / "notes.txt").write_text("not media")
    return root


async def test_transcribe_many_gives_every_file_and_the_failures_typed(
        engine: Engine, library: Path) -> None:
    files = [library / "season1" / name
             for name in ("episode1.wav", "extras/interview.wav", "broken.mp3")]
    results = {r.source: r async for r in engine.transcribe_many(files)}
    assert set(results) == set(files)
    broken = results[library / "season1" / "broken.mp3"]
    assert not broken.ok
    assert isinstance(broken.error, SourceError)
    good = [r for r in results.values() if r.ok]
    assert len(good) == 2
    assert all(r.segments and r.statistics and r.statistics.audio_seconds > 5 for r in good)
    assert good[0].segments[0].text == good[1].segments[0].text  # the same audio twice


async def test_leaving_transcribe_many_early_stops_the_rest(engine: Engine,
                                                            espeak_wav: Path) -> None:
    import contextlib

    import anyio

    async with contextlib.aclosing(engine.transcribe_many([espeak_wav] * 6,
                                                          concurrency=1)) as results:
        async for result in results:
            assert result.ok
            break
    for _ in range(100):  # cancelled within 5 s, not run to the end (six files take longer)
        if not engine.activity().streams:
            break
        await anyio.sleep(0.05)
    assert engine.activity().streams == 0


def test_the_command_writes_a_library_and_reports_the_file_that_failed(
        library: Path, tmp_path: Path) -> None:
    out = tmp_path / "subs"
    runner = CliRunner()
    args = ["transcribe", str(library), "--output-dir", str(out), "-f", "srt,vtt",
            "--model", "tiny.en"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output  # one file failed
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*"))
    assert written == ["season1/episode1.srt", "season1/episode1.vtt",
                       "season1/extras/interview.srt", "season1/extras/interview.vtt"]
    assert len(pysubs2.load(str(out / "season1" / "episode1.srt"))) >= 2
    assert "\n2 written, 0 skipped (up to date), 1 failed" in result.output  # own line
    assert "broken.mp3" in result.output
    # Again: what is up to date is skipped; the broken file is tried again and fails again.
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "0 written, 2 skipped (up to date), 1 failed" in result.output
    (library / "season1" / "broken.mp3").unlink()
    result = runner.invoke(app, [*args, "--force"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2 written, 0 skipped" in result.output


def test_the_command_checks_a_library_run_before_any_work(library: Path,
                                                          tmp_path: Path) -> None:
    runner = CliRunner()
    for args, message in (
        ([str(library)], "need --output-dir"),
        ([str(library), "-o", str(tmp_path / "x.srt")], "need --output-dir"),
        ([str(library), str(tmp_path / "missing.wav"), "--output-dir", str(tmp_path)],
         "no such file or directory"),
        ([str(library / "season1" / "episode1.wav"), str(library / "season1"),
          "--output-dir", str(tmp_path / "o")], "would both write"),
    ):
        result = runner.invoke(app, ["transcribe", *args], env={"COLUMNS": "200"})
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
