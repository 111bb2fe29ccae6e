"""The browser side of the server: the caption page at ``/``, the monitoring dashboard at
``/dashboard``, and the small JSON endpoints they use.

The pages are plain HTML and ES modules shipped in the package (``static/``): no build step
and nothing fetched from elsewhere, so they work on a machine with no network. Everything
they show comes from endpoints behind the server's bearer token; the pages themselves hold
no data and are open, so a browser can load them and then ask for the token.
"""

from __future__ import annotations

import dataclasses
import json
import math
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .._config import WHISPER_LANGUAGES
from .._types import Segment
from ..errors import ConfigError
from ..subtitles import PROFILES, get_profile, render_subtitles

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

    from .._engine import Engine
    from ..monitoring import Monitor, Sample
    from ..monitoring._sampler import SampleHistory
    from ._app import _State

HISTORY = 300
"""Samples a dashboard gets when it connects, so its charts start full (5 min at 1 s)."""
REPORT_EVERY = 5
"""Samples between two sends of the report's recommendations (they change slowly)."""
STATIC = files("voicesub_stream.server") / "static"
COMMON_LANGUAGES = ("en", "es", "fr", "de", "pt", "it", "nl", "pl", "ru", "uk", "tr", "ar",
                    "hi", "zh", "ja", "ko", "vi", "id", "sv", "el")
"""The languages the caption page offers first; any Whisper language may be typed."""
SUBTITLE_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


def routes() -> list[Route | Mount]:
    return [
        Route("/", _page("index.html"), methods=["GET"]),
        Route("/dashboard", _page("dashboard.html"), methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("voicesub_stream.server", "static")]),
              name="static"),
        Route("/v1/languages", _languages, methods=["GET"]),
        Route("/v1/subtitles", _subtitles, methods=["POST"]),
        Route("/v1/dashboard/events", _dashboard_events, methods=["GET"]),
    ]


def _page(name: str) -> Any:
    html = (STATIC / name).read_text(encoding="utf-8")

    async def page(request: Request) -> Response:
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    return page


def _state(request: Request) -> _State:
    state: _State = request.app.state.voicesub
    return state


def _unauthorized() -> JSONResponse:
    return JSONResponse({"error": {"message": "a bearer token is required",
                                   "type": "invalid_request_error", "param": None,
                                   "code": "unauthorized"}}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


async def _languages(request: Request) -> Response:
    """What the caption page offers: spoken languages, translation targets, profiles."""
    state = _state(request)
    if not state.authorized(request.headers):
        return _unauthorized()
    engine = state.engine
    targets: list[str] = []
    if engine is not None:
        translators = engine.translators
        targets = [code for code in COMMON_LANGUAGES
                   if any(translators.get(n).reaches(code) for n in translators.names)]
    return JSONResponse({
        "spoken": [*COMMON_LANGUAGES,
                   *sorted(WHISPER_LANGUAGES.difference(COMMON_LANGUAGES))],
        "translate_to": targets,
        "profiles": list(PROFILES),
        "models": state.served_models(),
    })


async def _subtitles(request: Request) -> Response:
    """Render segments (the caption page's finals) as an SRT or WebVTT file.

    Body: ``{"format": "srt" | "vtt", "segments": [...], "profile": "netflix"}``, segments
    as the WebSocket sends them. The file follows the profile like every file the engine
    writes.
    """
    state = _state(request)
    if not state.authorized(request.headers):
        return _unauthorized()
    try:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
    except ValueError as exc:
        return _bad(f"the body is not a JSON object: {exc}", None)
    fmt = body.get("format", "srt")
    if fmt not in SUBTITLE_TYPES:
        return _bad("format must be srt or vtt", "format")
    try:
        profile = get_profile(str(body.get("profile", "netflix")))
    except ConfigError as exc:
        return _bad(str(exc), "profile")
    raw = body.get("segments")
    if not isinstance(raw, list):
        return _bad("segments must be a list of segments", "segments")
    try:
        segments = [Segment.from_dict({"index": i, **s}) for i, s in enumerate(raw)]
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        return _bad(f"segments must be segments as the stream sends them: {exc!r}",
                    "segments")
    segments = [s for s in segments if s.is_final]
    text = render_subtitles(segments, fmt, profile=profile,
                            language=body.get("translate_to") or None)
    return PlainTextResponse(text, media_type=SUBTITLE_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="captions.{fmt}"'})


def _bad(message: str, param: str | None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                   "param": param, "code": None}}, status_code=400)


async def _dashboard_events(request: Request) -> Response:
    """Server-sent events for the dashboard, fed by the engine's monitor as it samples.

    ``hello`` first (the last :data:`HISTORY` samples and recent alerts), then one
    ``sample`` event per sample with the engine's state at that moment, and an ``alert``
    event whenever an alert fires or clears. The token may come as ``?token=``, since a
    browser's EventSource cannot send headers.
    """
    state = _state(request)
    if not state.authorized(request.headers, request.query_params):
        return _unauthorized()
    engine = state.engine
    monitor = engine.monitor if engine is not None else None
    if engine is None or monitor is None:
        return JSONResponse({"error": {"message": "this engine runs without its monitor "
                                       "(VOICESUB_ENABLE_PERFORMANCE_MONITORING=false)",
                                       "type": "server_error", "param": None, "code": None}},
                            status_code=503)
    return StreamingResponse(_events(engine, monitor), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _events(engine: Engine, monitor: Monitor) -> AsyncIterator[str]:
    samples, alerts = monitor.subscribe_samples(), monitor.subscribe()
    with samples, alerts:
        yield _event("hello", {
            "interval": monitor.interval,
            "samples": _history(monitor.history),
            "alerts": [dataclasses.asdict(a) for a in monitor.alerts.history[-20:]],
            "firing": monitor.alerts.firing,
        })
        n = 0
        async for sample in samples:
            while True:  # alerts are evaluated before their sample is sent
                try:
                    alert = alerts.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                yield _event("alert", dataclasses.asdict(alert))
            yield _event("sample", _snapshot(engine, monitor, sample,
                                             report=n % REPORT_EVERY == 0))
            n += 1


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


CHARTED = ("time", "process_cpu", "system_cpu", "rss", "memory_percent", "disk_read_rate",
           "disk_write_rate", "net_sent_rate", "net_recv_rate", "loop_lag",
           "gpu_memory_percent")
"""What the dashboard's charts draw from each sample."""


def _point(sample: Sample) -> dict[str, Any]:
    return {name: getattr(sample, name) for name in CHARTED}


def _history(history: SampleHistory) -> list[dict[str, Any]]:
    columns = [history.column(name)[-HISTORY:].tolist() for name in CHARTED]
    return [{name: None if math.isnan(v) else v for name, v in zip(CHARTED, row, strict=True)}
            for row in zip(*columns, strict=True)]


def _snapshot(engine: Engine, monitor: Monitor, sample: Sample, *,
              report: bool) -> dict[str, Any]:
    stats = engine.statistics()
    timings = {name: {"count": t.count, "p50": t.p50, "p95": t.p95}
               for name, t in sorted(monitor.timings.snapshot().items()) if t.count}
    streams = [{"language": s.language, "audio_seconds": s.audio_seconds,
                "live": s.live is not None,
                "final_p50": s.live.final_latency_p50 if s.live else None,
                "final_p95": s.live.final_latency_p95 if s.live else None,
                "pace": s.live.pace if s.live else None,
                "degraded": s.live.degraded if s.live else False}
               for s in engine.running_streams()]
    body: dict[str, Any] = {
        "point": _point(sample),
        "scheduler": dataclasses.asdict(stats.scheduler),
        "cache": {"hit_ratio": stats.cache.hit_ratio if stats.cache else None,
                  "hits": stats.cache.hits if stats.cache else 0,
                  "misses": stats.cache.misses if stats.cache else 0},
        "admission": dataclasses.asdict(stats.admission),
        "models": [m.name for m in stats.models.loaded] if stats.models else [],
        "timings": timings,
        "streams": streams,
        "firing": monitor.alerts.firing,
    }
    if report:
        body["recommendations"] = engine.performance_report()["recommendations"]
    return body
