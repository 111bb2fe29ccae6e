"""Transcript normalisation and word error rate, shared by the benchmarks and the tests."""

from __future__ import annotations

import re
import unicodedata

_NUMBERS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)
_PUNCT = re.compile(r"[^\w\s']")


def normalize(text: str) -> str:
    """Lower-case, drop punctuation, spell out small numbers: the usual norm before WER."""
    text = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    text = _PUNCT.sub(" ", text)
    text = re.sub(r"\b(\d+)\b", lambda m: _spell(int(m.group(1))), text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)
    return " ".join(text.split())


def _spell(n: int) -> str:
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalize` (needs ``jiwer``)."""
    import jiwer  # extra "bench"

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp)) if hyp else 1.0
