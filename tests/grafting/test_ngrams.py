import numpy as np
import pytest

from embgraft.training.encode import TextEncoder
from embgraft.errors import ConfigError
from embgraft.grafting.ngrams import NGRAM_METHOD, WORD_METHOD, add_ngram_rows
from embgraft.text.tokenize import Recipe

TEXTS = ["人工智能改变世界", "中华人民共和国成立", "人工智能的未来"]


def char_graft(tmp_path, texts=TEXTS):
    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    chars = sorted(set("".join(texts)))
    rng = np.random.default_rng(0)
    vec = tmp_path / "vectors.txt"
    vec.write_text(f"{len(chars)} 3\n" + "".join(f"{c} " + " ".join(f"{x:.3f}" for x in rng.normal(size=3)) + "\n"
                                                   for c in chars), encoding="utf-8")
    result = graft(Vocab.from_corpus(corpus, level="char"), str(vec))
    result.recipe = Recipe(level="char")
    return result


def test_word_rows_are_the_mean_of_their_characters_and_follow_the_ngrams(tmp_path):
    result = char_graft(tmp_path)
    grown = add_ngram_rows(result, TEXTS, n=2, words=True)
    vocab, n_chars = grown.vocab, len(result.vocab)
    methods = [p.method for p in grown.provenance[n_chars:]]
    n_bigrams = methods.count(NGRAM_METHOD)
    # jieba's words longer than two characters, after every bigram; shorter ones are bigrams already
    words = vocab.tokens[n_chars + n_bigrams:]
    assert set(words) == {"人工智能", "中华人民共和国"} and methods[n_bigrams:] == [WORD_METHOD] * 2
    i = vocab.index("人工智能")
    expected = np.mean([result.weights[result.vocab.index(c)] for c in "人工智能"], axis=0)
    assert np.allclose(grown.weights[i], expected, atol=1e-6)
    assert grown.provenance[i].source_tokens == tuple("人工智能")
    assert vocab.counts[i] == 2
    # a word seen once is dropped by min_count 2, like an n-gram
    assert "中华人民共和国" not in add_ngram_rows(result, TEXTS, n=2, min_count=2, words=True).vocab


def test_encoder_appends_word_ids_after_the_ngram_ids(tmp_path):
    grown = add_ngram_rows(char_graft(tmp_path), TEXTS, n=2, words=True)
    vocab = grown.vocab
    plain = TextEncoder(vocab, Recipe(level="char"), ngrams=2).encode("人工智能")
    ids = TextEncoder(vocab, Recipe(level="char"), ngrams=2, words=True).encode("人工智能")
    assert ids == plain + [vocab.index("人工智能")]
    assert plain == vocab.encode(list("人工智能")) + [vocab.index(b) for b in ("人工", "工智", "智能")]


def test_word_rows_need_a_character_graft_and_ngrams(tmp_path):
    from embgraft.training.config import TrainConfig

    result = char_graft(tmp_path)
    result.recipe = Recipe(level="word")
    with pytest.raises(ConfigError, match="word rows are for character vocabularies"):
        add_ngram_rows(result, TEXTS, n=2, words=True)
    with pytest.raises(ConfigError, match="words joins the n-gram rows: give ngrams >= 2"):
        TrainConfig(train="t.tsv", dev="d.tsv", model="bag", words=True)


def test_a_bag_with_word_rows_and_max_pooling_serves_what_it_trained(tmp_path):
    import json

    from embgraft.training.classifier import Classifier
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    tech = ["人工智能改变世界", "人工智能芯片发布", "新款智能手机上市", "芯片工艺突破"]
    sport = ["足球比赛冠军诞生", "篮球联赛开幕", "足球联赛冠军", "运动员打破纪录"]
    rows = [(t, "科技") for t in tech] + [(t, "体育") for t in sport]
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.tsv").write_text("".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    graft = char_graft(tmp_path, [t for t, _ in rows]).save(tmp_path / "graft")
    cfg = TrainConfig(train=str(tmp_path / "train.tsv"), dev=str(tmp_path / "dev.tsv"),
                      test=str(tmp_path / "test.tsv"), graft=str(graft), model="bag", ngrams=2, words=True,
                      pooling="mean+max", epochs=2, batch_size=4, lr=0.05, seed=0, tensorboard="off")
    run = train(cfg, out=tmp_path / "run", progress=False, log=lambda *a, **k: None).out
    from embgraft.text.vocab import Vocab

    vocab = Vocab.load(run / "vocab.txt")
    assert "人工智能" in vocab and "运动员" in vocab  # word rows were added and saved with the run
    clf = Classifier.load(run)
    assert clf.encoder.split_words is not None
    ids = clf.encoder.encode("人工智能芯片发布")
    assert clf.encoder.vocab.index("人工智能") in ids
    proba = clf.predict_proba([t for t, _ in rows])
    accuracy = float(np.mean([clf.labels.names[j] == y for j, (_, y) in zip(proba.argmax(1), rows)]))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert accuracy == metrics["test"]["accuracy"]


def test_words_are_split_from_the_text_as_the_recipe_normalises_it():
    from embgraft.grafting.ngrams import word_splitter

    assert word_splitter(2, Recipe(level="char", lowercase=True))("OPPO发布新手机") == ["oppo", "新手机"]
    assert word_splitter(2, Recipe(level="char"))("OPPO发布新手机") == ["OPPO", "新手机"]
    assert word_splitter(3, Recipe(level="char"))("人工智能改变世界") == ["人工智能"]
    assert word_splitter(4, Recipe(level="char"))("人工智能改变世界") == []
