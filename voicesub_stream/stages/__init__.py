"""Pipeline stages, in data-flow order: VAD chunking, then transcription."""

from ._transcriber import Transcriber, WhisperRunner, split_cues
from ._vad import SpeechWindow, VadChunker

__all__ = ("SpeechWindow", "Transcriber", "VadChunker", "WhisperRunner", "split_cues")
