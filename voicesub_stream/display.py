"""A terminal view of live captions (rich): finals in normal text, the partial dimmed."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

if TYPE_CHECKING:
    from ._pipeline import StreamStatistics
    from ._types import Segment
    from .sources import PacedSource

__all__ = ("LiveCaptionView",)


class LiveCaptionView:
    """Holds the last few finals and the current partial; render with ``rich.live.Live``.

    ::

        view = LiveCaptionView(source)
        with Live(view, refresh_per_second=10):
            async for seg in stream:
                view.update(seg, stream.statistics())
    """

    def __init__(self, source: PacedSource | None = None, *, lines: int = 8) -> None:
        self.source = source
        self.finals: deque[Segment] = deque(maxlen=lines)
        self.partial: Segment | None = None
        self.latency: float | None = None
        self.stats: StreamStatistics | None = None

    def update(self, segment: Segment, stats: StreamStatistics | None = None) -> None:
        if segment.is_final:
            self.finals.append(segment)
            self.partial = None
        else:
            self.partial = segment
        if self.source is not None:
            fed = self.source.fed_at(segment.end)
            if fed is not None:
                self.latency = (time.monotonic() - fed) * self.source.speed
        self.stats = stats or self.stats

    def __rich__(self) -> Group:
        rows: list[Text] = []
        for s in self.finals:
            rows.append(Text(f"{s.start:7.1f}  {s.text}"))
            if s.translation is not None:
                rows.append(Text(f"{'':7}  {s.translation}", style="italic cyan"))
        if self.partial is not None:
            rows.append(Text(f"{self.partial.start:7.1f}  {self.partial.text}", style="dim"))
        status = []
        if self.latency is not None:
            status.append(f"latency {self.latency:.2f} s")
        if self.stats is not None:
            status.append(f"audio {self.stats.audio_seconds:.1f} s")
            if self.stats.live is not None and self.stats.live.dropped_seconds:
                status.append(f"dropped {self.stats.live.dropped_seconds:.1f} s")
            if self.stats.language:
                status.append(f"language {self.stats.language}")
        rows.append(Text(" · ".join(status), style="cyan"))
        return Group(*rows)
