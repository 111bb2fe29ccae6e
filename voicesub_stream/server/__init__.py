"""ASGI app (Starlette, extra ``server``): live captions over WebSocket, OpenAI-style HTTP API."""

from ._app import ServerSettings, create_app

__all__ = ("ServerSettings", "create_app")
