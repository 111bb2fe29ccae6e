"""The ASGI application.

- ``WS /v1/stream``: a JSON config message, then binary s16le frames; JSON events back
  (``admitted``, ``partial``, ``final``, ``dropped``, ``stats``, ``error``). Send
  ``{"type": "stop"}`` to finish. A stream the engine has no room for is closed with 1013
  and ``retry_after``. However a session ends (stop, a limit, a protocol error), what it
  sent is transcribed and its finals and ``stats`` go out before the close.
- ``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``: OpenAI's audio API
  (multipart ``file``, ``model``, ``language``, ``prompt``, ``response_format``,
  ``timestamp_granularities[]``, ``stream``), so OpenAI clients work against it.
- ``GET /v1/models``: OpenAI's model list, the names this server serves.
- ``GET /healthz`` (up or not, nothing more), ``GET /v1/status`` (sessions, models) and
  ``GET /metrics`` for Prometheus, both behind the token when one is set.

The app uses an :class:`~voicesub_stream.Engine` it is given, or owns one through its
lifespan. Every session (a socket or a request) holds one of ``max_sessions`` slots, so the
limits in :class:`ServerSettings` are what keep a slow, silent or abandoned client from
holding one: a config deadline, minimum audio and upload rates, a session length, upload
bytes counted as they arrive, and REST work cancelled when its client leaves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import logging
import math
import re
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import urlsplit

import anyio
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .._config import BackpressurePolicy, LiveOptions, Settings, language_code
from .._engine import Engine
from ..errors import ConfigError, ModelError, OverloadedError, SourceError, VoicesubError
from ..subtitles import render_subtitles
from . import _pages as pages
from ._metrics import render_metrics
from ._realtime import realtime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, MutableMapping

    from anyio.streams.memory import MemoryObjectSendStream
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .._stream import SegmentStream
    from .._types import Segment

logger = logging.getLogger(__name__)

OPENAI_MODEL_ALIASES = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"}
"""Model names OpenAI clients send by default; they mean "the server's default model"."""
BUNDLED_MODELS = ("tiny.en", "base")
"""What the bundled weights (``voicesub-stream[bundled]``) provide."""


class ServerSettings(BaseSettings):
    """Limits and credentials, from ``VOICESUB_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="VOICESUB_", frozen=True, extra="ignore")

    api_token: str | None = None
    max_sessions: int = Field(default=8, ge=1)
    max_frame_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=200 << 20, ge=1024)
    idle_timeout: float = Field(default=30.0, gt=0)
    config_timeout: float = Field(default=5.0, gt=0)
    """Seconds a socket may take to send its config after it opens."""
    min_audio_rate: float = Field(default=0.5, ge=0)
    """Seconds of audio per second of wall time a socket must send on average once
    ``rate_grace`` has passed (a live client sends 1.0); 0 turns the check off."""
    min_upload_rate: int = Field(default=4096, ge=0)
    """Bytes per second an upload must arrive at on average once ``rate_grace`` has passed
    (a 32 kbit/s line); 0 turns the check off."""
    rate_grace: float = Field(default=10.0, ge=0)
    """Seconds a session may send slower than the minimum rate before it is held to it."""
    max_session_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Longest a WebSocket session may stay open, however active."""
    retry_after: int = Field(default=5, ge=1)
    allowed_models: tuple[str, ...] = ()
    """Model names remote clients may ask for; empty: the server's default model and the
    bundled ones (``tiny.en``, ``base``). Paths are never accepted from a client."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed on the WebSocket (``*``: any); requests from the server's
    own host and from localhost are always allowed, as are clients that send no Origin."""

    @classmethod
    def load(cls, **overrides: Any) -> ServerSettings:
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(str(exc)) from exc


class RedactCredentials(logging.Filter):
    """Masks ``token=`` query values (the WebSocket's browser fallback for the bearer
    token) in every record of the logger it is attached to, uvicorn's access log included."""

    _TOKEN = re.compile(r"((?:^|[?&;])(?:access_)?token=)[^&\s\"']*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._mask(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._mask(a) for a in record.args)
        return True

    def _mask(self, value: Any) -> Any:
        return self._TOKEN.sub(r"\1***", value) if isinstance(value, str) else value


def _redact_server_logs() -> None:
    for name in ("uvicorn.access", "uvicorn.error", __name__):
        log = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in log.filters):
            log.addFilter(RedactCredentials())


class _Protocol(Exception):
    """A client broke the socket protocol; closes with ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _rate_deadline(started: float, amount: float, rate: float, grace: float) -> float:
    """When ``amount`` received since ``started`` falls under ``rate`` per second on average,
    counting from ``grace`` seconds in (never, for a rate of 0)."""
    return started + max(grace, amount / rate) if rate else math.inf


class _UploadRefused(Exception):
    """An upload broke a limit while it arrived; answered with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _MeteredBody:
    """A request's ``receive``, counting body bytes as they arrive.

    An upload over ``max_upload_bytes`` is refused at the first byte past the limit, whether
    it declared its length or not (chunked), and one slower than ``min_upload_rate`` once
    ``rate_grace`` has passed is refused then, so a dribbling client cannot hold a session.
    After the body, ``receive`` passes through (it reports the client's disconnect).
    """

    def __init__(self, receive: Receive, settings: ServerSettings) -> None:
        self._receive, self._settings = receive, settings
        self.started = anyio.current_time()
        self.received = 0
        self.complete = False

    async def __call__(self) -> Message:
        if self.complete:
            return await self._receive()
        settings = self._settings
        deadline = _rate_deadline(self.started, self.received, settings.min_upload_rate,
                                  settings.rate_grace)
        with anyio.CancelScope(deadline=deadline) as scope:
            message = await self._receive()
        if scope.cancelled_caught:
            elapsed = anyio.current_time() - self.started
            raise _UploadRefused(408, f"upload too slow: {self.received} bytes in "
                                      f"{elapsed:.0f} s (at least {settings.min_upload_rate} "
                                      "bytes per second)")
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > settings.max_upload_bytes:
                raise _UploadRefused(413, f"upload over the {settings.max_upload_bytes}-byte "
                                          "limit")
            self.complete = not message.get("more_body", False)
        return message


@dataclasses.dataclass
class _Ending:
    """How a socket session ends once its audio is transcribed: a 1000 close, or a policy
    close whose reason the client also gets as an ``error`` event after ``stats``."""

    code: int = 1000
    reason: str | None = None


class _Sessions:
    def __init__(self, limit: int) -> None:
        self.limit, self.active = limit, 0

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


class _Counters:
    """The server's own counters (prometheus-client's), beside the engine's figures on
    ``/metrics``: requests by endpoint and status, sessions and the audio they sent by kind,
    and errors by type. Each app has its own registry, so several apps in one process (tests,
    mounted apps) count apart."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("voicesub_requests", "HTTP requests by endpoint and status.",
                                ["endpoint", "status"], registry=self.registry)
        self.sessions = Counter("voicesub_sessions", "Sessions that got a slot, by kind.",
                                ["kind"], registry=self.registry)
        self.audio = Counter("voicesub_audio_seconds", "Seconds of audio received and "
                             "transcribed, by kind of session.", ["kind"],
                             registry=self.registry)
        self.errors = Counter("voicesub_errors", "Sessions that ended on an error, by type.",
                              ["type"], registry=self.registry)


class _State:
    def __init__(self, settings: ServerSettings, engine: Engine | None) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = _Sessions(settings.max_sessions)
        self.counters = _Counters()

    def model_for(self, name: str | None) -> str | None:
        """The model a remote client asked for, if it may have it.

        :raises ModelError: a name the server does not serve, or a path (one message for
            every refusal, so the answer says nothing about the server's filesystem)
        """
        if name is None or name in OPENAI_MODEL_ALIASES:
            return None
        allowed = self.served_models()
        if name not in allowed:
            raise ModelError(f"model {name[:64]!r} is not served here; ask for one of "
                             f"{', '.join(sorted(set(allowed)))}")
        return name

    def served_models(self) -> list[str]:
        """The model names clients may ask for (the default first)."""
        default = self.engine.settings.model if self.engine is not None else None
        return list(dict.fromkeys(self.settings.allowed_models or tuple(
            n for n in (default, *BUNDLED_MODELS) if n is not None)))

    def origin_allowed(self, headers: Any) -> bool:
        """Whether a browser page at the request's Origin may use this server."""
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser: native clients send no Origin
        allowed = self.settings.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        host = urlsplit(origin).hostname or ""
        own = (headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
        return host in ("localhost", "127.0.0.1", "::1") or (bool(own) and host == own)

    async def accept(self, ws: WebSocket) -> bool:
        """Accept a WebSocket from a client with the token and an allowed origin; close any
        other with 1008 before accepting it (the client sees a 403)."""
        if not self.authorized(ws.headers, ws.query_params):
            await ws.close(code=1008, reason="unauthorized")
            return False
        if not self.origin_allowed(ws.headers):
            await ws.close(code=1008, reason="origin not allowed")
            return False
        await ws.accept()
        return True

    def authorized(self, headers: Any, query: Any = None) -> bool:
        token = self.settings.api_token
        if not token:
            return True
        given = headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else ""
        if not given and query is not None:
            given = query.get("token", "")  # browsers cannot set headers on a WebSocket
        return hmac.compare_digest(given.encode(), token.encode())


def create_app(engine: Engine | None = None, *, settings: ServerSettings | None = None,
               engine_settings: Settings | None = None) -> Starlette:
    """The ASGI app. Without ``engine`` its lifespan starts and owns one."""
    state = _State(settings or ServerSettings.load(), engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if state.engine is not None:
            yield
            return
        async with Engine(engine_settings) as owned:
            try:
                await owned.warm_up()
            except VoicesubError as exc:  # each request will say so itself
                logger.warning("the default model could not be loaded: %s", exc)
            state.engine = owned
            try:
                yield
            finally:
                state.engine = None

    _redact_server_logs()
    app = Starlette(
        routes=[
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/metrics", _metrics, methods=["GET"]),
            Route("/v1/status", _status, methods=["GET"]),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/v1/models/{model:path}", _model, methods=["GET"]),
            Route("/v1/audio/transcriptions", _transcriptions, methods=["POST"]),
            Route("/v1/audio/translations", _translations, methods=["POST"]),
            WebSocketRoute("/v1/stream", _stream),
            WebSocketRoute("/v1/realtime", realtime),
            *pages.routes(),
        ],
        lifespan=lifespan,
        middleware=[Middleware(_CountRequests, counters=state.counters), *(
            [Middleware(CORSMiddleware, allow_origins=list(state.settings.allowed_origins),
                        allow_methods=["GET", "POST"],
                        allow_headers=["authorization", "content-type"])]
            if state.settings.allowed_origins else [])],
    )
    app.state.voicesub = state
    return app


ENDPOINTS = ("/", "/dashboard", "/healthz", "/metrics", "/v1/status", "/v1/models",
             "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/languages",
             "/v1/subtitles", "/v1/dashboard/events")


class _CountRequests:
    """ASGI middleware: every HTTP request counted by endpoint and status (paths outside
    :data:`ENDPOINTS` count as ``other``, so a scanner cannot grow the label set)."""

    def __init__(self, app: ASGIApp, counters: _Counters) -> None:
        self.app, self.counters = app, counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = (path if path in ENDPOINTS else "/v1/models/{model}"
                    if path.startswith("/v1/models/") else "other")
        status = 500

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            self.counters.requests.labels(endpoint, str(status)).inc()


def _state(scope_owner: Request | WebSocket) -> _State:
    state: _State = scope_owner.app.state.voicesub
    return state


def _engine(state: _State) -> Engine:
    if state.engine is None:
        raise RuntimeError("the voicesub app is not running (no lifespan, no engine)")
    return state.engine


async def _healthz(request: Request) -> Response:
    """Up or not, for load balancers and probes: open to all, so it says nothing more."""
    up = _state(request).engine is not None
    return JSONResponse({"status": "ok" if up else "starting"}, status_code=200 if up else 503)


async def _status(request: Request) -> Response:
    """Sessions and loaded models: behind the token, like ``/metrics``."""
    state = _state(request)
    if not state.authorized(request.headers):
        return _error(401, "missing or wrong bearer token", "authentication_error")
    engine = state.engine
    return JSONResponse({
        "status": "ok" if engine is not None else "starting",
        "sessions": state.sessions.active,
        "max_sessions": state.settings.max_sessions,
        "models": (dataclasses.asdict(engine.registry.statistics()) if engine is not None
                   else None),
    })


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "voicesub"}


async def _models(request: Request) -> Response:
    """OpenAI's model list (clients and UIs ask for it first): the names served here, plus
    the OpenAI names that mean the default model."""
    state = _state(request)
    if not state.authorized(request.headers):
        return _error(401, "missing or wrong bearer token", "authentication_error")
    names = [*state.served_models(), *sorted(OPENAI_MODEL_ALIASES)]
    return JSONResponse({"object": "list", "data": [_model_card(n) for n in names]})


async def _model(request: Request) -> Response:
    state = _state(request)
    if not state.authorized(request.headers):
        return _error(401, "missing or wrong bearer token", "authentication_error")
    name = request.path_params["model"]
    if name not in (*state.served_models(), *OPENAI_MODEL_ALIASES):
        return _error(404, f"model {name[:64]!r} is not served here", param="model")
    return JSONResponse(_model_card(name))


async def _metrics(request: Request) -> Response:
    """Prometheus scrape endpoint (bearer token too, when one is set)."""
    state = _state(request)
    if not state.authorized(request.headers):
        return _error(401, "missing or wrong bearer token", "authentication_error")
    if state.engine is None:
        return _error(503, "starting", "server_error")
    body, content_type = render_metrics(state.engine, state.counters.registry)
    return Response(body, media_type=content_type)


# -- WebSocket live captions --------------------------------------------------------------

async def _stream(ws: WebSocket) -> None:
    state = _state(ws)
    if not await state.accept(ws):
        return
    if not state.sessions.try_acquire():
        await ws.close(code=1013, reason="too many sessions, try again later")
        return
    state.counters.sessions.labels("websocket").inc()
    try:
        await _serve_socket(ws, state)
    except WebSocketDisconnect:
        logger.info("websocket client went away")
    except _Protocol as exc:
        state.counters.errors.labels(f"close_{exc.code}").inc()
        await _close(ws, exc.code, str(exc))
    except OverloadedError as exc:
        state.counters.errors.labels(type(exc).__name__).inc()
        await _close(ws, 1013, f"{type(exc).__name__}: {exc}",
                     retry_after=max(exc.retry_after, state.settings.retry_after))
    except (VoicesubError, TimeoutError) as exc:
        state.counters.errors.labels(type(exc).__name__).inc()
        # A bad option the engine found is the client's; anything else is the server's.
        await _close(ws, 1007 if isinstance(exc, ConfigError) else 1011,
                     f"{type(exc).__name__}: {exc}")
    finally:
        state.sessions.release()


async def _close(ws: WebSocket, code: int, message: str, **extra: Any) -> None:
    if ws.application_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(Exception):
        await ws.send_json({"type": "error", "code": code, "message": message, **extra})
        await ws.close(code=code, reason=message.encode()[:123].decode(errors="ignore"))


async def _serve_socket(ws: WebSocket, state: _State) -> None:
    config = await _receive_config(ws, state)
    send, receive = anyio.create_memory_object_stream[bytes](64)

    async def frames() -> AsyncIterator[bytes]:
        async with receive:
            async for frame in receive:
                yield frame

    stream = _engine(state).transcribe_stream(
        frames(), sample_rate=config["sample_rate"], model=config["model"],
        language=config["language"], task=config["task"],
        live=LiveOptions(partials=config["partials"], policy=config["policy"],
                         accept_degraded=config["accept_degraded"]),
        translate_to=config["translate_to"],
    )
    ending, drops = _Ending(), _Drops(ws, stream)
    admitted, failure = False, None
    try:
        # The stream is entered first: admitted, or refused before any audio is read.
        async with stream, anyio.create_task_group() as tg:
            admitted = True
            await ws.send_json({"type": "admitted", "degraded": stream.degraded})
            tg.start_soon(_read_frames, ws, state.settings, config["sample_rate"], send, ending)
            tg.start_soon(drops.watch)
            async for seg in stream:
                await drops.report()
                await ws.send_json({"type": "final" if seg.is_final else "partial",
                                    **seg.to_dict()})
            await drops.report()
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One failure ends the session; report the first (the rest are its consequences).
        failure = group.exceptions[0]
    except Exception as exc:
        failure = exc
    finally:  # a refused stream never read its frames
        send.close()
        receive.close()
    if admitted:
        state.counters.audio.labels("websocket").inc(stream.statistics().audio_seconds)
    if admitted and not isinstance(failure, WebSocketDisconnect):
        # However the session ends, the client learns what it got before the close.
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "stats", **stream.statistics().to_dict()})
    if failure is not None:
        raise failure from failure.__cause__
    if ending.code != 1000:
        raise _Protocol(ending.code, ending.reason or "")
    await ws.close(code=1000, reason=ending.reason)


async def _receive_config(ws: WebSocket, state: _State) -> dict[str, Any]:
    """The socket's first message, checked: a config, within ``config_timeout``."""
    first = None
    with anyio.move_on_after(state.settings.config_timeout):
        first = await ws.receive()
    if first is None:
        raise _Protocol(1008, f"no config within {state.settings.config_timeout:g} s")
    config = _parse_config(first)
    try:
        config["model"] = state.model_for(config["model"])
    except ModelError as exc:
        raise _Protocol(1007, str(exc)) from None
    return config


class _Drops:
    """Tells the client of audio its stream's policy dropped, as it happens: before the
    next segment, and within half a second when none comes."""

    def __init__(self, ws: WebSocket, stream: SegmentStream) -> None:
        self.ws, self.stream, self.told = ws, stream, 0.0

    async def report(self) -> None:
        live = self.stream.statistics().live
        if live is not None and live.dropped_seconds > self.told:
            await self.ws.send_json({"type": "dropped",
                                     "seconds": round(live.dropped_seconds - self.told, 3),
                                     "total": live.dropped_seconds})
            self.told = live.dropped_seconds

    async def watch(self) -> None:
        while True:
            await anyio.sleep(0.5)
            await self.report()


class _Limits:
    """When a socket session must end however active it is: nothing sent for
    ``idle_timeout``, audio arriving slower than ``min_audio_rate`` once ``rate_grace`` has
    passed, or ``max_session_seconds`` after it began."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.started = anyio.current_time()
        self.audio = 0.0  # seconds received

    def next(self) -> tuple[float, str]:
        """The nearest deadline, and which limit it is, if no message comes before it."""
        settings = self.settings
        return min((anyio.current_time() + settings.idle_timeout, "idle"),
                   (self.started + settings.max_session_seconds, "length"),
                   (_rate_deadline(self.started, self.audio, settings.min_audio_rate,
                                   settings.rate_grace), "rate"))

    def ending(self, limit: str) -> tuple[int, str]:
        settings = self.settings
        if limit == "idle":
            return 1000, "idle timeout: finished what was sent"
        if limit == "length":
            return 1008, f"session reached its {settings.max_session_seconds:g} s limit"
        return 1008, (f"audio arrived too slowly: {self.audio:.1f} s of audio in "
                      f"{anyio.current_time() - self.started:.1f} s (at least "
                      f"{settings.min_audio_rate:g} s of audio per second)")


async def _read_frames(ws: WebSocket, settings: ServerSettings, sample_rate: int,
                       send: MemoryObjectSendStream[bytes], ending: _Ending) -> None:
    """Audio frames from the socket into ``send`` until ``{"type": "stop"}``, or until the
    client breaks the protocol or a :class:`_Limits` limit ends the session (``ending`` says
    which). Either way the audio received before is transcribed to the end, and its finals
    and ``stats`` sent, before the session closes."""
    limits = _Limits(settings)
    async with send:
        while True:
            deadline, limit = limits.next()
            with anyio.CancelScope(deadline=deadline) as waited:
                message = await ws.receive()
            if waited.cancelled_caught:
                ending.code, ending.reason = limits.ending(limit)
                logger.info("websocket session ends (%s): finishing what it sent",
                            ending.reason)
                return
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            data = message.get("bytes")
            if data is None:
                if not _is_stop(message):
                    ending.code = 1003
                    ending.reason = 'expected binary s16le audio frames or {"type": "stop"}'
                return
            if len(data) > settings.max_frame_bytes:
                ending.code, ending.reason = 1009, (
                    f"frame of {len(data)} bytes is over the {settings.max_frame_bytes}-byte "
                    "limit")
                return
            limits.audio += len(data) / (2 * sample_rate)
            try:
                await send.send(data)
            except anyio.BrokenResourceError:
                return  # the stream ended (it failed): its error is the session's


def _is_stop(message: MutableMapping[str, Any]) -> bool:
    try:
        control = json.loads(message.get("text") or "")
    except json.JSONDecodeError:
        return False
    return isinstance(control, dict) and control.get("type") == "stop"


def _is_language(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value.strip()))


_CONFIG: dict[str, tuple[Any, Callable[[Any], bool], str]] = {
    "model": (None, lambda v: v is None or isinstance(v, str), "model must be a string"),
    "language": (None, _is_language, "language must be a language code such as 'en'"),
    "task": ("transcribe", lambda v: v in ("transcribe", "translate"),
             "task must be 'transcribe' or 'translate'"),
    "sample_rate": (16_000, lambda v: isinstance(v, int) and 8_000 <= v <= 48_000,
                    "sample_rate must be an integer from 8000 to 48000"),
    "partials": (True, lambda v: isinstance(v, bool), "partials must be true or false"),
    "policy": ("auto", lambda v: v in get_args(BackpressurePolicy),
               f"policy must be one of {', '.join(get_args(BackpressurePolicy))}"),
    "accept_degraded": (False, lambda v: isinstance(v, bool),
                        "accept_degraded must be true or false"),
    "translate_to": (None, _is_language, "translate_to must be a language code such as 'pt'"),
}
"""The socket's config keys: default, check, and the message naming the field."""


def _parse_config(message: MutableMapping[str, Any]) -> dict[str, Any]:
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is None:
        raise _Protocol(1003, "the first message must be a JSON config (text frame)")
    try:
        raw = json.loads(message["text"])
    except json.JSONDecodeError as exc:
        raise _Protocol(1007, f"config is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise _Protocol(1007, "config must be a JSON object")
    if unknown := set(raw) - {"type", *_CONFIG}:
        raise _Protocol(1007, f"unknown config keys: {sorted(unknown)}")
    config = {key: raw.get(key, default) for key, (default, _, _) in _CONFIG.items()}
    for key, (_, valid, problem) in _CONFIG.items():
        if not valid(config[key]):
            raise _Protocol(1007, problem)
    try:
        config["language"] = language_code(config["language"])
    except ConfigError as exc:
        raise _Protocol(1007, str(exc)) from None
    return config


# -- OpenAI-compatible HTTP ---------------------------------------------------------------

def _error(status: int, message: str, kind: str = "invalid_request_error",
           headers: dict[str, str] | None = None, *, param: str | None = None) -> JSONResponse:
    """OpenAI's error body: clients show ``message`` and retry only 429 and 5xx answers."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": param,
                                   "code": None}}, status_code=status,
                        headers=headers)


async def _transcriptions(request: Request) -> Response:
    return await _audio(request, "transcribe")


async def _translations(request: Request) -> Response:
    return await _audio(request, "translate")


async def _audio(request: Request, task: str) -> Response:
    state = _state(request)
    settings = state.settings
    if (refused := _refused_unread(request, state)) is not None:
        return refused
    if not state.sessions.try_acquire():
        return _error(503, "too many concurrent sessions", "server_busy",
                      headers={"Retry-After": str(settings.retry_after)})
    release = True
    state.counters.sessions.labels("http").inc()
    body = _MeteredBody(request.receive, settings)
    request = Request(request.scope, body)
    try:
        upload = await _read_upload(request, settings)
        if isinstance(upload, Response):
            return upload
        data, fmt, options, granularities = upload
        options["task"] = task
        try:
            options["model"] = state.model_for(options["model"])
        except ModelError as exc:
            return _error(400, str(exc), "invalid_model", param="model")
        engine = _engine(state)
        if fmt.startswith("stream"):
            release = False  # the event stream releases the slot when it ends
            return StreamingResponse(_sse(engine, data, options, state,
                                          segments=fmt.endswith("segments")),
                                     media_type="text/event-stream")
        try:
            async with (_cancelled_on_disconnect(body) as gone,
                        engine.transcribe_stream(data, **options) as stream):
                segments = [seg async for seg in stream]
                duration = stream.source.duration
            state.counters.audio.labels("http").inc(stream.statistics().audio_seconds)
        except VoicesubError as exc:
            state.counters.errors.labels(type(exc).__name__).inc()
            return _failure(exc, settings)
        if gone.is_set():
            logger.info("client went away: its transcription was stopped")
            return Response(status_code=499)  # nobody reads it; the access log does
        return _format(segments, fmt, task, duration, granularities)
    finally:
        if release:
            state.sessions.release()


def _refused_unread(request: Request, state: _State) -> Response | None:
    """The answer to a request refused before a byte of its body is read, if it is."""
    if not state.authorized(request.headers):
        return _error(401, "missing or wrong bearer token", "authentication_error")
    if not state.origin_allowed(request.headers):
        return _error(403, "origin not allowed", "permission_error")
    length = request.headers.get("content-length")
    limit = state.settings.max_upload_bytes
    if length is not None and length.isdigit() and int(length) > limit:
        return _error(413, f"upload over the {limit}-byte limit")
    return None


@contextlib.asynccontextmanager
async def _cancelled_on_disconnect(receive: Receive) -> AsyncIterator[anyio.Event]:
    """Runs its body until the client disconnects (its body already read), so abandoned work
    stops at once and frees its session; the event yielded is set if it did."""
    gone = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone.set()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            yield gone
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the body's own error, as it raised it
        error = group.exceptions[0]
        raise error from error.__cause__


def _failure(exc: VoicesubError, settings: ServerSettings) -> JSONResponse:
    """The OpenAI-style error response for a failed transcription."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (SourceError, ConfigError)):
        return _error(400, message)
    if isinstance(exc, ModelError):
        return _error(400, message, "invalid_model")
    if isinstance(exc, OverloadedError):
        retry = max(round(exc.retry_after), settings.retry_after)
        return _error(503, message, "server_busy", headers={"Retry-After": str(retry)})
    return _error(500, message, "server_error")


async def _read_upload(request: Request, settings: ServerSettings,
                       ) -> Response | tuple[bytes, str, dict[str, Any], set[str]]:
    """The multipart form of an audio request: the file's bytes, the response format
    (``stream`` for server-sent events), the stream options and the timestamp
    granularities; or the 4xx response that names what is wrong."""
    try:
        form = await request.form(max_files=1, max_fields=32,
                                  max_part_size=settings.max_upload_bytes)
    except _UploadRefused as exc:
        return _error(exc.status, str(exc))
    except Exception as exc:
        return _error(400, f"could not read the multipart form: {exc}")
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _error(400, "the 'file' field (audio file) is required")
        data = await upload.read()
    finally:
        await form.close()  # spooled upload files are deleted now, not at GC
    fmt = str(form.get("response_format") or "json")
    if fmt not in ("json", "text", "srt", "vtt", "verbose_json"):
        return _error(400, f"unsupported response_format {fmt!r}", param="response_format")
    if str(form.get("stream") or "").lower() in ("true", "1"):
        # OpenAI streams text only; with verbose_json each delta also carries its segment.
        fmt = "stream+segments" if fmt == "verbose_json" else "stream"
    try:
        language = language_code(str(form.get("language") or "") or None)
    except ConfigError as exc:
        return _error(400, str(exc), param="language")
    options: dict[str, Any] = {
        "model": str(form.get("model") or "") or None,
        "language": language,
        "initial_prompt": str(form.get("prompt") or "") or None,
    }
    granularities = {str(g) for key in ("timestamp_granularities[]", "timestamp_granularities")
                     for g in form.getlist(key)}
    return data, fmt, options, granularities


def _format(segments: list[Segment], fmt: str, task: str, duration: float | None,
            granularities: set[str]) -> Response:
    text = " ".join(s.text for s in segments)
    if fmt == "text":
        return PlainTextResponse(text + "\n")
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(render_subtitles(segments, fmt),
                                 media_type="text/vtt" if fmt == "vtt" else "text/plain")
    if fmt == "json":
        return JSONResponse({"text": text})
    body: dict[str, Any] = {
        "task": task,
        "language": segments[0].language if segments else None,
        "duration": duration,
        "text": text,
    }
    if not granularities or "segment" in granularities:
        body["segments"] = [
            {"id": s.index, "seek": 0, "start": s.start, "end": s.end, "text": s.text,
             "tokens": [], "temperature": 0.0, "avg_logprob": s.avg_logprob,
             "compression_ratio": 0.0, "no_speech_prob": s.no_speech_prob}
            for s in segments
        ]
    if "word" in granularities:
        body["words"] = [{"word": w.text.strip(), "start": w.start, "end": w.end}
                         for s in segments for w in s.words]
    return JSONResponse(body)


async def _sse(engine: Engine, data: bytes, options: dict[str, Any], state: _State, *,
               segments: bool = False) -> AsyncIterator[str]:
    try:
        texts = []
        async with engine.transcribe_stream(data, **options) as stream:
            async for seg in stream:
                texts.append(seg.text)
                delta: dict[str, Any] = {"type": "transcript.text.delta",
                                         "delta": (" " if len(texts) > 1 else "") + seg.text}
                if segments:
                    delta["segment"] = seg.to_dict()
                yield f"data: {json.dumps(delta)}\n\n"
        done = {"type": "transcript.text.done", "text": " ".join(texts)}
        yield f"data: {json.dumps(done)}\n\n"
    except VoicesubError as exc:
        yield f"data: {json.dumps({'type': 'error', 'message': str(exc)})}\n\n"
    finally:
        state.sessions.release()
