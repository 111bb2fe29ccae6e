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

__all__ = ("CLAUSE_END", "SENTENCE_END", "best_break", "breaks_phrase", "cue_text", "ends_clause",
           "ends_sentence", "guess_language", "split_cues", "spread")

SENTENCE_END = re.compile(r"[.!?。！？…]['\")\]]*$")
CLAUSE_END = re.compile(r"[,;:、，；：]$")


def ends_sentence(text: str) -> bool:
    return SENTENCE_END.search(text.strip()) is not None


def ends_clause(text: str) -> bool:
    return CLAUSE_END.search(text.strip()) is not None


_FUNCTION_WORDS = {
    "en": "a an the to of in on at by for from with into onto upon about over under after "
          "before between through during without within and or but nor so my your our their "
          "its",
    "es": "el la los las un una unos unas de del a al en con por para sin sobre entre y e o "
          "u ni pero mi tu su mis tus sus",
    "fr": "le la les l' un une des du de d' à au aux en dans sur sous par pour avec sans "
          "entre et ou mais ni mon ma mes ton ta tes son sa ses notre nos votre vos leur "
          "leurs",
    "de": "der die das den dem des ein eine einen einem einer eines zu zum zur von vom mit "
          "bei aus im an am auf für über unter nach vor und oder aber sondern mein dein "
          "unser euer",
    "pt": "o a os as um uma uns umas de do da dos das em no na nos nas por pelo pela para "
          "com sem e ou mas meu minha seu sua",
    "it": "il lo la i gli le un uno una di del della a al alla da in nel con su per tra "
          "fra e o ma",
}
FUNCTION_WORDS = {lang: frozenset(words.split()) for lang, words in _FUNCTION_WORDS.items()}
"""Articles, prepositions, conjunctions and possessives per language: a line or a cue
never ends on one, because the word belongs with what follows it."""


def _bare(word: str) -> str:
    return word.strip().strip("\"“”‘’«»()[]").lower()


def breaks_phrase(left: str, right: str, language: str | None) -> str | None:
    """Why text may not break between the words ``left`` and ``right``, or None when it may.

    A break may not follow a function word of ``language`` (a line ending "the", "of",
    "and"), and may not fall inside a name (two capitalised words with no punctuation
    between them; not checked in German, which capitalises every noun).
    """
    left, right = left.strip(), right.strip()
    words = FUNCTION_WORDS.get(base(language) or "")
    if words is not None and _bare(left) in words:
        return f"ends on {left!r}"
    if (base(language) != "de" and left[-1:].isalpha() and left[:1].isupper()
            and right[:1].isupper() and not any(map(_PRONOUN_I.fullmatch, (left, right)))):
        return f"splits the name {left} {right}"
    return None


_PRONOUN_I = re.compile(r"I(['’]\w+)?")
"""English "I", "I'm", "I'll": capitalised, and no part of a name."""


def guess_language(text: str) -> str | None:
    """The language whose function words ``text`` uses most (for text of unknown origin)."""
    tokens = [_bare(t) for t in text.split()]
    counts = {lang: sum(t in words for t in tokens) for lang, words in FUNCTION_WORDS.items()}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] >= max(3, len(tokens) // 20) else None


def base(language: str | None) -> str | None:
    return language.split("-")[0].lower() if language else None


def cue_text(words: list[Word]) -> str:
    """The words as one line. Whisper writes the parts of a hyphenated word as words of their
    own (" self", "-love"); a cue that begins with such a part (the cue before ended at
    "self") begins with "love", not "-love"."""
    return "".join(w.text for w in words).lstrip("-").strip()


def split_cues(
    words: list[Word], *, max_chars: int, max_duration: float, max_gap: float = 1.0,
    language: str | None = None,
) -> list[list[Word]]:
    """Cut a window's words into subtitle cues.

    Cues end at sentence ends and at pauses longer than ``max_gap``. A sentence too long for
    one cue (``max_chars`` / ``max_duration``) is halved recursively where the speaker paused
    longest, a clause end (comma, semicolon) counting as a long pause and lopsided halves
    counting against a break, so a long sentence becomes balanced cues, not a full cue and an
    orphaned last word; a cut after a function word or inside a name counts against it too
    (:func:`breaks_phrase`). A very short sentence joins the cue before it when both fit together.
    """
    def fits(cue: list[Word]) -> bool:
        return (len(cue_text(cue)) <= max_chars
                and cue[-1].end - cue[0].start <= max_duration)

    def split(cue: list[Word]) -> list[list[Word]]:
        if len(cue) < 2 or fits(cue):
            return [cue]
        cut = best_break(cue, language)
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


def best_break(words: list[Word], language: str | None = None) -> int:
    """Index at which to cut ``words`` in two: a long pause or a clause end near the middle,
    not after a function word or inside a name."""
    total = len(cue_text(words))

    def score(i: int) -> float:
        clause = 0.5 if ends_clause(words[i - 1].text) else 0.0
        pause = min(words[i].start - words[i - 1].end, 1.0)
        imbalance = abs(2 * len(cue_text(words[:i])) - total) / max(total, 1)
        phrase = 1.0 if breaks_phrase(words[i - 1].text, words[i].text, language) else 0.0
        return clause + pause - imbalance - phrase

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
