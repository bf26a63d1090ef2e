"""Opening (possibly compressed) files and showing byte-based progress."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import sys
from pathlib import Path
from typing import IO

# suffix -> class that decompresses a binary file object; a table so a new codec is one line
COMPRESSED_OPENERS = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    ".bz2": lambda raw: bz2.BZ2File(raw, mode="rb"),
    ".xz": lambda raw: lzma.LZMAFile(raw, mode="rb"),
    ".lzma": lambda raw: lzma.LZMAFile(raw, mode="rb"),
}


def compression_of(path: str | os.PathLike) -> str | None:
    suffix = Path(path).suffix.lower()
    return suffix if suffix in COMPRESSED_OPENERS else None


def stem_suffix(path: str | os.PathLike) -> str:
    """The format suffix under any compression suffix: ``a.vec.gz`` -> ``.vec``."""
    p = Path(path)
    if compression_of(p):
        p = p.with_suffix("")
    return p.suffix.lower()


def open_stream(path: str | os.PathLike) -> tuple[IO[bytes], IO[bytes]]:
    """(decompressed stream, raw file). ``raw.tell()`` is the on-disk position, for progress."""
    raw = open(path, "rb")
    opener = COMPRESSED_OPENERS.get(Path(path).suffix.lower())
    return (raw if opener is None else opener(raw)), raw


def read_head(path: str | os.PathLike, n_bytes: int = 1 << 16) -> bytes:
    """The first ``n_bytes`` of the decompressed content, for sniffing formats."""
    stream, raw = open_stream(path)
    try:
        return stream.read(n_bytes)
    finally:
        stream.close()
        raw.close()


def progress_bar(*, total: int, desc: str, enabled: bool):
    """A tqdm bar in bytes on stderr, or a no-op object when disabled or not a terminal."""
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass
