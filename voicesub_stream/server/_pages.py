"""The browser side of the server: the caption page at ``/``, the monitoring dashboard at
``/dashboard``, and the small JSON endpoints they use.

The pages are plain HTML and ES modules shipped in the package (``static/``): no build step
and nothing fetched from elsewhere, so they work on a machine with no network. Everything
they show comes from endpoints behind the server's bearer token; the pages themselves hold
no data and are open, so a browser can load them and then ask for the token.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .._config import WHISPER_LANGUAGES
from .._types import Segment
from ..errors import ConfigError
from ..subtitles import PROFILES, get_profile, render_subtitles

if TYPE_CHECKING:
    from starlette.requests import Request

    from ._app import _State

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
