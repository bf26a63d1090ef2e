"""The checkpoint tokenizer view: pieces whatever padding, truncation and template the tokenizer
ships with, unknown pieces named, byte pieces marked."""

from __future__ import annotations

import json

import pytest

import torch  # noqa: F401
import transformers  # noqa: F401
import tokenizers

from embgraft.hf.tokenizer import SourceTokenizer  # noqa: E402


@pytest.fixture(scope="module", params=["bert", "gpt2", "llama"])
def checkpoint(request, tmp_path_factory, ck):
    """(kind, directory, transformers tokenizer, view without padding, view of the same
    checkpoint with padding and truncation at 4 switched on)."""
    path = tmp_path_factory.mktemp(request.param)
    model, tok = ck.BUILDERS[request.param](path)
    plain = SourceTokenizer.from_dir(path)
    ck.pad_and_truncate(path, length=4)
    return request.param, path, tok, plain, SourceTokenizer.from_dir(path)


def test_padding_truncation_and_template_never_reach_the_pieces(checkpoint):
    kind, path, tok, plain, padded = checkpoint
    assert json.loads((path / "tokenizer.json").read_text())["padding"]["strategy"] == {"Fixed": 4}
    for word in ("北京大学生", "猫在公园", "北"):  # 5 characters: longer than the truncation
        expected = plain.pieces(word)
        assert padded.pieces(word) == expected
        assert [r.label for r in expected if r.kind != "unknown"] == _reference(kind, tok, word)
        assert not any(r.label in ("[PAD]", "[CLS]", "[SEP]", "<|endoftext|>", "<s>") for r in expected)
    # the view's own tokenizer is left as the checkpoint has it: extend saves it
    assert padded.backend.padding is not None and padded.backend.truncation is not None
    assert padded.encoder.padding is None and padded.encoder.truncation is None
    assert any("padding/truncation are switched off" in n for n in padded.notes)
    assert not any("padding" in n for n in plain.notes)


def _reference(kind: str, tok, word: str) -> list[str]:
    """What transformers' own tokenizer gives, as readable labels."""
    from embgraft.hf.tokenizer import byte_level_decode

    tokens = tok.tokenize(word)
    if kind == "gpt2":
        return [byte_level_decode(t).decode("utf-8", "backslashreplace") for t in tokens]
    if kind == "bert":
        return [t.removeprefix("##") for t in tokens if t != "[UNK]"]
    return [t for t in tokens if t != "▁"]


def test_batch_pieces_equal_one_at_a_time(checkpoint):
    kind, path, tok, plain, padded = checkpoint
    words = ["北京大学生", "猫在公园", "北", "playing", "猫狗"]
    assert padded.pieces_batch(words) == [plain.pieces(w) for w in words]


def test_unknown_pieces_are_named_and_cover_nothing(tmp_path, ck):
    ck.build_bert(tmp_path)
    view = SourceTokenizer.from_dir(tmp_path)
    refs = view.pieces("猫北")
    assert [(r.label, r.kind, r.n_chars) for r in refs] == [("猫", "unknown", 0), ("北", "row", 1)]
    assert refs[0].id == view.unk_id


def test_byte_pieces_are_marked(tmp_path, ck):
    ck.build_gpt2(tmp_path)
    view = SourceTokenizer.from_dir(tmp_path)
    cat = view.pieces("猫")  # never seen in training: three byte symbols
    assert [r.kind for r in cat] == ["bytes"] * 3 and sum(r.n_chars for r in cat) == 1
    assert all(r.kind == "row" for r in view.pieces("北京大学生"))  # whole characters are rows


def test_normalisers_that_change_the_text_are_recorded():
    from tokenizers import Tokenizer, models, normalizers

    tk = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    assert any("lower-cases and strips accents" in n for n in SourceTokenizer(tk).notes)
    tk.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    assert any("lower-cases and applies NFKC" in n for n in SourceTokenizer(tk).notes)
    tk.normalizer = None
    assert SourceTokenizer(tk).notes == []
