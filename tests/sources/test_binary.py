import gzip

import numpy as np
import pytest

from embgraft.errors import MalformedFileError
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
