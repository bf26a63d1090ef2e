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
