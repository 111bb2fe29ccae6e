"""Where subtitle text may break: sentence and clause ends, cues cut from timed words, and a
translation spread back over the cues it was made from.

File transcription, live captions and translation all cut text at the same places, so the
rules live here once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._types import Word

__all__ = ("CLAUSE_END", "SENTENCE_END", "cue_text", "ends_clause", "ends_sentence",
           "split_cues", "spread")

SENTENCE_END = re.compile(r"[.!?。！？…]['\")\]]*$")
CLAUSE_END = re.compile(r"[,;:、，；：]$")


def ends_sentence(text: str) -> bool:
    return SENTENCE_END.search(text.strip()) is not None


def ends_clause(text: str) -> bool:
    return CLAUSE_END.search(text.strip()) is not None


def cue_text(words: list[Word]) -> str:
    return "".join(w.text for w in words).strip()


def split_cues(
    words: list[Word], *, max_chars: int, max_duration: float, max_gap: float = 1.0
) -> list[list[Word]]:
    """Cut a window's words into subtitle cues.

    Cues end at sentence ends and at pauses longer than ``max_gap``. A sentence too long for
    one cue (``max_chars`` / ``max_duration``) is halved recursively where the speaker paused
    longest, a clause end (comma, semicolon) counting as a long pause and lopsided halves
    counting against a break, so a long sentence becomes balanced cues, not a full cue and an
    orphaned last word. A very short sentence joins the cue before it when both fit together.
    """
    def fits(cue: list[Word]) -> bool:
        return (len(cue_text(cue)) <= max_chars
                and cue[-1].end - cue[0].start <= max_duration)

    def split(cue: list[Word]) -> list[list[Word]]:
        if len(cue) < 2 or fits(cue):
            return [cue]
        cut = _best_break(cue)
        return split(cue[:cut]) + split(cue[cut:])

    cues: list[list[Word]] = []
    for phrase in _phrases(words, max_gap):
        for piece in split(phrase):
            prev = cues[-1] if cues else None
            if (prev is not None and piece[-1].end - piece[0].start < 1.0
                    and piece[0].start - prev[-1].end <= max_gap and fits(prev + piece)):
                prev.extend(piece)
            else:
                cues.append(piece)
    return cues


def _phrases(words: list[Word], max_gap: float) -> list[list[Word]]:
    """``words`` cut at sentence ends and at pauses longer than ``max_gap``."""
    phrases: list[list[Word]] = []
    phrase: list[Word] = []
    for word in words:
        if phrase and word.start - phrase[-1].end > max_gap:
            phrases.append(phrase)
            phrase = []
        phrase.append(word)
        if ends_sentence(word.text):
            phrases.append(phrase)
            phrase = []
    if phrase:
        phrases.append(phrase)
    return phrases


def _best_break(words: list[Word]) -> int:
    """Index at which to cut ``words`` in two: a long pause near the middle."""
    total = len(cue_text(words))

    def score(i: int) -> float:
        clause = 0.5 if ends_clause(words[i - 1].text) else 0.0
        pause = min(words[i].start - words[i - 1].end, 1.0)
        imbalance = abs(2 * len(cue_text(words[:i])) - total) / max(total, 1)
        return clause + pause - imbalance

    return max(range(1, len(words)), key=score)


def spread(translation: str, parts: list[str]) -> list[str]:
    """Cut ``translation`` into ``len(parts)`` pieces in proportion to the parts' lengths.

    Cuts fall on the space nearest the proportional point, preferring one after punctuation;
    in scripts written without spaces (Chinese, Japanese, Thai) on the character itself.
    """
    translation = translation.strip()
    if len(parts) == 1:
        return [translation]
    total = sum(len(p.strip()) for p in parts) or 1
    spaced = " " in translation
    pieces, start, acc = [], 0, 0
    for part in parts[:-1]:
        acc += len(part.strip())
        target = round(len(translation) * acc / total)
        cut = target
        if spaced:
            # The nearest space, or a space after punctuation not much farther away.
            slack = len(translation) / (4 * len(parts))
            spaces = [i for i, c in enumerate(translation) if c == " " and i > start]
            cut = min(spaces, default=len(translation),
                      key=lambda i: abs(i - target) - (slack if translation[i - 1] in ",;:.!?"
                                                       else 0.0))
        cut = max(cut, start)
        pieces.append(translation[start:cut].strip())
        start = cut
    pieces.append(translation[start:].strip())
    return pieces
