"""Transcribe a file and print each final segment as it arrives.

    python examples/transcribe_file.py voicesub_stream/data/welcome.flac --model tiny.en
"""

from __future__ import annotations

import argparse

import anyio

from voicesub_stream import transcribe_stream


async def main(path: str, model: str | None) -> None:
    async with transcribe_stream(path, model=model) as segments:
        async for seg in segments:
            print(f"{seg.start:7.2f} {seg.end:7.2f} [{seg.language}] {seg.text}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--model", default=None, help="tiny.en, base (default), ...")
    args = parser.parse_args()
    anyio.run(main, args.path, args.model)
