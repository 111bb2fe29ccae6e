"""Helpers for testing code built on voicesub_stream (and for our own tests).

- :func:`speak`: real speech audio from text with espeak-ng, for self-contained WER tests.
- :class:`FakeRunner`: a stand-in for the Whisper runner, for fast tests of pipeline plumbing.
- :func:`resource_snapshot` / :func:`assert_no_leaks`: tasks, threads and files before/after.
- :func:`uvicorn_serving`, :func:`free_port` and :func:`post_chunked`: a server under test on
  a loopback port, and an upload sent as slowly or as endlessly as a hostile client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._config import TranscribeOptions
from ._types import Word
from .models import WindowText

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence
    from pathlib import Path

    from ._types import SpeechWindow

__all__ = ("FakeRunner", "ResourceSnapshot", "assert_no_leaks", "free_port", "post_chunked",
           "resource_snapshot", "speak", "uvicorn_serving")


def speak(text: str, path: Path, *, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """Synthesise ``text`` to a WAV file with espeak-ng and return the path.

    :raises RuntimeError: espeak-ng is not installed
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (Debian package 'espeak-ng')")
    subprocess.run([exe, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True)
    return path


class FakeRunner:
    """Answers each window with ``"window <index>"`` after ``delay`` seconds of blocking work.

    The :class:`~voicesub_stream.models.Runner` interface the stages use on the real runner,
    and it records every batch it was given.
    """

    def __init__(self, options: TranscribeOptions | None = None, *, delay: float = 0.0,
                 fail_on_window: int | None = None) -> None:
        self.options = options or TranscribeOptions()
        self.language: str | None = "en"
        self.language_probability: float | None = 1.0
        self.delay = delay
        self.fail_on_window = fail_on_window
        self.batches: list[list[int]] = []
        self.heard: list[tuple[float, float]] = []
        """The stream times (start, end) of every window it was given."""
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def transcribe(self, windows: list[SpeechWindow], *,
                   prompts: Sequence[str | None] | None = None,
                   prompt_limit: int | None = None) -> list[WindowText]:
        import time

        from .errors import TranscriptionError

        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.batches.append([w.index for w in windows])
            self.heard += [(w.start, w.end) for w in windows]
            if self.delay:
                time.sleep(self.delay)
            out = []
            for w in windows:
                if w.index == self.fail_on_window:
                    raise TranscriptionError(f"fake failure on window {w.index}")
                words = [Word(w.start, (w.start + w.end) / 2, " window", 1.0),
                         Word((w.start + w.end) / 2, w.end, f" {w.index}.", 1.0)]
                out.append(WindowText(w, f"window {w.index}.", words, -0.1, 0.0))
            return out
        finally:
            with self._lock:
                self.active -= 1

    def translate(self, results: list[WindowText]) -> list[str]:
        return [f"english {r.window.index}." for r in results]


@dataclass(frozen=True)
class ResourceSnapshot:
    tasks: frozenset[object]
    """The event loop's tasks (asyncio tasks, or trio tasks), but the caller's own."""
    threads: frozenset[threading.Thread]
    open_files: frozenset[str]
    busy_worker_threads: int

    def new_since(self, before: ResourceSnapshot) -> dict[str, list[str]]:
        """The tasks, threads and open files held now that were not held ``before``, by
        name."""
        return {"tasks": sorted(_task_name(t) for t in self.tasks - before.tasks),
                "threads": sorted(t.name for t in self.threads - before.threads),
                "open_files": sorted(self.open_files - before.open_files)}


def resource_snapshot() -> ResourceSnapshot:
    """What this process holds now: the event loop's tasks, non-pooled threads, open files.

    Works under asyncio and trio (call it from inside the event loop).
    """
    import psutil

    tasks = _tasks()
    # anyio, trio and asyncio's default executor (aiofiles runs there) keep idle worker
    # threads pooled for reuse; what matters is that none of anyio's is busy.
    threads = frozenset(t for t in threading.enumerate()
                        if not t.name.startswith(("AnyIO", "asyncio_", "Trio thread")))
    limiter = anyio.to_thread.current_default_thread_limiter()
    files = frozenset(f.path for f in psutil.Process().open_files())
    return ResourceSnapshot(tasks, threads, files, int(limiter.borrowed_tokens))


async def assert_no_leaks(before: ResourceSnapshot, *, within: float = 5.0) -> None:
    """Wait up to ``within`` seconds for the process to hold no more than it did ``before``."""
    after = resource_snapshot()
    with anyio.move_on_after(within):
        while True:
            after = resource_snapshot()
            if (after.tasks <= before.tasks and after.threads <= before.threads
                    and after.open_files <= before.open_files
                    and after.busy_worker_threads <= before.busy_worker_threads):
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"leaked: {after.new_since(before)}, "
                         f"busy worker threads={after.busy_worker_threads}")


def _tasks() -> frozenset[object]:
    native = anyio.lowlevel.current_token().native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        return frozenset(t for t in asyncio.all_tasks() if t is not asyncio.current_task())
    import trio  # the one other backend anyio runs on

    current = trio.lowlevel.current_task()
    found: set[object] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        if task is not current:
            found.add(task)
        pending.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return frozenset(found)


def _task_name(task: object) -> str:
    get_name = getattr(task, "get_name", None)
    return str(get_name() if get_name is not None else getattr(task, "name", task))


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def uvicorn_serving(app: Any, **config: Any) -> Iterator[int]:
    """``app`` on a real uvicorn on a free loopback port, in a thread; yields the port.

    ``config`` goes to ``uvicorn.Config`` (``log_level`` is ``error`` unless given).
    """
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           **{"log_level": "error", **config}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if thread.is_alive():
            raise RuntimeError("uvicorn did not stop within 30 s")


async def post_chunked(host: str, port: int, parts: Callable[[bytes], AsyncIterator[bytes]],
                       *, headers: dict[str, str] | None = None,
                       path: str = "/v1/audio/transcriptions") -> tuple[int, int]:
    """A multipart upload of one ``file`` field sent chunked (no Content-Length) on a raw
    socket, the answer read while it is sent, as no HTTP client does.

    ``parts(head)`` yields the body: the field's multipart head first, then whatever the test
    wants to send, as slowly as it likes. Returns the answer's status, and how many parts
    went out before it came. It waits for the answer as long as it takes: bound it with
    ``anyio.fail_after``.
    """
    boundary = "voicesub-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            'filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n').encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    status = sent = 0
    async with await anyio.connect_tcp(host, port) as sock:
        await sock.send(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: "
                        f"multipart/form-data; boundary={boundary}\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n".encode())
        async with anyio.create_task_group() as tg:

            async def answer() -> None:
                nonlocal status
                status = int((await sock.receive()).split()[1])
                tg.cancel_scope.cancel()

            tg.start_soon(answer)
            with contextlib.suppress(anyio.BrokenResourceError, OSError):
                async for part in parts(head):
                    await sock.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    sent += 1
    return status, sent
