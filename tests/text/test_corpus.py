import json

import pytest

from embgraft.text.corpus import detect_format, iter_examples, iter_texts
from embgraft.errors import ConfigError, MalformedFileError


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_plain_text_skips_blank_lines_and_handles_bom_and_crlf(tmp_path):
    p = write(tmp_path / "c.txt", "\ufeff第一行\r\n\r\n  \n第二 行\u2028仍是第二行\n最后")
    assert list(iter_texts(p)) == ["第一行", "第二 行\u2028仍是第二行", "最后"]
    assert list(iter_examples(p)) == [
        ("第一行", None),
        ("第二 行\u2028仍是第二行", None),
        ("最后", None),
    ]


def test_plain_text_rejects_label_column(tmp_path):
    p = write(tmp_path / "c.txt", "a\n")
    with pytest.raises(ConfigError, match="no labels"):
        iter_examples(p, label_column=1)


def test_tsv_text_and_label(tmp_path):
    p = write(tmp_path / "c.tsv", "林志玲称婚讯\t9\n\n无标签\n空格 文本\t3\n")
    assert list(iter_examples(p)) == [("林志玲称婚讯", "9"), ("无标签", None), ("空格 文本", "3")]
    assert list(iter_texts(p)) == ["林志玲称婚讯", "无标签", "空格 文本"]
    assert list(iter_texts(p, text_column="0")) == ["林志玲称婚讯", "无标签", "空格 文本"]


def test_tsv_explicit_label_column_must_exist(tmp_path):
    p = write(tmp_path / "c.tsv", "a\t1\nb\n")
    with pytest.raises(MalformedFileError) as info:
        list(iter_examples(p, label_column=1))
    assert info.value.line_no == 2
    assert str(info.value).startswith(f"{p}:2: expected at least 2")


def test_tsv_other_text_column(tmp_path):
    p = write(tmp_path / "c.tsv", "1\t今天\n2\t明天\n")
    assert list(iter_examples(p, text_column=1, label_column=0)) == [("今天", "1"), ("明天", "2")]
    with pytest.raises(ConfigError, match="0-based column index"):
        iter_texts(p, text_column="text")


def test_thucnews_style_txt_is_sniffed_as_tsv(tmp_path):
    p = write(tmp_path / "train.txt", "标题\t3\n另一个 标题\t10\n")
    assert detect_format(p) == "tsv"
    assert list(iter_examples(p)) == [("标题", "3"), ("另一个 标题", "10")]
    assert list(iter_texts(p, fmt="text")) == ["标题\t3", "另一个 标题\t10"]  # forced plain text
    mixed = write(tmp_path / "mixed.txt", "标题\t3\n没有标签的一行\n")
    assert detect_format(mixed) == "text"
    long_second = write(tmp_path / "pairs.txt", "句子一\t这是 另一个句子\n")
    assert detect_format(long_second) == "text"


def test_csv_by_name_and_index_with_quotes_and_newlines(tmp_path):
    p = write(
        tmp_path / "c.csv",
        'id,text,label\n1,"你好，世界",pos\n\n2,"第一行\n第二行, 有""引号""",neg\n',
    )
    assert list(iter_examples(p)) == [("你好，世界", "pos"), ('第一行\n第二行, 有"引号"', "neg")]
    assert list(iter_texts(p, text_column=1)) == ["你好，世界", '第一行\n第二行, 有"引号"']
    assert list(iter_examples(p, text_column="text", label_column="id")) == [
        ("你好，世界", "1"),
        ('第一行\n第二行, 有"引号"', "2"),
    ]


def test_csv_without_label_column_gives_none(tmp_path):
    p = write(tmp_path / "c.csv", "\ufeffsentence\n甲\n乙\n")
    assert list(iter_examples(p, text_column="sentence")) == [("甲", None), ("乙", None)]


def test_csv_missing_text_column_lists_columns(tmp_path):
    p = write(tmp_path / "c.csv", "sentence,label\n甲,1\n")
    with pytest.raises(MalformedFileError) as info:
        list(iter_texts(p))
    assert (
        str(info.value)
        == f"{p}:1: no text column 'text'; the header has columns: 'sentence', 'label'"
    )


def test_csv_short_row_names_its_line(tmp_path):
    p = write(tmp_path / "c.csv", 'label,text\n1,"多行\n文本"\n2\n')
    with pytest.raises(MalformedFileError) as info:
        list(iter_texts(p))
    assert info.value.line_no == 4
    assert str(info.value).startswith(f"{p}:4: expected at least 2 columns")


def test_csv_bad_column_argument_fails_eagerly(tmp_path):
    p = tmp_path / "never-written.csv"
    with pytest.raises(ConfigError):
        iter_texts(p, text_column=-1)


def test_jsonl_text_and_labels(tmp_path):
    records = [
        {"text": "今天", "label": 3},
        {"text": "明天", "label": None},
        {"text": "后天"},
        {"text": "大后天", "label": "体育"},
    ]
    p = write(
        tmp_path / "c.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n"
    )
    assert list(iter_examples(p)) == [
        ("今天", "3"),
        ("明天", None),
        ("后天", None),
        ("大后天", "体育"),
    ]
    assert list(iter_texts(p)) == ["今天", "明天", "后天", "大后天"]


def test_jsonl_bad_json_names_file_and_line(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"text": "好"}\n\n{"text": "坏"\n{"text": "好"}\n')
    texts = iter_texts(p)
    assert next(texts) == "好"  # streamed: records before the bad line arrive first
    with pytest.raises(MalformedFileError) as info:
        next(texts)
    assert info.value.path == str(p)
    assert info.value.line_no == 3
    assert str(info.value).startswith(f"{p}:3: bad JSON")


def test_jsonl_missing_key_lists_keys(tmp_path):
    p = write(tmp_path / "c.json", '{"text": "好"}\n{"content": "坏", "y": 1}\n')
    with pytest.raises(MalformedFileError) as info:
        list(iter_texts(p))
    assert str(info.value) == f"{p}:2: no key 'text'; the object has keys: 'content', 'y'"
    assert list(
        iter_texts(write(tmp_path / "d.jsonl", '{"content": "坏"}\n'), text_column="content")
    ) == ["坏"]


def test_jsonl_explicit_label_key_must_exist(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"text": "好", "y": 1}\n{"text": "坏"}\n')
    with pytest.raises(MalformedFileError, match=r":2: no key 'y'"):
        list(iter_examples(p, label_column="y"))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('["a", "b"]\n', "a JSON array is not supported"),
        ('"just a string"\n', "expected a JSON object, found str"),
        ('{"text": 5}\n', "'text' must be a string, found int"),
    ],
)
def test_jsonl_wrong_shapes(tmp_path, content, problem):
    p = write(tmp_path / "c.jsonl", content)
    with pytest.raises(MalformedFileError, match=problem) as info:
        list(iter_texts(p))
    assert info.value.line_no == 1


def test_invalid_utf8_names_the_line(tmp_path):
    p = tmp_path / "c.txt"
    p.write_bytes("好\n".encode() + b"\xff\xfe bad\n")
    with pytest.raises(MalformedFileError, match="not valid UTF-8") as info:
        list(iter_texts(p))
    assert info.value.line_no == 2


def test_detect_format():
    assert detect_format("a.TXT") == "text"
    assert detect_format("a.tsv") == "tsv"
    assert detect_format("a.csv") == "csv"
    assert detect_format("a.json") == "jsonl"
    assert detect_format("a.jsonl") == "jsonl"
    assert detect_format("a.data", "TSV") == "tsv"
    with pytest.raises(ConfigError, match=r"cannot tell the corpus format .*'\.data'"):
        detect_format("a.data")
    with pytest.raises(
        ConfigError, match="unknown corpus format 'xml'; choose one of: text, tsv, csv, jsonl"
    ):
        detect_format("a.txt", "xml")
