"""The ``voicesub`` command: transcribe, live, serve, report, version (and ``bench``, whose
commands live beside the benchmarks they run, in ``voicesub_stream.bench._cli``)."""

from __future__ import annotations

import json
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from ._cli_util import existing_file as _existing
from ._cli_util import setup_logging as _logging
from ._config import BackpressurePolicy, LiveOptions, Settings, Task, TranscribeOptions
from ._engine import Engine, transcribe_stream
from .bench._cli import bench_app
from .errors import VoicesubError
from .subtitles import FORMATS, awrite_subtitles, format_for_path, render_subtitles

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Speech to subtitles with faster-whisper, streamed.")
app.add_typer(bench_app, name="bench")
err = Console(stderr=True)


@app.command()
def transcribe(
    audio: Annotated[str, typer.Argument(help="Audio/video file or URL.")],
    output: Annotated[Path | None, typer.Option("-o", "--output",
                                                help="Subtitle file; stdout if omitted.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f",
                                            help=f"One of {', '.join(FORMATS)}.")] = None,
    model: Annotated[str | None, typer.Option(help="tiny.en, base, any faster-whisper "
                                              "name, or a model directory.")] = None,
    language: Annotated[str | None, typer.Option(help="Spoken language; detected if "
                                                 "omitted.")] = None,
    task: Annotated[Task, typer.Option(help="transcribe, or translate to English.")] = "transcribe",
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
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
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Transcribe AUDIO to subtitles (SRT, WebVTT, JSON or text)."""
    _logging(verbose)
    fmt = fmt or (format_for_path(output) if output else "srt")
    overrides: dict[str, Any] = {k: v for k, v in
                                 {"device": device, "compute_type": compute_type}.items() if v}
    try:
        if fmt not in FORMATS:
            raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
        settings = Settings.load(**overrides)
        options = TranscribeOptions(model=model, language=language, task=task,
                                    batch_size=batch_size, beam_size=beam_size,
                                    translate_to=translate_to, translator=translator)
        anyio.run(_transcribe, audio, output, fmt, settings, options, bilingual)
    except VoicesubError as exc:
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


async def _transcribe(audio: str, output: Path | None, fmt: str, settings: Settings,
                      options: TranscribeOptions, bilingual: bool) -> None:
    started = time.perf_counter()
    segments = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.completed:>7.1f} s"),
                        TimeElapsedColumn(), console=err, transient=True)
    async with Engine(settings) as engine:
        stream = engine.transcribe_stream(audio, options=options)
        with progress:
            bar = progress.add_task("loading model", total=None)
            async with stream:
                async for seg in stream:
                    segments.append(seg)
                    progress.update(bar, description="transcribing", completed=seg.end,
                                    total=stream.source.duration)
        stats = stream.statistics()
    wall = time.perf_counter() - started
    if output is None:
        sys.stdout.write(render_subtitles(segments, fmt, bilingual=bilingual))
    else:
        await awrite_subtitles(segments, output, fmt, bilingual=bilingual)
    failed = sum("translation_error" in s.metadata for s in segments)
    if failed:
        reason = next(s.metadata["translation_error"] for s in segments
                      if "translation_error" in s.metadata)
        err.print(f"[yellow]warning:[/yellow] {failed} segment(s) left untranslated: {reason}")
    duration = stream.source.duration or stats.audio_seconds
    rtf = wall / duration if duration else float("nan")
    err.print(
        f"{len(segments)} segments, {duration:.1f} s audio in {wall:.1f} s wall "
        f"(RTF {rtf:.3f}, {1 / rtf if rtf else 0:.1f}x real time), "
        f"language {stats.language}" + (f" -> {output}" if output else "")
    )


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
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Live captions in the terminal: finals as they settle, the current partial dimmed."""
    _logging(verbose)
    if mic == (audio is not None):
        raise typer.BadParameter("give either a FILE/URL or --mic")
    try:
        live_options = LiveOptions(policy=policy)
        anyio.run(_live, audio, mic, device, speed, model, language, live_options, output,
                  translate_to)
    except VoicesubError as exc:
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _live(audio: str | None, mic: bool, device: str | None, speed: float,
                model: str | None, language: str | None, live_options: LiveOptions,
                output: Path | None, translate_to: str | None) -> None:
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
        writer = (await stack.enter_async_context(LiveSubtitleWriter(output))
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
    host: str = "127.0.0.1",
    port: int = 8000,
    model: Annotated[str | None, typer.Option(help="Default model for every session.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve the ASGI app (WebSocket live captions, OpenAI-style HTTP API) with uvicorn.

    Limits and the bearer token come from VOICESUB_* variables (see the README).
    """
    try:
        import uvicorn

        from .server import create_app
    except ImportError as exc:
        raise typer.BadParameter(
            f"the server needs the 'server' extra: pip install 'voicesub-stream[server]' ({exc})"
        ) from exc
    _logging(verbose)
    overrides = {"model": model} if model else {}
    try:
        app = create_app(engine_settings=Settings.load(**overrides))
    except VoicesubError as exc:
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning")


@app.command()
def report(
    metrics: Annotated[Path, typer.Argument(help="JSONL written by the sampler "
                                            "(SAVE_PERFORMANCE_METRICS=true).")],
    plot: Annotated[Path | None, typer.Option(help="Also draw the samples to this PNG.")]
    = None,
) -> None:
    """Summarise a metrics JSONL file (and plot it with --plot)."""
    from .monitoring import Sample, summarize

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
        ("RSS slope", "-" if slope is None else f"{slope / 1e6:.1f} MB/hour"),
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
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
