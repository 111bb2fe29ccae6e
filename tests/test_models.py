"""Model resolution and the LRU registry, on the real bundled models."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from voicesub_stream import Settings
from voicesub_stream._config import cpu_count
from voicesub_stream.errors import ConfigError, ModelLoadError, ModelNotFoundError
from voicesub_stream.models import ModelKey, ModelRegistry, _gpu, gpu_info, resolve_model
from voicesub_stream.models._registry import pick_compute_type, pick_device
from voicesub_stream.models._resolve import bundled_base

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

pytestmark = pytest.mark.speech


def registry(tmp_path: Path, **kw: object) -> ModelRegistry:
    return ModelRegistry(Settings.load(device="cpu", offline=True, cache_dir=tmp_path,
                                       **kw).models())


def test_concurrent_first_requests_load_the_model_once(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    key = reg.key_for("tiny.en")
    barrier = threading.Barrier(4)

    def get() -> object:
        barrier.wait()
        return reg.get(key)

    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: get(), range(4)))
    assert reg.loads == 1
    assert all(m is models[0] for m in models)


def test_a_process_that_loads_a_model_keeps_numpy_blas_on_one_thread(tmp_path: Path) -> None:
    # Spinning BLAS threads beside CTranslate2's took a core from the model calls.
    import os

    from threadpoolctl import threadpool_info

    from voicesub_stream.models._whisper import BLAS_THREADS_ENV

    registry(tmp_path).get(ModelKey("tiny.en", "cpu", "int8"))
    if any(v in os.environ for v in BLAS_THREADS_ENV):
        pytest.skip("the environment sets BLAS threads itself")
    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert pools
    assert all(p["num_threads"] == 1 for p in pools)


def test_a_timed_live_update_costs_more_than_its_encoder_pass(tmp_path: Path) -> None:
    # The calibration times the decoder and the alignment too: on CPU they cost more than
    # the encoder, by a factor that differs between machines.
    import time

    import numpy as np

    from voicesub_stream.models import live_update_seconds

    loaded = registry(tmp_path).get(ModelKey("tiny.en", "cpu", "int8"))
    features = np.zeros((1, 80, 1000), np.float32)
    loaded.whisper.encode(features)
    passes = []
    for _ in range(3):
        started = time.perf_counter()
        loaded.whisper.encode(features)
        passes.append(time.perf_counter() - started)
    assert live_update_seconds(loaded, calls=2) > min(passes)


def thread_priority(tid: str) -> int | None:
    """The nice value of one of this process's threads, or None once it has exited."""
    import os

    try:
        return os.getpriority(os.PRIO_PROCESS, int(tid))
    except ProcessLookupError:
        return None


def test_batch_work_runs_on_a_copy_whose_threads_have_the_lowest_cpu_priority(
    tmp_path: Path,
) -> None:
    import os

    from voicesub_stream.models._whisper import LOWEST_PRIORITY, background_calls_supported

    if not background_calls_supported("cpu"):
        pytest.skip("threads have no priority of their own here")
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    reg = registry(tmp_path)
    model = reg.get(ModelKey("tiny.en", "cpu", "int8"))
    assert model.plan is not None
    assert model.plan.background_calls == cpu_count()
    assert model.replica(background=False) is model.whisper
    assert not reg.statistics().loaded[0].background_copy
    before = set(os.listdir("/proc/self/task"))
    copy = model.replica(background=True)
    started = set(os.listdir("/proc/self/task")) - before
    assert copy is not model.whisper
    assert model.replica(background=True) is copy
    assert reg.statistics().loaded[0].background_copy
    # CTranslate2's threads for the copy's calls, and only they, run at the lowest priority.
    # The short-lived thread that loaded the copy may be gone by now.
    alive = {tid: priority for tid in started if (priority := thread_priority(tid)) is not None}
    assert len(alive) >= model.plan.background_calls
    assert set(alive.values()) == {LOWEST_PRIORITY}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ours
    assert reg.evict(model.key)


def test_least_recently_used_model_is_evicted_and_unloaded(tmp_path: Path) -> None:
    reg = registry(tmp_path, max_loaded_models=2)
    keys = [ModelKey("tiny.en", "cpu", ct) for ct in ("int8", "float32", "int8_float32")]
    first = reg.get(keys[0])
    reg.get(keys[1])
    reg.get(keys[0])  # now keys[1] is the least recently used
    reg.get(keys[2])
    assert reg.loaded() == [keys[0], keys[2]]
    assert reg.evictions == 1
    assert first.whisper.model.model_is_loaded
    reg.clear()
    assert not first.whisper.model.model_is_loaded  # weights really freed


def test_a_leased_model_is_never_evicted(tmp_path: Path) -> None:
    reg = registry(tmp_path, max_loaded_models=1)
    a, b = ModelKey("tiny.en", "cpu", "int8"), ModelKey("tiny.en", "cpu", "float32")
    held = reg.acquire(a)
    reg.get(b)
    assert a in reg.loaded()  # over capacity while leased
    reg.release(held)
    assert reg.loaded() == [b]
    assert not held.whisper.model.model_is_loaded


def test_bundled_base_is_joined_once_atomically(tmp_path: Path) -> None:
    with ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: bundled_base(tmp_path), range(3)))
    assert paths[0] is not None
    assert len(set(paths)) == 1
    model_bin = paths[0] / "model.bin"
    assert model_bin.stat().st_size == 145_217_532
    leftovers = [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert bundled_base(tmp_path) == paths[0]  # second call reuses, no copy


def test_names_resolve_to_bundled_models_and_local_dirs(tmp_path: Path) -> None:
    tiny = resolve_model("tiny.en", cache_dir=tmp_path, offline=True)
    assert resolve_model(tiny, cache_dir=tmp_path, offline=True) == tiny
    with pytest.raises(ModelNotFoundError, match="Hub download skipped"):
        resolve_model("medium", cache_dir=tmp_path, offline=True)


def test_cuda_without_a_gpu_is_a_typed_load_error(tmp_path: Path) -> None:
    if _gpu.cuda_device_count():
        pytest.skip("a GPU is present; this test covers machines without one")
    reg = ModelRegistry(Settings.load(device="cuda", offline=True, cache_dir=tmp_path).models())
    with pytest.raises(ModelLoadError, match=r"tiny\.en"):
        reg.get(reg.key_for("tiny.en"))


def test_auto_device_and_compute_type_follow_the_hardware() -> None:
    has_gpu = _gpu.cuda_device_count() > 0
    assert pick_device("auto") == ("cuda" if has_gpu else "cpu")
    assert pick_compute_type("auto", "cpu") == "int8"
    assert pick_compute_type("auto", "cuda") == "float16"
    assert pick_compute_type("float32", "cpu") == "float32"


def test_gpu_info_is_cached_for_30_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_query() -> tuple[_gpu.GpuInfo, ...]:
        calls.append(1)
        return (_gpu.GpuInfo(0, "fake", 16 << 30, 4 << 30, 50.0),)

    monkeypatch.setattr(_gpu, "_query", fake_query)
    monkeypatch.setattr(_gpu, "_cache", None)
    now = [1000.0]
    monkeypatch.setattr(_gpu.time, "monotonic", lambda: now[0])
    first = gpu_info()
    now[0] += 29
    assert gpu_info() is first
    now[0] += 2
    gpu_info()
    assert len(calls) == 2
    assert first[0].memory_free == 12 << 30


def test_gpu_info_without_a_gpu_is_empty() -> None:
    if _gpu.cuda_device_count():
        pytest.skip("a GPU is present")
    assert gpu_info(max_age=0) == ()


def test_execution_plan_sizes_calls_from_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicesub_stream.models import _registry, execution_plan

    auto = Settings.load().models()
    monkeypatch.setattr(_registry, "cpu_count", lambda: 4)
    plan = execution_plan(auto, "cpu")
    assert (plan.threads_per_call, plan.concurrent_calls) == (1, 4)  # one call per core
    assert "4 cores" in plan.reason
    monkeypatch.setattr(_registry, "cpu_count", lambda: 1)
    assert execution_plan(auto, "cpu").concurrent_calls == 1
    monkeypatch.setattr(_registry, "cpu_count", lambda: 8)
    pinned = Settings.load(cpu_threads=4).models()  # explicit settings still decide
    assert (execution_plan(pinned, "cpu").threads_per_call,
            execution_plan(pinned, "cpu").concurrent_calls) == (4, 2)
    both = Settings.load(cpu_threads=2, model_workers=3).models()
    assert (execution_plan(both, "cpu").threads_per_call,
            execution_plan(both, "cpu").concurrent_calls) == (2, 3)
    assert execution_plan(auto, "cuda").concurrent_calls == 1
    assert execution_plan(auto, "cuda").background_calls == 0
    monkeypatch.setattr(_registry, "background_calls_supported", lambda device: True)
    assert execution_plan(auto, "cpu").background_calls == 8  # as many again, for batch work
    with pytest.raises(ConfigError):
        Settings.load(cpu_threads="many")


@pytest.mark.speech
def test_a_window_may_write_no_more_tokens_than_its_audio_can_hold(
    settings: Any, espeak_audio: Any,
) -> None:
    """A repetition loop ("f-f-f-f...") used to run to Whisper's 448-token limit, seconds of
    decoding for one window; the cap ends it one token past what counts as a loop."""
    from voicesub_stream import TranscribeOptions
    from voicesub_stream._types import SpeechWindow
    from voicesub_stream.models import ModelRegistry, WhisperBatch, WhisperRunner
    from voicesub_stream.models._whisper import looks_looped, token_budget

    registry = ModelRegistry(settings.models())
    model = registry.get(registry.key_for("tiny.en"))
    ct2 = model.whisper.model
    asked: list[int] = []

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(ct2, name)

        def generate(self, *args: Any, **kwargs: Any) -> Any:
            asked.append(kwargs["max_length"])
            return ct2.generate(*args, **kwargs)

    audio = espeak_audio[: 16_000 * 3]
    runner = WhisperRunner(model, TranscribeOptions(language="en"))
    batch = WhisperBatch(model, TranscribeOptions(language="en"), prompt_limit=8)
    batch.add(runner, SpeechWindow(0, audio, ((0, len(audio)),)), "It was a bright cold day")
    model.whisper.model = Spy()
    try:
        (result,) = batch.run()
    finally:
        model.whisper.model = ct2
    assert result.words  # the cap leaves speech whole
    # The prompt: start-of-previous, 8 tokens, then start-of-transcript, "en", notimestamps
    # (tiny.en has no language and task tokens).
    assert asked[0] <= 8 + 4 + token_budget(3.0)
    assert not looks_looped([{"tokens": [0] * (token_budget(3.0) - 1), "text": ""}], 3.0)
    assert looks_looped([{"tokens": [0] * token_budget(3.0), "text": ""}], 3.0)
    registry.clear()


@pytest.mark.speech
def test_files_in_other_languages_keep_the_whole_encoder_input(
    settings: Any, espeak_audio: Any,
) -> None:
    """English windows and live updates are encoded as short as they fit; a file's windows in
    other languages at Whisper's whole 30 s (worth 1.6 points in Spanish and 2.2 in French
    on the shared clips)."""
    from voicesub_stream import LiveOptions, TranscribeOptions
    from voicesub_stream._types import SpeechWindow
    from voicesub_stream.models import ModelRegistry, WhisperRunner

    registry = ModelRegistry(settings.models())
    model = registry.get(registry.key_for("base"))
    ct2 = model.whisper.model
    encoded: list[int] = []

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(ct2, name)

        def encode(self, features: Any, *args: Any, **kwargs: Any) -> Any:
            encoded.append(features.shape[-1])
            return ct2.encode(features, *args, **kwargs)

    audio = espeak_audio[: 16_000 * 3]
    window = SpeechWindow(0, audio, ((0, len(audio)),))
    model.whisper.model = Spy()
    try:
        for options in (TranscribeOptions(language="en"), TranscribeOptions(language="es"),
                        TranscribeOptions(language="es", live=LiveOptions())):
            WhisperRunner(model, options).transcribe([window])
    finally:
        model.whisper.model = ct2
    assert encoded == [1000, 3000, 1000]
    registry.clear()
