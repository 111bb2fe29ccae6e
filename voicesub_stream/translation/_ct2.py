"""CTranslate2 translation models (Marian/OPUS-MT, NLLB, M2M100) from a local directory.

A converted model directory holds ``model.bin`` and its vocabulary; the SentencePiece models
that tokenise for it (``source.spm`` / ``target.spm`` for Marian, one
``sentencepiece.bpe.model`` or ``spm.model`` for NLLB and M2M100) sit beside it. Lines are
translated as one batch per call. Languages are ISO 639-1 codes, mapped per family: a Marian
model translates its one pair (``pair=("en", "de")``), NLLB takes FLORES-200 codes
(``deu_Latn``) and M2M100 ``__de__`` tokens as the target prefix.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError, TranslationError
from ._base import Translator, base_language

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("CTranslate2Translator", "language_token")

Family = Literal["marian", "nllb", "m2m100"]

_NLLB = {
    "ar": "arb_Arab", "de": "deu_Latn", "en": "eng_Latn", "es": "spa_Latn", "fr": "fra_Latn",
    "hi": "hin_Deva", "id": "ind_Latn", "it": "ita_Latn", "ja": "jpn_Jpan", "ko": "kor_Hang",
    "nl": "nld_Latn", "pl": "pol_Latn", "pt": "por_Latn", "ru": "rus_Cyrl", "sv": "swe_Latn",
    "th": "tha_Thai", "tr": "tur_Latn", "uk": "ukr_Cyrl", "vi": "vie_Latn", "zh": "zho_Hans",
}
"""ISO 639-1 -> FLORES-200 for the languages subtitles most often need (extend as required)."""


def language_token(family: Family, code: str) -> str | None:
    """The token that selects language ``code`` in a model of ``family`` (None for Marian)."""
    lang = base_language(code)
    if family == "nllb":
        if lang not in _NLLB:
            raise TranslationError(f"no NLLB code known for {code!r}")
        return _NLLB[lang]
    if family == "m2m100":
        return f"__{lang}__"
    return None


class CTranslate2Translator(Translator):
    """A converted translation model, run by CTranslate2 on CPU or GPU."""

    name = "ctranslate2"

    def __init__(self, model_dir: str | Path, *, family: Family = "marian",
                 pair: tuple[str, str] | None = None, device: str = "cpu",
                 compute_type: str = "default", beam_size: int = 2,
                 max_length: int = 256) -> None:
        self.model_dir = Path(model_dir)
        if family not in ("marian", "nllb", "m2m100"):
            raise ConfigError(f"unknown model family {family!r}: marian, nllb or m2m100")
        if family == "marian" and pair is None:
            raise ConfigError("a Marian model translates one pair: give pair=('en', 'de')")
        if not (self.model_dir / "model.bin").is_file():
            raise ConfigError(f"{self.model_dir} holds no CTranslate2 model.bin")
        self.family: Family = family
        self.pair = (base_language(pair[0]), base_language(pair[1])) if pair else None
        self.device, self.compute_type = device, compute_type
        self.beam_size, self.max_length = beam_size, max_length
        self._loaded: tuple[Any, Any, Any] | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"ctranslate2:{self.model_dir.resolve()}"

    def supports(self, source: str, target: str) -> bool:
        if self.pair is not None:
            return (base_language(source), base_language(target)) == self.pair
        return self.family == "m2m100" or (base_language(source) in _NLLB
                                           and base_language(target) in _NLLB)

    def translate(self, texts: Sequence[str], *, source: str, target: str) -> list[str]:
        if not self.supports(source, target):
            raise TranslationError(f"{self.model_dir.name} does not translate "
                                   f"{source}->{target}")
        translator, src_spm, tgt_spm = self._load()
        tokens = [src_spm.encode(t, out_type=str) for t in texts]
        prefix = None
        src_token = language_token(self.family, source)
        if src_token is not None:  # NLLB and M2M100 mark the source language too
            tokens = [[src_token, *t, "</s>"] for t in tokens]
            prefix = [[language_token(self.family, target)] for _ in texts]
        try:
            results = translator.translate_batch(
                tokens, target_prefix=prefix, beam_size=self.beam_size,
                max_decoding_length=self.max_length)
        except Exception as exc:
            raise TranslationError(f"{self.model_dir.name} failed: {exc}") from exc
        out = []
        for result in results:
            pieces = [p for p in result.hypotheses[0]
                      if not (p.startswith("__") and p.endswith("__")) and p not in _NLLB_SET]
            out.append(tgt_spm.decode(pieces))
        return out

    def _load(self) -> tuple[Any, Any, Any]:
        with self._lock:
            if self._loaded is None:
                import ctranslate2
                try:
                    import sentencepiece as spm
                except ImportError as exc:
                    raise TranslationError("CTranslate2 translation needs sentencepiece: pip "
                                           "install 'voicesub-stream[translate]'") from exc
                src, tgt = self._spm_paths()
                try:
                    translator = ctranslate2.Translator(str(self.model_dir), device=self.device,
                                                        compute_type=self.compute_type)
                except Exception as exc:
                    raise TranslationError(f"could not load {self.model_dir}: {exc}") from exc
                self._loaded = (translator, spm.SentencePieceProcessor(model_file=str(src)),
                                spm.SentencePieceProcessor(model_file=str(tgt)))
            return self._loaded

    def _spm_paths(self) -> tuple[Path, Path]:
        d = self.model_dir
        if (d / "source.spm").is_file() and (d / "target.spm").is_file():
            return d / "source.spm", d / "target.spm"
        for name in ("sentencepiece.bpe.model", "spm.model", "sentencepiece.model"):
            if (d / name).is_file():
                return d / name, d / name
        raise TranslationError(f"no SentencePiece model beside {d / 'model.bin'} "
                               "(source.spm/target.spm or sentencepiece.bpe.model)")

    def close(self) -> None:
        with self._lock:
            if self._loaded is not None:
                self._loaded[0].unload_model()
                self._loaded = None


_NLLB_SET = frozenset(_NLLB.values())
