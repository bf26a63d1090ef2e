"""The one atomic-output helper (issue 8, item 14)."""

import os

import pytest

from embgraft import files as _fs
from embgraft.files import atomic_dir, atomic_file, atomic_output, check_outputs
from embgraft.errors import OutputExistsError
from embgraft.text.vocab import Vocab


def _listing(d):
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "fallback"])
def test_an_existing_directory_is_replaced_whole(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(_fs, "_renameat2", lambda src, dst, flags: False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
        assert _listing(out) == ["old.txt"]  # the old output stays in place until the swap
    assert _listing(out) == ["new.txt"]
    assert _listing(tmp_path) == ["out"]  # nothing left beside it
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_fs._umask())


def test_renameat2_exchange_is_used_on_linux(tmp_path, monkeypatch):
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        pytest.skip("renameat2 is Linux only")
    calls = []
    real = _fs._renameat2
    monkeypatch.setattr(_fs, "_renameat2", lambda s, d, f: calls.append(f) or real(s, d, f))
    out = tmp_path / "out"
    out.mkdir()
    with atomic_dir(out, force=True) as tmp:
        (tmp / "x").write_text("x")
    assert calls == [_fs._RENAME_EXCHANGE]


@pytest.mark.parametrize("directory", [True, False])
def test_failure_leaves_nothing_behind_and_the_old_output_intact(tmp_path, directory):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError):
        with atomic_output(out, force=False, directory=directory) as tmp:
            (tmp / "x").write_text("x") if directory else tmp.write_text("x")
            raise RuntimeError("boom")
    assert _listing(tmp_path) == []  # not even the parent folders made for it
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(keep, force=True) as f:
            f.write("half")
            raise KeyboardInterrupt
    assert keep.read_text() == "mine" and _listing(tmp_path) == ["keep.txt"]


def test_without_force_an_output_that_appears_meanwhile_is_not_overwritten(tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(OutputExistsError):
        with atomic_file(out, force=False) as f:
            f.write("new")
            out.write_text("someone else's")
    assert out.read_text() == "someone else's" and _listing(tmp_path) == ["out.txt"]


def test_outputs_are_checked_together(tmp_path):
    (tmp_path / "b").write_text("x")
    with pytest.raises(OutputExistsError, match="b exists"):
        check_outputs([tmp_path / "a", tmp_path / "b"], force=False)
    with pytest.raises(OutputExistsError, match="given as two different outputs"):
        check_outputs([tmp_path / "a", tmp_path / "." / "a"], force=False)
    assert check_outputs([tmp_path / "a", None], force=False) == [tmp_path / "a"]


def test_vocab_save_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
    v = Vocab.from_tokens(["中", "国"])
    path = tmp_path / "vocab.txt"
    v.save(path)
    before = path.read_bytes()

    def boom(token):
        raise RuntimeError("disk full")

    monkeypatch.setattr("embgraft.text.vocab.escape_field", boom)
    with pytest.raises(RuntimeError):
        v.save(path)
    assert path.read_bytes() == before and _listing(tmp_path) == ["vocab.txt"]


def test_read_safetensors_header_gives_the_header_and_the_data_start(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from embgraft.errors import MalformedFileError
    from embgraft.files import read_safetensors_header

    path = tmp_path / "t.safetensors"
    save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(path))
    header, start = read_safetensors_header(path)
    assert header["a"]["shape"] == [2, 3] and header["a"]["dtype"] == "F32"
    begin, end = header["a"]["data_offsets"]
    data = path.read_bytes()[start + begin:start + end]
    assert np.frombuffer(data, dtype="<f4").tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    for bad in (b"\xff" * 8 + b"{}", b"\x05\x00\x00\x00\x00\x00\x00\x00[1,2]", b"\x03\x00"):
        path.write_bytes(bad)
        with pytest.raises(MalformedFileError, match="not a safetensors file"):
            read_safetensors_header(path)
