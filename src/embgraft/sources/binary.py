"""word2vec binary: a text header ``count dim``, then per row ``token<space>`` + dim float32 LE."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from embgraft.errors import MalformedFileError
from embgraft.sources._io import open_stream, progress_bar
from embgraft.sources.base import CharacterPieces, ScanStats

_BLOCK = 1 << 24
FASTTEXT_BIN_MAGIC = (793712314).to_bytes(4, "little")


class BinaryVectors(CharacterPieces):
    """A word2vec binary file (``.bin``, optionally compressed), streamed record by record."""

    kind = "word2vec-binary"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        on_bad_line: str = "error",
        progress: bool = True,
        max_piece_chars: int = 4,
    ) -> None:
        self.path = Path(path)
        self.name = str(path)
        stream, raw = open_stream(self.path)
        try:
            header = stream.readline(256)
        finally:
            stream.close()
            raw.close()
        if header[:4] == FASTTEXT_BIN_MAGIC:
            raise MalformedFileError(
                self.name, None,
                "this is a fastText model (.bin), not word2vec binary: export its vectors with "
                "fastText's print-word-vectors or gensim, or use the .vec file",
            )
        fields = header.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise MalformedFileError(self.name, 1, "expected a word2vec binary header 'count dim'")
        self.header_len = len(header)
        self.header_count, self.dim = int(fields[0]), int(fields[1])
        self.on_bad_line = on_bad_line
        self.progress = progress
        self.max_piece_chars = max_piece_chars
        self.scan = ScanStats()

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = {k.encode("utf-8"): k for k in keys if k}
        self.scan = ScanStats(n_requested=len(wanted))
        found: dict[str, np.ndarray] = {}
        n_vec_bytes = 4 * self.dim
        stream, raw = open_stream(self.path)
        bar = progress_bar(total=os.fstat(raw.fileno()).st_size, desc=self.path.name,
                           enabled=self.progress)
        n_rows, buf, pos, done = 0, b"", 0, 0
        try:
            stream.read(self.header_len)
            while n_rows < self.header_count:
                sp = buf.find(b" ", pos)
                if sp < 0 or sp + 1 + n_vec_bytes > len(buf):
                    block = stream.read(_BLOCK)
                    if not block:
                        break
                    buf, pos = buf[pos:] + block, 0
                    bar.update(raw.tell() - done)
                    done = raw.tell()
                    continue
                token_b = buf[pos:sp].lstrip(b"\n")  # some writers end each record with \n
                n_rows += 1
                key = wanted.get(token_b)
                if key is not None and key not in found:
                    vec = np.frombuffer(buf, dtype="<f4", count=self.dim, offset=sp + 1)
                    if np.isfinite(vec).all():
                        found[key] = vec.astype(np.float32)
                    elif self.on_bad_line == "error":
                        raise MalformedFileError(self.name, None,
                                                 f"record {n_rows} ({key!r}): non-finite value")
                    else:  # skipped at the user's request, and counted
                        self.scan.n_skipped += 1
                        self.scan.skipped_samples.append(f"{self.name}: record {n_rows} ({key!r}): non-finite value")
                pos = sp + 1 + n_vec_bytes
            self.scan.n_bytes = done
        finally:
            stream.close()
            raw.close()
            bar.close()
        if n_rows != self.header_count:
            raise MalformedFileError(
                self.name, 1, f"header says {self.header_count} rows but the file holds {n_rows}"
            )
        self.scan.n_rows = n_rows
        self.scan.n_found = len(found)
        return found
