"""Pipeline stages, in data-flow order; each is ``run(receive, send)`` plus ``statistics()``.

source (``_source``) -> cache replay (``_cache``) or VAD chunking (``_vad``) -> file
transcription (``_transcriber``) or live transcription (``_live``, sharing model calls across
streams through ``_batcher``) -> cache record (``_cache``) -> translation (``_translate``).
"""

from ._base import SEGMENT_BUFFER, Stage, receive_waiting, take_waiting
from ._batcher import BatchingStatistics, StreamBatcher
from ._cache import CacheRecord, CacheReplay, CacheStageStatistics
from ._live import LiveStatistics, LiveTranscriber
from ._pace import ECONOMICAL, Pace, PaceController, paces
from ._source import SourceReader, SourceStatistics
from ._transcriber import Transcriber, TranscriberStatistics
from ._translate import TranslationStage, TranslationStatistics
from ._vad import SpeechWindow, VadChunker, VadStatistics

__all__ = (
    "ECONOMICAL",
    "SEGMENT_BUFFER",
    "BatchingStatistics",
    "CacheRecord",
    "CacheReplay",
    "CacheStageStatistics",
    "LiveStatistics",
    "LiveTranscriber",
    "Pace",
    "PaceController",
    "SourceReader",
    "SourceStatistics",
    "SpeechWindow",
    "Stage",
    "StreamBatcher",
    "Transcriber",
    "TranscriberStatistics",
    "TranslationStage",
    "TranslationStatistics",
    "VadChunker",
    "VadStatistics",
    "paces",
    "receive_waiting",
    "take_waiting",
)
