"""OpenAI Realtime transcription (``/v1/realtime?intent=transcription``): the official
``openai`` client's realtime interface against a real server, and raw websockets for the
protocol's edges."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import websockets

from voicesub_stream._text import word_error_rate
from voicesub_stream.server._realtime import _ALAW, _ULAW

from .test_server import running_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.speech, pytest.mark.shared_data]

CLIP = "whisper-jfk/jfk.flac"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server() as address:
        yield address


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> tuple[np.ndarray, str]:
    """The clip at 24 kHz (the protocol's PCM rate) and its reference."""
    from faster_whisper import decode_audio

    audio = decode_audio(str(speech_dir / CLIP), sampling_rate=24_000)
    return audio, (speech_dir / CLIP).with_suffix(".txt").read_text()


def pcm24(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def g711(audio: np.ndarray, table: np.ndarray) -> bytes:
    """``audio`` (24 kHz) at 8 kHz in G.711: each sample as the code whose value is nearest."""
    eight = audio[::3]
    order = np.argsort(table)
    codes = order[np.clip(np.searchsorted(table[order], eight), 0, 255)]
    return codes.astype(np.uint8).tobytes()


def chunks(data: bytes, size: int) -> Iterator[str]:
    for offset in range(0, len(data), size):
        yield base64.b64encode(data[offset:offset + size]).decode()


async def test_the_openai_client_transcribes_with_server_vad(
        server: str, clip: tuple[np.ndarray, str]) -> None:
    from openai import AsyncOpenAI

    audio, reference = clip
    silence = np.zeros(24_000 * 2, np.float32)  # the turn ends after the speech
    data = pcm24(np.concatenate([audio, silence]))
    client = AsyncOpenAI(base_url=f"http://{server}/v1", api_key="unused")
    events: list[Any] = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        assert created.session.type == "transcription"
        await conn.session.update(session={
            "type": "transcription",
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                   "prefix_padding_ms": 300, "silence_duration_ms": 700},
            }},
        })
        updated = await conn.recv()
        assert updated.type == "session.updated"
        for piece in chunks(data, 4800 * 2):  # 100 ms each
            await conn.input_audio_buffer.append(audio=piece)
        async for event in conn:
            events.append(event)
            turns = [e.item_id for e in events if e.type == "input_audio_buffer.speech_started"]
            done = [e.item_id for e in events
                    if e.type == "conversation.item.input_audio_transcription.completed"]
            if turns and sorted(done) == sorted(turns) and len(turns) == len(
                    [e for e in events if e.type == "input_audio_buffer.speech_stopped"]):
                break
    of = {kind: [e for e in events if e.type == kind] for kind in {e.type for e in events}}
    started, stopped = (of["input_audio_buffer.speech_started"],
                        of["input_audio_buffer.speech_stopped"])
    committed = of["input_audio_buffer.committed"]
    # Every turn: started, then stopped, then committed, with the same item id; in order.
    assert [e.item_id for e in started] == [e.item_id for e in stopped] == [
        e.item_id for e in committed]
    assert [e.previous_item_id for e in committed] == [None] + [
        e.item_id for e in committed[:-1]]
    for start, stop in zip(started, stopped, strict=True):
        assert 0 <= start.audio_start_ms < stop.audio_end_ms <= 14_000
    completed = {e.item_id: e.transcript for e in
                 of["conversation.item.input_audio_transcription.completed"]}
    text = " ".join(completed[e.item_id] for e in started)
    assert word_error_rate(reference, text) <= 0.3
    deltas: dict[str, str] = {}
    for e in of.get("conversation.item.input_audio_transcription.delta", []):
        deltas[e.item_id] = deltas.get(e.item_id, "") + e.delta
    assert deltas, "no delta came before the turns completed"
    # Append-only: what the deltas said is the start of the turn's final text, word for word
    # (the final may correct the tail they had not yet sent).
    for item, said in deltas.items():
        final = completed[item].split()
        assert word_error_rate(said, " ".join(final[:len(said.split())])) <= 0.25, (
            said, final)


async def roundtrip(server: str, events: list[dict[str, Any]], *, until: str,
                    path: str = "/v1/realtime?intent=transcription") -> list[dict[str, Any]]:
    """Send ``events``, then read until an event of type ``until`` (or the close)."""
    out: list[dict[str, Any]] = []
    async with websockets.connect(f"ws://{server}{path}", max_size=None) as ws:
        out.append(json.loads(await ws.recv()))
        for event in events:
            await ws.send(json.dumps(event))
        try:
            while not out or out[-1]["type"] != until:
                out.append(json.loads(await ws.recv()))
        except websockets.ConnectionClosed as closed:
            out.append({"type": "closed", "code": closed.rcvd.code if closed.rcvd else None})
    return out


@pytest.mark.parametrize("fmt", ["audio/pcm", "audio/pcmu", "audio/pcma"])
async def test_client_commits_transcribe_the_committed_audio(
        server: str, clip: tuple[np.ndarray, str], fmt: str) -> None:
    audio, reference = clip
    data = {"audio/pcm": pcm24(audio), "audio/pcmu": g711(audio, _ULAW),
            "audio/pcma": g711(audio, _ALAW)}[fmt]
    events = [{"type": "session.update", "session": {"type": "transcription", "audio": {
        "input": {"format": {"type": fmt}, "turn_detection": None}}}}]
    events += [{"type": "input_audio_buffer.append", "audio": a} for a in chunks(data, 32_000)]
    events.append({"type": "input_audio_buffer.commit", "event_id": "commit-1"})
    out = await roundtrip(server, events,
                          until="conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in out]
    assert kinds[:2] == ["session.created", "session.updated"]
    assert "input_audio_buffer.speech_started" not in kinds  # the client says where turns end
    committed = next(e for e in out if e["type"] == "input_audio_buffer.committed")
    assert out[-1]["item_id"] == committed["item_id"]
    assert out[-1]["usage"]["type"] == "duration"
    assert word_error_rate(reference, out[-1]["transcript"]) <= 0.3
    deltas = "".join(e["delta"] for e in out if e["type"].endswith("transcription.delta"))
    assert deltas.split() == out[-1]["transcript"].split()


async def test_bad_events_get_error_events_naming_the_field(server: str) -> None:
    bad = [
        ({"type": "input_audio_buffer.append", "audio": "not base64!"}, "audio"),
        ({"type": "session.update", "session": {"audio": {"input": {
            "format": {"type": "audio/wav"}}}}}, "session.audio.input.format.type"),
        ({"type": "session.update", "session": {"audio": {"input": {
            "turn_detection": {"type": "semantic_vad"}}}}},
         "session.audio.input.turn_detection.type"),
        ({"type": "session.update", "session": {"audio": {"input": {
            "transcription": {"language": "klingon"}}}}},
         "session.audio.input.transcription.language"),
        ({"type": "session.update", "session": {"audio": {"input": {
            "transcription": {"model": "/etc/passwd"}}}}},
         "session.audio.input.transcription.model"),
        ({"type": "response.create"}, "type"),
    ]
    for event, param in bad:
        out = await roundtrip(server, [{**event, "event_id": "e1"}], until="error")
        error = out[-1]["error"]
        assert (error["param"], error["event_id"]) == (param, "e1"), error
    out = await roundtrip(server, [{"type": "input_audio_buffer.commit"}], until="error")
    assert out[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    # A session survives its client's mistakes: the next event is answered as usual.
    out = await roundtrip(server, [{"type": "input_audio_buffer.append", "audio": "!!"},
                                   {"type": "input_audio_buffer.clear"}],
                          until="input_audio_buffer.cleared")
    assert out[-1]["type"] == "input_audio_buffer.cleared"


async def test_realtime_refusals_close_with_the_streams_codes() -> None:
    with running_server(api_token="s3cret", max_sessions=1) as address:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await roundtrip(address, [], until="session.created")
        assert refused.value.response.status_code == 403  # closed before accepting: 1008
        out = await roundtrip(address, [], until="closed",
                              path="/v1/realtime?token=s3cret")  # no intent
        assert out[0]["type"] == "error"
        assert out[-1]["code"] == 1008
        path = "/v1/realtime?intent=transcription&token=s3cret"
        async with websockets.connect(f"ws://{address}{path}") as holder:
            assert json.loads(await holder.recv())["type"] == "session.created"
            out = await roundtrip(address, [], until="closed", path=path)
            assert out[-1]["code"] == 1013
            assert "too many sessions" in out[0]["error"]["message"]


def test_server_vad_turns_do_not_depend_on_how_the_audio_was_sent(speech_dir: Path) -> None:
    """Silero keeps its state across appends: 20 ms appends find the turns one append of
    the whole clip finds (with a fresh state per append it heard speech in the pauses)."""
    from faster_whisper import decode_audio

    from voicesub_stream.server._realtime import _TurnDetector

    audio = decode_audio(str(speech_dir / CLIP), sampling_rate=16_000)
    audio = np.concatenate([audio, np.zeros(16_000, np.float32)])
    whole = _TurnDetector(0.5, 300, 500).feed(audio)
    detector = _TurnDetector(0.5, 300, 500)
    pieces = [e for i in range(0, len(audio), 320) for e in detector.feed(audio[i : i + 320])]
    assert pieces == whole
    assert [kind for kind, _ in whole][:2] == ["started", "stopped"]
