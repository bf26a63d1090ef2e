import numpy as np
import pytest

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.sources import open_source

MATRIX = np.arange(12, dtype=np.float32).reshape(4, 3)
TOKENS = ["中", "国", "中国", "人"]


def test_npy_with_vocab_file(tmp_path):
    np.save(tmp_path / "m.npy", MATRIX)
    (tmp_path / "m.vocab").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    src = open_source(tmp_path / "m.npy")
    assert (src.kind, src.dim) == ("npy", 3)
    got = src.lookup(["国", "人", "无"])
    assert sorted(got) == ["人", "国"]
    assert np.array_equal(got["人"], MATRIX[3])
    assert [p.label for p in src.pieces("中国人", {})] == ["中国", "人"]


def test_npz_picks_the_named_matrix(tmp_path):
    np.savez(tmp_path / "m.npz", counts=np.ones(4), vectors=MATRIX)
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS), encoding="utf-8")
    got = open_source(tmp_path / "m.npz").lookup(["中"])
    assert np.array_equal(got["中"], MATRIX[0])


def test_npz_with_unknown_keys_lists_them(tmp_path):
    np.savez(tmp_path / "m.npz", a=MATRIX, b=MATRIX)
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS), encoding="utf-8")
    with pytest.raises(MalformedFileError, match=r"no matrix among \['a', 'b'\]"):
        open_source(tmp_path / "m.npz")


def test_missing_vocab_and_row_mismatch(tmp_path):
    np.save(tmp_path / "m.npy", MATRIX)
    with pytest.raises(ConfigError, match="--source-vocab"):
        open_source(tmp_path / "m.npy")
    (tmp_path / "short.txt").write_text("中\n国\n", encoding="utf-8")
    with pytest.raises(MalformedFileError, match="2 tokens for 4 rows"):
        open_source(tmp_path / "m.npy", vocab=tmp_path / "short.txt")


# -- issue 8 --------------------------------------------------------------------------------------
def _write(tmp_path, matrix=MATRIX, tokens=TOKENS, vocab_text=None):
    np.save(tmp_path / "m.npy", matrix)
    (tmp_path / "m.vocab").write_text(vocab_text if vocab_text is not None else "\n".join(tokens) + "\n",
                                      encoding="utf-8")
    return tmp_path / "m.npy"


def test_a_non_finite_row_is_an_error_naming_the_row(tmp_path):
    m = MATRIX.copy()
    m[1, 2] = np.nan
    p = _write(tmp_path, m)
    with pytest.raises(MalformedFileError) as err:
        open_source(p).lookup(["中", "国"])
    assert str(err.value) == f"{p}: row 1 ('国', m.vocab:2): non-finite value (nan or inf)"


def test_non_finite_rows_are_skipped_and_counted_once(tmp_path):
    m = MATRIX.copy()
    m[0, 0] = np.inf
    src = open_source(_write(tmp_path, m), on_bad_line="skip")
    assert sorted(src.lookup(["中", "国", "人"])) == ["人", "国"]
    assert [p.label for p in src.pieces("中人", {})] == ["人"]  # 中 is not a piece either
    assert src.scan.n_skipped == 1


def test_an_empty_vocab_file_is_a_clear_error(tmp_path):
    p = _write(tmp_path, vocab_text="")
    with pytest.raises(MalformedFileError) as err:
        open_source(p)
    assert str(err.value) == (f"{tmp_path / 'm.vocab'}: empty vocabulary file: expected one token per line, "
                              "line i naming row i of the matrix")


def test_vocab_bom_and_blank_lines_are_skipped(tmp_path):
    p = _write(tmp_path, vocab_text="\ufeff中\n国\n\n中国\r\n  \n人\n\n")
    got = open_source(p).lookup(["中", "人"])
    assert np.array_equal(got["中"], MATRIX[0]) and np.array_equal(got["人"], MATRIX[3])


def test_npz_is_memory_mapped_and_float64_is_kept(tmp_path):
    m64 = np.arange(12, dtype=np.float64).reshape(4, 3) / 3
    np.savez(tmp_path / "m.npz", vectors=m64, other=np.ones(2))
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS), encoding="utf-8")
    src = open_source(tmp_path / "m.npz", dtype="float64")
    assert isinstance(src.matrix, np.memmap)
    got = src.lookup(["国"])
    assert got["国"].dtype == np.float64 and np.array_equal(got["国"], m64[1])
    assert src.scan.notes == []


def test_compressed_npz_is_read_whole_and_says_so(tmp_path):
    np.savez_compressed(tmp_path / "m.npz", vectors=MATRIX)
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS), encoding="utf-8")
    src = open_source(tmp_path / "m.npz")
    assert np.array_equal(src.lookup(["人"])["人"], MATRIX[3])
    assert src.scan.notes == ["'vectors' is compressed in m.npz: read whole (np.savez, not "
                              "savez_compressed, is memory-mapped)"]


def test_a_truncated_npy_names_the_file(tmp_path):
    p = _write(tmp_path)
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(MalformedFileError, match=f"^{p}: cannot read the matrix"):
        open_source(p)
