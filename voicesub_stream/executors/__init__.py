"""Where model calls run when not in this process's threads (the default): worker processes
(``VOICESUB_EXECUTOR=processes``), for a model crash isolated from the server, or the actors
of a Ray cluster (``VOICESUB_EXECUTOR=ray``), for more than one machine. Either gives the
stages a runner with :class:`~voicesub_stream.models.WhisperRunner`'s interface."""

from ._processes import DEADLINE, DEADLINE_PER_AUDIO, ProcessPool, ProcessRunner
from ._ray import ClusterStatistics, RayPool, RayRunner

__all__ = ("DEADLINE", "DEADLINE_PER_AUDIO", "ClusterStatistics", "ProcessPool",
           "ProcessRunner", "RayPool", "RayRunner")
