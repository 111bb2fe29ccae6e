"""Shared fixtures: real models, real speech (espeak-ng and the shared recorded clips)."""

from __future__ import annotations

import asyncio
import functools
import getpass
import http.server
import inspect
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import pytest_asyncio

from voicesub_stream import Engine, Settings
from voicesub_stream.testing import free_port, speak

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

SPEECH_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"

SENTENCES = (
    "The quick brown fox jumps over the lazy dog. "
    "A journey of a thousand miles begins with a single step. "
    "Knowledge is power, and time is money."
)


def _marks(obj: object) -> set[str]:
    marks = getattr(obj, "pytestmark", [])
    return {m.name for m in (marks if isinstance(marks, list) else [marks])}


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """Coroutine tests run on pytest-asyncio's session loop, except those of modules marked
    ``anyio``, which anyio's plugin runs on every backend they name (asyncio and trio)."""
    if (inspect.iscoroutinefunction(obj) and "anyio" not in _marks(obj)
            and "anyio" not in _marks(getattr(collector, "obj", None))):
        pytest.mark.asyncio(obj)
    result = yield
    return result


@pytest.fixture(scope="session", autouse=True)
def _process_wide_models() -> None:
    """Load what lives for the whole process (Silero VAD) before any leak check looks."""
    from faster_whisper.vad import get_vad_model

    get_vad_model()


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not (SPEECH_DIR / "SOURCES.md").is_file():
        pytest.skip(f"recorded clips not found at {SPEECH_DIR}: accuracy tests read "
                    "../shared/data/speech beside the checkout (CI always has it)")
    return SPEECH_DIR


@pytest.fixture(scope="session")
def espeak_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three English sentences spoken by espeak-ng (22.05 kHz mono WAV)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: the README's test command installs it")
    return speak(SENTENCES, tmp_path_factory.mktemp("speech") / "sentences.wav")


@pytest.fixture(scope="session")
def espeak_audio(espeak_wav: Path) -> np.ndarray:
    """The espeak clip as 16 kHz mono float32, as our file source decodes it."""
    from voicesub_stream.sources._decode import decode_chunks, open_container

    container = open_container(str(espeak_wav))
    try:
        return np.concatenate(list(decode_chunks(container, 16_000)))
    finally:
        container.close()


@pytest.fixture(scope="session")
def espeak_url(espeak_wav: Path) -> Iterator[str]:
    """The espeak clip served over HTTP by a real server on a loopback port."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(espeak_wav.parent))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{espeak_wav.name}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class LoopbackServer:
    """A real server program on a free loopback port, which a test may stop and start
    again."""

    program = ""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, exe: str) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        exe = shutil.which(self.program)
        if exe is None:
            pytest.fail(f"{self.program} is missing: the README's test command installs it")
        self.process = subprocess.Popen(self.command(exe), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, f"{self.program} did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class RedisServer(LoopbackServer):
    program = "redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, exe: str) -> list[str]:
        return [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.directory),
                "--enable-debug-command", "local"]


class MemcachedServer(LoopbackServer):
    program = "memcached"

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def command(self, exe: str) -> list[str]:
        # -u: memcached refuses to run as root without being told which user to be.
        return [exe, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64",
                "-u", "root" if os.geteuid() == 0 else getpass.getuser()]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def memcached_server(tmp_path: Path) -> Iterator[MemcachedServer]:
    server = MemcachedServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # No result cache for the shared engine: tests that look at how a stream ran must not be
    # served an earlier test's result. Caching has tests of its own.
    return Settings.load(model="tiny.en", device="cpu", offline=True, cache_type="none",
                         cache_dir=tmp_path_factory.mktemp("cache"))


async def hosted_engine(settings: Settings) -> AsyncIterator[Engine]:
    """An engine for a fixture to yield. pytest-asyncio sets up and tears down a fixture in
    different tasks, and a task group must be left in the task that entered it, so the
    engine lives in a task of its own."""
    ready, stop = asyncio.Event(), asyncio.Event()
    holder: list[Engine] = []

    async def host() -> None:
        async with Engine(settings) as engine:
            holder.append(engine)
            ready.set()
            await stop.wait()

    task = asyncio.create_task(host())
    await ready.wait()
    yield holder[0]
    stop.set()
    await task


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async for engine in hosted_engine(settings):
        yield engine


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def default_engine() -> Engine:
    """The event loop's default engine (module-level calls run on it), started up front so
    that its long-lived tasks predate every leak check."""
    from voicesub_stream import default_engine

    return await default_engine()
