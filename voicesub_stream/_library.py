"""``voicesub transcribe`` over many files and directories: a media library in one run.

Files are found by their audio and video suffixes (directories recursively), their subtitles
written under the output directory in the same layout, and a file whose subtitles are newer
than it is skipped. One progress bar covers the whole library's duration, a table lists each
file as it ends, and the run ends with a summary; a file that fails is reported and never
stops the others.
"""

from __future__ import annotations

import collections
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import av
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from ._engine import Engine
from .subtitles import awrite_subtitles

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from ._config import Settings, TranscribeOptions
    from .subtitles import SubtitleProfile

MEDIA_SUFFIXES = frozenset({
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif",
    ".mka", ".amr", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".wmv", ".flv", ".mpg",
    ".mpeg", ".ts", ".3gp"})
"""What a directory is searched for."""
TABLE_ROWS = 20
"""Files the live table shows (the newest): a library of thousands stays one screen."""


@dataclass
class Job:
    """One file of the library and the subtitle files it makes."""

    source: Path
    outputs: list[tuple[Path, str]]
    seconds: float | None = None
    skipped: bool = False


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0


def find_media(arguments: Sequence[str]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Each file named or found under a directory named, with the directory it was found in
    (``None`` for a file named itself); and the arguments that are neither."""
    found: list[tuple[Path, Path | None]] = []
    missing = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found += [(p, path) for p in sorted(path.rglob("*"))
                      if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES]
        elif path.is_file():
            found.append((path, None))
        else:
            missing.append(argument)
    return found, missing


def plan_jobs(found: list[tuple[Path, Path | None]], output_dir: Path, formats: list[str],
              *, force: bool) -> list[Job]:
    """The jobs, with their outputs under ``output_dir`` (a directory's layout kept); an
    up-to-date job (every output newer than its source) is marked skipped unless ``force``.

    :raises ValueError: two sources would write the same subtitle file
    """
    jobs: list[Job] = []
    claimed: dict[Path, Path] = {}
    for source, root in found:
        relative = source.relative_to(root) if root is not None else Path(source.name)
        outputs = [(output_dir / relative.with_suffix(f".{fmt}"), fmt) for fmt in formats]
        for path, _ in outputs:
            if path in claimed:
                raise ValueError(f"{claimed[path]} and {source} would both write {path}")
            claimed[path] = source
        mtime = source.stat().st_mtime
        fresh = all(p.is_file() and p.stat().st_mtime >= mtime for p, _ in outputs)
        jobs.append(Job(source, outputs, skipped=fresh and not force))
    return jobs


def short_decode(announced: float | None, decoded: float) -> str | None:
    """What to report when a file decoded to less than its header announces."""
    if announced and decoded < announced - max(1.0, 0.02 * announced):
        return (f"decoded {decoded:.1f} s of the {announced:.1f} s the file announces "
                "(truncated or damaged?); the subtitles cover what was decoded")
    return None


def _duration(path: Path) -> float | None:
    try:
        with av.open(str(path)) as container:
            return container.duration / av.time_base if container.duration else None
    except (av.FFmpegError, OSError):
        return None  # its transcription will say what is wrong with it


async def run_library(jobs: list[Job], settings: Settings, options: TranscribeOptions, *,
                      bilingual: bool, profile: SubtitleProfile, console: Console,
                      quiet: bool) -> Summary:
    """Transcribe every job not skipped, writing its subtitles as it ends."""
    started = time.perf_counter()
    summary = Summary(skipped=sum(j.skipped for j in jobs))
    todo = [j for j in jobs if not j.skipped]
    for job in todo:
        job.seconds = await anyio.to_thread.run_sync(_duration, job.source)
    by_source = {job.source: job for job in todo}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.completed:>8.0f} of {task.total:.0f} s"),
                        TimeRemainingColumn(), console=console)
    bar = progress.add_task(f"{len(todo)} files", total=sum(j.seconds or 0 for j in todo) or 1)
    recent: collections.deque[tuple[str, ...]] = collections.deque(maxlen=TABLE_ROWS)

    def view() -> Group:
        table = Table("file", "audio", "segments", "result", expand=True,
                      title=f"the last {TABLE_ROWS} files done" if len(recent) == TABLE_ROWS
                      else "files done")
        for row in recent:
            table.add_row(*row)
        return Group(progress, table)

    live = None if quiet else Live(view(), console=console, transient=False)
    with live or contextlib.nullcontext():
        async with Engine(settings) as engine:
            async for result in engine.transcribe_many([j.source for j in todo],
                                                       options=options):
                job = by_source[Path(str(result.source))]
                stats = result.statistics
                seconds = stats.audio_seconds if stats else 0.0
                summary.audio_seconds += seconds
                if result.segments or result.ok:  # what was transcribed before a failure
                    for path, fmt in job.outputs:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        await awrite_subtitles(result.segments, path, fmt,
                                               bilingual=bilingual, profile=profile,
                                               language=options.translate_to)
                short = stats and short_decode(stats.duration, seconds)
                if result.ok and not short:
                    summary.done += 1
                    status = "[green]written[/green]"
                else:
                    reason = short or f"{type(result.error).__name__}: {result.error}"
                    summary.failed.append((job.source, reason))
                    status = f"[red]failed[/red] {escape(reason)}"
                recent.append((escape(str(job.source)), f"{seconds:.0f} s",
                               str(len(result.segments)), status))
                progress.advance(bar, job.seconds or seconds)
                if live is not None:
                    live.update(view())
    if live is not None and not console.is_terminal:
        console.line()  # rich ends a live view with a newline on terminals only
    summary.wall_seconds = time.perf_counter() - started
    return summary
