from collections import Counter
from pathlib import Path

import pytest

from helpers.imports import assert_not_imported

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.files import escape_field, unescape_field
from embgraft.text.vocab import Vocab

THUCNEWS = Path(__file__).resolve().parents[3] / "shared" / "data" / "thucnews-10k"

# 今1 天3 气2 好3 不1: 天 and 好 tie at 3, and 天 appears first.
TEXTS = ["今天天气好", "天气不好", "好"]
ORDER = ["<pad>", "<unk>", "天", "好", "气", "今", "不"]


def char_lists(texts):
    return [list(t) for t in texts]


def test_build_golden_order_ids_and_counts():
    v = Vocab.build(char_lists(TEXTS), level="char")
    assert v.tokens == ORDER
    assert v.counts == [0, 0, 3, 3, 2, 1, 1]
    assert v.specials == ["<pad>", "<unk>"]
    assert (v.pad_id, v.unk_id, v.level) == (0, 1, "char")
    assert (v.n_corpus_tokens, v.n_oov_tokens) == (10, 0)
    assert len(v) == 7 and list(v) == ORDER
    assert "天" in v and "雨" not in v
    assert v.index("气") == 4 and v.index("雨") == 1
    assert v.token(3) == "好"
    assert v.encode(["今", "天", "下", "雨"]) == [5, 2, 1, 1]
    with pytest.raises(IndexError):
        v.token(7)


def test_build_from_counter_matches_token_lists():
    counter = Counter()
    for t in TEXTS:
        counter.update(t)
    assert Vocab.build(counter) == Vocab.build(char_lists(TEXTS))


def test_min_freq_counts_what_it_drops():
    v = Vocab.build(char_lists(TEXTS), min_freq=2)
    assert v.tokens == ["<pad>", "<unk>", "天", "好", "气"]
    assert (v.n_corpus_tokens, v.n_oov_tokens) == (10, 2)


def test_max_size_includes_specials():
    v = Vocab.build(char_lists(TEXTS), max_size=4)
    assert v.tokens == ["<pad>", "<unk>", "天", "好"]
    assert (v.n_corpus_tokens, v.n_oov_tokens) == (10, 4)


def test_extra_specials_follow_pad_and_unk():
    v = Vocab.build(char_lists(TEXTS), extra_specials=("<cls>",), max_size=5)
    assert v.tokens == ["<pad>", "<unk>", "<cls>", "天", "好"]
    assert v.specials == ["<pad>", "<unk>", "<cls>"]
    assert v.counts[:3] == [0, 0, 0]


def test_special_spelled_in_the_corpus_is_not_duplicated_or_oov():
    v = Vocab.build([["<unk>", "a"], ["a"]])
    assert v.tokens == ["<pad>", "<unk>", "a"]
    assert (v.n_corpus_tokens, v.n_oov_tokens) == (3, 0)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"min_freq": 0}, "min_freq must be an integer >= 1"),
        ({"max_size": 2}, "max_size must be an integer above the 2 specials"),
        ({"max_size": 3, "extra_specials": ("<cls>",)}, "above the 3 specials"),
        ({"specials": ("<pad>",)}, "must name the padding and unknown"),
        ({"extra_specials": ("<unk>",)}, "specials repeat a token"),
    ],
)
def test_build_rejects_bad_arguments(kwargs, problem):
    with pytest.raises(ConfigError, match=problem):
        Vocab.build(char_lists(TEXTS), **kwargs)


def test_build_keyword_only():
    with pytest.raises(TypeError):
        Vocab.build(char_lists(TEXTS), 2)  # type: ignore[misc]


def test_from_corpus_tsv_and_several_files(tmp_path):
    (tmp_path / "a.tsv").write_text("今天天气好\t1\n天气 不好\t0\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "好"}\n', encoding="utf-8")
    v = Vocab.from_corpus(tmp_path / "a.tsv")
    assert v.tokens == ["<pad>", "<unk>", "天", "气", "好", "今", "不"]
    assert v.counts == [0, 0, 3, 2, 2, 1, 1]
    both = Vocab.from_corpus([tmp_path / "a.tsv", tmp_path / "b.jsonl"], min_freq=2)
    assert both.tokens == ["<pad>", "<unk>", "天", "好", "气"]
    assert (both.level, both.n_corpus_tokens, both.n_oov_tokens) == ("char", 10, 2)


def test_from_corpus_word_level(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("我爱北京天安门\n北京欢迎你\n", encoding="utf-8")
    v = Vocab.from_corpus(p, level="word")
    assert v.tokens[:3] == ["<pad>", "<unk>", "北京"]
    assert v.counts[2] == 2 and v.level == "word"


def test_from_corpus_checks_every_file_before_counting(tmp_path):
    (tmp_path / "a.txt").write_text("好\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot tell the corpus format"):
        Vocab.from_corpus([tmp_path / "a.txt", tmp_path / "b.xml"])


def test_from_tokens_prepends_missing_specials_only():
    v = Vocab.from_tokens(["北京", "大学"], counts=[5, 3])
    assert v.tokens == ["<pad>", "<unk>", "北京", "大学"]
    assert v.counts == [0, 0, 5, 3]
    kept = Vocab.from_tokens(["北京", "<unk>", "<pad>"])
    assert kept.tokens == ["北京", "<unk>", "<pad>"]
    assert (kept.pad_id, kept.unk_id) == (2, 1)
    with pytest.raises(ConfigError, match="appears twice"):
        Vocab.from_tokens(["a", "b", "a"])
    with pytest.raises(ConfigError, match="2 counts given for 1 tokens"):
        Vocab.from_tokens(["a"], counts=[1, 2])


TRICKY = [
    "a\tb",
    "back\\slash",
    "\\t",
    "\u3000",
    " ",
    "Ａ１，",
    "line\nbreak",
    "cr\r",
    "\u2028",
    "\ufeff",
    "末尾\\",
]


def test_escape_round_trip():
    for token in TRICKY:
        assert unescape_field(escape_field(token)) == token
    assert escape_field("a\tb\\c\nd\re") == "a\\tb\\\\c\\nd\\re"


def test_save_golden_bytes_and_exact_round_trip(tmp_path):
    v = Vocab.build([TRICKY, ["Ａ１，"]], level="space")
    path = tmp_path / "vocab.txt"
    v.save(path)
    lines = path.read_bytes().decode("utf-8").split("\n")
    assert lines[0] == "#embgraft-vocab v1 level=space specials=2 n_corpus_tokens=12 n_oov_tokens=0"
    assert lines[1:5] == ["<pad>\t0", "<unk>\t0", "Ａ１，\t2", "a\\tb\t1"]
    assert lines[5:8] == ["back\\\\slash\t1", "\\\\t\t1", "\u3000\t1"]
    assert lines[-1] == ""  # ends with a newline
    assert len(lines) == 2 + len(v)
    loaded = Vocab.load(path)
    assert loaded == v
    assert loaded.tokens == v.tokens and loaded.counts == v.counts
    assert (loaded.pad_id, loaded.unk_id, loaded.n_corpus_tokens, loaded.level) == (
        0,
        1,
        12,
        "space",
    )


def test_round_trip_keeps_oov_counts_and_extra_specials(tmp_path):
    v = Vocab.build(char_lists(TEXTS), min_freq=2, extra_specials=("<cls>",), level="char")
    v.save(tmp_path / "v.txt")
    loaded = Vocab.load(tmp_path / "v.txt")
    assert loaded == v
    assert (loaded.specials, loaded.n_oov_tokens) == (["<pad>", "<unk>", "<cls>"], 2)


@pytest.mark.parametrize(
    ("body", "line_no", "problem"),
    [
        ("<pad>\t0\n<unk>\t0\n好\tmany\n", 4, "count 'many' is not a non-negative integer"),
        ("<pad>\t0\n<unk>\t0\n好\n", 4, "expected token<TAB>count, found 1 field"),
        ("<pad>\t0\n<unk>\t0\na\tb\t1\n", 4, "expected token<TAB>count, found 3 field"),
        ("<pad>\t0\n<unk>\t0\nbad\\x\t1\n", 4, "unknown escape"),
        ("<pad>\t0\n<unk>\t0\n好\t1\n好\t2\n", 5, "already on line 4"),
        ("<pad>\t0\n<unk>\t0\n\t1\n", 4, "empty token"),
    ],
)
def test_malformed_vocab_lines(tmp_path, body, line_no, problem):
    path = tmp_path / "v.txt"
    path.write_text("#embgraft-vocab v1 level=char specials=2\n" + body, encoding="utf-8")
    with pytest.raises(MalformedFileError, match=problem) as info:
        Vocab.load(path)
    assert info.value.line_no == line_no
    assert str(info.value).startswith(f"{path}:{line_no}: ")


def test_unsupported_version(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("#embgraft-vocab v9\n<pad>\t0\n<unk>\t0\n", encoding="utf-8")
    with pytest.raises(MalformedFileError, match="unsupported vocab file version"):
        Vocab.load(path)


def test_plain_token_list(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes("<pad>\r\n<unk>\r\n的\r\n\u3000\r\n".encode("utf-8"))
    v = Vocab.load(path)
    assert v.tokens == ["<pad>", "<unk>", "的", "\u3000"]
    assert (v.pad_id, v.unk_id, v.counts, v.level) == (0, 1, [0, 0, 0, 0], None)


def test_plain_bert_style_list_keeps_its_ids_and_round_trips(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[unused1]\n[UNK]\n[CLS]\n的\n", encoding="utf-8")
    v = Vocab.load(path)
    assert (v.pad_id, v.unk_id, v.specials) == (0, 2, ["[PAD]", "[UNK]", "[CLS]"])
    v.save(tmp_path / "again.txt")
    assert (tmp_path / "again.txt").read_text(encoding="utf-8").splitlines()[0] == (
        "#embgraft-vocab v1 specials=0,2,3 n_corpus_tokens=0 n_oov_tokens=0"
    )
    assert Vocab.load(tmp_path / "again.txt") == v


def test_plain_list_without_specials_explains(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("的\n是\n<pad>\n", encoding="utf-8")
    with pytest.raises(MalformedFileError) as info:
        Vocab.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "lacks an unknown token (<unk>)" in message and "Vocab.from_tokens" in message


def test_plain_list_empty_line_is_malformed(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("<pad>\n<unk>\n\n的\n", encoding="utf-8")
    with pytest.raises(MalformedFileError, match=":3: empty line"):
        Vocab.load(path)


def test_importing_does_not_import_torch_or_jieba():
    assert_not_imported("import embgraft.text.vocab, embgraft.text.corpus, embgraft.text.tokenize", ["torch", "jieba"])


def test_thucnews_char_vocab():
    train = THUCNEWS / "train.txt"
    if not train.is_file():
        pytest.skip(f"{THUCNEWS} not present")
    v = Vocab.from_corpus(train, level="char", fmt="tsv")

    # The same facts counted independently, with plain Python.
    counter, n_lines = Counter(), 0
    with open(train, encoding="utf-8") as f:
        for line in f:
            text, label = line.rstrip("\n").split("\t")
            counter.update(ch for ch in text if not ch.isspace())
            n_lines += 1
    ((top, top_count),) = counter.most_common(1)

    assert n_lines == 9000  # the README's line count
    assert len(v) == len(counter) + 2
    assert v.n_corpus_tokens == sum(counter.values())
    assert v.n_oov_tokens == 0
    assert (v.token(2), v.counts[2]) == (top, top_count)
    assert v.counts[2:] == sorted(v.counts[2:], reverse=True)
    assert dict(zip(v.tokens[2:], v.counts[2:])) == dict(counter)
    # Measured once and checked by the independent count above: digits lead these headlines.
    assert (top, len(v), v.n_corpus_tokens) == ("0", 3366, 168265)


def test_plain_list_trailing_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\ufeff<pad>\n<unk>\n的\n\n \r\n", encoding="utf-8")
    assert Vocab.load(path).tokens == ["<pad>", "<unk>", "的"]


@pytest.mark.parametrize("name, content, line_no", [
    ("c.txt", "", None),
    ("c.txt", "\n \n\r\n", None),
    ("c.tsv", "\tpos\n\tneg\n", 1),
    ("c.csv", "text,label\n\n,pos\n", 3),
    ("c.jsonl", '\n{"text": ""}\n', 2),
])
def test_an_empty_corpus_says_so(tmp_path, name, content, line_no):
    from embgraft.errors import EmbgraftError

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EmbgraftError) as err:
        Vocab.from_corpus(path, level="char")
    where = f"{path}:{line_no}" if line_no else f"{path}: the corpus is empty: the file holds no text"
    assert str(err.value).startswith(where)
    if line_no:
        assert str(err.value) == (f"{path}:{line_no}: the corpus is empty: no row gives a char token, "
                                  "this one being the first (is the text column right?)")
