"""Live subtitles in the terminal: from the microphone, or a file played at real-time pace.

    python examples/live_subtitles.py                       # microphone (extra "mic")
    python examples/live_subtitles.py --file talk.wav -o talk.vtt

Finals appear in normal text as they settle, the current partial dimmed below them, with the
latency of the newest caption. ``--translate-to`` arrives with the translation stage.
"""

from __future__ import annotations

import argparse
from contextlib import AsyncExitStack

import anyio
from rich.live import Live

from voicesub_stream import LiveOptions, microphone, paced, transcribe_stream
from voicesub_stream.display import LiveCaptionView
from voicesub_stream.subtitles import LiveSubtitleWriter


async def main(args: argparse.Namespace) -> None:
    source = paced(args.file, speed=args.speed) if args.file else microphone()
    view = LiveCaptionView(source if args.file else None)
    options = LiveOptions(policy=args.policy)
    async with AsyncExitStack() as stack:
        stream = await stack.enter_async_context(
            transcribe_stream(source, model=args.model, live=options,
                              translate_to=args.translate_to))
        writer = (await stack.enter_async_context(LiveSubtitleWriter(args.output))
                  if args.output else None)
        with Live(view, refresh_per_second=10):
            async for seg in stream:
                view.update(seg, stream.statistics())
                if writer is not None:
                    await writer.write(seg)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", help="play this file at real-time pace instead of the mic")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--policy", default="auto",
                        choices=["auto", "adaptive", "block", "drop-oldest", "skip-partials"])
    parser.add_argument("-o", "--output", help="also write finals to this .srt/.vtt file")
    parser.add_argument("--translate-to", help="translate finals into this language, e.g. pt")
    anyio.run(main, parser.parse_args())
