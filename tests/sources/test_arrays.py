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
