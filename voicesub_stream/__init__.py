"""voicesub_stream: speech to subtitles as the audio arrives, on faster-whisper and anyio."""

from ._config import LiveOptions as LiveOptions
from ._config import Settings as Settings
from ._config import TranscribeOptions as TranscribeOptions
from ._config import VadOptions as VadOptions
from ._engine import Engine as Engine
from ._engine import EngineStatistics as EngineStatistics
from ._engine import FileResult as FileResult
from ._engine import default_engine as default_engine
from ._engine import transcribe as transcribe
from ._engine import transcribe_stream as transcribe_stream
from ._pipeline import StreamStatistics as StreamStatistics
from ._stream import SegmentStream as SegmentStream
from ._types import AudioChunk as AudioChunk
from ._types import Segment as Segment
from ._types import Word as Word
from ._version import __version__ as __version__
from .sources import AudioSource as AudioSource
from .sources import PacedSource as PacedSource
from .sources import microphone as microphone
from .sources import open_source as open_source
from .sources import paced as paced

__all__ = (
    "AudioChunk",
    "AudioSource",
    "Engine",
    "EngineStatistics",
    "FileResult",
    "LiveOptions",
    "PacedSource",
    "Segment",
    "SegmentStream",
    "Settings",
    "StreamStatistics",
    "TranscribeOptions",
    "VadOptions",
    "Word",
    "default_engine",
    "microphone",
    "open_source",
    "paced",
    "transcribe",
    "transcribe_stream",
)
