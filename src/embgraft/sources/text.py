"""Word vectors in text form: word2vec/fastText ``.vec`` (header ``count dim``) and GloVe (none).

One pass, never the whole matrix. The hot loop finds each line's end with ``memchr`` (through
``bytes.find`` / ``mmap.find``) and tests only the line's first space-delimited field against the
wanted keys; the few lines that pass are then parsed *from the right* with the known dimension,
so a token containing a space or U+3000 survives. Plain files are memory-mapped and the pages
already scanned are released, so resident memory stays flat on a 15 GB file.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from embgraft.errors import MalformedFileError
from embgraft.sources._io import compression_of, open_stream, progress_bar, read_head
from embgraft.sources.base import CharacterPieces, ScanStats

_SEGMENT = 1 << 24  # 16 MiB: how much of a mapped file is scanned before its pages are released
_BLOCK = 1 << 24  # 16 MiB: read size for compressed streams
_N_SNIFF_LINES = 20
_MAX_SKIPPED_SAMPLES = 10


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def sniff_text_header(head: bytes, path: str) -> tuple[bool, int, int | None]:
    """(has_header, dim, header_count) from the first bytes of a text vector file.

    A first line of exactly two integers is a word2vec header. Otherwise (GloVe) the width is
    the most common number of trailing numeric fields over the first lines: counting from the
    right keeps tokens with spaces from skewing it.
    """
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last piece may be cut mid-line
    lines = [ln.rstrip(b"\r ") for ln in lines if ln.strip()]
    if not lines:
        raise MalformedFileError(path, 1, "empty vector file")
    first = lines[0].split()
    if len(first) == 2 and all(f.isdigit() for f in first):
        count, dim = int(first[0]), int(first[1])
        if dim <= 0:
            raise MalformedFileError(path, 1, f"header gives dimension {dim}")
        return True, dim, count
    widths = Counter()
    for ln in lines[:_N_SNIFF_LINES]:
        fields = ln.split(b" ")
        n = 0
        for f in reversed(fields[1:]):
            if not _is_number(f):
                break
            n += 1
        widths[n] += 1
    dim, _ = widths.most_common(1)[0]
    if dim <= 0:
        raise MalformedFileError(
            path, 1, "neither a word2vec header ('count dim') nor a 'token v1 v2 ...' line"
        )
    return False, dim, None


class TextVectors(CharacterPieces):
    """A word2vec / fastText ``.vec`` / GloVe text file, optionally ``.gz``/``.bz2``/``.xz``.

    ``on_bad_line="skip"`` skips malformed *used* lines and counts them in ``scan``; the default
    raises :class:`MalformedFileError` naming file and line. Lines whose token nobody asked for
    are counted (the header's count is checked) but not parsed: that is what makes one pass over
    a 15 GB file take seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fmt: str = "auto",
        on_bad_line: str = "error",
        progress: bool = True,
        max_piece_chars: int = 4,
    ) -> None:
        self.path = Path(path)
        self.name = str(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such vector file: {self.path}")
        has_header, self.dim, self.header_count = sniff_text_header(read_head(self.path), self.name)
        if fmt == "word2vec" and not has_header:
            raise MalformedFileError(self.name, 1, "expected a word2vec header 'count dim'")
        if fmt == "glove" and has_header:
            raise MalformedFileError(self.name, 1, "looks like a word2vec header, not a GloVe line")
        self.has_header = has_header
        self.kind = "word2vec-text" if has_header else "glove-text"
        if on_bad_line not in ("error", "skip"):
            raise ValueError(f"on_bad_line must be 'error' or 'skip', not {on_bad_line!r}")
        self.on_bad_line = on_bad_line
        self.progress = progress
        self.max_piece_chars = max_piece_chars
        self.scan = ScanStats()

    # -- the contract -------------------------------------------------------------------------
    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = {k.encode("utf-8"): k for k in keys if k}
        firsts = {b.split(b" ", 1)[0] for b in wanted}
        self.scan = ScanStats(n_requested=len(wanted))
        found: dict[str, np.ndarray] = {}
        n_duplicates = 0
        first_line = 2 if self.has_header else 1

        def take(line_no: int, line: bytes) -> None:
            nonlocal n_duplicates
            if line_no < first_line:  # the header, whose first field may look like a token
                return
            parsed = self._parse(line, line_no)
            if parsed is None:
                return
            token_b, vec = parsed
            token = wanted.get(token_b)
            if token is None:
                self._check_not_overlong(token_b, line_no)
                return
            if token in found:
                n_duplicates += 1  # word2vec convention: the first occurrence wins
                return
            found[token] = vec

        n_lines = self._scan(firsts, take, first_line)
        n_rows = n_lines - (1 if self.has_header else 0)
        self.scan.n_rows = n_rows
        self.scan.n_found = len(found)
        if n_duplicates:
            self.scan.notes.append(f"{n_duplicates} repeated tokens: first occurrence kept")
        if self.has_header and self.header_count != n_rows:
            self._bad(1, f"header says {self.header_count} rows but the file has {n_rows}")
        return found

    # -- scanning -------------------------------------------------------------------------------
    def _scan(self, firsts: set[bytes], take, first_line: int) -> int:
        """Calls ``take(line_no, line_bytes)`` for lines whose first field is in ``firsts``;
        also for the first data line, so a header that lies about the width is caught."""
        if compression_of(self.path) is None and self.path.stat().st_size > 0:
            return self._scan_mapped(firsts, take, first_line)
        return self._scan_stream(firsts, take, first_line)

    def _scan_mapped(self, firsts: set[bytes], take, first_line: int) -> int:
        size = self.path.stat().st_size
        self.scan.n_bytes = size
        bar = progress_bar(total=size, desc=self.path.name, enabled=self.progress)
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if hasattr(buf, "madvise"):
                buf.madvise(mmap.MADV_SEQUENTIAL)
            pos, n_lines, released = 0, 0, 0
            while pos < size:
                stop = min(size, pos + _SEGMENT)
                pos, n_lines = _scan_lines(buf, pos, stop, firsts, take, n_lines, first_line)
                if pos < size and buf.find(b"\n", pos) < 0:  # last line without a newline
                    n_lines += 1
                    _offer(buf[pos:size], n_lines, firsts, take, first_line)
                    pos = size
                # Release what was scanned: resident memory must not grow with the file.
                cut = (pos // mmap.PAGESIZE) * mmap.PAGESIZE
                if cut > released and hasattr(buf, "madvise"):
                    buf.madvise(mmap.MADV_DONTNEED, released, cut - released)
                    bar.update(cut - released)
                    released = cut
        bar.close()
        return n_lines

    def _scan_stream(self, firsts: set[bytes], take, first_line: int) -> int:
        stream, raw = open_stream(self.path)
        total = os.fstat(raw.fileno()).st_size
        bar = progress_bar(total=total, desc=self.path.name, enabled=self.progress)
        n_lines, carry, done = 0, b"", 0
        try:
            while True:
                block = stream.read(_BLOCK)
                if not block:
                    break
                buf = carry + block if carry else block
                pos, n_lines = _scan_lines(buf, 0, len(buf), firsts, take, n_lines, first_line)
                carry = buf[pos:]
                now = raw.tell()
                bar.update(now - done)
                done = now
            self.scan.n_bytes = done
            if carry.strip():
                n_lines += 1
                _offer(carry, n_lines, firsts, take, first_line)
        finally:
            stream.close()
            raw.close()
            bar.close()
        return n_lines

    # -- parsing one line -------------------------------------------------------------------------
    def _parse(self, line: bytes, line_no: int) -> tuple[bytes, np.ndarray] | None:
        line = line.rstrip(b"\r\n ")  # fastText writes a trailing space
        parts = line.rsplit(b" ", self.dim)
        if len(parts) != self.dim + 1 or not parts[0]:
            n_values = len(line.split()) - 1
            return self._bad(line_no, f"expected a token and {self.dim} values, found {n_values} values")
        try:
            vec = np.array(list(map(float, parts[1:])), dtype=np.float32)
        except ValueError:
            bad = next(p for p in parts[1:] if not _is_number(p))
            return self._bad(line_no, f"not a number: {bad[:40].decode('utf-8', 'replace')!r}")
        if not np.isfinite(vec).all():
            return self._bad(line_no, "non-finite value (nan or inf)")
        return parts[0], vec

    def _check_not_overlong(self, token_b: bytes, line_no: int) -> None:
        """A line with *more* values than the width parses as a token ending in numbers; when
        its first field was wanted that is far likelier a broken line than such a token."""
        head, _, tail = token_b.rpartition(b" ")
        if head and b"." in tail and _is_number(tail):
            self._bad(line_no, f"more than {self.dim} values")

    def _bad(self, line_no: int, problem: str) -> None:
        if self.on_bad_line == "error":
            raise MalformedFileError(self.name, line_no, problem)
        self.scan.n_skipped += 1
        if len(self.scan.skipped_samples) < _MAX_SKIPPED_SAMPLES:
            self.scan.skipped_samples.append(f"{self.name}:{line_no}: {problem}")
        return None


def _offer(line: bytes, line_no: int, firsts: set[bytes], take, first_line: int) -> None:
    sp = line.find(b" ")
    if line_no == first_line or (line[:sp] if sp >= 0 else line) in firsts:
        take(line_no, line)


def _scan_lines(buf, pos: int, stop: int, firsts: set[bytes], take, n_lines: int, first_line: int):
    """Scan the complete lines starting before ``stop``; returns (next position, lines seen).

    This loop is the whole cost of a graft on a big file: two ``memchr`` calls, one slice and one
    set test per line. Keep it that way.
    """
    find = buf.find
    while pos < stop:
        end = find(b"\n", pos)
        if end < 0:
            break
        n_lines += 1
        sp = find(b" ", pos, end)
        if buf[pos:sp if sp >= 0 else end] in firsts or n_lines == first_line:
            take(n_lines, buf[pos:end])
        pos = end + 1
    return pos, n_lines
