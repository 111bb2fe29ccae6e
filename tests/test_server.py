"""The ASGI app on a real uvicorn, driven by websocket, httpx and OpenAI clients."""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import httpx
import numpy as np
import pysubs2
import pytest
import websockets
from websockets.asyncio.client import connect

from voicesub_stream import Settings
from voicesub_stream._text import word_error_rate
from voicesub_stream.server import ServerSettings, create_app
from voicesub_stream.testing import free_port, uvicorn_serving
from voicesub_stream.testing import post_chunked as post_chunked_to

from .conftest import SENTENCES

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.speech


@contextlib.contextmanager
def running_server(**limits: Any) -> Iterator[str]:
    """The app on a real uvicorn in a thread; yields its address."""
    app = create_app(settings=ServerSettings.load(**limits),
                     engine_settings=Settings.load(model="tiny.en", device="cpu", offline=True))
    with uvicorn_serving(app, ws_max_size=16 << 20, lifespan="on") as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server() as address:
        yield address


@pytest.fixture(scope="module")
def wav_bytes(espeak_wav: Path) -> bytes:
    return espeak_wav.read_bytes()


@pytest.fixture(scope="module")
def pcm(espeak_audio: np.ndarray) -> bytes:
    return (np.clip(espeak_audio, -1, 1) * 32767).astype("<i2").tobytes()


async def drain(ws: Any) -> list[dict[str, Any]]:
    """Every message until the server closes, whatever the close code."""
    out = []
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            out.append(json.loads(await ws.recv()))
    return out


async def caption(address: str, pcm: bytes, config: dict[str, Any], frame: int = 3200,
                  speed: float | None = None, **connect_args: Any) -> list[dict[str, Any]]:
    """Send ``pcm`` (16 kHz s16le) as fast as it goes, or at ``speed`` times real time."""
    events = []
    async with connect(f"ws://{address}/v1/stream", **connect_args) as ws:
        await ws.send(json.dumps(config))
        for i in range(0, len(pcm), frame):
            await ws.send(pcm[i : i + frame])
            if speed:
                await anyio.sleep(frame / 32_000 / speed)
        await ws.send(json.dumps({"type": "stop"}))
        async for message in ws:
            events.append(json.loads(message))
    return events


async def test_websocket_streams_partials_finals_and_stats(server: str, pcm: bytes) -> None:
    # At four times real time: partials come while the audio arrives, as from a microphone.
    events = await caption(server, pcm, {"language": "en", "sample_rate": 16000}, speed=4)
    kinds = [e["type"] for e in events]
    assert events[0] == {"type": "admitted", "degraded": False}
    assert "partial" in kinds
    assert kinds[-1] == "stats"
    finals = " ".join(e["text"] for e in events if e["type"] == "final")
    assert word_error_rate(SENTENCES, finals) <= 0.3


async def test_websocket_without_partials_sends_only_finals(server: str, pcm: bytes) -> None:
    events = await caption(server, pcm, {"partials": False})
    assert {e["type"] for e in events} == {"admitted", "final", "stats"}


async def test_bad_config_json_is_rejected_with_an_error_event(server: str) -> None:
    async with connect(f"ws://{server}/v1/stream") as ws:
        await ws.send("{not json")
        event = json.loads(await ws.recv())
        assert event["type"] == "error"
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1007


@pytest.mark.parametrize(("config", "field"), [
    ({"language": "klingon"}, "language"), ({"language": 5}, "language"),
    ({"language": ["en"]}, "language"), ({"model": 123}, "model"), ({"model": ["x"]}, "model"),
])
async def test_a_bad_config_value_closes_1007_naming_the_field(
    server: str, config: dict[str, object], field: str,
) -> None:
    async with connect(f"ws://{server}/v1/stream") as ws:
        await ws.send(json.dumps(config))
        messages = await drain(ws)
    assert messages[-1]["type"] == "error"
    assert messages[-1]["message"].startswith(f"{field} must")
    assert ws.close_code == 1007


@pytest.mark.parametrize("model", ["/etc", "/nonexistent/x", "../models", "small"])
async def test_clients_may_name_only_the_models_the_server_serves(
    server: str, wav_bytes: bytes, model: str,
) -> None:
    async with connect(f"ws://{server}/v1/stream") as ws:
        await ws.send(json.dumps({"model": model}))
        messages = await drain(ws)
    async with httpx.AsyncClient(timeout=60) as http:
        rest = await http.post(f"http://{server}/v1/audio/transcriptions",
                               files={"file": ("clip.wav", wav_bytes)}, data={"model": model})
    # One answer for every refusal: nothing about what exists on the server's disk.
    expected = f"model {model!r} is not served here; ask for one of base, tiny.en"
    assert ws.close_code == 1007
    assert messages[-1]["message"] == expected
    assert rest.status_code == 400
    assert rest.json()["error"]["message"] == expected


async def test_a_page_from_another_origin_may_not_use_the_server(server: str) -> None:
    evil = {"Origin": "https://evil.example"}
    with pytest.raises(websockets.InvalidStatus):
        async with connect(f"ws://{server}/v1/stream", additional_headers=evil):
            pass
    async with httpx.AsyncClient(timeout=60) as http:
        refused = await http.post(f"http://{server}/v1/audio/transcriptions",
                                  files={"file": ("a.wav", b"x")}, headers=evil)
        local = await http.post(f"http://{server}/v1/audio/transcriptions",
                                files={"file": ("a.wav", b"x")},
                                headers={"Origin": "http://localhost:3000"})
    assert refused.status_code == 403
    assert local.status_code == 400  # let in, then told the upload is not audio
    async with connect(f"ws://{server}/v1/stream",
                       additional_headers={"Origin": "http://localhost:3000"}) as ws:
        await ws.send(json.dumps({"partials": False}))
        assert json.loads(await ws.recv())["type"] == "admitted"


async def test_an_allowed_origin_gets_cors_headers() -> None:
    with running_server(allowed_origins=("https://captions.example",)) as address:
        async with httpx.AsyncClient(timeout=60) as http:
            preflight = await http.options(
                f"http://{address}/v1/audio/transcriptions",
                headers={"Origin": "https://captions.example",
                         "Access-Control-Request-Method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == "https://captions.example"
        async with connect(f"ws://{address}/v1/stream",
                           additional_headers={"Origin": "https://captions.example"}) as ws:
            await ws.send(json.dumps({}))
            assert json.loads(await ws.recv())["type"] == "admitted"


def test_tokens_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    create_app(settings=ServerSettings.load(), engine=None)
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    "/v1/stream?token=s3cret&x=1", "1.1", 101)
    assert "s3cret" not in caplog.text
    assert "token=***&x=1" in caplog.text


async def test_language_codes_are_read_whatever_their_case(server: str, pcm: bytes) -> None:
    events = await caption(server, pcm, {"language": " EN", "partials": False})
    assert events[-1]["type"] == "stats"
    assert all(e["language"] == "en" for e in events if e["type"] == "final")


async def test_at_the_idle_timeout_what_was_sent_is_finished_first(pcm: bytes) -> None:
    """A client that sends audio and never says stop still gets every final, then stats."""
    with running_server(idle_timeout=2) as address:
        async with connect(f"ws://{address}/v1/stream") as ws:
            await ws.send(json.dumps({"partials": False}))
            await ws.send(pcm)  # and then nothing
            messages = await drain(ws)
    assert messages[-1]["type"] == "stats"
    assert ws.close_code == 1000
    finals = " ".join(m["text"] for m in messages if m["type"] == "final")
    assert word_error_rate(SENTENCES, finals) <= 0.3


async def test_text_frame_where_audio_is_expected_closes_1003(server: str, pcm: bytes) -> None:
    """The audio before the bad frame is transcribed; its finals and stats come first."""
    async with connect(f"ws://{server}/v1/stream") as ws:
        await ws.send(json.dumps({"sample_rate": 16000, "partials": False}))
        await ws.send(pcm)
        await ws.send("hello")
        messages = await drain(ws)
    assert [m["type"] for m in messages[-2:]] == ["stats", "error"]
    assert ws.close_code == 1003
    finals = " ".join(m["text"] for m in messages if m["type"] == "final")
    assert word_error_rate(SENTENCES, finals) <= 0.3


async def test_oversized_frame_closes_1009() -> None:
    with running_server(max_frame_bytes=4096) as address:
        async with connect(f"ws://{address}/v1/stream") as ws:
            await ws.send(json.dumps({}))
            await ws.send(b"\0" * 8192)
            messages = await drain(ws)
        assert "limit" in messages[-1]["message"]
        assert ws.close_code == 1009


async def test_client_disconnect_mid_stream_frees_the_session(pcm: bytes) -> None:
    with running_server(max_sessions=1) as address:
        async with connect(f"ws://{address}/v1/stream") as ws:
            await ws.send(json.dumps({}))
            await ws.send(pcm[:64000])
        # The slot comes back once the server has noticed and cleaned up.
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient() as http:
            while True:
                health = (await http.get(f"http://{address}/v1/status")).json()
                if health["sessions"] == 0:
                    break
                assert time.monotonic() < deadline, health
                await anyio.sleep(0.05)
        events = await caption(address, pcm, {"partials": False})
        assert events[-1]["type"] == "stats"


async def test_too_many_sessions_close_1013_and_http_503(pcm: bytes) -> None:
    with running_server(max_sessions=1, retry_after=7) as address:
        async with connect(f"ws://{address}/v1/stream") as first:
            await first.send(json.dumps({}))
            async with connect(f"ws://{address}/v1/stream") as second:
                with pytest.raises(websockets.ConnectionClosed):
                    await second.recv()
            assert second.close_code == 1013
            async with httpx.AsyncClient() as http:
                response = await http.post(f"http://{address}/v1/audio/transcriptions",
                                           files={"file": ("a.wav", b"x")},
                                           data={"model": "whisper-1"})
            assert response.status_code == 503
            assert response.headers["retry-after"] == "7"


async def test_idle_socket_is_closed_with_its_stats() -> None:
    with running_server(idle_timeout=0.5) as address:
        async with connect(f"ws://{address}/v1/stream") as ws:
            await ws.send(json.dumps({}))
            messages = await drain(ws)
        assert [m["type"] for m in messages] == ["admitted", "stats"]
        assert ws.close_code == 1000
        assert ws.close_reason == "idle timeout: finished what was sent"


async def test_audio_a_policy_drops_is_told_as_it_happens(server: str, pcm: bytes) -> None:
    """Sent all at once under drop-oldest, most of the audio is dropped: each drop is an
    event before the stats, and the events add up to what the stats count."""
    events = await caption(server, pcm * 2, {"policy": "drop-oldest", "partials": False},
                           frame=64_000)
    drops = [e for e in events if e["type"] == "dropped"]
    stats = events[-1]
    assert stats["type"] == "stats"
    assert drops
    assert sum(d["seconds"] for d in drops) == pytest.approx(stats["live"]["dropped_seconds"],
                                                            abs=0.01)
    assert drops[-1]["total"] == stats["live"]["dropped_seconds"]


async def test_a_socket_that_sends_no_config_is_closed_1008() -> None:
    with running_server(config_timeout=0.5) as address:
        async with connect(f"ws://{address}/v1/stream") as ws:
            messages = await drain(ws)
    assert ws.close_code == 1008
    assert "no config" in messages[-1]["message"]


async def test_a_dribbling_socket_is_closed_after_what_it_sent(pcm: bytes) -> None:
    """One byte at a time resets no timer: the audio rate falls under the minimum, and the
    session ends with its stats, then a 1008 that says why."""
    with running_server(min_audio_rate=0.5, rate_grace=1) as address:
        async with connect(f"ws://{address}/v1/stream") as ws:
            await ws.send(json.dumps({"partials": False}))
            await ws.send(pcm[:64_000])  # 2 s of audio: held to the rate from 4 s on
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await ws.send(b"\0\0")
                    await anyio.sleep(0.3)
            messages = await drain(ws)
    assert ws.close_code == 1008
    assert [m["type"] for m in messages[-2:]] == ["stats", "error"]
    assert "too slowly" in messages[-1]["message"]
    assert messages[-2]["audio_seconds"] >= 2.0


async def test_a_session_ends_at_its_length_limit_with_everything_sent_finished(
    pcm: bytes,
) -> None:
    with running_server(max_session_seconds=2, min_audio_rate=0) as address:
        async with connect(f"ws://{address}/v1/stream") as ws:
            await ws.send(json.dumps({"partials": False}))
            await ws.send(pcm)
            messages = await drain(ws)
    assert ws.close_code == 1008
    assert "limit" in messages[-1]["message"]
    finals = " ".join(m["text"] for m in messages if m["type"] == "final")
    assert word_error_rate(SENTENCES, finals) <= 0.3


async def post_chunked(address: str, parts: Any) -> tuple[int, int]:
    host, port = address.split(":")
    with anyio.fail_after(60):
        return await post_chunked_to(host, int(port), parts)


async def test_slow_and_chunked_uploads_are_stopped_as_they_arrive() -> None:
    async def dribble(head: bytes) -> Any:
        yield head
        for _ in range(60):
            await anyio.sleep(0.25)
            yield b"\0"

    async def endless(head: bytes) -> Any:
        yield head
        for _ in range(1024):  # 64 MiB
            yield b"\0" * (1 << 16)
            await anyio.lowlevel.checkpoint()

    with running_server(min_upload_rate=1000, rate_grace=1,
                        max_upload_bytes=1 << 20) as address:
        status, sent = await post_chunked(address, dribble)
        assert (status, sent < 60) == (408, True)  # refused before the end
        status, sent = await post_chunked(address, endless)
        assert (status, sent < 1024) == (413, True)  # and the rest was never read
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{address}/v1/status")).json()["sessions"] == 0


async def test_a_request_abandoned_by_its_client_stops_its_work(espeak_audio: np.ndarray,
                                                                tmp_path: Path) -> None:
    from .helpers import encode

    long = encode(np.tile(espeak_audio, 90), tmp_path / "long.flac")  # about 15 minutes
    with running_server() as address:
        async with httpx.AsyncClient(timeout=60) as http:
            with anyio.move_on_after(2):
                await http.post(f"http://{address}/v1/audio/transcriptions",
                                files={"file": ("long.flac", long.read_bytes())})
            # The slot comes back once the server has noticed: long before the 15 minutes
            # would have been transcribed.
            deadline = time.monotonic() + 20
            while (await http.get(f"http://{address}/v1/status")).json()["sessions"]:
                assert time.monotonic() < deadline
                await anyio.sleep(0.1)


async def test_bearer_token_is_required_when_set(wav_bytes: bytes, pcm: bytes) -> None:
    with running_server(api_token="s3cret") as address:
        url = f"http://{address}/v1/audio/transcriptions"
        files = {"file": ("clip.wav", wav_bytes)}
        async with httpx.AsyncClient(timeout=120) as http:
            assert (await http.post(url, files=files)).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await http.post(url, files=files, headers=wrong)).status_code == 401
            ok = await http.post(url, files=files, headers={"Authorization": "Bearer s3cret"})
            # Health is open to all and says only that the server is up; the details are
            # behind the token.
            health = await http.get(f"http://{address}/healthz")
            hidden = await http.get(f"http://{address}/v1/status")
            status = await http.get(f"http://{address}/v1/status",
                                    headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert hidden.status_code == 401
        assert status.json()["max_sessions"] >= 1
        assert "models" in status.json()
        with pytest.raises(websockets.InvalidStatus):
            async with connect(f"ws://{address}/v1/stream"):
                pass
        events = await caption(address, pcm, {"partials": False},
                               additional_headers={"Authorization": "Bearer s3cret"})
        assert events[-1]["type"] == "stats"


async def test_upload_limit_is_413() -> None:
    with running_server(max_upload_bytes=2048) as address:
        async with httpx.AsyncClient() as http:
            response = await http.post(f"http://{address}/v1/audio/transcriptions",
                                       files={"file": ("a.wav", b"\0" * 10_000)})
        assert response.status_code == 413


async def test_openai_client_round_trip(server: str, espeak_wav: Path) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"http://{server}/v1", api_key="unused", max_retries=0)
    with espeak_wav.open("rb") as fh:
        plain = await client.audio.transcriptions.create(model="whisper-1", file=fh)
    assert word_error_rate(SENTENCES, plain.text) <= 0.3
    with espeak_wav.open("rb") as fh:
        verbose = await client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="verbose_json",
            timestamp_granularities=["word", "segment"])
    assert verbose.language == "en"
    assert verbose.segments
    assert verbose.words
    assert verbose.words[-1].end <= 10.5
    for fmt in ("srt", "vtt"):
        with espeak_wav.open("rb") as fh:
            text = await client.audio.transcriptions.create(model="whisper-1", file=fh,
                                                            response_format=fmt)
        assert len(pysubs2.SSAFile.from_string(str(text))) == len(verbose.segments)
    await client.close()


async def test_streamed_transcription_is_server_sent_events(server: str, wav_bytes: bytes
                                                            ) -> None:
    async with httpx.AsyncClient(timeout=120) as http, http.stream(
        "POST", f"http://{server}/v1/audio/transcriptions",
        files={"file": ("clip.wav", wav_bytes)}, data={"stream": "true"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) async for line in response.aiter_lines()
                  if line.startswith("data: ")]
    assert {e["type"] for e in events[:-1]} == {"transcript.text.delta"}
    assert events[-1]["type"] == "transcript.text.done"
    assert word_error_rate(SENTENCES, events[-1]["text"]) <= 0.3


async def test_a_bad_language_is_a_400_naming_the_field(server: str, wav_bytes: bytes) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        bad = await http.post(f"http://{server}/v1/audio/transcriptions",
                              files={"file": ("clip.wav", wav_bytes)},
                              data={"language": "klingon"})
    assert bad.status_code == 400
    assert "language must be one of" in bad.json()["error"]["message"]
    assert bad.json()["error"]["param"] == "language"


async def test_openai_clients_list_the_models_and_are_not_retried_on_a_client_error(
        server: str, wav_bytes: bytes) -> None:
    import openai

    requests: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    client = openai.AsyncOpenAI(
        base_url=f"http://{server}/v1", api_key="unused",
        http_client=httpx.AsyncClient(event_hooks={"request": [record]}))
    models = [m.id async for m in client.models.list()]
    assert models[0] == "tiny.en"  # the server's default first
    assert {"base", "whisper-1"} <= set(models)
    assert (await client.models.retrieve("base")).id == "base"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("large-v3")
    requests.clear()
    with pytest.raises(openai.BadRequestError) as raised:
        await client.audio.transcriptions.create(model="whisper-1", language="klingon",
                                                 file=("clip.wav", wav_bytes))
    assert "language must be one of" in raised.value.message
    assert len(requests) == 1  # a 400 is the client's mistake: no retries
    await client.close()


async def test_translation_endpoint_and_bad_upload(server: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        bad = await http.post(f"http://{server}/v1/audio/translations",
                              files={"file": ("notes.txt", b"not audio at all")})
        health = (await http.get(f"http://{server}/healthz")).json()
    assert bad.status_code == 400
    assert "AudioDecodeError" in bad.json()["error"]["message"]
    assert health["status"] == "ok"


def test_fastapi_example_shares_one_engine(espeak_wav: Path) -> None:
    from fastapi.testclient import TestClient

    from examples.fastapi_app import app

    with TestClient(app) as client:
        own = client.post("/captions", files={"file": ("c.wav", espeak_wav.read_bytes())})
        mounted = client.post("/asr/v1/audio/transcriptions",
                              files={"file": ("c.wav", espeak_wav.read_bytes())})
    assert own.status_code == 200
    assert mounted.status_code == 200
    text = " ".join(s["text"] for s in own.json()["segments"])
    assert text == mounted.json()["text"]


def test_serve_command_starts_a_server() -> None:
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "voicesub_stream.cli", "serve", "--port",
                             str(port), "--model", "tiny.en", "--allow-origin",
                             "https://app.example"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, "voicesub serve exited"
                assert time.monotonic() < deadline, "voicesub serve did not come up"
                time.sleep(0.1)
        assert health["status"] == "ok"
        cors = httpx.options(f"http://127.0.0.1:{port}/v1/audio/transcriptions", headers={
            "origin": "https://app.example", "access-control-request-method": "POST"})
        assert cors.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(timeout=30) in (0, -15)
    assert proc.stderr is not None
    with proc.stderr:
        assert f"serving on http://127.0.0.1:{port}" in proc.stderr.read()


async def test_metrics_endpoint_serves_prometheus_text(server: str, pcm: bytes) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    # What the counters below count, whatever other tests ran before this one.
    assert any(e["type"] == "final" for e in await caption(server, pcm, {"partials": False}))
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(f"http://{server}/v1/models")).status_code == 200
        bad = await http.post(f"http://{server}/v1/audio/transcriptions",
                              files={"file": ("notes.txt", b"not audio at all")})
        assert bad.status_code == 400
        response = await http.get(f"http://{server}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {"voicesub_scheduler_queued", "voicesub_models_loaded", "voicesub_streams"} <= set(
        families)
    # the library's own collectors: process CPU as a counter, memory, the platform
    assert families["process_cpu_seconds"].type == "counter"
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert "python_info" in families

    def value(family: str, suffix: str, **labels: str) -> float:
        return sum(s.value for s in families[family].samples
                   if s.name == family + suffix and labels.items() <= s.labels.items())

    # the server's own counters
    assert value("voicesub_requests", "_total", endpoint="/v1/models", status="200") >= 1
    assert value("voicesub_sessions", "_total", kind="websocket") >= 1
    assert value("voicesub_sessions", "_total", kind="http") >= 1
    assert value("voicesub_audio_seconds", "_total", kind="websocket") > 5
    assert value("voicesub_errors", "_total") >= 1  # the bad upload above
    # latencies users watch, as histograms with buckets
    latency = families["voicesub_latency_seconds"]
    assert latency.type == "histogram"
    assert value("voicesub_latency_seconds", "_count", kind="final") >= 1
    assert value("voicesub_latency_seconds", "_count", kind="model_call") >= 1
    assert value("voicesub_latency_seconds", "_bucket", kind="model_call", le="+Inf") == value(
        "voicesub_latency_seconds", "_count", kind="model_call")
    assert families["voicesub_function_seconds"].type == "histogram"
