"""The audio a benchmark runs on when it is given none.

In a development checkout that is the shared corpus beside it (``../shared/data/speech``),
whose clips the published figures (docs/performance.md) come from. Anywhere else it is the
clip the package ships (``voicesub_stream/data/welcome.flac``, with no reference text: word
error rates are then left out), or for the accuracy benchmark, which needs a reference,
sentences spoken by espeak-ng.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..testing import speak

__all__ = ("SHARED", "SHIPPED", "corpus_manifest", "default_clip")

SHARED = Path("../shared/data/speech")
SHIPPED = Path(__file__).resolve().parent.parent / "data" / "welcome.flac"
SPOKEN = ("The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins "
          "with a single step. Knowledge is power, and time is money.")


def default_clip(shared: str) -> Path:
    """``shared`` (a path inside the shared corpus) when it is there, else the shipped clip."""
    path = SHARED / shared
    return path if path.is_file() else SHIPPED


def corpus_manifest(workdir: Path) -> Path:
    """The shared corpus's manifest, else a one-clip corpus spoken by espeak-ng in ``workdir``.

    :raises RuntimeError: no shared corpus, and espeak-ng is not installed
    """
    shared = SHARED / "manifest.json"
    if shared.is_file():
        return shared
    speak(SPOKEN, workdir / "spoken.wav")
    (workdir / "spoken.txt").write_text(SPOKEN + "\n", encoding="utf-8")
    manifest = workdir / "manifest.json"
    manifest.write_text(json.dumps({"entries": [
        {"file": "spoken.wav", "language": "en", "reference_file": "spoken.txt"}]}))
    return manifest
