import gzip

import numpy as np
import pytest

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.sources import open_source
from embgraft.sources.binary import FASTTEXT_BIN_MAGIC, BinaryVectors

ROWS = {"中": [0.1, -0.2], "国": [1.0, 2.0], "人": [3.5, -4.5]}


def write_bin(path, rows=ROWS, *, count=None, newline=True):
    data = f"{len(rows) if count is None else count} 2\n".encode()
    for tok, vec in rows.items():
        data += tok.encode() + b" " + np.array(vec, dtype="<f4").tobytes() + (b"\n" if newline else b"")
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(data)
    return path


@pytest.mark.parametrize("name, newline", [("v.bin", True), ("v.bin", False), ("v.bin.gz", True)])
def test_binary_rows_are_exact(tmp_path, name, newline):
    src = open_source(write_bin(tmp_path / name, newline=newline), progress=False)
    assert (src.kind, src.dim) == ("word2vec-binary", 2)
    got = src.lookup(["国", "人", "无"])
    assert sorted(got) == ["人", "国"]
    for tok in got:
        assert np.array_equal(got[tok], np.array(ROWS[tok], dtype=np.float32))
    assert src.scan.n_rows == 3


def test_binary_count_mismatch(tmp_path):
    p = write_bin(tmp_path / "v.bin", count=5)
    with pytest.raises(MalformedFileError, match="header says 5 rows but the file holds 3"):
        BinaryVectors(p, progress=False).lookup(["中"])


def test_fasttext_model_is_refused_with_advice(tmp_path):
    p = tmp_path / "cc.zh.300.bin"
    p.write_bytes(FASTTEXT_BIN_MAGIC + b"\x0c\x00\x00\x00" * 10)
    with pytest.raises(MalformedFileError, match="fastText model"):
        BinaryVectors(p)


# -- issue 8 --------------------------------------------------------------------------------------
def test_on_bad_line_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="on_bad_line must be one of \\['error', 'skip'\\], not 'bogus'"):
        BinaryVectors(write_bin(tmp_path / "v.bin"), on_bad_line="bogus")


def test_dimension_must_be_positive(tmp_path):
    p = tmp_path / "v.bin"
    p.write_bytes(b"3 0\n")
    with pytest.raises(MalformedFileError) as err:
        BinaryVectors(p)
    assert str(err.value) == f"{p}:1: header gives dimension 0"


@pytest.mark.parametrize("name", ["v.bin", "v.bin.gz"])
def test_truncated_mid_record_names_the_record(tmp_path, name):
    p = write_bin(tmp_path / "v.bin")
    data = p.read_bytes()[:-5]  # 人's vector loses 4 of its 8 bytes (and the newline)
    (gzip.open if name.endswith(".gz") else open)(tmp_path / name, "wb").write(data)
    with pytest.raises(MalformedFileError) as err:
        BinaryVectors(tmp_path / name, progress=False).lookup(["中"])
    assert str(err.value) == (f"{tmp_path / name}:1: header says 3 rows but the file holds 2; record 3 is "
                              "cut short (8 of at least 12 bytes): the file is truncated")


def test_a_cut_gz_stream_is_named(tmp_path):
    p = write_bin(tmp_path / "v.bin.gz", rows={f"t{i}": [i, i] for i in range(3000)})
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(MalformedFileError, match="compressed data is truncated or corrupt"):
        BinaryVectors(p, progress=False).lookup(["t1"])


def test_skipped_non_finite_rows_are_counted_with_bounded_samples(tmp_path):
    rows = {f"t{i}": [float("nan"), 1.0] for i in range(30)} | {"ok": [1.0, 2.0]}
    src = BinaryVectors(write_bin(tmp_path / "v.bin", rows=rows), on_bad_line="skip", progress=False)
    got = src.lookup(list(rows))
    assert list(got) == ["ok"]
    assert src.scan.n_skipped == 30
    assert len(src.scan.skipped_samples) == 10
    assert src.scan.skipped_samples[0] == f"{tmp_path / 'v.bin'}: record 1 ('t0'): non-finite value (nan or inf)"


def test_non_finite_row_is_an_error_by_default(tmp_path):
    p = write_bin(tmp_path / "v.bin", rows={"中": [1.0, float("inf")], "国": [1.0, 2.0]})
    with pytest.raises(MalformedFileError) as err:
        BinaryVectors(p, progress=False).lookup(["中"])
    assert str(err.value) == f"{p}: record 1 ('中'): non-finite value (nan or inf)"
