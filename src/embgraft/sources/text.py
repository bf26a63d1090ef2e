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
from embgraft.console import progress_bar
from embgraft.sources.base import CharacterPieces, ScanStats
from embgraft.sources.compression import compression_of, decompression_errors, open_stream, read_head

_SEGMENT = 1 << 24  # 16 MiB: how much of a mapped file is scanned before its pages are released
_BLOCK = 1 << 24  # 16 MiB: read size for compressed streams
_N_SNIFF_LINES = 20
BOM = b"\xef\xbb\xbf"
# First fields of blank (whitespace-only) lines: offered to ``take`` through the same set test
# as the wanted tokens, so skipping them costs the hot loop nothing. ``take`` checks the whole
# line; any other whitespace-only line is caught when the row count is checked.
_BLANK_FIRSTS = frozenset({b"", b"\r", b"\t", b"\t\r", b"\x0b", b"\x0c"})


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _n_trailing_numbers(line: bytes) -> int:
    n = 0
    for f in reversed(line.split(b" ")[1:]):
        if not _is_number(f):
            break
        n += 1
    return n


def sniff_text_header(head: bytes, path: str) -> tuple[bool, int, int | None]:
    """(has_header, dim, header_count) from the first bytes of a text vector file.

    A first line of exactly two integers is a word2vec header. Otherwise (GloVe) the width is
    the most common number of trailing numeric fields over the first lines: counting from the
    right keeps tokens with spaces from skewing it. A header whose width most of the first lines
    disagree with is an error naming the first such line. A UTF-8 BOM and blank lines are
    skipped (see :func:`header_line_no` for where the header is).
    """
    head = head.removeprefix(BOM)
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last piece may be cut mid-line
    numbered = [(i, ln.rstrip(b"\r ")) for i, ln in enumerate(lines, 1) if ln.strip()]
    if not numbered:
        raise MalformedFileError(path, 1, "empty vector file")
    first = numbered[0][1].split()
    sample = numbered[:_N_SNIFF_LINES]
    if len(first) == 2 and all(f.isdigit() for f in first):
        count, dim = int(first[0]), int(first[1])
        if dim <= 0:
            raise MalformedFileError(path, numbered[0][0], f"header gives dimension {dim}")
        widths = [(i, _n_trailing_numbers(ln)) for i, ln in sample[1:]]
        common = Counter(w for _, w in widths).most_common(1)
        if common and common[0][0] != dim:
            line_no = next(i for i, w in widths if w == common[0][0])
            raise MalformedFileError(
                path, line_no,
                f"the header says {dim} values per row, but this line and most of the first "
                f"{len(widths)} have {common[0][0]}",
            )
        return True, dim, count
    dim, _ = Counter(_n_trailing_numbers(ln) for _, ln in sample).most_common(1)[0]
    if dim <= 0:
        raise MalformedFileError(
            path, numbered[0][0], "neither a word2vec header ('count dim') nor a 'token v1 v2 ...' line"
        )
    return False, dim, None


def _check_utf8(head: bytes, path: str) -> None:
    """A vector file is UTF-8: one in GB18030 or GBK (common in China) would match only its ASCII
    tokens, silently. The file's first bytes are checked (a character cut at their end is not an
    error)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        cut = head[: head.rfind(b"\n") + 1] or head  # whole lines: a character cut at the end is no sign
        try:
            cut.decode("gb18030")
        except UnicodeDecodeError:
            return  # a stray byte, not another encoding: the line's parser names it if it is needed
        if e.start < len(cut):
            line_no = head[:e.start].count(b"\n") + 1
            raise MalformedFileError(path, line_no, "not valid UTF-8, but valid GB18030: convert the file "
                                                    "(iconv -f gb18030 -t utf-8)") from None


def header_line_no(head: bytes) -> int:
    """The 1-based line number of the first non-blank line (the header, where there is one)."""
    for i, ln in enumerate(head.removeprefix(BOM).split(b"\n"), 1):
        if ln.strip():
            return i
    return 1


class TextVectors(CharacterPieces):
    """A word2vec / fastText ``.vec`` / GloVe text file, optionally ``.gz``/``.bz2``/``.xz``.

    ``on_bad_line="skip"`` skips malformed *used* lines and counts them in ``scan``; the default
    raises :class:`MalformedFileError` naming file and line. Lines whose token nobody asked for
    are counted (the header's count is checked) but not parsed: that is what makes one pass over
    a 15 GB file take seconds.
    """

    def __init__(self, path: str | os.PathLike, *, fmt: str = "auto", **options) -> None:
        super().__init__(path, **options)
        if not self.path.is_file():
            what = "a directory, not a vector file" if self.path.is_dir() else "no such vector file"
            raise FileNotFoundError(f"{self.path}: {what}")
        head = read_head(self.path)
        _check_utf8(head, self.name)
        has_header, self.dim, self.header_count = sniff_text_header(head, self.name)
        # rows start after the header (blank lines before it are skipped, so it may not be line 1)
        self.first_line = header_line_no(head) + 1 if has_header else 1
        if fmt == "word2vec" and not has_header:
            raise MalformedFileError(self.name, 1, "expected a word2vec header 'count dim'")
        if fmt == "glove" and has_header:
            raise MalformedFileError(self.name, 1, "looks like a word2vec header, not a GloVe line")
        self.has_header = has_header
        self.kind = "word2vec-text" if has_header else "glove-text"

    # -- the contract -------------------------------------------------------------------------
    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = {k.encode("utf-8"): k for k in keys if k}
        firsts = {b.split(b" ", 1)[0] for b in wanted} | _BLANK_FIRSTS
        self.scan = ScanStats(n_requested=len(wanted))
        found: dict[str, np.ndarray] = {}
        # wanted first field -> (line, token): a line read as a longer token ("python 2.7")
        longer: dict[str, tuple[int, bytes]] = {}
        n_duplicates = n_blank = 0
        first_line = self.first_line

        def take(line_no: int, line: bytes) -> None:
            nonlocal n_duplicates, n_blank
            if line_no < first_line:  # the header, whose first field may look like a token
                return
            if not line.strip():
                n_blank += 1
                return
            parsed = self._parse(line, line_no)
            if parsed is None:
                return
            token_b, vec = parsed
            token = wanted.get(token_b)
            if token is None:
                first = wanted.get(token_b.split(b" ", 1)[0])
                if first is not None:
                    longer.setdefault(first, (line_no, token_b))
                return
            if token in found:
                n_duplicates += 1  # word2vec convention: the first occurrence wins
                return
            found[token] = vec

        n_lines = self._scan(firsts, take, first_line)
        if self.has_header and self.header_count != n_lines - (first_line - 1) - n_blank:
            n_blank = self._count_blank_lines(first_line)  # recount rarer blank forms exactly
        n_rows = n_lines - (first_line - 1) - n_blank
        self.scan.n_rows = n_rows
        if n_duplicates:
            self.scan.notes.append(f"{n_duplicates} repeated tokens: first occurrence kept")
        if n_blank:
            self.scan.notes.append(f"{n_blank} blank lines skipped")
        if self.has_header and self.header_count != n_rows:
            self._bad(first_line - 1, f"header says {self.header_count} rows but the file has {n_rows}")
        self._check_longer(longer, found)
        self.scan.n_found = len(found)
        return found

    def _check_longer(self, longer: dict[str, tuple[int, bytes]], found: dict) -> None:
        """A line whose first field was wanted but whose values, read from the right with the
        known width, leave a longer token: ``python 2.7 3 4`` at width 2 is the token
        ``python 2.7``. That is legitimate when ``python`` has a row of its own; when it has none,
        the line is far likelier a row with too many values, and it is reported."""
        for token, (line_no, token_b) in longer.items():
            if token not in found:
                longer_token = token_b[:60].decode("utf-8", "replace")
                self._bad(line_no, f"more than {self.dim} values ({token!r} has no row of its own, "
                                   f"so this is not read as the token {longer_token!r})")

    def _count_blank_lines(self, first_line: int) -> int:
        """Whitespace-only lines from ``first_line`` on, counted exactly: the hot loop's set test
        misses rare forms such as ``\\t\\t``. Run only when the row count disagrees with the header."""
        return sum(1 for line_no, line in self._iter_lines() if line_no >= first_line and not line.strip())

    def _iter_lines(self):
        stream, raw = open_stream(self.path)
        try:
            with decompression_errors(self.name):
                for line_no, line in enumerate(stream, 1):
                    yield line_no, (line.removeprefix(BOM) if line_no == 1 else line).rstrip(b"\n")
        finally:
            stream.close()
            raw.close()

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
            pos = len(BOM) if buf[:len(BOM)] == BOM else 0
            n_lines, released = 0, 0
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
        n_lines, carry, done, first = 0, b"", 0, True
        try:
            while True:
                with decompression_errors(self.name):
                    block = stream.read(_BLOCK)
                if not block:
                    break
                if first:
                    block, first = block.removeprefix(BOM), False
                buf = carry + block if carry else block
                pos, n_lines = _scan_lines(buf, 0, len(buf), firsts, take, n_lines, first_line)
                carry = buf[pos:]
                now = raw.tell()
                bar.update(now - done)
                done = now
            self.scan.n_bytes = done
            if carry:  # a last line without a newline (blank or not, as the mapped path counts it)
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
            vec = np.array(list(map(float, parts[1:])), dtype=self.dtype)
        except ValueError:
            bad = next(p for p in parts[1:] if not _is_number(p))
            return self._bad(line_no, f"not a number: {bad[:40].decode('utf-8', 'replace')!r}")
        if not np.isfinite(vec).all():
            return self._bad(line_no, "non-finite value (nan or inf)")
        return parts[0], vec

    def _bad(self, line_no: int, problem: str) -> None:
        return self.scan.bad_row(self.on_bad_line, self.name, line_no, problem)


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
