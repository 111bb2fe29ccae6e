"""ASGI app (Starlette, extra ``server``): live captions over WebSocket, OpenAI-style HTTP API."""

from ._app import ServerSettings, create_app
from ._metrics import render_metrics

__all__ = ("ServerSettings", "create_app", "render_metrics")
