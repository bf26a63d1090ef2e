"""A NumPy matrix (``.npy`` or ``.npz``) with its vocabulary in a text file, one token per line.

Both are memory-mapped: an ``.npy`` through ``np.load(mmap_mode="r")``, a matrix stored
uncompressed in an ``.npz`` (``np.savez``) by mapping its bytes inside the zip. Only a
compressed member (``np.savez_compressed``) has to be read whole, and the report says so.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.sources.base import STATIC_OPTIONS, Piece, StaticReader, longest_match_pieces, substrings

# keys tried, in order, for the matrix inside an .npz
NPZ_MATRIX_KEYS = ("vectors", "embeddings", "embedding", "weight", "arr_0")
_ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length


def find_vocab_file(path: Path) -> Path | None:
    """``vecs.npy`` -> ``vecs.vocab`` / ``vecs.vocab.txt`` / ``vocab.txt`` beside it."""
    for cand in (path.with_suffix(".vocab"), path.with_suffix(".vocab.txt"),
                 path.parent / "vocab.txt"):
        if cand.is_file():
            return cand
    return None


def read_vocab_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, token) per non-blank line: line i of the tokens names row i. A BOM and
    blank (whitespace-only) lines are skipped; anything after a tab is ignored."""
    out = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise MalformedFileError(path, line_no, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
            token = line.rstrip("\r\n").split("\t", 1)[0]
            if token.strip(" \t\r\n\v\f"):
                out.append((line_no, token))
    if not out:
        raise MalformedFileError(path, None, "empty vocabulary file: expected one token per line, "
                                             "line i naming row i of the matrix")
    return out


class ArrayVectors(StaticReader):
    """Rows of a memory-mapped matrix, by token. A non-finite row the graft needs is an error
    naming the row (or skipped and counted with ``on_bad_line="skip"``)."""

    kind = "npy"
    OPTIONS = STATIC_OPTIONS | {"vocab"}

    def __init__(self, path: str | os.PathLike, *, vocab: str | os.PathLike | None = None, **options) -> None:
        super().__init__(path, **options)  # progress is taken for uniformity: nothing is scanned
        vocab_path = Path(vocab) if vocab is not None else find_vocab_file(self.path)
        if vocab_path is None:
            raise ConfigError(
                f"{self.path}: a .npy/.npz source needs its vocabulary: pass --source-vocab FILE "
                "(one token per line, line i naming row i)"
            )
        self.matrix = self._load_matrix()
        if self.matrix.ndim != 2 or self.matrix.shape[1] == 0:
            raise MalformedFileError(self.name, None, f"expected a 2-d matrix, got shape {self.matrix.shape}")
        if self.matrix.dtype.kind not in "fiu":
            raise MalformedFileError(self.name, None, f"expected a matrix of numbers, got {self.matrix.dtype}")
        self.dim = int(self.matrix.shape[1])
        lines = read_vocab_lines(vocab_path)
        if len(lines) != self.matrix.shape[0]:
            raise MalformedFileError(
                vocab_path, None,
                f"{len(lines)} tokens for {self.matrix.shape[0]} rows in {self.path.name}",
            )
        self.vocab_path = vocab_path
        self.index: dict[str, int] = {}
        for row, (_, token) in enumerate(lines):
            self.index.setdefault(token, row)
        self._line_of_row = [line_no for line_no, _ in lines]
        self._bad_rows: set[int] = set()
        self.scan.n_rows = int(self.matrix.shape[0])

    def _load_matrix(self) -> np.ndarray:
        try:
            if self.path.suffix.lower() == ".npy":
                return np.load(self.path, mmap_mode="r", allow_pickle=False)
            return self._map_npz_member()
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise MalformedFileError(self.name, None, f"cannot read the matrix: {e}") from None

    def _map_npz_member(self) -> np.ndarray:
        with zipfile.ZipFile(self.path) as zf:
            members = {n.removesuffix(".npy"): n for n in zf.namelist()}
            key = next((k for k in NPZ_MATRIX_KEYS if k in members), None)
            if key is None and len(members) == 1:
                key = next(iter(members))
            if key is None:
                raise MalformedFileError(
                    self.name, None,
                    f"no matrix among {list(members)}; expected one of {list(NPZ_MATRIX_KEYS)}",
                )
            info = zf.getinfo(members[key])
            if info.compress_type != zipfile.ZIP_STORED:
                self.scan.notes.append(f"{key!r} is compressed in {self.path.name}: read whole "
                                       "(np.savez, not savez_compressed, is memory-mapped)")
                with zf.open(info) as f:
                    return np.lib.format.read_array(f, allow_pickle=False)
        with open(self.path, "rb") as f:  # the member's bytes are a plain .npy inside the zip
            f.seek(info.header_offset)
            sig, n_name, n_extra = _ZIP_LOCAL_HEADER.unpack(f.read(_ZIP_LOCAL_HEADER.size))
            if sig != b"PK\x03\x04":
                raise ValueError(f"bad zip local header for {key!r}")
            f.seek(n_name + n_extra, os.SEEK_CUR)
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = header(f)
            offset = f.tell()
        if dtype.hasobject:
            raise ValueError(f"{key!r} holds Python objects, not numbers")
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape,
                         order="F" if fortran else "C")

    def pieces(self, token: str, found: Mapping[str, np.ndarray]) -> list[Piece]:
        have = {s: v for s in substrings(token, max_piece_chars=self.max_piece_chars)
                if s in self.index and (v := self.row(s)) is not None}
        return longest_match_pieces(token, have, max_piece_chars=self.max_piece_chars)

    def row(self, token: str) -> np.ndarray | None:
        """``token``'s row in the source's dtype; ``None`` for a non-finite row being skipped."""
        i = self.index[token]
        vec = np.asarray(self.matrix[i], dtype=self.dtype)
        if np.isfinite(vec).all():
            return vec
        if i not in self._bad_rows:  # counted once, however often it is asked for
            self._bad_rows.add(i)
            self.scan.bad_row(self.on_bad_line, self.name, None,
                              f"row {i} ({token!r}, {self.vocab_path.name}:{self._line_of_row[i]}): "
                              "non-finite value (nan or inf)")
        return None

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(keys)
        found = {k: v for k in keys if k in self.index and (v := self.row(k)) is not None}
        self.scan.n_requested = len(keys)
        self.scan.n_found = len(found)
        return found
