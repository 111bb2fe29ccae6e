"""Transcribe several files concurrently through one Engine, writing an SRT beside each.

One Engine owns the models and every stream's tasks; its scheduler admits as many model calls
at once as the machine runs well, while decoding and VAD of the other files go on beside them.

    python examples/many_files.py talk1.mp3 talk2.flac
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from voicesub_stream import Engine, Settings
from voicesub_stream.subtitles import awrite_subtitles


async def one(engine: Engine, path: Path) -> None:
    async with engine.transcribe_stream(path, priority="batch") as stream:
        segments = [seg async for seg in stream]
    await awrite_subtitles(segments, path.with_suffix(".srt"))
    print(f"{path}: {len(segments)} cues, language {stream.statistics().language}")


async def main(paths: list[Path]) -> None:
    async with Engine(Settings.load(model="tiny.en")) as engine, anyio.create_task_group() as tg:
        for path in paths:
            tg.start_soon(one, engine, path)


if __name__ == "__main__":
    anyio.run(main, [Path(p) for p in sys.argv[1:]])
