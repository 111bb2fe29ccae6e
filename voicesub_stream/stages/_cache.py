"""Cache stages: a finished transcription replayed, or one being made recorded.

A file stream whose audio and output-changing options were transcribed before is answered
by :class:`CacheReplay` alone (no model, no decoding). Otherwise :class:`CacheRecord` sits
after transcription, passes every segment on and, once the whole pipeline has finished
without an error, stores them: a partial transcript is never cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .._types import Segment
from ._base import SEGMENT_BUFFER, Stage

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ..cache import Cache

__all__ = ("CacheRecord", "CacheReplay", "CacheStageStatistics")



@dataclass(frozen=True, slots=True)
class CacheStageStatistics:
    result: Literal["hit", "miss"]
    segments: int


class CacheReplay(Stage[None, Segment, CacheStageStatistics]):
    """Stage: nothing in, the cached transcription's segments out."""

    input_buffer = 0

    def __init__(self, stored: dict[str, list[dict[str, object]]]) -> None:
        self.segments = [Segment.from_dict(data) for data in stored["segments"]]
        self._sent = 0

    def statistics(self) -> CacheStageStatistics:
        return CacheStageStatistics("hit", self._sent)

    async def run(self, receive: MemoryObjectReceiveStream[None],
                  send: MemoryObjectSendStream[Segment]) -> None:
        async with receive, send:
            for segment in self.segments:
                await send.send(segment)
                self._sent += 1


class CacheRecord(Stage[Segment, Segment, CacheStageStatistics]):
    """Stage: segments in and out unchanged; all of them stored under ``key`` at the end."""

    input_buffer = SEGMENT_BUFFER

    def __init__(self, cache: Cache, key: str) -> None:
        self.cache, self.key = cache, key
        self._kept: list[Segment] = []

    def statistics(self) -> CacheStageStatistics:
        return CacheStageStatistics("miss", len(self._kept))

    async def run(self, receive: MemoryObjectReceiveStream[Segment],
                  send: MemoryObjectSendStream[Segment]) -> None:
        async with receive, send:
            async for segment in receive:
                await send.send(segment)
                self._kept.append(segment)

    async def completed(self) -> None:
        await self.cache.set(self.key, {"segments": [s.to_dict(exact=True) for s in self._kept]})
