"""A cache in a directory: one file per entry, safe to share between processes."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os
import anyio.to_thread

from ._base import Cache, Clock, decode, encode

logger = logging.getLogger(__name__)

_MAGIC = b"VSC1"
_HEADER = struct.Struct("<4sdIH")  # magic, expires (epoch s, NaN = never), crc32, key length
SCHEMA = "v1"


class FileCache(Cache):
    """Entries under ``directory/v1/ab/cd/<sha256(key)>``, written atomically.

    A write goes to a temporary file in the same shard and is renamed into place, so a reader
    in any process sees the old entry or the new one, never half of one. Each entry carries
    its key, expiry and a CRC32 of its value: a truncated or corrupt file is a miss, removed
    and logged, never an exception. When the directory grows past ``max_bytes``, the least
    recently read entries (file mtime, touched on every hit) go first, down to 90 % of it.
    """

    def __init__(self, directory: str | os.PathLike[str], *, ttl: float | None = None,
                 max_bytes: int = 1 << 30, clock: Clock = time.time) -> None:
        super().__init__()
        self.root = Path(directory) / SCHEMA
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._size: int | None = None  # this process's estimate, refreshed on eviction

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / digest[:2] / digest[2:4] / digest

    async def get(self, key: str) -> Any | None:
        started = time.perf_counter()
        path = self._path(key)
        try:
            # One worker-thread hop for open + read + close: aiofiles would take three, and
            # the hops, not the disk, are most of a cached read's cost.
            data = await anyio.to_thread.run_sync(_read_regular, path)
        except FileNotFoundError:
            self.stats.misses += 1
            self.stats.observe(started)
            return None
        except _NotAFile:
            logger.warning("removing %s from the cache: not a regular file", path)
            await self._remove(path)
            self._fail(started, None)
            return None
        except OSError as exc:
            self._fail(started, f"cannot read {path}: {exc}")
            return None
        try:
            magic, expires, crc, key_len = _HEADER.unpack_from(data)
            stored_key = data[_HEADER.size : _HEADER.size + key_len].decode()
            payload = data[_HEADER.size + key_len :]
            if magic != _MAGIC or zlib.crc32(payload) != crc:
                raise ValueError("bad magic or checksum")
            if stored_key != key:  # a sha256 collision: treat as absent
                self.stats.misses += 1
                self.stats.observe(started)
                return None
            value = decode(payload)
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            logger.warning("removing corrupt cache entry %s: %s", path, exc)
            await self._remove(path)
            self._fail(started, None)
            return None
        if expires == expires and expires <= self._clock():  # not NaN, and past
            await self._remove(path)
            self.stats.misses += 1
            self.stats.observe(started)
            return None
        with contextlib.suppress(OSError):  # mtime = last use, for LRU eviction
            os.utime(path)
        self.stats.hits += 1
        self.stats.observe(started)
        return value

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        started = time.perf_counter()
        payload = encode(value)
        ttl = self.ttl if ttl is None else ttl
        expires = float("nan") if ttl is None else self._clock() + ttl
        raw_key = key.encode()
        data = _HEADER.pack(_MAGIC, expires, zlib.crc32(payload), len(raw_key)) + raw_key + payload
        path = self._path(key)
        try:
            await aiofiles.os.makedirs(path.parent, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            os.close(fd)
            try:
                async with aiofiles.open(tmp, "wb") as fh:
                    await fh.write(data)
                await aiofiles.os.replace(tmp, path)
            except BaseException:
                await self._remove(Path(tmp))
                raise
        except OSError as exc:
            self._fail(started, f"cannot write {path}: {exc}")
            return
        self.stats.sets += 1
        self.stats.observe(started)
        if self._size is None:
            self._size = await anyio.to_thread.run_sync(self._disk_usage)
        self._size += len(data)
        if self._size > self.max_bytes:
            self.stats.evictions += await anyio.to_thread.run_sync(self._evict)

    async def delete(self, key: str) -> bool:
        self.stats.deletes += 1
        return await self._remove(self._path(key))

    async def clear(self) -> None:
        await anyio.to_thread.run_sync(self._clear)
        self._size = 0

    def _fail(self, started: float, message: str | None) -> None:
        if message:
            logger.warning("file cache: %s", message)
        self.stats.errors += 1
        self.stats.misses += 1
        self.stats.observe(started)

    async def _remove(self, path: Path) -> bool:
        try:
            await aiofiles.os.remove(path)
            return True
        except FileNotFoundError:
            return False

    def _entries(self) -> list[os.DirEntry[str]]:
        out: list[os.DirEntry[str]] = []
        if not self.root.is_dir():
            return out
        for shard in os.scandir(self.root):
            for sub in os.scandir(shard.path) if shard.is_dir() else ():
                out.extend(e for e in os.scandir(sub.path)
                           if e.is_file() and not e.name.startswith(".tmp-"))
        return out

    def _disk_usage(self) -> int:
        return sum(e.stat().st_size for e in self._entries())

    def _evict(self) -> int:
        entries = []
        for entry in self._entries():
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, entry.path))
        entries.sort()
        size = sum(e[1] for e in entries)
        removed = 0
        for _, entry_size, path in entries:
            if size <= 0.9 * self.max_bytes:
                break
            try:
                os.remove(path)
                removed += 1
            except FileNotFoundError:
                pass  # another process evicted it first
            size -= entry_size
        self._size = size
        return removed

    def _clear(self) -> None:
        for entry in self._entries():
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)


class _NotAFile(OSError):
    """A cache path holds something other than a regular file (a FIFO, a device, ...)."""


def _read_regular(path: Path) -> bytes:
    """The file's bytes, opened without blocking: a FIFO or device planted in the cache
    directory would otherwise block the reading thread, and with it the engine's exit."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with open(fd, "rb", closefd=True) as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotAFile(path)
        return fh.read()
