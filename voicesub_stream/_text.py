"""Transcript normalisation and word error rate, shared by the benchmarks and the tests."""

from __future__ import annotations

import re
import unicodedata

_NUMBERS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_PUNCT = re.compile(r"[^\w\s']")


CHARACTER_SCORED = frozenset({"zh", "ja", "th", "yue", "lo", "my", "km"})
"""Languages written without spaces between words: scored by characters (CER), not words."""


def normalize(text: str, language: str | None = None) -> str:
    """Lower-case, drop punctuation, and in English spell out numbers under a thousand: the
    usual norm before WER, since Whisper writes "40" or "forty" for the same speech (other
    languages keep their digits: their references write numbers either way, and English
    words would be wrong for them). Larger numbers stay digits: "1961" is read several
    ways."""
    text = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    text = _PUNCT.sub(" ", text)
    if language in (None, "en"):
        text = re.sub(r"\b(\d+)\b", lambda m: _spell(int(m.group(1))), text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)
    return " ".join(text.split())


def _spell(n: int) -> str:
    if n < len(_NUMBERS):
        return _NUMBERS[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_NUMBERS[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_NUMBERS[hundreds]} hundred" + (f" {_spell(rest)}" if rest else "")
    return str(n)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalize` (needs ``jiwer``)."""
    errors, units = error_counts(reference, hypothesis)
    return errors / units if units else (0.0 if not errors else 1.0)


def error_counts(reference: str, hypothesis: str, language: str | None = None,
                 ) -> tuple[int, int]:
    """Edit errors and reference units (words, or characters for :data:`CHARACTER_SCORED`
    languages) after :func:`normalize`: what a pooled error rate sums (needs ``jiwer``)."""
    import jiwer  # extra "bench"

    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    by_character = language in CHARACTER_SCORED
    if by_character:
        ref, hyp = ref.replace(" ", ""), hyp.replace(" ", "")
    units = len(ref) if by_character else len(ref.split())
    if not ref:
        return (1 if hyp else 0), 0
    if not hyp:
        return units, units
    out = jiwer.process_characters(ref, hyp) if by_character else jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, units
