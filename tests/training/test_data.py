import numpy as np
import pytest

from embgraft.training.batches import batch_order
from embgraft.training.data import LabelSet, read_examples, stratified_split
from embgraft.training.encode import TextEncoder, encode
from embgraft.errors import ConfigError, MalformedFileError
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_examples_keeps_line_numbers(tmp_path):
    ex = read_examples(write(tmp_path / "a.tsv", "好电影\t1\n\n烂片\t0\n"))
    assert ex.texts == ["好电影", "烂片"] and ex.labels == ["1", "0"] and ex.lines == [1, 3]


@pytest.mark.parametrize("content, line, problem", [
    ("好\t1\n坏\t\n", 2, "no label"),
    ("好\t1\n \t0\n", 2, "empty text"),
])
def test_bad_row_names_file_and_line(tmp_path, content, line, problem):
    path = write(tmp_path / "bad.tsv", content)
    with pytest.raises(MalformedFileError, match=rf"bad.tsv:{line}: {problem}"):
        read_examples(path)
    ex = read_examples(path, on_bad_row="skip")
    assert ex.texts == ["好"] and ex.n_skipped == 1 and ex.skipped == [f"{path}:{line}: {problem}"]


def test_jsonl_and_csv_columns(tmp_path):
    j = read_examples(write(tmp_path / "a.jsonl", '{"t": "甲", "y": 2}\n{"t": "乙", "y": "x"}\n'),
                      text_column="t", label_column="y")
    assert j.texts == ["甲", "乙"] and j.labels == ["2", "x"]
    c = read_examples(write(tmp_path / "a.csv", "text,label\n丙,a\n\"丁,戊\",b\n"))
    assert c.texts == ["丙", "丁,戊"] and c.labels == ["a", "b"]


def test_unseen_dev_label_is_an_error_at_its_line(tmp_path):
    labels = LabelSet.discover(read_examples(write(tmp_path / "t.tsv", "a\tpos\nb\tneg\n")))
    assert labels.names == ["neg", "pos"]
    dev = read_examples(write(tmp_path / "d.tsv", "c\tpos\nd\tneutral\n"))
    with pytest.raises(MalformedFileError, match=r"d.tsv:2: label 'neutral' is not one of the 2"):
        labels.encode(dev)
    ids, kept = labels.encode(dev, on_bad_row="skip")
    assert ids.tolist() == [1] and kept.texts == ["c"] and kept.n_skipped == 1


def test_numeric_labels_sort_naturally_and_map_to_class_names(tmp_path):
    ex = read_examples(write(tmp_path / "t.tsv", "".join(f"x\t{i}\n" for i in (10, 2, 1, 0, 3, 4, 5, 6, 7, 8, 9))))
    assert LabelSet.discover(ex).names == [str(i) for i in range(11)]
    names = LabelSet.load(write(tmp_path / "class.txt", "finance\nsports\n"))
    ids, _ = names.encode(read_examples(write(tmp_path / "u.tsv", "x\t1\ny\tfinance\n")))
    assert ids.tolist() == [1, 0]


def test_labelset_rejects_duplicates_and_single_class():
    with pytest.raises(ConfigError, match=r"repeated class names: \['a'\]"):
        LabelSet(["a", "b", "a"])
    with pytest.raises(ConfigError, match="at least 2 classes, found 1"):
        LabelSet(["a"])


def test_stratified_split_keeps_class_shares(tmp_path):
    rows = "".join(f"t{i}\t{'a' if i % 4 else 'b'}\n" for i in range(200))
    train, dev, test = stratified_split(read_examples(write(tmp_path / "all.tsv", rows)), [0.8, 0.1, 0.1], seed=0)
    assert (len(train), len(dev), len(test)) == (160, 20, 20)
    assert dev.labels.count("b") == 5 and test.labels.count("b") == 5
    assert not set(train.texts) & set(dev.texts) and not set(dev.texts) & set(test.texts)
    again = stratified_split(read_examples(tmp_path / "all.tsv"), [0.8, 0.1, 0.1], seed=0)
    assert again[1].texts == dev.texts


def test_encoder_follows_recipe_with_ngrams_and_max_len():
    vocab = Vocab.from_tokens(["a", "b", "c", "ab", "bc"])
    enc = TextEncoder(vocab, Recipe(level="char", lowercase=True, max_len=2), ngrams=2)
    # tokens cut to max_len, n-grams of the kept tokens ("bc" starts past the cut)
    assert enc.encode("ABcx") == [vocab.index("a"), vocab.index("b"), vocab.index("ab")]
    whole = TextEncoder(vocab, Recipe(level="char", lowercase=True, max_len=4), ngrams=2)
    # unknown bigram "cx" dropped, "x" -> <unk>
    assert whole.encode("ABcx") == [vocab.index(c) for c in "abcx"] + [vocab.index("ab"), vocab.index("bc")]
    data = encode(["ab", "c", "zz"], np.array([0, 1, 0]), TextEncoder(vocab, Recipe(level="char")), min_len=3)
    assert data.ids.tolist() == [[2, 3, 0], [4, 0, 0], [1, 1, 0]] and data.lengths.tolist() == [2, 1, 2]


def test_batch_order_is_a_permutation_fixed_by_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    a = batch_order(lengths, batch_size=32, shuffle=True, seed=3, epoch=1)
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert all(np.array_equal(x, y) for x, y in zip(a, batch_order(lengths, batch_size=32, shuffle=True,
                                                                   seed=3, epoch=1)))
    b = batch_order(lengths, batch_size=32, shuffle=True, seed=3, epoch=2)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))
    # bucketing: padding inside a batch is far below that of random batches
    waste = np.mean([lengths[i].max() - lengths[i].mean() for i in a])
    assert waste < 5
    # length_bucket 1: plain shuffled batches, a permutation all the same, with random batches' padding
    plain = batch_order(lengths, batch_size=32, shuffle=True, seed=3, epoch=1, bucket=1)
    assert sorted(np.concatenate(plain).tolist()) == list(range(1000))
    assert np.mean([lengths[i].max() - lengths[i].mean() for i in plain]) > 15


def test_batches_pad_to_min_len_and_a_multiple_with_the_pad_id():
    from embgraft.training.batches import batches
    from embgraft.training.encode import EncodedSet

    ids = np.array([[5, 6, 7, 0, 0, 0, 0], [8, 9, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    data = EncodedSet(ids, np.array([3, 2, 7]), np.array([0, 1, 0]), pad_id=0)
    (short, _, _, _), = batches(data, [np.array([0, 1])], min_len=1, multiple=1)
    assert short.shape == (2, 3)
    (rounded, _, _, _), = batches(data, [np.array([0, 1])], multiple=4)
    assert rounded.tolist() == [[5, 6, 7, 0], [8, 9, 0, 0]]
    (past, labels, _, _), = batches(data, [np.array([2, 1])], multiple=4)  # past the matrix's 7 columns
    assert past.shape == (2, 8) and past[0].tolist() == [1, 2, 3, 4, 5, 6, 7, 0] and labels.tolist() == [0, 1]


def test_ngram_and_word_ids_come_from_the_kept_tokens_only():
    """[d10b p07c] a text's ids are bounded by max_len: n-grams and words of the cut text only."""
    vocab = Vocab.from_tokens(list("中国人民") + ["中国", "国人", "人民", "中国人民"])
    enc = TextEncoder(vocab, Recipe(level="char", max_len=3), ngrams=2, words=True)
    short = TextEncoder(vocab, Recipe(level="char", max_len=99), ngrams=2, words=True)
    assert enc.encode("中国人") == short.encode("中国人")  # within max_len: as before
    ids = enc.encode("中国 人民" * 10_000)
    assert ids[:3] == vocab.encode(list("中国人")) and len(ids) <= 3 + 2 + 1
    assert vocab.index("人民") not in ids  # its characters were cut
