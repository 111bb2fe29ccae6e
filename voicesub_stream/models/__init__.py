"""Models: resolution (bundled packages, local dirs, the Hub), the loaded-model registry, and
faster-whisper itself (``_whisper``: runners, batches, Silero VAD)."""

from ._gpu import GpuInfo, cuda_device_count, gpu_info
from ._registry import (
    ExecutionPlan,
    LoadedModel,
    LoadedModelStatistics,
    ModelKey,
    ModelRegistry,
    RegistryStatistics,
    execution_plan,
)
from ._resolve import resolve_model
from ._whisper import (
    VAD_FRAME,
    Runner,
    SpeechDetector,
    WhisperBatch,
    WhisperRunner,
    WindowText,
    fitting_window,
    live_update_seconds,
    load_vad,
    speech_regions,
    speech_timestamps,
)

__all__ = (
    "VAD_FRAME",
    "ExecutionPlan",
    "GpuInfo",
    "LoadedModel",
    "LoadedModelStatistics",
    "ModelKey",
    "ModelRegistry",
    "RegistryStatistics",
    "Runner",
    "SpeechDetector",
    "WhisperBatch",
    "WhisperRunner",
    "WindowText",
    "cuda_device_count",
    "execution_plan",
    "fitting_window",
    "gpu_info",
    "live_update_seconds",
    "load_vad",
    "resolve_model",
    "speech_regions",
    "speech_timestamps",
)
