"""Opening (possibly compressed) vector files, and what their decompressors raise."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import zlib
from pathlib import Path
from typing import IO, Iterator

from embgraft.errors import MalformedFileError

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


# what the decompressors raise on a cut or damaged stream (gzip: EOFError, BadGzipFile, zlib.error)
DECOMPRESSION_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, OSError)


@contextlib.contextmanager
def decompression_errors(name: str) -> Iterator[None]:
    """Turns a truncated or corrupt compressed stream into a :class:`MalformedFileError`
    naming the file (no line: the stream is read in blocks, not lines)."""
    try:
        yield
    except DECOMPRESSION_ERRORS as exc:
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            raise  # a real I/O error (permissions, disk), not the data
        raise MalformedFileError(name, None, f"compressed data is truncated or corrupt ({exc})") from None


def read_head(path: str | os.PathLike, n_bytes: int = 1 << 16) -> bytes:
    """The first ``n_bytes`` of the decompressed content, for sniffing formats."""
    stream, raw = open_stream(path)
    try:
        with decompression_errors(str(path)):
            return stream.read(n_bytes)
    finally:
        stream.close()
        raw.close()
