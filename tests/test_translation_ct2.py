"""CTranslate2 translation backend, on tiny models this test builds itself.

The models are randomly initialised (their output is noise), built with CTranslate2's spec
API and saved by its converter, with SentencePiece tokenizers trained here: they prove
loading, tokenisation, batching and language mapping without downloading anything.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from voicesub_stream import Engine, Settings
from voicesub_stream.errors import ConfigError, TranslationError
from voicesub_stream.translation import CTranslate2Translator, language_token

if TYPE_CHECKING:
    from pathlib import Path

CORPUS = ["the cat sat on the mat", "a dog ran in the park", "good morning to you",
          "knowledge is power and time is money", "the quick brown fox jumps"] * 20


def build_model(directory: Path, extra_tokens: tuple[str, ...] = ()) -> Path:
    """A one-layer Transformer (d=16) with a 40-piece SentencePiece vocabulary."""
    import sentencepiece as spm
    from ctranslate2 import specs
    from ctranslate2.converters.converter import Converter

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=proto,
                                   vocab_size=40, model_type="bpe", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    vocab = [sp.id_to_piece(i) for i in range(sp.get_piece_size())] + list(extra_tokens)
    d, ff = 16, 32
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    def fill(spec: Any) -> None:
        kind = type(spec).__name__
        if kind == "LayerNormSpec":
            spec.gamma, spec.beta = np.ones(d, np.float32), np.zeros(d, np.float32)
            return
        if kind == "EmbeddingsSpec":
            spec.weight = w(len(vocab), d)
            return
        if kind == "MultiHeadAttentionSpec":  # self: fused qkv, out; cross: q, fused kv, out
            sizes = [3 * d, d] if len(spec.linear) == 2 else [d, 2 * d, d]
            for linear, out in zip(spec.linear, sizes, strict=True):
                linear.weight, linear.bias = w(out, d), np.zeros(out, np.float32)
        if kind == "FeedForwardSpec":
            spec.linear_0.weight, spec.linear_0.bias = w(ff, d), np.zeros(ff, np.float32)
            spec.linear_1.weight, spec.linear_1.bias = w(d, ff), np.zeros(d, np.float32)
        if kind == "TransformerDecoderSpec":
            spec.projection.weight = w(len(vocab), d)
            spec.projection.bias = np.zeros(len(vocab), np.float32)
        for value in vars(spec).values():
            for child in value if isinstance(value, list) else [value]:
                if (type(child).__module__.startswith("ctranslate2.specs")
                        and type(child).__name__ != "LinearSpec"):
                    fill(child)

    model = specs.TransformerSpec.from_config((1, 1), 2)
    fill(model.encoder)
    fill(model.decoder)
    model.register_source_vocabulary(vocab)
    model.register_target_vocabulary(vocab)
    model.config.add_source_eos = True

    class Built(Converter):
        def _load(self) -> Any:
            return model

    out = directory / "model"
    Built().convert(str(out))
    for name in ("source.spm", "target.spm"):
        (out / name).write_bytes(proto.getvalue())
    return out


@pytest.fixture(scope="module")
def marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("marian"))


def test_a_marian_model_loads_tokenises_and_translates_a_batch(marian: Path) -> None:
    with CTranslate2Translator(marian, pair=("en", "de"), max_length=12) as tr:
        assert tr.supports("en", "de-AT")
        assert not tr.supports("en", "fr")
        lines = ["the cat sat on the mat", "good morning", "knowledge is power"]
        out = tr.translate(lines, source="en", target="de")
        assert len(out) == 3
        assert all(isinstance(line, str) and line for line in out)
        assert tr.translate(lines, source="en", target="de") == out  # deterministic
        with pytest.raises(TranslationError, match="does not translate en->fr"):
            tr.translate(lines, source="en", target="fr")


def test_language_codes_map_per_model_family(tmp_path: Path) -> None:
    assert language_token("nllb", "pt-BR") == "por_Latn"
    assert language_token("m2m100", "de") == "__de__"
    assert language_token("marian", "de") is None
    with pytest.raises(TranslationError, match="no NLLB code"):
        language_token("nllb", "tlh")
    m2m = build_model(tmp_path, extra_tokens=("__en__", "__de__", "__pt__"))
    (m2m / "sentencepiece.bpe.model").write_bytes((m2m / "source.spm").read_bytes())
    with CTranslate2Translator(m2m, family="m2m100", max_length=8) as tr:
        assert tr.supports("en", "pt")
        out = tr.translate(["good morning", "the cat"], source="en", target="pt")
        assert len(out) == 2
        assert not any("__" in line for line in out)  # the language tokens are not text
    with pytest.raises(ConfigError, match="one pair"):
        CTranslate2Translator(m2m)
    with pytest.raises(ConfigError, match=r"no CTranslate2 model\.bin"):
        CTranslate2Translator(tmp_path, pair=("en", "de"))


async def test_the_engine_offers_a_configured_model(marian: Path, settings: Settings,
                                                    espeak_audio: np.ndarray) -> None:
    configured = settings.model_copy(update={"ct2_translation_dir": marian,
                                             "ct2_translation_pair": "en-de"})
    async with Engine(configured) as engine, engine.transcribe_stream(
            espeak_audio, translate_to="de") as stream:  # auto: only the model has en->de
        segments = [s async for s in stream]
    assert segments
    assert all(s.translation for s in segments)
    assert all("translation_error" not in s.metadata for s in segments)
