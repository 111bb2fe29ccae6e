"""OpenAI's Realtime API for transcription: ``WS /v1/realtime?intent=transcription``.

Clients written for OpenAI's realtime transcription (the GA protocol) work unchanged. Audio
arrives base64-encoded in ``input_audio_buffer.append`` events, as 24 kHz PCM or 8 kHz G.711.
Turns come from server VAD (Silero, with the session's threshold, prefix padding and silence
duration) or, with ``turn_detection: null``, from the client's commits. Each turn is an item:

- with server VAD, a live stream runs while the speaker talks, and the words LocalAgreement
  commits go out as ``...input_audio_transcription.delta`` events, append-only, so a client
  that concatenates them never has to take text back;
- when the turn ends, ``...completed`` carries the final text of the turn, which may
  correct the unconfirmed tail the deltas left out;
- a client commit transcribes the committed audio at once, as a file (every segment final,
  each a delta).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import av
import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from .._config import LiveOptions, language_code
from .._types import SAMPLE_RATE
from ..errors import ConfigError, ModelError, OverloadedError, VoicesubError
from ..models import VAD_FRAME, SpeechDetector

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, MutableMapping

    import numpy.typing as npt
    from anyio.abc import TaskGroup

    from .._engine import Engine
    from .._types import Segment
    from ._app import _State

logger = logging.getLogger("voicesub_stream.server")

FORMATS = {"audio/pcm": 24_000, "audio/pcmu": 8_000, "audio/pcma": 8_000}
"""The input formats the protocol names, and their sample rates."""
PREFIX_KEPT = 5.0
"""Seconds of audio kept before speech starts, the most prefix padding a session may ask."""


def _default_session() -> dict[str, Any]:
    return {
        "type": "transcription",
        "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24_000},
            "transcription": {"model": "whisper-1", "language": None, "prompt": ""},
            "noise_reduction": None,
            "turn_detection": {"type": "server_vad", "threshold": 0.5,
                               "prefix_padding_ms": 300, "silence_duration_ms": 500},
        }},
        "include": None,
    }


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class _ClientError(Exception):
    """A client event that cannot be taken: answered with an ``error`` event."""

    def __init__(self, message: str, param: str | None = None,
                 code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param, self.code = param, code


# -- audio in --------------------------------------------------------------------------------

def _g711_table(alaw: bool) -> npt.NDArray[np.float32]:
    """Every G.711 byte's linear value in [-1, 1] (ITU-T G.711)."""
    values = np.empty(256, np.float32)
    for byte in range(256):
        if alaw:
            a = byte ^ 0x55
            exponent, mantissa = (a >> 4) & 7, a & 0x0F
            sample = ((mantissa << 4) + 8 if exponent == 0
                      else ((mantissa << 4) + 0x108) << (exponent - 1))
            values[byte] = (sample if a & 0x80 else -sample) / 32768
        else:
            u = ~byte & 0xFF
            exponent, mantissa = (u >> 4) & 7, u & 0x0F
            sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
            values[byte] = (-sample if u & 0x80 else sample) / 32768
    return values


_ULAW, _ALAW = _g711_table(alaw=False), _g711_table(alaw=True)


class _Decoder:
    """One session's input audio, as it arrives, to 16 kHz mono float32 (libswresample)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.rate = FORMATS[fmt]
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._odd = b""  # half a 16-bit sample left from the last event

    def __call__(self, data: bytes) -> npt.NDArray[np.float32]:
        if self.fmt == "audio/pcm":
            data, self._odd = self._odd + data, b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
            samples: npt.NDArray[np.float32] = (
                np.frombuffer(data, "<i2").astype(np.float32) / np.float32(32768))
        else:
            samples = (_ULAW if self.fmt == "audio/pcmu" else _ALAW)[np.frombuffer(data, np.uint8)]
        if not len(samples):
            return np.zeros(0, np.float32)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = self.rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


class _TurnDetector:
    """Server VAD: Silero's speech probability per 32 ms, with the session's threshold; a
    turn starts at the first chunk over it (less the prefix padding) and ends after
    ``silence_duration_ms`` under it (Silero's own hysteresis, 0.15 below the threshold)."""

    def __init__(self, threshold: float, prefix_ms: int, silence_ms: int) -> None:
        self.threshold, self.prefix_ms, self.silence_ms = threshold, prefix_ms, silence_ms
        self._pending = np.zeros(0, np.float32)
        self._detector = SpeechDetector()
        self._samples = 0  # samples judged so far
        self.speaking = False
        self._quiet = 0.0  # ms of silence since the speech

    def feed(self, audio: npt.NDArray[np.float32]) -> list[tuple[str, int]]:
        """``("started", audio_start_ms)`` and ``("stopped", audio_end_ms)`` events."""
        self._pending = np.concatenate([self._pending, audio])
        whole = len(self._pending) // VAD_FRAME * VAD_FRAME
        if not whole:
            return []
        chunks, self._pending = self._pending[:whole], self._pending[whole:]
        probs = self._detector(chunks)
        events = []
        for prob in probs:
            start_ms = self._samples * 1000 // SAMPLE_RATE
            self._samples += VAD_FRAME
            if not self.speaking and prob >= self.threshold:
                self.speaking, self._quiet = True, 0.0
                events.append(("started", max(0, start_ms - self.prefix_ms)))
            elif self.speaking:
                quiet = prob < self.threshold - 0.15
                self._quiet = self._quiet + VAD_FRAME * 1000 / SAMPLE_RATE if quiet else 0.0
                if self._quiet >= self.silence_ms:
                    self.speaking = False
                    events.append(("stopped", self._samples * 1000 // SAMPLE_RATE))
        return events


# -- the session -----------------------------------------------------------------------------

@dataclass
class _Item:
    """One turn: its audio goes to a transcription, its text out as deltas."""

    id: str
    send: Any  # the audio channel into its live stream (None: a committed buffer)
    previous: str | None
    sent: str = ""  # the text already sent as deltas


class RealtimeSession:
    """One ``/v1/realtime`` connection."""

    def __init__(self, ws: WebSocket, state: _State, tg: TaskGroup) -> None:
        self.ws, self.state, self.tg = ws, state, tg
        self.config = _default_session()
        self.decoder = _Decoder("audio/pcm")
        self.turns: _TurnDetector | None = self._turn_detector()
        self.received = 0  # 16 kHz samples since the session began
        self.recent = np.zeros(0, np.float32)  # the last PREFIX_KEPT s, for prefix padding
        self.buffer: list[npt.NDArray[np.float32]] = []  # uncommitted audio (manual turns)
        self.item: _Item | None = None  # the turn being spoken
        self.last_item: str | None = None
        self.audio_seconds = 0.0
        self.gone = False

    @property
    def _input(self) -> dict[str, Any]:
        input_: dict[str, Any] = self.config["audio"]["input"]
        return input_

    async def emit(self, kind: str, **fields: Any) -> None:
        if self.gone:
            return
        try:
            await self.ws.send_json({"type": kind, "event_id": _id("event"), **fields})
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.went_away()

    def went_away(self) -> None:
        """The client is gone: nobody reads what its turns would say, so they stop."""
        self.gone = True
        self.tg.cancel_scope.cancel()

    async def error(self, exc: _ClientError, event_id: str | None) -> None:
        await self.emit("error", error={"type": "invalid_request_error", "code": exc.code,
                                        "message": str(exc), "param": exc.param,
                                        "event_id": event_id})

    # -- client events -------------------------------------------------------------------

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            await self._update(event.get("session"))
        elif kind == "input_audio_buffer.append":
            await self._append(event.get("audio"))
        elif kind == "input_audio_buffer.commit":
            await self._commit()
        elif kind == "input_audio_buffer.clear":
            await self._clear()
        else:
            raise _ClientError(f"unknown or unsupported event type {kind!r} in a transcription "
                               "session", "type", "invalid_event")

    async def _update(self, session: Any) -> None:
        config = _updated(self.config, session, self.state)
        format_changed = config["audio"]["input"]["format"] != self._input["format"]
        self.config = config
        if format_changed:
            self.decoder = _Decoder(self._input["format"]["type"])
        await self._end_turn_if_speaking()
        self.turns = self._turn_detector()
        await self.emit("session.updated", session=self.config)

    def _turn_detector(self) -> _TurnDetector | None:
        turn = self._input["turn_detection"]
        if turn is None:
            return None
        return _TurnDetector(turn["threshold"], turn["prefix_padding_ms"],
                             turn["silence_duration_ms"])

    async def _append(self, audio: Any) -> None:
        if not isinstance(audio, str):
            raise _ClientError("audio must be a base64 string", "audio")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise _ClientError("audio is not valid base64", "audio") from None
        samples = self.decoder(data)
        self.audio_seconds += len(samples) / SAMPLE_RATE
        if self.turns is None:  # the client says where turns end
            self.buffer.append(samples)
            return
        keep = round(PREFIX_KEPT * SAMPLE_RATE)
        self.recent = np.concatenate([self.recent, samples])[-keep:]
        self.received += len(samples)
        # Feed the running turn first: a "stopped" in this audio ends it after this audio.
        if self.item is not None:
            await self._feed(samples)
        for kind, at_ms in self.turns.feed(samples):
            if kind == "started":
                await self._start_turn(at_ms)
            else:
                await self._end_turn(at_ms)

    async def _feed(self, samples: npt.NDArray[np.float32]) -> None:
        assert self.item is not None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.item.send.send(samples)

    async def _start_turn(self, start_ms: int) -> None:
        send, receive = anyio.create_memory_object_stream[Any](256)
        item = _Item(_id("item"), send, self.last_item)
        self.item = item
        # The turn begins with the audio since its start, prefix padding included.
        behind = self.received - round(start_ms * SAMPLE_RATE / 1000)
        await send.send(self.recent[-behind:] if behind > 0 else self.recent[:0])
        self.tg.start_soon(self._transcribe_live, item, receive)
        await self.emit("input_audio_buffer.speech_started", audio_start_ms=start_ms,
                        item_id=item.id)

    async def _end_turn(self, end_ms: int) -> None:
        item = self.item
        if item is None:
            return
        self.item = None
        item.send.close()
        await self.emit("input_audio_buffer.speech_stopped", audio_end_ms=end_ms,
                        item_id=item.id)
        await self._committed(item)

    async def _end_turn_if_speaking(self) -> None:
        if self.item is not None:
            await self._end_turn(self.received * 1000 // SAMPLE_RATE)

    async def _committed(self, item: _Item) -> None:
        await self.emit("input_audio_buffer.committed", previous_item_id=item.previous,
                        item_id=item.id)
        self.last_item = item.id

    async def _commit(self) -> None:
        if self.turns is not None:
            if self.item is None:
                raise _ClientError("nothing to commit: no speech since the last turn",
                                   None, "input_audio_buffer_commit_empty")
            await self._end_turn(self.received * 1000 // SAMPLE_RATE)
            return
        audio = np.concatenate(self.buffer) if self.buffer else np.zeros(0, np.float32)
        if len(audio) < SAMPLE_RATE // 10:
            raise _ClientError("buffer too small: at least 100 ms of audio must be appended "
                               "before a commit", None, "input_audio_buffer_commit_empty")
        self.buffer = []
        item = _Item(_id("item"), None, self.last_item)
        self.received += len(audio)
        await self._committed(item)
        self.tg.start_soon(self._transcribe_buffer, item, audio)

    async def _clear(self) -> None:
        self.buffer = []
        if self.item is not None:
            self.item.send.close()  # what it heard is still transcribed, not dropped
            self.item = None
        await self.emit("input_audio_buffer.cleared")

    # -- transcription ---------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        t = self._input["transcription"]
        return {"model": self.state.model_for(t.get("model")), "language": t.get("language"),
                "initial_prompt": t.get("prompt") or None, "sample_rate": SAMPLE_RATE}

    async def _transcribe_live(self, item: _Item, receive: Any) -> None:
        async def frames() -> AsyncIterator[npt.NDArray[np.float32]]:
            async for samples in receive:
                yield samples

        async with receive:
            await self._run(item, frames(), live=LiveOptions(partials=True))

    async def _transcribe_buffer(self, item: _Item, audio: npt.NDArray[np.float32]) -> None:
        await self._run(item, audio, live=None)

    async def _run(self, item: _Item, source: Any, live: LiveOptions | None) -> None:
        """Transcribe one turn: deltas as words settle, then ``completed`` (or ``failed``)."""
        engine = self.state.engine
        assert engine is not None
        finals: list[str] = []
        try:
            async with engine.transcribe_stream(source, live=live, **self._options()) as stream:
                async for seg in stream:
                    if seg.is_final:
                        finals.append(seg.text)
                    await self._delta(item, finals, seg)
        except VoicesubError as exc:
            await self.emit("conversation.item.input_audio_transcription.failed",
                            item_id=item.id, content_index=0,
                            error={"type": "server_error" if not isinstance(
                                exc, OverloadedError | ConfigError) else "invalid_request_error",
                                "code": type(exc).__name__, "message": str(exc), "param": None})
            return
        transcript = " ".join(finals)
        await self.emit("conversation.item.input_audio_transcription.completed",
                        item_id=item.id, content_index=0, transcript=transcript,
                        usage={"type": "duration", "seconds": round(
                            stream.statistics().audio_seconds, 3)})

    async def _delta(self, item: _Item, finals: list[str], seg: Segment) -> None:
        """Send what is now stable and was not sent: the finals and the committed words of
        the partial after them. Text that no longer extends what was sent waits for
        ``completed``, so deltas never take anything back."""
        stable = " ".join(finals)
        if not seg.is_final:
            committed = seg.words[:seg.metadata.get("committed_words", 0)]
            tail = "".join(w.text for w in committed).strip()
            stable = f"{stable} {tail}".strip() if tail else stable
        if len(stable) > len(item.sent) and stable.startswith(item.sent):
            delta, item.sent = stable[len(item.sent):], stable
            await self.emit("conversation.item.input_audio_transcription.delta",
                            item_id=item.id, content_index=0, delta=delta)


# -- session.update fields -------------------------------------------------------------------

def _updated(config: dict[str, Any], session: Any, state: _State) -> dict[str, Any]:
    """``config`` with a ``session.update``'s changes, all checked before any applies."""
    if not isinstance(session, dict):
        raise _ClientError("session must be an object", "session")
    if session.get("type", "transcription") != "transcription":
        raise _ClientError("this endpoint serves transcription sessions only "
                           "(session.type 'transcription')", "session.type")
    audio = session.get("audio") or {}
    new = audio.get("input") or {} if isinstance(audio, dict) else None
    if not isinstance(new, dict):
        raise _ClientError("session.audio.input must be an object", "session.audio.input")
    config = json.loads(json.dumps(config))
    current = config["audio"]["input"]
    for key, check in _FIELDS.items():
        if key in new:
            current[key] = check(new[key], state)
    if "include" in session:
        config["include"] = session["include"]
    return config


def _format(value: Any, state: _State) -> dict[str, Any]:
    param = "session.audio.input.format"
    if not isinstance(value, dict) or value.get("type") not in FORMATS:
        raise _ClientError(f"{param}.type must be one of {', '.join(FORMATS)}", f"{param}.type")
    if value["type"] == "audio/pcm":
        if value.get("rate", 24_000) != 24_000:
            raise _ClientError("audio/pcm is 24000 Hz in this protocol", f"{param}.rate")
        return {"type": "audio/pcm", "rate": 24_000}
    return {"type": value["type"]}


def _transcription(value: Any, state: _State) -> dict[str, Any] | None:
    param = "session.audio.input.transcription"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _ClientError(f"{param} must be an object or null", param)
    model = value.get("model", "whisper-1")
    try:
        state.model_for(model)
        language = language_code(value.get("language"), f"{param}.language")
    except ModelError as exc:
        raise _ClientError(str(exc), f"{param}.model", "invalid_model") from None
    except ConfigError as exc:
        raise _ClientError(str(exc), f"{param}.language") from None
    prompt = value.get("prompt") or ""
    if not isinstance(prompt, str):
        raise _ClientError(f"{param}.prompt must be a string", f"{param}.prompt")
    return {"model": model, "language": language, "prompt": prompt}


def _turn_detection(value: Any, state: _State) -> dict[str, Any] | None:
    param = "session.audio.input.turn_detection"
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") != "server_vad":
        raise _ClientError(f"{param}.type must be 'server_vad' (or turn_detection null, for "
                           "client commits); semantic_vad is not served here", f"{param}.type")
    out = {"type": "server_vad", "threshold": value.get("threshold", 0.5),
           "prefix_padding_ms": value.get("prefix_padding_ms", 300),
           "silence_duration_ms": value.get("silence_duration_ms", 500)}
    if not isinstance(out["threshold"], int | float) or not 0 < out["threshold"] < 1:
        raise _ClientError(f"{param}.threshold must be between 0 and 1", f"{param}.threshold")
    for key, top in (("prefix_padding_ms", PREFIX_KEPT * 1000), ("silence_duration_ms", 10_000)):
        if not isinstance(out[key], int) or not 0 <= out[key] <= top:
            raise _ClientError(f"{param}.{key} must be a whole number of ms from 0 to "
                               f"{top:g}", f"{param}.{key}")
    return out


def _as_given(value: Any, state: _State) -> Any:
    return value


_FIELDS: dict[str, Callable[[Any, _State], Any]] = {
    "format": _format, "transcription": _transcription, "turn_detection": _turn_detection,
    "noise_reduction": _as_given}
"""Each ``session.audio.input`` field and its check (noise reduction is accepted as given
and not applied: Whisper is trained on noisy speech)."""


# -- the endpoint ----------------------------------------------------------------------------

async def realtime(ws: WebSocket) -> None:
    """``WS /v1/realtime?intent=transcription``."""
    state: _State = ws.app.state.voicesub
    if not await state.accept(ws):
        return
    if ws.query_params.get("intent") != "transcription":
        await _refuse(ws, 1008, "this server serves transcription sessions only: connect with "
                      "?intent=transcription", "intent")
        return
    if not state.sessions.try_acquire():
        await _refuse(ws, 1013, "too many sessions, try again later", None)
        return
    try:
        engine: Engine | None = state.engine
        if engine is None:
            await _refuse(ws, 1013, "the server is starting", None)
            return
        try:
            await engine.can_admit_live()
        except OverloadedError as exc:
            await _refuse(ws, 1013, f"OverloadedError: {exc}", None)
            return
        state.counters.sessions.labels("realtime").inc()
        await _serve(ws, state)
    finally:
        state.sessions.release()


async def _refuse(ws: WebSocket, code: int, message: str, param: str | None) -> None:
    with contextlib.suppress(Exception):
        await ws.send_json({"type": "error", "event_id": _id("event"), "error": {
            "type": "invalid_request_error" if code != 1013 else "server_error",
            "code": "overloaded" if code == 1013 else "invalid_request", "message": message,
            "param": param, "event_id": None}})
        await ws.close(code=code, reason=message[:123])


async def _serve(ws: WebSocket, state: _State) -> None:
    settings = state.settings
    async with anyio.create_task_group() as tg:
        session = RealtimeSession(ws, state, tg)
        await session.emit("session.created", session=session.config)
        deadline = anyio.current_time() + settings.max_session_seconds
        try:
            while True:
                with anyio.fail_after(min(settings.idle_timeout,
                                          max(deadline - anyio.current_time(), 0.001))):
                    message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    session.went_away()
                    break
                await _dispatch(session, message, settings.max_frame_bytes)
        except WebSocketDisconnect:
            session.went_away()
        except TimeoutError:
            pass  # idle, or the session's length: it ends as if the client had stopped
        if not session.gone:
            # The turn being spoken is transcribed to its end before the session closes.
            await session._end_turn_if_speaking()
    state.counters.audio.labels("realtime").inc(session.audio_seconds)
    if not session.gone:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await ws.close(code=1000)


async def _dispatch(session: RealtimeSession, message: MutableMapping[str, Any],
                    max_bytes: int) -> None:
    text = message.get("text")
    event_id = None
    try:
        if text is None:
            raise _ClientError("events are JSON text frames", None, "invalid_event")
        if len(text) > math.ceil(max_bytes * 4 / 3) + 1024:
            raise _ClientError(f"an event may carry at most {max_bytes} bytes of audio",
                               "audio", "invalid_value")
        try:
            event = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _ClientError(f"the event is not valid JSON: {exc}", None,
                               "invalid_json") from None
        if not isinstance(event, dict):
            raise _ClientError("an event is a JSON object", None, "invalid_event")
        event_id = event.get("event_id")
        await session.handle(event)
    except _ClientError as exc:
        await session.error(exc, event_id)
