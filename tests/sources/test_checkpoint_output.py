"""Output (contextual) rows of a checkpoint: equal to the pooled hidden state computed with
transformers directly, independent of the batch, scale-matched to the input table (issue 17)."""

import numpy as np
import pytest
import torch

from embgraft.errors import ConfigError
from embgraft.hf.encoder import ContextualConfig, layer_label
from embgraft.sources.checkpoint import CheckpointSource


@pytest.fixture(scope="module")
def bert(tmp_path_factory, ck):
    d = tmp_path_factory.mktemp("bert")
    model, tok = ck.build_bert(d)
    return d, model, tok


def _reference(model, tok, text, pool):
    with torch.no_grad():
        h = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
    return (h[1:-1].mean(0) if pool == "mean" else h[0] if pool == "cls" else h.mean(0)).numpy()


@pytest.mark.parametrize("pool", ["mean", "cls", "mean-all"])
def test_output_row_is_the_pooled_hidden_state(bert, pool):
    d, model, tok = bert
    src = CheckpointSource(d, rows="output", progress=False,
                           contextual=ContextualConfig(pool=pool, scale_to="none", device="cpu"))
    got = src.lookup(["北京", "中国人民"])
    assert src.row_method == f"contextual:{pool}@1"
    for text in ("北京", "中国人民"):
        np.testing.assert_allclose(got[text], _reference(model, tok, text, pool), rtol=1e-5, atol=1e-6)


def test_row_does_not_depend_on_its_batch(bert):
    d, _, _ = bert
    cfg = ContextualConfig(scale_to="none", device="cpu", batch_size=2)
    alone = CheckpointSource(d, rows="output", contextual=cfg, progress=False).lookup(["你"])["你"]
    crowd = CheckpointSource(d, rows="output", contextual=cfg, progress=False).lookup(
        ["北京大学生中国人民", "你", "我们的天气很好", "公园"])["你"]
    np.testing.assert_allclose(alone, crowd, rtol=1e-5, atol=1e-6)


def test_scale_matched_to_the_input_rows(bert):
    d, model, _ = bert
    src = CheckpointSource(d, rows="output", progress=False, contextual=ContextualConfig(device="cpu"))
    got = src.lookup(["北", "京"])
    table = model.get_input_embeddings().weight.detach().numpy()
    ids = [src.tokenizer.exact_id(t) for t in "北京"]
    want = np.linalg.norm(table[ids], axis=1).mean()
    assert np.linalg.norm(np.stack([got["北"], got["京"]]), axis=1).mean() == pytest.approx(want, rel=1e-5)
    assert src.scan.contextual["scale_factor"] > 0


def test_contextual_options_need_output_rows(bert):
    with pytest.raises(ConfigError, match="rows='output'"):
        CheckpointSource(bert[0], contextual=ContextualConfig())
    with pytest.raises(ConfigError, match="pool must be one of.*batch_size must be"):
        ContextualConfig(pool="max", batch_size=0)


def test_gpt2_last_token(tmp_path, ck):
    model, tok = ck.build_gpt2(tmp_path)
    src = CheckpointSource(tmp_path, rows="output", progress=False,
                           contextual=ContextualConfig(pool="last", scale_to="none", device="cpu", batch_size=3))
    got = src.lookup(["北京", "我们是中国人", "你好"])
    assert src.row_method == "contextual:last@1"
    for text in ("北京", "我们是中国人", "你好"):
        with torch.no_grad():
            h = model.transformer(**tok(text, return_tensors="pt")).last_hidden_state[0]
        np.testing.assert_allclose(got[text], h[-1].numpy(), rtol=1e-5, atol=1e-5)


def _tiny_qwen2(path, ck):
    """A tiny Qwen2 (the decoder family of Qwen 1.5-2.5) on a byte-level BPE, as Qwen's is (the tiny
    GPT-2's)."""
    import transformers

    _, tok = ck.build_gpt2(path)
    config = transformers.Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config).eval()
    model.save_pretrained(path)
    return model, tok


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_decoder_last_token_rows(tmp_path, ck, family):
    model, tok = ck.build_llama(tmp_path) if family == "llama" else _tiny_qwen2(tmp_path, ck)
    src = CheckpointSource(tmp_path, rows="output", progress=False,
                           contextual=ContextualConfig(pool="last", scale_to="none", device="cpu", batch_size=2))
    texts = ["北京", "我们是中国人", "你好", "天气"]
    got = src.lookup(texts)
    for text in texts:
        with torch.no_grad():
            h = model.model(**tok(text, return_tensors="pt")).last_hidden_state[0]
        np.testing.assert_allclose(got[text], h[-1].numpy(), rtol=1e-4, atol=1e-5)


def test_mean_of_the_last_k_layers(tmp_path, ck):
    model, tok = _tiny_qwen2(tmp_path, ck)
    src = CheckpointSource(tmp_path, rows="output", progress=False,
                           contextual=ContextualConfig(pool="last", last_k=2, scale_to="none", device="cpu"))
    got = src.lookup(["北京大学"])["北京大学"]
    with torch.no_grad():
        states = model.model(**tok("北京大学", return_tensors="pt"), output_hidden_states=True).hidden_states
    want = torch.stack([states[-1][0, -1], states[-2][0, -1]]).mean(0).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert src.row_method.startswith("contextual:last@")


def test_last_k_counts_the_embedding_output_and_no_more():
    # a 4-layer model has five hidden states: 0 (the embedding output) .. 4
    assert [layer_label(-1, k, 4) for k in (1, 2, 5)] == ["4", "3-4", "0-4"]
    with pytest.raises(ConfigError, match="last_k 6 is more hidden states than the model has: 0..4"):
        layer_label(-1, 6, 4)


def test_sif_weights_each_contextual_row_by_its_corpus_share(bert, tmp_path):
    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab

    corpus = tmp_path / "c.txt"
    corpus.write_text("北京北京北京北\n京中国\n", encoding="utf-8")
    vocab = Vocab.from_corpus(corpus, level="char")
    plain = graft(vocab, [CheckpointSource(bert[0], rows="output", progress=False,
                                           contextual=ContextualConfig(scale_to="none", device="cpu"))])
    a = 1e-3
    weighted = graft(vocab, [CheckpointSource(bert[0], rows="output", progress=False,
                                              contextual=ContextualConfig(scale_to="none", device="cpu", sif=a))])
    total = sum(vocab.counts)
    for tok in ("北", "京", "中"):
        i = vocab.tokens.index(tok)
        p = vocab.counts[i] / total
        np.testing.assert_allclose(weighted.weights[i], plain.weights[i] * (a / (a + p)), rtol=1e-6)
    assert any("SIF weighting a=0.001 on" in n for n in weighted.report.notes)


def test_output_rows_are_asked_for_the_vocabulary_first_and_pieces_only_for_the_rest(bert, tmp_path):
    """Each key is an encoder run: a graft asks for the vocabulary's own entries, then for the
    normalised forms and pieces of only those the encoder could not give a row."""
    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab

    corpus = tmp_path / "c.txt"
    corpus.write_text("北京 大学生\n中国人民 天气\n", encoding="utf-8")
    vocab = Vocab.from_corpus(corpus, level="space")
    src = CheckpointSource(bert[0], rows="output", progress=False, contextual=ContextualConfig(device="cpu"))
    asked = []
    lookup = src.lookup
    src.lookup = lambda keys: (asked.append(set(keys)), lookup(keys))[1]
    result = graft(vocab, [src])
    words = {"北京", "大学生", "中国人民", "天气"}
    assert len(asked) == 1 and words <= asked[0] and not ({"北", "京", "大", "学", "生"} & asked[0])
    assert {result.provenance[vocab.tokens.index(w)].stage for w in words} == {"contextual"}
    assert src.scan.contextual["n_entries"] >= 4 and src.scan.contextual["scale_factor"] > 0


# -- context corpus: an entry's row is its mean over the places it appears ------------------------------
CONTEXTS = ["北京大学生", "我们的天气很好", "中国人民在北京", "公园"]


def _in_context_reference(model, tok, entry, texts):
    """The mean over every occurrence of ``entry`` in ``texts`` of its pieces' last hidden states,
    each text run alone (a tiny BERT-Chinese: one piece per character)."""
    means = []
    for text in texts:
        with torch.no_grad():
            h = model(**tok(text, return_tensors="pt")).last_hidden_state[0, 1:-1]
        start = text.find(entry)
        while start != -1:
            means.append(h[start:start + len(entry)].mean(0))
            start = text.find(entry, start + 1)
    return torch.stack(means).mean(0).numpy()


def test_in_context_row_is_the_mean_over_its_occurrences(bert):
    d, model, tok = bert
    src = CheckpointSource(d, rows="output", progress=False, contexts=CONTEXTS,
                           contextual=ContextualConfig(context="corpus", scale_to="none", device="cpu", batch_size=2))
    got = src.lookup(["北京", "京", "天气", "中国人民"])
    for entry in ("北京", "京", "天气", "中国人民"):
        np.testing.assert_allclose(got[entry], _in_context_reference(model, tok, entry, CONTEXTS),
                                   rtol=1e-5, atol=1e-6)
    assert src.method_of("北京") == "contextual:corpus@1"
    # two texts hold 北京: its row is not the row of either text alone
    assert not np.allclose(got["北京"], _in_context_reference(model, tok, "北京", CONTEXTS[:1]), atol=1e-4)
    ctx = src.scan.contextual["in_context"]
    assert (ctx["n_entries"], ctx["n_texts"], ctx["n_occurrences"]) == (4, 3, 6)


def test_in_context_row_does_not_depend_on_its_batch_or_the_other_entries(bert):
    d, _, _ = bert
    rows = []
    for batch_size, entries in ((1, ["北京"]), (3, ["北京", "公园", "我们", "好"])):
        src = CheckpointSource(d, rows="output", progress=False, contexts=CONTEXTS,
                               contextual=ContextualConfig(context="corpus", scale_to="none", device="cpu",
                                                           batch_size=batch_size))
        rows.append(src.lookup(entries)["北京"])
    np.testing.assert_allclose(rows[0], rows[1], rtol=1e-5, atol=1e-6)


def test_an_entry_absent_from_the_corpus_runs_alone(bert):
    d, model, tok = bert
    src = CheckpointSource(d, rows="output", progress=False, contexts=CONTEXTS,
                           contextual=ContextualConfig(context="corpus", scale_to="none", device="cpu"))
    got = src.lookup(["北京", "你"])
    np.testing.assert_allclose(got["你"], _reference(model, tok, "你", "mean"), rtol=1e-5, atol=1e-6)
    assert (src.method_of("你"), src.method_of("北京")) == ("contextual:mean@1", "contextual:corpus@1")
    assert src.scan.contextual["n_entries"] == 1 and src.scan.contextual["in_context"]["n_entries"] == 1


def test_in_context_rows_of_a_decoder(tmp_path, ck):
    """Byte-level BPE: a piece may cover part of a character, or several; an occurrence starts and
    ends on piece boundaries, and its row is the mean of the pieces between."""
    model, tok = ck.build_gpt2(tmp_path)
    texts = ["我们是中国人", "北京欢迎你"]
    src = CheckpointSource(tmp_path, rows="output", progress=False, contexts=texts,
                           contextual=ContextualConfig(context="corpus", pool="last", scale_to="none", device="cpu"))
    got = src.lookup(["我们是中国人", "北京欢迎你"])
    for text in texts:
        with torch.no_grad():
            h = model.transformer(**tok(text, return_tensors="pt")).last_hidden_state[0]
        np.testing.assert_allclose(got[text], h.mean(0).numpy(), rtol=1e-5, atol=1e-5)
    assert src.method_of(texts[0]) == "contextual:corpus@1"


def test_context_corpus_needs_its_texts_and_they_need_it(bert):
    with pytest.raises(ConfigError, match="context corpus needs the corpus's texts"):
        CheckpointSource(bert[0], rows="output", contextual=ContextualConfig(context="corpus"))
    with pytest.raises(ConfigError, match="contexts are read only with"):
        CheckpointSource(bert[0], rows="output", contextual=ContextualConfig(), contexts=CONTEXTS)
    with pytest.raises(ConfigError, match="context must be one of.*context_pieces must be >= 2"):
        ContextualConfig(context="document", context_pieces=1)


def test_context_corpus_refuses_a_slow_tokenizer(bert):
    """Occurrences are found by the pieces' character offsets, which only a fast tokenizer gives."""
    from types import SimpleNamespace

    src = CheckpointSource(bert[0], rows="output", progress=False, contexts=CONTEXTS,
                           contextual=ContextualConfig(context="corpus", scale_to="none", device="cpu"))
    src.encoder.tokenizer = SimpleNamespace(is_fast=False)  # as a sentencepiece-only checkpoint's
    with pytest.raises(ConfigError, match="only a fast \\(tokenizers\\) tokenizer gives"):
        src.lookup(["北京"])


def test_graft_counts_rows_from_the_corpus_and_rows_alone(bert, tmp_path):
    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab

    corpus = tmp_path / "c.txt"
    corpus.write_text("北京 大学生\n中国人民 天气\n", encoding="utf-8")
    vocab = Vocab.from_corpus(corpus, level="space")
    texts = corpus.read_text(encoding="utf-8").splitlines()
    src = CheckpointSource(bert[0], rows="output", progress=False, contexts=texts[:1],
                           contextual=ContextualConfig(context="corpus", device="cpu"))
    result = graft(vocab, [src])
    methods = {w: result.provenance[vocab.tokens.index(w)].method for w in ("北京", "大学生", "中国人民", "天气")}
    assert methods == {"北京": "contextual:corpus@1", "大学生": "contextual:corpus@1",
                       "中国人民": "contextual:mean@1", "天气": "contextual:mean@1"}
    assert result.report.methods["contextual:corpus@1"]["n_types"] == 2
    assert result.report.methods["contextual:mean@1"]["n_types"] == 2
