"""A Ray cluster that gains and loses a node: the engine's actor pool, calls at once and live
capacity follow it. The nodes are real raylets on this machine (``ray.cluster_utils``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from voicesub_stream import Settings

from .conftest import hosted_engine
from .helpers import until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from voicesub_stream import Engine

pytestmark = [pytest.mark.speech]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray.init(address=nodes.address, log_to_driver=False, configure_logging=False)
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine_on_nodes(cluster: Any, settings: Settings) -> AsyncIterator[Engine]:
    ray_settings = Settings.load(**{**settings.model_dump(), "executor": "ray"})
    async for engine in hosted_engine(ray_settings):
        yield engine


async def sized(engine: Engine, actors: int) -> None:
    """Wait for the engine's look at the cluster (every few seconds) to find ``actors``: the
    pool resizes in a worker thread, and the engine fits itself to it on the event loop just
    after, so both must have happened."""
    def found() -> bool:
        stats = engine.statistics().cluster
        assert stats is not None
        return stats.actors == actors and engine.execution.concurrent_calls == actors

    await until(found)


async def test_the_pool_grows_and_shrinks_with_the_cluster(
        engine_on_nodes: Engine, cluster: Any, espeak_wav: Path) -> None:
    engine = engine_on_nodes
    assert engine.scheduler.workers == 1
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    await sized(engine, 2)
    assert engine.scheduler.workers == 2
    assert engine.admission.cores == 2
    assert engine.execution.reason.startswith("Ray: 2 actors")
    texts = [s.text async for s in engine.transcribe_stream(espeak_wav)]
    assert texts
    cluster.remove_node(node)
    await sized(engine, 1)
    assert engine.scheduler.workers == 1
    assert engine.admission.cores == 1
    # What is left still answers, with the same words.
    assert [s.text async for s in engine.transcribe_stream(espeak_wav)] == texts
