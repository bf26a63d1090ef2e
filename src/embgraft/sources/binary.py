"""word2vec binary: a text header ``count dim``, then per row ``token<space>`` + dim float32 LE."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from embgraft.errors import MalformedFileError
from embgraft.console import progress_bar
from embgraft.sources.base import CharacterPieces, ScanStats
from embgraft.sources.compression import decompression_errors, open_stream

_BLOCK = 1 << 24
FASTTEXT_BIN_MAGIC = (793712314).to_bytes(4, "little")


class BinaryVectors(CharacterPieces):
    """A word2vec binary file (``.bin``, optionally compressed), streamed record by record.

    Records have no line numbers: errors name the record (1-based) and its token.
    """

    kind = "word2vec-binary"

    def __init__(self, path: str | os.PathLike, **options) -> None:
        super().__init__(path, **options)
        stream, raw = open_stream(self.path)
        try:
            with decompression_errors(self.name):
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
        if self.dim <= 0:
            raise MalformedFileError(self.name, 1, f"header gives dimension {self.dim}")

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
                    with decompression_errors(self.name):
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
                        found[key] = vec.astype(self.dtype)
                    else:
                        self.scan.bad_row(self.on_bad_line, self.name, None,
                                          f"record {n_rows} ({key!r}): non-finite value (nan or inf)")
                pos = sp + 1 + n_vec_bytes
            self.scan.n_bytes = done
        finally:
            stream.close()
            raw.close()
            bar.close()
        if n_rows != self.header_count:
            rest = buf[pos:].lstrip(b"\n")
            cut = (f"; record {n_rows + 1} is cut short ({len(rest)} of at least "
                   f"{len(rest.split(b' ', 1)[0]) + 1 + n_vec_bytes} bytes): the file is truncated"
                   if rest else "")
            raise MalformedFileError(
                self.name, 1, f"header says {self.header_count} rows but the file holds {n_rows}{cut}"
            )
        self.scan.n_rows = n_rows
        self.scan.n_found = len(found)
        return found
