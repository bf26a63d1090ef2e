import bz2
import gzip
import lzma

import numpy as np
import pytest

from embgraft.errors import MalformedFileError
from embgraft.sources import open_source, text
from embgraft.sources.text import TextVectors, sniff_text_header

ROWS = {
    "中": [0.1, -0.25, 3.0],
    "国": [1.5, 2.5, -0.125],
    "new york": [0.5, 0.5, 0.5],  # a token with an ASCII space
    "a\u3000b": [-1.0, 0.0, 1.0],  # a token with an ideographic space
    "3": [9.0, 9.0, 9.0],  # looks like the header's first field
    "x": [0.0, 0.0, 0.0],
}


def write_w2v(path, rows=ROWS, *, header=True, trailing_space=False, eol="\n", count=None):
    lines = [f"{len(rows) if count is None else count} 3"] if header else []
    for tok, vec in rows.items():
        lines.append(tok + " " + " ".join(f"{v:.6f}" for v in vec) + (" " if trailing_space else ""))
    data = eol.join(lines) + eol
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix, open)
    with opener(path, "wb") as f:
        f.write(data.encode("utf-8"))
    return path


def as32(vec):
    return np.array(vec, dtype=np.float32)


@pytest.mark.parametrize("name", ["v.txt", "v.vec.gz", "v.txt.bz2", "v.vec.xz"])
def test_exact_rows_from_plain_and_compressed_files(tmp_path, name):
    src = open_source(write_w2v(tmp_path / name), progress=False)
    assert (src.kind, src.dim) == ("word2vec-text", 3)
    got = src.lookup(["中", "new york", "a\u3000b", "3", "absent"])
    assert sorted(got) == sorted(["中", "new york", "a\u3000b", "3"])
    for tok in got:
        assert np.array_equal(got[tok], as32(ROWS[tok]))
        assert got[tok].dtype == np.float32
    assert src.scan.n_rows == len(ROWS)
    assert src.scan.n_found == 4


def test_only_requested_rows_are_returned(tmp_path):
    src = TextVectors(write_w2v(tmp_path / "v.txt"), progress=False)
    assert list(src.lookup(["国"])) == ["国"]


def test_glove_without_header_is_sniffed(tmp_path):
    src = open_source(write_w2v(tmp_path / "g.txt", header=False), progress=False)
    assert (src.kind, src.dim, src.header_count) == ("glove-text", 3, None)
    got = src.lookup(["国", "new york"])
    assert np.array_equal(got["new york"], as32(ROWS["new york"]))
    assert src.scan.n_rows == len(ROWS)


def test_fasttext_trailing_space_and_crlf(tmp_path):
    src = open_source(write_w2v(tmp_path / "f.vec", trailing_space=True, eol="\r\n"), progress=False)
    got = src.lookup(["中", "a\u3000b"])
    assert np.array_equal(got["中"], as32(ROWS["中"]))
    assert np.array_equal(got["a\u3000b"], as32(ROWS["a\u3000b"]))


def test_last_line_without_newline(tmp_path):
    p = write_w2v(tmp_path / "v.txt")
    p.write_bytes(p.read_bytes().rstrip(b"\n"))
    got = TextVectors(p, progress=False).lookup(["x"])
    assert np.array_equal(got["x"], as32(ROWS["x"]))


def test_small_segments_cross_line_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "_SEGMENT", 7)  # every segment ends mid-line
    src = TextVectors(write_w2v(tmp_path / "v.txt"), progress=False)
    got = src.lookup(list(ROWS))
    assert {t: list(v) for t, v in got.items()} == {t: list(as32(v)) for t, v in ROWS.items()}
    assert src.scan.n_rows == len(ROWS)


def test_small_blocks_in_compressed_stream(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "_BLOCK", 5)
    src = TextVectors(write_w2v(tmp_path / "v.txt.gz"), progress=False)
    assert len(src.lookup(list(ROWS))) == len(ROWS)
    assert src.scan.n_rows == len(ROWS)


def test_first_occurrence_wins_and_is_noted(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("2 2\n中 1 2\n中 3 4\n", encoding="utf-8")
    src = TextVectors(p, progress=False)
    assert list(src.lookup(["中"])["中"]) == [1.0, 2.0]
    assert src.scan.notes == ["1 repeated tokens: first occurrence kept"]


@pytest.mark.parametrize(
    "content, line_no, problem",
    [
        ("2 3\n中 1 2 3\n国 1 2\n", 3, "expected a token and 3 values, found 2 values"),
        ("2 3\n中 1 2 3\n国 1 zz 3\n", 3, "not a number: 'zz'"),
        ("2 3\n中 1 2 3\n国 1 2 nan\n", 3, "non-finite value (nan or inf)"),
        ("2 3\n中 1 2 3\n国 1.0 2.0 3.0 4.0\n", 3,
         "more than 3 values ('国' has no row of its own, so this is not read as the token '国 1.0')"),
        ("2 3\n中 1 2 3\n国 1 2 3 4\n", 3,  # integers too (the old check wanted a '.')
         "more than 3 values ('国' has no row of its own, so this is not read as the token '国 1')"),
        ("3 3\n中 1 2 3\n国 1 2 3\n", 1, "header says 3 rows but the file has 2"),
        ("2 4\n中 1 2 3\n国 1 2 3\n", 2,  # header lies about the width
         "the header says 4 values per row, but this line and most of the first 2 have 3"),
        ("2 2\n中 1 2 3\n国 1 2 3\n", 2,  # ... also when the rows are wider
         "the header says 2 values per row, but this line and most of the first 2 have 3"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, content, line_no, problem):
    p = tmp_path / "bad.txt"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(MalformedFileError) as err:
        TextVectors(p, progress=False).lookup(["中", "国"])
    assert str(err.value) == f"{p}:{line_no}: {problem}"
    assert (err.value.line_no, err.value.path) == (line_no, str(p))


def test_malformed_line_in_unrequested_row_is_not_parsed_but_first_row_is(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("3 2\n中 1 2\n坏 1\n国 3 4\n", encoding="utf-8")
    got = TextVectors(p, progress=False).lookup(["国"])
    assert list(got["国"]) == [3.0, 4.0]


def test_skip_counts_malformed_lines(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("3 2\n中 1 2\n国 1 zz\n人 5 6\n", encoding="utf-8")
    src = TextVectors(p, progress=False, on_bad_line="skip")
    got = src.lookup(["中", "国", "人"])
    assert sorted(got) == ["中", "人"]
    assert src.scan.n_skipped == 1
    assert src.scan.skipped_samples == [f"{p}:3: not a number: 'zz'"]


def test_sniff_rejects_a_file_without_vectors(tmp_path):
    with pytest.raises(MalformedFileError, match="neither a word2vec header"):
        sniff_text_header(b"hello world\nfoo bar\n", "x.txt")


def test_declared_format_must_match(tmp_path):
    p = write_w2v(tmp_path / "g.txt", header=False)
    with pytest.raises(MalformedFileError, match="expected a word2vec header"):
        open_source(p, kind="word2vec", progress=False)


def test_pieces_are_longest_known_substrings(tmp_path):
    src = TextVectors(write_w2v(tmp_path / "v.txt"), progress=False)
    assert set(src.requests("中国人")) == {"中", "国", "人", "中国", "国人"}
    found = {"中": as32([1, 1, 1]), "国": as32([2, 2, 2]), "中国": as32([3, 3, 3]), "人": as32([4, 4, 4])}
    assert [p.label for p in src.pieces("中国人", found)] == ["中国", "人"]
    assert [p.label for p in src.pieces("中国", found)] == ["中", "国"]  # never the whole token


# -- issue 8: BOM, blank lines, over-long lines, truncated streams -----------------------------
BOM = "\ufeff"


@pytest.mark.parametrize("name", ["v.txt", "v.vec.gz"])
@pytest.mark.parametrize("header", [True, False])
def test_a_bom_is_skipped_and_the_first_row_kept(tmp_path, name, header):
    p = write_w2v(tmp_path / name, header=header)
    data = (gzip.decompress(p.read_bytes()) if name.endswith(".gz") else p.read_bytes())
    data = BOM.encode("utf-8") + data
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    src = TextVectors(p, progress=False)
    assert (src.has_header, src.dim) == (header, 3)
    got = src.lookup(["中", "x"])  # 中 is the first row, right after the BOM (or the header)
    assert np.array_equal(got["中"], as32(ROWS["中"]))
    assert src.scan.n_rows == len(ROWS)


@pytest.mark.parametrize("name", ["v.txt", "v.vec.gz"])
@pytest.mark.parametrize("blank", ["\n", "\r\n", "   \n", " \t \r\n", "\t\t\n"])
def test_blank_lines_are_not_rows(tmp_path, name, blank):
    lines = ["\n", "2 2\n", blank, "中 1 2\n", blank, blank, "国 3 4\n", blank]
    data = "".join(lines).encode("utf-8")
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    src = TextVectors(p, progress=False)
    got = src.lookup(["中", "国"])
    assert (list(got["中"]), list(got["国"])) == ([1.0, 2.0], [3.0, 4.0])
    assert src.scan.n_rows == 2


def test_a_header_that_lies_about_the_count_with_blank_lines_names_the_header(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("\n3 2\n中 1 2\n\n国 3 4\n\n", encoding="utf-8")
    with pytest.raises(MalformedFileError) as err:
        TextVectors(p, progress=False).lookup(["中"])
    assert str(err.value) == f"{p}:2: header says 3 rows but the file has 2"


def test_a_token_with_a_space_and_a_number_is_legitimate(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("3 2\npython 2.7 3 4\npython 5 6\n中 1 2\n", encoding="utf-8")
    src = TextVectors(p, progress=False)
    got = src.lookup(["python", "python 2.7", "中"])
    assert list(got["python"]) == [5.0, 6.0]
    assert list(got["python 2.7"]) == [3.0, 4.0]
    got = TextVectors(p, progress=False).lookup(["python"])  # asked for alone: still no error
    assert list(got["python"]) == [5.0, 6.0]


def test_an_over_long_line_is_skipped_and_counted(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("3 2\n中 1 2\n国 1 2 3\n人 5 6\n", encoding="utf-8")
    src = TextVectors(p, progress=False, on_bad_line="skip")
    assert sorted(src.lookup(["中", "国", "人"])) == ["中", "人"]
    assert src.scan.n_skipped == 1
    assert src.scan.skipped_samples == [
        f"{p}:3: more than 2 values ('国' has no row of its own, so this is not read as the token '国 1')"]


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_gz_is_an_error_naming_the_file(tmp_path, cut):
    p = write_w2v(tmp_path / "v.vec.gz", rows={f"t{i}": [i, i, i] for i in range(2000)})
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(MalformedFileError) as err:
        TextVectors(p, progress=False).lookup(["t1"])
    assert str(err.value).startswith(f"{p}")
    assert "compressed data is truncated or corrupt" in str(err.value)


@pytest.mark.parametrize("option, flag", [("tensor_key", "--tensor-key"), ("vocab", "--source-vocab")])
def test_an_option_the_reader_does_not_take_is_one_config_error(tmp_path, option, flag):
    from embgraft.errors import ConfigError

    p = write_w2v(tmp_path / "v.txt")
    with pytest.raises(ConfigError) as err:
        open_source(p, progress=False, **{option: "x"})
    assert str(err.value) == (f"{flag} ({option}=) does not apply to a text source ({p}); it takes "
                              "--dtype, --max-piece-chars, --on-bad-line, --progress")


def test_every_reader_declares_what_its_constructor_takes():
    import inspect

    from embgraft.sources import SOURCE_KINDS

    def keyword_options(cls) -> set[str]:
        """Keyword-only parameters of ``cls.__init__`` and of the bases it hands ``**options`` to."""
        params: set[str] = set()
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            sig = inspect.signature(vars(klass)["__init__"]).parameters.values()
            params |= {p.name for p in sig if p.kind is p.KEYWORD_ONLY}
            if not any(p.kind is p.VAR_KEYWORD for p in sig):
                return params
        return params

    for cls, fixed in SOURCE_KINDS.values():
        assert cls.OPTIONS == keyword_options(cls) - set(fixed) - {"fmt"}, cls.__name__
