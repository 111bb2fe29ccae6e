"""Embedding voicesub_stream in your own FastAPI app.

The app's lifespan owns one Engine; the voicesub ASGI app is mounted under /asr and shares
it, and your own routes can use the same engine directly.

    pip install 'voicesub-stream[server,bundled]' fastapi
    uvicorn examples.fastapi_app:app --port 8000
    curl -F file=@voicesub_stream/data/welcome.flac -F response_format=srt \\
        http://127.0.0.1:8000/asr/v1/audio/transcriptions
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator  # noqa: TC003

from fastapi import FastAPI, UploadFile

from voicesub_stream import Engine, Settings
from voicesub_stream.server import create_app

engine = Engine(Settings.load(model="tiny.en"))


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine:
        # Load the model and time one live update before the first client: its stream then
        # starts at once, and a refusal when full is answered at once.
        await engine.warm_up()
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/asr", create_app(engine))


@app.post("/captions")
async def captions(file: UploadFile) -> dict[str, object]:
    """A route of your own, on the same engine: segments as JSON."""
    data = await file.read()
    async with engine.transcribe_stream(data) as stream:
        return {"segments": [seg.to_dict() async for seg in stream]}
