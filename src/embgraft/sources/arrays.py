"""A NumPy matrix (``.npy`` or ``.npz``) with its vocabulary in a text file, one token per line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.sources.base import Piece, ScanStats, longest_match_pieces, substrings

# keys tried, in order, for the matrix inside an .npz
NPZ_MATRIX_KEYS = ("vectors", "embeddings", "embedding", "weight", "arr_0")


def find_vocab_file(path: Path) -> Path | None:
    """``vecs.npy`` -> ``vecs.vocab`` / ``vecs.vocab.txt`` / ``vocab.txt`` beside it."""
    for cand in (path.with_suffix(".vocab"), path.with_suffix(".vocab.txt"),
                 path.parent / "vocab.txt"):
        if cand.is_file():
            return cand
    return None


class ArrayVectors:
    kind = "npy"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        vocab: str | os.PathLike | None = None,
        max_piece_chars: int = 4,
        **_: object,
    ) -> None:
        self.path = Path(path)
        self.name = str(path)
        vocab_path = Path(vocab) if vocab is not None else find_vocab_file(self.path)
        if vocab_path is None:
            raise ConfigError(
                f"{self.path}: a .npy/.npz source needs its vocabulary: pass --source-vocab FILE "
                "(one token per line, line i naming row i)"
            )
        self.matrix = self._load_matrix()
        if self.matrix.ndim != 2:
            raise MalformedFileError(self.name, None, f"expected a 2-d matrix, got shape {self.matrix.shape}")
        self.dim = int(self.matrix.shape[1])
        self.index: dict[str, int] = {}
        with open(vocab_path, encoding="utf-8-sig") as f:
            for line_no, line in enumerate(f, 1):
                token = line.rstrip("\r\n").split("\t", 1)[0]
                if not token:
                    raise MalformedFileError(vocab_path, line_no, "empty token")
                self.index.setdefault(token, line_no - 1)
        if line_no != self.matrix.shape[0]:
            raise MalformedFileError(
                vocab_path, None,
                f"{line_no} tokens for {self.matrix.shape[0]} rows in {self.path.name}",
            )
        self.max_piece_chars = max_piece_chars
        self.scan = ScanStats(n_rows=int(self.matrix.shape[0]))

    def _load_matrix(self) -> np.ndarray:
        if self.path.suffix.lower() == ".npy":
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        arrays = np.load(self.path, allow_pickle=False)
        for key in NPZ_MATRIX_KEYS:
            if key in arrays.files:
                return arrays[key]
        if len(arrays.files) == 1:
            return arrays[arrays.files[0]]
        raise MalformedFileError(
            self.name, None,
            f"no matrix among {arrays.files}; expected one of {list(NPZ_MATRIX_KEYS)}",
        )

    def requests(self, token: str) -> Iterable[str]:
        return ()  # any row can be read at any time

    def pieces(self, token: str, found: Mapping[str, np.ndarray]) -> list[Piece]:
        have = {s: self.row(s) for s in substrings(token, max_piece_chars=self.max_piece_chars)
                if s in self.index}
        return longest_match_pieces(token, have, max_piece_chars=self.max_piece_chars)

    def row(self, token: str) -> np.ndarray:
        return np.asarray(self.matrix[self.index[token]], dtype=np.float32)

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(keys)
        found = {k: self.row(k) for k in keys if k in self.index}
        self.scan.n_requested = len(keys)
        self.scan.n_found = len(found)
        return found
