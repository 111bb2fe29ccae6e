"""What every stage is: ``run(receive, send)`` between two channels, and ``statistics()``.

A stage starts with ``async with receive, send:`` so that when it ends, for whatever reason,
the stage after it sees the end of its input and the stage before it a broken pipe. The
pipeline (``voicesub_stream._pipeline``) makes the channels and runs the stages; nothing
reads a stage's attributes from outside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ("SEGMENT_BUFFER", "Stage", "even_share", "receive_waiting", "take_waiting")

SEGMENT_BUFFER = 32
"""Finished segments a stage after transcription (or the consumer) may have waiting before
transcription pauses."""

T = TypeVar("T")
In = TypeVar("In")
Out = TypeVar("Out")
Stats = TypeVar("Stats", covariant=True)


class Stage(ABC, Generic[In, Out, Stats]):
    """One step of a stream's pipeline."""

    input_buffer: int = 8
    """Items the channel into this stage holds: how far the stage before may run ahead."""

    @abstractmethod
    async def run(self, receive: MemoryObjectReceiveStream[In],
                  send: MemoryObjectSendStream[Out]) -> None:
        """Turn what arrives on ``receive`` into what goes to ``send``, until either closes."""

    @abstractmethod
    def statistics(self) -> Stats:
        """This stage's figures so far (a frozen dataclass)."""

    async def completed(self) -> None:
        """Called once, after every stage of the pipeline finished without an error."""


async def receive_waiting(receive: MemoryObjectReceiveStream[T],
                          limit: int | None = None) -> tuple[list[T], bool]:
    """Wait for one item, then take whatever else is already waiting (at most ``limit``).

    Returns the items and whether the channel has ended. Never waits for a second item: a
    lone item goes on at once, and a backlog is taken in one go.
    """
    try:
        first = await receive.receive()
    except anyio.EndOfStream:
        return [], True
    rest, eof = take_waiting(receive, None if limit is None else limit - 1)
    return [first, *rest], eof


def take_waiting(receive: MemoryObjectReceiveStream[T],
                 limit: int | None = None) -> tuple[list[T], bool]:
    """Whatever items are already waiting (at most ``limit``), without waiting; and whether
    the channel has ended."""
    items: list[T] = []
    while limit is None or len(items) < limit:
        try:
            items.append(receive.receive_nowait())
        except anyio.WouldBlock:
            break
        except anyio.EndOfStream:
            return items, True
    return items, False


def even_share(items: int, calls: int, *, most: int) -> int:
    """How many of ``items`` waiting for the model one call takes when ``calls`` calls may
    take them at once: an even share (rounded up, at least one, at most ``most``), so that no
    call works through a long batch while another could have taken part of it."""
    return max(1, min(most, -(-items // max(calls, 1))))
