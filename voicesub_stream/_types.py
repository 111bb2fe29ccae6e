"""Values that flow through the pipeline: frozen, slotted, cheap to pass between tasks."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SAMPLE_RATE = 16_000
"""Whisper's input rate; every source is resampled to it."""


@dataclass(frozen=True, slots=True, eq=False)
class AudioChunk:
    """A run of mono float32 samples at :data:`SAMPLE_RATE`, placed on the stream's clock.

    :param samples: one-dimensional float32 array in [-1, 1]
    :param start: stream time of the first sample, in seconds
    """

    samples: npt.NDArray[np.float32]
    start: float

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its time span in stream seconds."""

    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One subtitle-sized piece of transcript.

    Times are in seconds on the stream's clock (0 = first sample of the source), so segments
    from a live stream and from a file of the same audio line up.
    """

    index: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    language: str | None = None
    language_probability: float | None = None
    is_final: bool = True
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    translation: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        """Inverse of :meth:`to_dict` (used to restore cached transcriptions)."""
        return cls(
            data["index"], data["start"], data["end"], data["text"],
            tuple(Word(w["start"], w["end"], w["text"], w["probability"])
                  for w in data.get("words", ())),
            language=data.get("language"),
            language_probability=data.get("language_probability"),
            is_final=data.get("is_final", True),
            avg_logprob=data.get("avg_logprob", 0.0),
            no_speech_prob=data.get("no_speech_prob", 0.0),
            translation=data.get("translation"),
            metadata=dict(data.get("metadata", {})),
        )

    def to_dict(self, *, exact: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (JSON subtitles, the server). Times are rounded to the
        millisecond unless ``exact`` (used by the cache, which must give back what it got)."""

        def r(x: float, digits: int = 3) -> float:
            return x if exact else round(x, digits)

        return {
            "index": self.index,
            "start": r(self.start),
            "end": r(self.end),
            "text": self.text,
            "words": [
                {"start": r(w.start), "end": r(w.end), "text": w.text,
                 "probability": r(w.probability, 4)}
                for w in self.words
            ],
            "language": self.language,
            "language_probability": self.language_probability,
            "is_final": self.is_final,
            "avg_logprob": self.avg_logprob,
            "no_speech_prob": self.no_speech_prob,
            "translation": self.translation,
            **({"metadata": self.metadata} if self.metadata else {}),
        }


@dataclass(frozen=True, slots=True, eq=False)
class SpeechWindow:
    """Speech regions cut from the stream and joined end to end, ready for one model call.

    :param audio: the regions' samples, concatenated
    :param regions: (start, end) sample positions of each region on the stream clock
    """

    index: int
    audio: npt.NDArray[np.float32]
    regions: tuple[tuple[int, int], ...]

    @property
    def start(self) -> float:
        return self.regions[0][0] / SAMPLE_RATE

    @property
    def end(self) -> float:
        return self.regions[-1][1] / SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def stream_time(self, t: float, *, is_end: bool = False) -> float:
        """Map a time inside :attr:`audio` back to the stream clock, skipping removed silence."""
        offsets = self._offsets()
        sample = round(t * SAMPLE_RATE)
        find = bisect.bisect_left if is_end else bisect.bisect_right
        i = min(max(find(offsets, sample) - 1, 0), len(self.regions) - 1)
        start, end = self.regions[i]
        return min(start + sample - offsets[i], end) / SAMPLE_RATE

    def _offsets(self) -> list[int]:
        out, total = [], 0
        for start, end in self.regions:
            out.append(total)
            total += end - start
        return out
