"""``voicesub bench abuse``: a hostile and careless client's probes, replayed against a server.

Each probe is what a client did once to take something from the server (audio, a slot, a
secret, an answer it should not get) and what the server must do instead. The network probes
run against any server (``--url``); without one the replay starts its own on loopback, with
short limits so that the waiting probes take seconds, and adds the probes that need the
process itself: log lines, the cache directory, a failing source, a hung worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
import anyio.to_thread
import numpy as np

from ._clips import SHARED

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

LIMITS: dict[str, Any] = {
    "idle_timeout": 3.0, "config_timeout": 2.0, "rate_grace": 2.0, "min_audio_rate": 0.5,
    "min_upload_rate": 4096, "max_session_seconds": 30.0, "max_upload_bytes": 64 << 20,
}
"""The limits of the replay's own server: the defaults' kind, shorter, so probes are quick."""


@dataclass(frozen=True, slots=True)
class Probe:
    item: str
    name: str
    passed: bool
    detail: str
    seconds: float


class _Failed(Exception):
    pass


class _Skip(Exception):
    pass


def _expect(condition: bool, detail: str) -> None:
    if not condition:
        raise _Failed(detail)


class _Target:
    """The server under test: its address, credentials, and the speech to send it."""

    def __init__(self, url: str, token: str | None, speech: np.ndarray, patience: float,
                 model: str) -> None:
        parts = urlsplit(url)
        self.model = model
        self.http = f"{parts.scheme or 'http'}://{parts.netloc}"
        self.ws = self.http.replace("http", "ws", 1) + "/v1/stream"
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
        self.patience = patience

    @contextlib.asynccontextmanager
    async def socket(self, **headers: str) -> AsyncIterator[Any]:
        from websockets.asyncio.client import connect

        async with connect(self.ws, additional_headers={**self.headers, **headers},
                           open_timeout=self.patience) as ws:
            yield ws

    async def drain(self, ws: Any) -> list[dict[str, Any]]:
        """Every event until the server closes (the close code is then on ``ws``)."""
        import websockets

        events = []
        with anyio.fail_after(self.patience), contextlib.suppress(websockets.ConnectionClosed):
            while True:
                events.append(json.loads(await ws.recv()))
        return events

    async def status(self) -> dict[str, Any]:
        import httpx

        async with httpx.AsyncClient(timeout=self.patience) as http:
            response = await http.get(f"{self.http}/v1/status", headers=self.headers)
        result: dict[str, Any] = response.json()
        return result

    async def post_chunked(self, parts: Callable[[bytes], AsyncIterator[bytes]],
                           ) -> tuple[int, int]:
        from ..testing import post_chunked

        with anyio.fail_after(self.patience * 2):
            return await post_chunked(self.host, self.port, parts, headers=self.headers)


# -- the probes: item of the audit, name, and the check ---------------------------------

async def _idle_finish(t: _Target) -> str:
    async with t.socket() as ws:
        await ws.send(json.dumps({"partials": False}))
        await ws.send(t.pcm)  # and then nothing: no stop
        events = await t.drain(ws)
    finals = [e for e in events if e["type"] == "final"]
    _expect(bool(finals) and events[-1]["type"] == "stats", f"events: {_kinds(events)}")
    _expect(ws.close_code == 1000, f"closed {ws.close_code}")
    return f"{len(finals)} finals, stats, 1000 {ws.close_reason!r}"


async def _drops_told(t: _Target) -> str:
    async with t.socket() as ws:
        await ws.send(json.dumps({"policy": "drop-oldest", "partials": False}))
        for _ in range(3):
            await ws.send(t.pcm)
        await ws.send(json.dumps({"type": "stop"}))
        events = await t.drain(ws)
    told = sum(e["seconds"] for e in events if e["type"] == "dropped")
    counted = events[-1].get("live", {}).get("dropped_seconds") if events else None
    _expect(counted is not None and abs(told - counted) < 0.01,
            f"events say {told:.2f} s, stats {counted}")
    return f"{told:.2f} s dropped, told in events and counted alike"


async def _stats_before_error(t: _Target) -> str:
    async with t.socket() as ws:
        await ws.send(json.dumps({"partials": False}))
        await ws.send(t.pcm)
        await ws.send("not audio")
        events = await t.drain(ws)
    kinds = _kinds(events)
    _expect(kinds[-2:] == ["stats", "error"] and ws.close_code == 1003,
            f"{kinds[-3:]}, closed {ws.close_code}")
    finals = kinds.count("final")
    _expect(finals > 0, "no finals for the audio sent before the bad frame")
    return f"{finals} finals, stats, error, 1003"


async def _no_config(t: _Target) -> str:
    started = time.monotonic()
    async with t.socket() as ws:
        await t.drain(ws)
    _expect(ws.close_code == 1008, f"closed {ws.close_code} {ws.close_reason!r}")
    return f"1008 after {time.monotonic() - started:.1f} s: {ws.close_reason}"


async def _dribbling_socket(t: _Target) -> str:
    import websockets

    started = time.monotonic()
    async with t.socket() as ws:
        await ws.send(json.dumps({"partials": False}))
        with anyio.move_on_after(t.patience), contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await ws.send(b"\0\0")
                await anyio.sleep(0.5)
        events = await t.drain(ws)
    _expect(ws.close_code == 1008, f"closed {ws.close_code} {ws.close_reason!r}")
    _expect(_kinds(events)[-2:] == ["stats", "error"], f"events {_kinds(events)}")
    return f"1008 after {time.monotonic() - started:.1f} s: {ws.close_reason}"


async def _slow_upload(t: _Target) -> str:
    async def dribble(head: bytes) -> AsyncIterator[bytes]:
        yield head
        for _ in range(int(t.patience * 2)):
            await anyio.sleep(0.5)
            yield b"\0"

    started = time.monotonic()
    status, sent = await t.post_chunked(dribble)
    _expect(status == 408, f"HTTP {status}")
    return f"408 after {time.monotonic() - started:.1f} s, {sent - 1} bytes in"


async def _chunked_upload(t: _Target) -> str:
    async def endless(head: bytes) -> AsyncIterator[bytes]:
        yield head
        for _ in range(16 * 1024):  # 1 GiB
            yield b"\0" * (1 << 16)
            await anyio.lowlevel.checkpoint()

    status, sent = await t.post_chunked(endless)
    _expect(status == 413 and sent < 16 * 1024, f"HTTP {status} after {sent} parts")
    return f"413 after {sent * 64} KiB of 1 GiB"


async def _abandoned_request(t: _Target) -> str:
    import httpx

    samples = np.frombuffer(t.pcm, "<i2")
    audio = _flac(np.tile(samples, max(1, 900 * 16_000 // len(samples))))
    before = (await t.status())["sessions"]
    async with httpx.AsyncClient(timeout=t.patience) as http:
        with anyio.move_on_after(2):
            await http.post(f"{t.http}/v1/audio/transcriptions", headers=t.headers,
                            files={"file": ("long.flac", audio)})
    started = time.monotonic()
    while (await t.status())["sessions"] > before:
        _expect(time.monotonic() - started < t.patience, "the session is still held")
        await anyio.sleep(0.1)
    return f"15 min of audio dropped after 2 s: slot free {time.monotonic() - started:.1f} s later"


async def _foreign_origin(t: _Target) -> str:
    import httpx
    import websockets

    evil = {"Origin": "https://evil.example"}
    refused = False
    try:
        async with t.socket(**evil) as ws:
            await t.drain(ws)
            refused = ws.close_code == 1008
    except websockets.InvalidStatus:
        refused = True
    async with httpx.AsyncClient(timeout=t.patience) as http:
        response = await http.post(f"{t.http}/v1/audio/transcriptions",
                                   headers={**t.headers, **evil}, files={"file": ("a", b"x")})
    _expect(refused and response.status_code == 403,
            f"socket refused: {refused}, HTTP {response.status_code}")
    return "WebSocket refused, HTTP 403"


async def _model_probe(t: _Target) -> str:
    answers = set()
    for model in ("/etc", "/nonexistent/x", "../../etc/passwd"):
        async with t.socket() as ws:
            await ws.send(json.dumps({"model": model}))
            events = await t.drain(ws)
        _expect(ws.close_code == 1007, f"{model}: closed {ws.close_code}")
        answers.add(events[-1]["message"].replace(model[:64], "<name>"))
    _expect(len(answers) == 1, f"answers differ: {answers}")
    return "1007, one answer for every path"


async def _health(t: _Target) -> str:
    import httpx

    async with httpx.AsyncClient(timeout=t.patience) as http:
        body = (await http.get(f"{t.http}/healthz")).json()
    _expect(body == {"status": "ok"}, f"/healthz says {body}")
    return "{'status': 'ok'} and nothing more"


async def _bad_config(t: _Target) -> str:
    import httpx

    for config in ({"model": 123}, {"language": "klingon"}, {"language": 5},
                   {"language": ["en"]}, {"sample_rate": "fast"}):
        async with t.socket() as ws:
            await ws.send(json.dumps(config))
            events = await t.drain(ws)
        field = next(iter(config))
        _expect(ws.close_code == 1007 and field in events[-1]["message"],
                f"{config}: closed {ws.close_code} {events[-1:]}")
    async with t.socket() as ws:
        await ws.send(json.dumps({"language": "EN"}))
        _expect(json.loads(await ws.recv())["type"] == "admitted", "'EN' was refused")
    async with httpx.AsyncClient(timeout=t.patience) as http:
        response = await http.post(f"{t.http}/v1/audio/transcriptions", headers=t.headers,
                                   files={"file": ("a.wav", b"x")},
                                   data={"language": "klingon"})
    _expect(response.status_code == 400 and "language" in response.text,
            f"REST language=klingon: HTTP {response.status_code}")
    return "1007 / 400 naming the field; 'EN' accepted"


NETWORK: list[tuple[str, str, Callable[[_Target], Awaitable[str]]]] = [
    ("1", "socket idle after audio: finished, then closed", _idle_finish),
    ("3", "dropped audio told as events, counted exactly", _drops_told),
    ("5", "stats and error before a closing error", _stats_before_error),
    ("6", "socket that never sends its config", _no_config),
    ("6", "socket dribbling one sample at a time", _dribbling_socket),
    ("6", "upload dribbling one byte at a time", _slow_upload),
    ("7", "chunked upload past the size limit", _chunked_upload),
    ("8", "REST request abandoned by its client", _abandoned_request),
    ("10", "page from a foreign origin", _foreign_origin),
    ("12", "filesystem probe through 'model'", _model_probe),
    ("13", "/healthz tells nothing more", _health),
    ("14", "bad config types and languages", _bad_config),
]


# -- probes of the process itself (the replay's own server only) ------------------------

def _token_in_logs(lines: list[str]) -> Callable[[_Target], Awaitable[str]]:
    async def probe(t: _Target) -> str:
        from websockets.asyncio.client import connect

        secret = "abuse-secret-token"
        with contextlib.suppress(Exception):
            async with connect(f"{t.ws}?token={secret}") as ws:
                await ws.close()
        await anyio.sleep(0.2)
        leaked = [line for line in lines if secret in line]
        _expect(bool(lines) and not leaked, f"{len(leaked)} of {len(lines)} lines hold it")
        return f"masked in all {len(lines)} log lines"
    return probe


async def _failing_source(t: _Target) -> str:
    from .. import Engine, Settings
    from ..errors import SourceError

    async def frames() -> AsyncIterator[bytes]:
        yield t.pcm
        raise ConnectionResetError(104, "Connection reset by peer")

    got: list[str] = []
    async with Engine(Settings.load(model=t.model)) as engine:
        try:
            async with engine.transcribe_stream(frames()) as stream:
                async for seg in stream:
                    got.append(seg.text)
        except SourceError as exc:
            _expect(isinstance(exc.__cause__, ConnectionResetError), f"cause {exc.__cause__!r}")
            _expect(bool(got), "no segments before the error")
            return f"{len(got)} segments, then SourceError from ConnectionResetError"
    raise _Failed(f"no SourceError ({len(got)} segments)")


async def _engine_closed(t: _Target) -> str:
    from .. import Engine, Settings, paced
    from ..errors import StreamClosedError

    async with Engine(Settings.load(model=t.model)) as engine:
        stream = engine.transcribe_stream(paced(np.frombuffer(t.pcm, "<i2")), live=True)
        await stream.__aenter__()
    try:
        await stream.__anext__()
    except StreamClosedError as exc:
        return f"StreamClosedError: {exc}"
    except StopAsyncIteration:
        raise _Failed("it ended as if complete") from None
    raise _Failed("it went on")


async def _hung_worker(t: _Target) -> str:
    from .. import Settings, TranscribeOptions
    from .._types import SpeechWindow
    from ..errors import WorkerCrashedError
    from ..executors import ProcessPool, ProcessRunner
    from ..models import ModelRegistry

    settings = Settings.load(model=t.model)
    audio = (np.frombuffer(t.pcm, "<i2") / 32768).astype(np.float32)
    window = SpeechWindow(0, audio, ((0, len(audio)),))

    def run() -> str:
        pool = ProcessPool(settings.models(), ModelRegistry(settings.models()).key_for(None),
                           1, deadline=3.0, deadline_per_audio=0.0)
        try:
            runner = ProcessRunner(pool, TranscribeOptions())
            (victim,) = pool.pids
            threading.Timer(0.3, os.kill, (victim, signal.SIGSTOP)).start()
            started = time.monotonic()
            try:
                runner.transcribe([window] * 8)
            except WorkerCrashedError as exc:
                waited = time.monotonic() - started
                (result,) = runner.transcribe([window])
                _expect(bool(result.text), "the new worker gave no text")
                return f"failed after {waited:.1f} s ({exc}); the next job was answered"
            raise _Failed("the stopped worker's job returned")
        finally:
            pool.close()

    return await anyio.to_thread.run_sync(run)


async def _poisoned_cache(t: _Target) -> str:
    from ..cache import RedisCache
    from ._cache import _start_redis

    try:
        proc, port = await anyio.to_thread.run_sync(_start_redis, tempfile.gettempdir())
    except RuntimeError as exc:
        raise _Skip(str(exc)) from None
    try:
        async with RedisCache(f"redis://127.0.0.1:{port}/0", namespace="abuse") as cache:
            await cache._client.set("abuse:v1:k", b"z\x00bad")
            _expect(await cache.get("k") is None, "a value came back")
            _expect(await cache._client.get("abuse:v1:k") is None, "the entry is still there")
        return "a logged miss; the entry deleted"
    finally:
        proc.terminate()
        proc.wait()


async def _fifo_in_cache(t: _Target) -> str:
    from ..cache import FileCache

    with tempfile.TemporaryDirectory() as directory:
        cache = FileCache(directory)
        path = cache._path("k")
        path.parent.mkdir(parents=True)
        os.mkfifo(path)
        with anyio.fail_after(5):
            _expect(await cache.get("k") is None, "a value came back")
        _expect(not path.exists(), "the FIFO is still there")
    return "refused without blocking, removed"


LOCAL: list[tuple[str, str, Callable[[_Target], Awaitable[str]]]] = [
    ("2", "a source failing mid-stream", _failing_source),
    ("4", "a stream that outlives its engine", _engine_closed),
    ("9", "a stopped (SIGSTOP) model worker", _hung_worker),
    ("15", "a poisoned Redis entry", _poisoned_cache),
    ("16", "a FIFO in the file cache directory", _fifo_in_cache),
]


# -- the replay ---------------------------------------------------------------------------

def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("type", "?") for e in events]


def _flac(samples: np.ndarray) -> bytes:
    """16 kHz mono s16 samples as a FLAC file's bytes."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=16_000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = 16_000
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=16_000)
        for piece in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(piece):
                out.mux(packet)
    return buffer.getvalue()


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _own_server(model: str) -> Iterator[tuple[str, list[str]]]:
    """The app on uvicorn on a free loopback port, in a thread, with :data:`LIMITS`; its
    address, and every line its loggers write."""
    from .. import Settings
    from ..server import ServerSettings, create_app
    from ..testing import uvicorn_serving

    capture = _Lines()
    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error")]
    app = create_app(settings=ServerSettings.load(**LIMITS),
                     engine_settings=Settings.load(model=model))
    with uvicorn_serving(app, log_level="info", access_log=True, ws_max_size=16 << 20) as port:
        kept = [log.handlers for log in loggers]
        for log in loggers:  # after uvicorn set its logging up: into the probe, not the terminal
            log.handlers = [capture]
        try:
            yield f"http://127.0.0.1:{port}", capture.lines
        finally:
            for log, handlers in zip(loggers, kept, strict=True):
                log.handlers = handlers


async def _run(probes: list[tuple[str, str, Callable[[_Target], Awaitable[str]]]],
               target: _Target) -> list[Probe]:
    out = []
    for item, name, probe in probes:
        started = time.monotonic()
        try:
            detail, passed = await probe(target), True
        except _Skip as exc:
            detail, passed = f"skipped: {exc}", True
        except Exception as exc:  # a probe that breaks is a failure of what it probes
            detail, passed = f"{type(exc).__name__}: {exc}", False
        out.append(Probe(item, name, passed, detail, round(time.monotonic() - started, 2)))
    return out


def bench_abuse(*, url: str | None, token: str | None, model: str, speech: Path | None,
                patience: float = 60.0) -> dict[str, Any]:
    """Every probe against ``url`` (or a server of our own); the report."""
    from ..sources import read_audio

    audio = read_audio(speech) if speech is not None else _spoken()
    if url is not None:
        target = _Target(url, token, audio, patience, model)
        probes = anyio.run(_run, NETWORK, target)
        limits = None
    else:
        with _own_server(model) as (address, lines):
            target = _Target(address, None, audio, patience, model)
            probes = anyio.run(_run, [*NETWORK, ("11", "token in a logged URL",
                                                 _token_in_logs(lines)), *LOCAL], target)
        limits = LIMITS
    probes.sort(key=lambda p: int(p.item))
    return {"benchmark": "abuse", "url": url or "own server", "limits": limits,
            "probes": [asdict(p) for p in probes],
            "passed": sum(p.passed for p in probes), "total": len(probes)}


def _spoken() -> np.ndarray:
    """Ten seconds or so of speech: the JFK clip in the shared corpus, else espeak-ng."""
    from ..sources import read_audio
    from ..testing import speak

    clip = SHARED / "whisper-jfk" / "jfk.flac"
    if clip.is_file():
        return read_audio(clip)
    with tempfile.TemporaryDirectory() as directory:
        return read_audio(speak("A journey of a thousand miles begins with a single step. "
                                "Knowledge is power, and time is money.",
                                Path(directory) / "speech.wav"))
