"""Output and input rows of a real Chinese BERT, m3e-small (issue 17), checked against transformers.

The model is fetched by ``make models`` into ``.cache/models/m3e-small`` (``bench/fetch_m3e.py``;
non-commercial research licence: tests and benchmarks only). Without it these tests skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

M3E = Path(__file__).resolve().parents[2] / ".cache" / "models" / "m3e-small"
if not (M3E / "config.json").is_file():
    pytest.skip(f"m3e-small not found at {M3E} (run `make models`)", allow_module_level=True)

import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from embgraft.grafting.cascade import graft  # noqa: E402
from embgraft.hf.encoder import ContextualConfig  # noqa: E402
from embgraft.sources.checkpoint import CheckpointSource  # noqa: E402
from embgraft.text.vocab import Vocab  # noqa: E402

CHARS = ["北", "京", "股", "球"]
WORD = "基金经理"


@pytest.fixture(scope="module")
def reference():
    tok = AutoTokenizer.from_pretrained(str(M3E))
    model = AutoModel.from_pretrained(str(M3E), dtype=torch.float32).eval()

    def pooled(text: str) -> np.ndarray:
        """The last hidden state averaged over the text's own pieces ([CLS] and [SEP] left out)."""
        with torch.no_grad():
            h = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
        return h[1:-1].mean(0).numpy()

    return tok, model, pooled


def test_output_rows_are_the_pooled_last_hidden_state(reference):
    tok, _, pooled = reference
    assert tok.tokenize(WORD) == list(WORD)  # BERT-Chinese splits CJK: the word is four pieces
    src = CheckpointSource(M3E, rows="output", progress=False,
                           contextual=ContextualConfig(pool="mean", scale_to="none", device="cpu"))
    got = src.lookup(CHARS + [WORD])
    assert src.row_method == "contextual:mean@4"
    for text in CHARS + [WORD]:
        np.testing.assert_allclose(got[text], pooled(text), rtol=1e-4, atol=1e-5, err_msg=text)


def test_grafted_output_rows_are_scaled_pooled_states(reference):
    """Through the graft (the path ``graft --rows output`` takes): each row is the pooled state
    times one factor, the one that matches the rows' mean norm to their input rows' (checked on a
    tiny checkpoint in tests/sources/test_checkpoint_output.py)."""
    _, _, pooled = reference
    vocab = Vocab.from_tokens(CHARS + [WORD], counts=[5, 4, 3, 2, 1])
    src = CheckpointSource(M3E, rows="output", progress=False, contextual=ContextualConfig(device="cpu"))
    result = graft(vocab, src, normalise=(), progress=False)
    factor = src.scan.contextual["scale_factor"]
    prov = dict(zip(vocab.tokens, result.provenance))
    for text in CHARS + [WORD]:
        assert prov[text].method == "contextual:mean@4", text
        np.testing.assert_allclose(result.weights[vocab.index(text)], pooled(text) * factor,
                                   rtol=1e-4, atol=1e-5, err_msg=text)
    assert factor > 0 and src.scan.contextual["scale_reference"].startswith("input rows of the")


def test_input_rows_are_the_embedding_table_rows_exactly(reference):
    tok, model, _ = reference
    table = model.get_input_embeddings().weight.detach().numpy()
    src = CheckpointSource(M3E, progress=False)  # rows="input", the default
    got = src.lookup(CHARS + [WORD])
    assert set(got) == set(CHARS)  # a word is no entry of the table: the graft composes it
    for ch in CHARS:
        assert np.array_equal(got[ch], table[tok.convert_tokens_to_ids(ch)]), ch
    vocab = Vocab.from_tokens(CHARS + [WORD], counts=[5, 4, 3, 2, 1])
    result = graft(vocab, CheckpointSource(M3E, progress=False), normalise=(), progress=False)
    prov = dict(zip(vocab.tokens, result.provenance))
    for ch in CHARS:
        assert prov[ch].method == "exact"
        assert np.array_equal(result.weights[vocab.index(ch)], table[tok.convert_tokens_to_ids(ch)]), ch
    assert prov[WORD].method == "composed:mean"
    composed = table[tok.convert_tokens_to_ids(list(WORD))].astype(np.float64).mean(0).astype(np.float32)
    np.testing.assert_allclose(result.weights[vocab.index(WORD)], composed, rtol=0, atol=1e-7)


def test_rows_in_the_corpus_context_are_the_mean_over_the_occurrences(reference):
    """``context="corpus"``: 基金经理 appears in two titles; its row is the mean, over both, of the
    last hidden states of its four pieces there (each title run alone through transformers)."""
    tok, model, _ = reference
    texts = ["基金经理看好下半年股市", "新基金经理上任", "北京下雪"]
    src = CheckpointSource(M3E, rows="output", progress=False, contexts=texts,
                           contextual=ContextualConfig(context="corpus", scale_to="none", device="cpu"))
    got = src.lookup([WORD, "北京", "足球"])
    means = []
    for text in texts[:2]:
        with torch.no_grad():
            h = model(**tok(text, return_tensors="pt")).last_hidden_state[0, 1:-1]
        start = text.index(WORD)
        means.append(h[start:start + len(WORD)].mean(0))
    np.testing.assert_allclose(got[WORD], torch.stack(means).mean(0).numpy(), rtol=1e-4, atol=1e-5)
    assert (src.method_of(WORD), src.method_of("北京"), src.method_of("足球")) == (
        "contextual:corpus@4", "contextual:corpus@4", "contextual:mean@4")  # 足球 appears nowhere: alone
