"""Model resolution (bundled packages, local dirs, the Hub) and the loaded-model registry."""

from ._gpu import GpuInfo, cuda_device_count, gpu_info
from ._registry import LoadedModel, ModelKey, ModelRegistry
from ._resolve import resolve_model

__all__ = (
    "GpuInfo",
    "LoadedModel",
    "ModelKey",
    "ModelRegistry",
    "cuda_device_count",
    "gpu_info",
    "resolve_model",
)
