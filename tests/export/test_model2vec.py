"""The Model2Vec format both ways, against the ``model2vec`` package: a static model as a graft
source (rows bit-identical to ``StaticModel``'s, quantised vocabularies included) and a graft or
run written as a directory ``StaticModel.from_pretrained`` loads."""

from __future__ import annotations

import numpy as np
import pytest

from embgraft.cli import main
from embgraft.errors import ConfigError
from embgraft.export.model2vec import export_model2vec
from embgraft.grafting.cascade import graft
from embgraft.grafting.result import GraftResult
from embgraft.sources import detect_kind, open_source
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab

model2vec = pytest.importorskip("model2vec")
tokenizers = pytest.importorskip("tokenizers")

CHARS = "球赛队员跑跳股市银行利率北京大学"


def static_model(path, *, quantised: bool):
    """A char-level StaticModel over [PAD] [UNK] + CHARS + the word 北京, saved to ``path``; with
    ``quantised``, 6 shared rows, a mapping and per-token weights (model2vec's quantised layout)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    tokens = ["[PAD]", "[UNK]"] + list(CHARS) + ["北京"]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    rng = np.random.default_rng(3)
    if quantised:
        emb = rng.normal(size=(6, 8)).astype(np.float32)
        mapping = rng.integers(0, 6, size=len(tokens))
        weights = rng.uniform(0.5, 2, size=len(tokens)).astype(np.float32)
        sm = model2vec.StaticModel(emb, tok, weights=weights, token_mapping=mapping)
    else:
        sm = model2vec.StaticModel(rng.normal(size=(len(tokens), 8)).astype(np.float32), tok)
    sm.save_pretrained(path)
    return model2vec.StaticModel.from_pretrained(path), tokens


@pytest.mark.parametrize("quantised", [False, True])
def test_a_static_model_grafts_with_rows_bit_identical_to_staticmodel(tmp_path, quantised):
    sm, tokens = static_model(tmp_path / "m2v", quantised=quantised)
    assert detect_kind(tmp_path / "m2v") == "model2vec"
    corpus = tmp_path / "c.txt"
    corpus.write_text("北京 大学\n球赛跑跳\n猫\n", encoding="utf-8")
    vocab = Vocab.from_corpus(corpus, level="space")
    result = graft(vocab, str(tmp_path / "m2v"))
    ids = {t: i for i, t in enumerate(tokens)}
    rows = {t: sm._encode_helper([ids[t]])[0] for t in ("北京",)}  # the model's own row for the word
    assert np.array_equal(result.weights[vocab.index("北京")], rows["北京"])
    assert result.provenance[vocab.index("北京")].method == "exact"
    # 大学 is not a token: composed from its characters' rows, as StaticModel would pool them
    assert result.provenance[vocab.index("大学")].method.startswith("composed:")
    expected = np.mean([sm._encode_helper([ids[c]])[0] for c in "大学"], axis=0)
    np.testing.assert_allclose(result.weights[vocab.index("大学")], expected, rtol=1e-6)
    assert result.provenance[vocab.index("猫")].method.startswith("init:")


def test_a_checkpoint_directory_is_not_taken_for_model2vec(tmp_path, ck):
    ck.build_bert(tmp_path / "bert")
    assert detect_kind(tmp_path / "bert") == "checkpoint"


def test_open_source_refuses_a_directory_without_embeddings(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "tokenizer.json").write_text("{}", encoding="utf-8")
    with pytest.raises(Exception, match="not a Model2Vec directory"):
        open_source(tmp_path / "d", kind="model2vec")


def test_a_char_graft_exports_to_a_staticmodel_that_encodes_as_the_graft(tiny_task, tmp_path):
    out = tmp_path / "m2v"
    meta = export_model2vec(tiny_task["graft"], out)
    g = GraftResult.load(tiny_task["graft"])
    sm = model2vec.StaticModel.from_pretrained(out)
    assert meta["n_tokens"] == len(g.vocab) and sm.dim == g.weights.shape[1]
    assert np.array_equal(sm.embedding, g.weights.astype(np.float32))
    assert list(sm.tokens) == g.vocab.tokens
    # "球 赛" -> the characters 球, 赛 (whitespace dropped, as the char recipe drops it)
    assert sm.tokenize(["球 赛"]) == [[g.vocab.index("球"), g.vocab.index("赛")]]
    want = g.weights[[g.vocab.index("球"), g.vocab.index("赛")]].mean(axis=0)
    np.testing.assert_allclose(sm.encode(["球 赛"])[0], want, rtol=1e-6)


def test_a_run_exports_its_trained_rows(tiny_task, tmp_path):
    from embgraft.training import rundir
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), graft=str(tiny_task["graft"]),
                      model="bag", epochs=1, batch_size=16, lr=0.05, patience=None, tensorboard="off")
    run = train(cfg, out=tmp_path / "run", progress=False, log=lambda *a, **k: None).out
    assert main(["export", str(run), "--format", "model2vec", "--out", str(tmp_path / "m2v")]) == 0
    sm = model2vec.StaticModel.from_pretrained(tmp_path / "m2v")
    assert np.array_equal(sm.embedding, rundir.load_model_state(run)["embedding.weight"].numpy())
    assert not np.array_equal(sm.embedding, GraftResult.load(tiny_task["graft"]).weights)  # trained, not grafted


def test_a_jieba_vocabulary_is_refused_with_the_reason(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("北京大学的学生\n", encoding="utf-8")
    vocab = Vocab.from_corpus(corpus, recipe=Recipe(level="word"))
    vec = tmp_path / "v.txt"
    words = vocab.tokens[2:]
    vec.write_text(f"{len(words)} 2\n" + "".join(f"{w} 0.1 0.2\n" for w in words), encoding="utf-8")
    graft(vocab, str(vec)).save(tmp_path / "g")
    with pytest.raises(ConfigError, match="jieba's segmentation has no tokenizers"):
        export_model2vec(tmp_path / "g", tmp_path / "out")
    assert main(["export", str(tmp_path / "g"), "--format", "model2vec", "--out", str(tmp_path / "out")]) == 2
    assert "jieba" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_force_replaces_only_a_model2vec_export(tiny_task, tmp_path):
    out = tmp_path / "m2v"
    export_model2vec(tiny_task["graft"], out)
    export_model2vec(tiny_task["graft"], out, force=True)
    from embgraft.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match="not an export directory of format embgraft-model2vec"):
        export_model2vec(tiny_task["graft"], tiny_task["graft"], force=True)


def test_words_a_distilled_model_added_are_found_in_its_normalizers_form(tmp_path):
    """``distill(vocabulary=[...])`` over a Chinese BERT stores an added word as its normalizer
    writes it (基金 as '基  金'): the source finds it under the word, with the model's own row."""
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "基", "金", "经", "理"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_tokens([AddedToken("基  金", normalized=True)])
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(tok.get_vocab_size(), 4)).astype(np.float32)
    model2vec.StaticModel(emb, tok).save_pretrained(tmp_path / "m2v")
    sm = model2vec.StaticModel.from_pretrained(tmp_path / "m2v")
    src = open_source(tmp_path / "m2v")
    got = src.lookup(["基金", "经", "经理"])
    word_id = tok.token_to_id("基  金")
    assert np.array_equal(got["基金"], sm._encode_helper([word_id])[0]) and "经理" not in got
    assert src.n_by_normalizer == 1 and any("normalizer's form" in n for n in src.scan.notes)
