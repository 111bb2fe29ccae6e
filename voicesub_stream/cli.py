"""The ``voicesub`` command: transcribe, live, serve, check, report, version (and ``bench``, whose
commands live beside the benchmarks they run, in ``voicesub_stream.bench._cli``)."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn
from urllib.parse import urlsplit

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import __version__
from ._cli_util import existing_file as _existing
from ._cli_util import setup_logging as _logging
from ._config import BackpressurePolicy, LiveOptions, Settings, Task, TranscribeOptions
from ._engine import Engine, transcribe_stream
from ._library import Job, Summary, find_media, plan_jobs, run_library, short_decode
from .bench._cli import bench_app
from .errors import VoicesubError
from .subtitles import (
    FORMATS,
    SubtitleProfile,
    awrite_subtitles,
    check_subtitles,
    format_for_path,
    get_profile,
    load_cues,
    render_subtitles,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.progress import TaskID

    from ._stream import SegmentStream

Device = Literal["auto", "cpu", "cuda"]
Profile = Literal["netflix", "netflix-children", "bbc"]
PROFILE_HELP = ("Subtitle rules: netflix (42 characters a line, 20 a second), "
                "netflix-children (17 a second) or bbc (37 a line, 180 words a minute).")
VERBOSE = "Log what the engine does (model loads, windows, alerts) to stderr."
WINDOW_SECONDS = 30.0
"""The most audio one model window holds: the progress bar runs ahead of the segments by no
more than this for each model call that may run at once."""

SHUTDOWN_GRACE = 30
"""Seconds a request in flight may run on once the server is told to stop."""

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Speech to subtitles with faster-whisper, streamed.")
app.add_typer(bench_app, name="bench")
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        print(f"voicesub {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Speech to subtitles with faster-whisper, streamed."""


def _formats(value: str | None) -> list[str] | None:
    if value is None:
        return None
    formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    if not formats or (bad := [f for f in formats if f not in FORMATS]):
        raise typer.BadParameter(f"{', '.join(bad) or value!r} is not a subtitle format here; "
                                 f"choose from {', '.join(FORMATS)} (several with commas)")
    return list(dict.fromkeys(formats))


def _outputs(output: Path | None, output_dir: Path | None, formats: list[str] | None,
             audio: str) -> Sequence[tuple[Path | None, str]]:
    """Where each requested format goes, checked before any work is done: a run that can
    only fail at the end must not transcribe the whole file first."""
    if output is not None and output_dir is not None:
        raise typer.BadParameter("give -o/--output or --output-dir, not both")
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        stem = Path(urlsplit(audio).path).stem or "subtitles"  # a path, or a URL's
        output = output_dir / f"{stem}.{(formats or ['srt'])[0]}"
    if output is None:
        if formats is not None and len(formats) > 1:
            raise typer.BadParameter("several formats need -o/--output or --output-dir")
        return [(None, (formats or ["srt"])[0])]
    if formats is None:
        try:
            formats = [format_for_path(output)]
        except VoicesubError as exc:
            raise typer.BadParameter(str(exc)) from None
    paths = ([(output, formats[0])] if len(formats) == 1
             else [(output.with_suffix(f".{f}"), f) for f in formats])
    for path, _ in paths:
        folder = path.parent
        if not folder.is_dir():
            raise typer.BadParameter(f"cannot write {path}: no directory {folder}")
        if not os.access(folder, os.W_OK) or path.is_dir():
            raise typer.BadParameter(f"cannot write {path}")
    return paths


@app.command()
def transcribe(
    audio: Annotated[list[str], typer.Argument(
        help="Audio/video files or URLs, or directories (searched recursively; needs "
             "--output-dir).")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Subtitle file, its format from the suffix; stdout if "
        "omitted.")] = None,
    output_dir: Annotated[Path | None, typer.Option(
        help="Write AUDIO's subtitles into this directory (created if missing), a "
             "directory's layout kept.")] = None,
    force: Annotated[bool, typer.Option(
        help="With several files: transcribe those whose subtitles are up to date too.")]
    = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", help=f"{', '.join(FORMATS)}; several with commas (srt,vtt,json), "
        "each beside -o with its own suffix.")] = None,
    model: Annotated[str | None, typer.Option(help="tiny.en, base, any faster-whisper "
                                              "name, or a model directory.")] = None,
    language: Annotated[str | None, typer.Option(help="Spoken language; detected if "
                                                 "omitted.")] = None,
    task: Annotated[Task, typer.Option(help="transcribe, or translate to English.")] = "transcribe",
    device: Annotated[Device | None, typer.Option(help="Where the model runs.")] = None,
    compute_type: Annotated[str | None, typer.Option(help="e.g. int8, float16.")] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per model call.")] = 8,
    beam_size: Annotated[int | None, typer.Option(
        help="Beam width; 1 is greedy. Default: 5, or 2 for English.")] = None,
    translate_to: Annotated[str | None, typer.Option(
        help="Translate the subtitles into this language (e.g. pt).")] = None,
    translator: Annotated[str, typer.Option(help="Translation backend; auto picks one "
                                            "that has the pair.")] = "auto",
    bilingual: Annotated[bool, typer.Option(help="Original and translation in each "
                                            "cue.")] = False,
    profile: Annotated[Profile, typer.Option(help=PROFILE_HELP)] = "netflix",
    max_line_width: Annotated[int | None, typer.Option(
        help="Characters per subtitle line (the profile's if omitted).")] = None,
    max_lines: Annotated[int | None, typer.Option(help="Lines per cue (cues are cut to fit "
                                                  "them).")] = None,
    max_cps: Annotated[float | None, typer.Option(
        help="Reading speed: a cue with more characters a second stays up longer, into "
             "the gaps around it.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No progress bar and no summary.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE)] = False,
) -> None:
    """Transcribe AUDIO to subtitles (SRT, WebVTT, ASS/SSA, TTML, JSON or text).

    Exits 1, after writing what was transcribed, when the audio could not be decoded to its
    end or a requested translation could not be made.
    """
    _logging(verbose)
    formats = _formats(fmt)
    found, missing = find_media(audio)
    library = len(audio) > 1 or any(root is not None for _, root in found)
    if library and missing:
        raise typer.BadParameter(f"no such file or directory: {', '.join(missing)}")
    jobs = _library_jobs(found, output, output_dir, formats, force) if library else None
    outputs = _outputs(output, output_dir, formats, audio[0]) if jobs is None else []
    overrides: dict[str, Any] = {k: v for k, v in
                                 {"device": device, "compute_type": compute_type}.items() if v}
    try:
        rules = _profile(profile, max_line_width, max_lines, max_cps)
        settings = Settings.load(**overrides)
        options = TranscribeOptions(model=model, language=language, task=task,
                                    batch_size=batch_size, beam_size=beam_size,
                                    translate_to=translate_to, translator=translator,
                                    max_cue_chars=rules.max_chars)
        if jobs is not None:
            summary = anyio.run(functools.partial(
                run_library, jobs, settings, options, bilingual=bilingual, profile=rules,
                console=err, quiet=quiet))
            _report_library(summary, quiet)
            return
        problems = anyio.run(_transcribe, audio[0], outputs, settings, options, bilingual,
                             rules, quiet)
    except VoicesubError as exc:
        _fail(exc)
    for problem in problems:
        err.print(f"[red]error:[/red] {escape(problem)}")
    if problems:
        raise typer.Exit(1)


def _library_jobs(found: list[tuple[Path, Path | None]], output: Path | None,
                  output_dir: Path | None, formats: list[str] | None, force: bool) -> list[Job]:
    """The library's jobs, checked before any work: outputs in one directory, none twice."""
    if output is not None or output_dir is None:
        raise typer.BadParameter("several files or a directory need --output-dir (and no -o)")
    if not found:
        raise typer.BadParameter("no audio or video files found")
    output_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(output_dir, os.W_OK):
        raise typer.BadParameter(f"cannot write into {output_dir}")
    try:
        return plan_jobs(found, output_dir, formats or ["srt"], force=force)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _report_library(summary: Summary, quiet: bool) -> None:
    """The run's summary; exit 1 when any file failed."""
    if not quiet:
        err.print(escape(
            f"{summary.done} written, {summary.skipped} skipped (up to date), "
            f"{len(summary.failed)} failed; {summary.audio_seconds / 3600:.2f} h of audio in "
            f"{summary.wall_seconds:.1f} s"))
    for source, reason in summary.failed:
        err.print(f"[red]failed:[/red] {escape(str(source))}: {escape(reason)}")
    if summary.failed:
        raise typer.Exit(1)


def _profile(name: str, max_line: int | None, max_lines: int | None,
             max_cps: float | None) -> SubtitleProfile:
    """The named profile, ``custom`` where a flag changes one of its rules."""
    changes: dict[str, Any] = {k: v for k, v in {"max_line": max_line, "max_lines": max_lines,
                                 "max_cps": max_cps}.items() if v is not None}
    if max_cps is not None:
        changes["max_wpm"] = None  # a reading speed given in characters replaces words
    return get_profile(name).with_changes(**changes)


def _fail(exc: VoicesubError) -> NoReturn:
    err.print(f"[red]error:[/red] {type(exc).__name__}: {escape(str(exc))}")
    raise typer.Exit(1) from None


async def _transcribe(audio: str, outputs: Sequence[tuple[Path | None, str]], settings: Settings,
                      options: TranscribeOptions, bilingual: bool, rules: SubtitleProfile,
                      quiet: bool) -> list[str]:
    """Transcribe and write every output; the problems to report (exit 1), if any."""
    started = time.perf_counter()
    segments = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.completed:>6.0f} s of audio"),
                        TimeRemainingColumn(), console=err, transient=True, disable=quiet)
    async with Engine(settings) as engine:
        stream = engine.transcribe_stream(audio, options=options)
        with progress:
            bar = progress.add_task("loading model", total=None)
            done, failure = _Done(), None
            async with stream, anyio.create_task_group() as tg:
                ahead = WINDOW_SECONDS * engine.statistics().execution.concurrent_calls
                tg.start_soon(_follow, stream, done, progress, bar, ahead)
                try:
                    async for seg in stream:
                        segments.append(seg)
                        done.seconds, done.at = max(done.seconds, seg.end), time.perf_counter()
                except VoicesubError as exc:  # raised as itself, not in the group's wrapper
                    failure = exc
                tg.cancel_scope.cancel()
        stats = stream.statistics()
    wall = time.perf_counter() - started
    if failure is None or segments:  # what was transcribed before a failure is kept
        for path, fmt in outputs:
            if path is None:
                sys.stdout.write(render_subtitles(segments, fmt, bilingual=bilingual,
                                                  profile=rules, language=options.translate_to))
            else:
                await awrite_subtitles(segments, path, fmt, bilingual=bilingual, profile=rules,
                                       language=options.translate_to)
    if failure is not None:
        raise failure
    problems = []
    decoded = stats.audio_seconds
    if short := short_decode(stream.source.duration, decoded):
        problems.append(short)
    failed = [s for s in segments if "translation_error" in s.metadata]
    if failed:
        problems.append(f"{len(failed)} of {len(segments)} segment(s) left untranslated: "
                        f"{failed[0].metadata['translation_error']}")
    if not quiet:
        rtf = wall / decoded if decoded else float("nan")
        written = ", ".join(str(p) for p, _ in outputs if p is not None)
        err.print(escape(
            f"{len(segments)} segments, {decoded:.1f} s audio in {wall:.1f} s wall "
            f"(RTF {rtf:.3f}, {1 / rtf if rtf else 0:.1f}x real time), "
            f"language {stats.language}" + (f" -> {written}" if written else "")))
    return problems


@dataclass
class _Done:
    """How far the transcription has got: the end of the last segment, and when."""

    seconds: float = 0.0
    at: float = 0.0


async def _follow(stream: SegmentStream, done: _Done, progress: Progress, bar: TaskID,
                  ahead: float) -> None:
    """Move the bar with the audio transcribed so far, and between segments at the pace
    measured so far, never more than ``ahead`` seconds past them (the windows in flight):
    results come a window, up to 30 s of audio, at a time, so the bar would jump."""
    started = time.perf_counter()
    while True:
        await anyio.sleep(0.2)
        if not done.seconds:
            continue
        rate = done.seconds / max(done.at - started, 1e-3)
        shown = min(done.seconds + rate * (time.perf_counter() - done.at),
                    done.seconds + ahead)
        total = stream.source.duration
        progress.update(bar, description="transcribing", total=total,
                        completed=min(shown, total) if total else shown)


@app.command()
def live(
    audio: Annotated[str | None, typer.Argument(help="File played at real-time pace, or a "
                                                "URL read as it streams.")] = None,
    mic: Annotated[bool, typer.Option("--mic", help="Caption the microphone.")] = False,
    device: Annotated[str | None, typer.Option(help="Input device name or index.")] = None,
    speed: Annotated[float, typer.Option(help="Play a file faster than real time.")] = 1.0,
    model: Annotated[str | None, typer.Option(help="tiny.en is the fast English choice.")] = None,
    language: str | None = None,
    policy: Annotated[BackpressurePolicy, typer.Option(
        help="When the model cannot keep up: auto (adaptive pace for real-time input), "
             "adaptive, block, drop-oldest or skip-partials.")] = "auto",
    output: Annotated[Path | None, typer.Option("-o", "--output",
                                                help="Also write finals to .srt/.vtt.")] = None,
    translate_to: Annotated[str | None, typer.Option(
        help="Translate the finals into this language (e.g. pt).")] = None,
    profile: Annotated[Profile, typer.Option(help=PROFILE_HELP)] = "netflix",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE)] = False,
) -> None:
    """Live captions in the terminal: finals as they settle, the current partial dimmed."""
    _logging(verbose)
    if mic == (audio is not None):
        raise typer.BadParameter("give either a FILE/URL or --mic")
    try:
        live_options = LiveOptions(policy=policy)
        anyio.run(_live, audio, mic, device, speed, model, language, live_options, output,
                  translate_to, get_profile(profile))
    except VoicesubError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _live(audio: str | None, mic: bool, device: str | None, speed: float,
                model: str | None, language: str | None, live_options: LiveOptions,
                output: Path | None, translate_to: str | None,
                rules: SubtitleProfile) -> None:
    from rich.live import Live

    from .display import LiveCaptionView
    from .sources import PacedSource, microphone, paced
    from .subtitles import LiveSubtitleWriter

    source: Any
    if mic:
        dev: int | str | None = int(device) if device and device.isdigit() else device
        source = microphone(device=dev)
    elif audio is not None and "://" in audio:
        source = audio  # a network stream arrives at its own pace
    else:
        source = paced(audio or "", speed=speed)
    view = LiveCaptionView(source if isinstance(source, PacedSource) else None)
    async with AsyncExitStack() as stack:
        writer = (await stack.enter_async_context(LiveSubtitleWriter(output, profile=rules))
                  if output else None)
        stream = await stack.enter_async_context(
            transcribe_stream(source, model=model, language=language, live=live_options,
                              translate_to=translate_to))
        with Live(view, console=err, refresh_per_second=10, transient=False):
            async for seg in stream:
                view.update(seg, stream.statistics())
                if writer is not None:
                    await writer.write(seg)
    err.print()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every "
                                      "interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[str | None, typer.Option(help="Default model for every session.")] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(
        help="A browser origin allowed to call the server (CORS and WebSocket), e.g. "
             "https://app.example; repeat it for several, * for any.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE)] = False,
) -> None:
    """Serve the ASGI app (WebSocket live captions, OpenAI-style HTTP API) with uvicorn.

    Limits and the bearer token come from VOICESUB_* variables (docs/server.md).
    """
    try:
        import uvicorn

        from .server import ServerSettings, create_app
    except ImportError as exc:
        raise typer.BadParameter(escape(
            f"the server needs the 'server' extra: pip install 'voicesub-stream[server]' ({exc})"
        )) from exc
    _logging(verbose)
    overrides = {"model": model} if model else {}
    try:
        server = ServerSettings.load(**({"allowed_origins": tuple(allow_origin)}
                                        if allow_origin else {}))
        settings = Settings.load(**overrides)
        app = create_app(settings=server, engine_settings=settings)
    except VoicesubError as exc:
        _fail(exc)
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    err.print(escape(f"voicesub {__version__} serving on {base} (model {settings.model}; "
                     f"OpenAI base URL {base}/v1, WebSocket ws://{shown}:{port}/v1/stream). "
                     "Ctrl-C stops it."))
    err.print(escape(f"Live captions: {base}/   Dashboard: {base}/dashboard"))
    # Open event streams (a dashboard) never end by themselves: on shutdown, requests still
    # running get this long, then are cut (a dashboard reconnects to the next server).
    uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning",
                timeout_graceful_shutdown=SHUTDOWN_GRACE)


@app.command()
def report(
    metrics: Annotated[Path, typer.Argument(help="JSONL written by the sampler "
                                            "(SAVE_PERFORMANCE_METRICS=true).")],
    plot: Annotated[Path | None, typer.Option(help="Also draw the samples to this PNG.")]
    = None,
) -> None:
    """Summarise a metrics JSONL file (and plot it with --plot)."""
    from .monitoring import Sample, summarize
    from .monitoring._report import MIN_SLOPE_SPAN

    samples = [Sample.from_dict(json.loads(line))
               for line in _existing(metrics).read_text().splitlines() if line.strip()]
    if not samples:
        raise typer.BadParameter(f"{metrics} holds no samples")
    summary = summarize(samples)
    table = Table(title=f"{metrics.name}: {len(samples)} samples over "
                        f"{summary['seconds'] / 60:.1f} min")
    table.add_column("measure")
    table.add_column("value", justify="right")
    slope = summary["rss_slope_per_hour"]
    for name, value in (
        ("process CPU mean / max", f"{summary['process_cpu_mean']:.0f} / "
                                   f"{summary['process_cpu_max']:.0f} %"),
        ("system CPU mean", f"{summary['system_cpu_mean']:.0f} %"),
        ("RSS first / last / max", f"{summary['rss_first'] / 1e6:.0f} / "
                                   f"{summary['rss_last'] / 1e6:.0f} / "
                                   f"{summary['rss_max'] / 1e6:.0f} MB"),
        ("RSS slope", f"- (needs {MIN_SLOPE_SPAN / 60:.0f} min of samples)" if slope is None
         else f"{slope / 1e6:.1f} MB/hour"),
        ("loop lag p50 / p95", f"{summary['loop_lag_p50'] * 1000:.1f} / "
                               f"{summary['loop_lag_p95'] * 1000:.1f} ms"),
    ):
        table.add_row(name, value)
    Console().print(table)
    if plot is not None:
        from .monitoring._plot import plot_samples

        plot_samples(samples, plot)
        Console().print(f"written {plot}")


@app.command()
def check(
    subtitles: Annotated[Path, typer.Argument(help="An .srt or .vtt file.")],
    profile: Annotated[Profile, typer.Option(help=PROFILE_HELP)] = "netflix",
    language: Annotated[str | None, typer.Option(
        help="The subtitles' language; guessed from the text if omitted.")] = None,
) -> None:
    """List each cue of SUBTITLES that breaks the profile's rules; exit 1 if any does."""
    try:
        cues = load_cues(_existing(subtitles))
        violations = check_subtitles(cues, get_profile(profile), language)
    except VoicesubError as exc:
        _fail(exc)
    for violation in violations:
        print(violation)
    cued = {v.cue for v in violations}
    err.print(f"{subtitles.name}: {len(cues)} cues, {len(violations)} violation(s) of "
              f"{profile} in {len(cued)} cue(s)")
    if violations:
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
