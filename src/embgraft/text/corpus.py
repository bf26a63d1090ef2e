"""Read a user's corpus, one text (and maybe a label) at a time.

Formats, chosen from the file extension unless ``fmt`` is given:

- ``text`` (.txt): one text per line.
- ``tsv`` (.tsv): ``text<TAB>label`` (columns chosen by 0-based index; no header, no quoting).
- ``csv`` (.csv): a header row, then rows read with the ``csv`` module; columns by name or index.
- ``jsonl`` (.jsonl, .json): one JSON object per line; fields by key.

Files are read as UTF-8 (a leading BOM is dropped) and streamed line by line. Blank lines are
skipped. A line that does not follow the format raises ``MalformedFileError`` naming the file
and its 1-based line number.

A ``.txt`` file whose first lines are all ``text<TAB>label`` (THUCNews, for one) is read as TSV
(see :func:`detect_format`); ``fmt="text"`` forces plain text.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Callable, Iterator, Union

from embgraft.errors import ConfigError, EmbgraftError, MalformedFileError

PathLike = Union[str, "os.PathLike[str]"]
Column = Union[int, str, None]
Example = tuple[str, Union[str, None]]
Record = tuple[int, str, Union[str, None]]  # (1-based line number, text, label)

FORMAT_BY_SUFFIX = {
    ".txt": "text",
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
}
FORMAT_ALIASES = {
    "text": "text",
    "txt": "text",
    "tsv": "tsv",
    "csv": "csv",
    "jsonl": "jsonl",
    "json": "jsonl",
}
FORMATS = ("text", "tsv", "csv", "jsonl")


def detect_format(path: PathLike, fmt: str | None = None) -> str:
    """The canonical format name for ``path``: ``fmt`` if given, else from the extension.

    A ``.txt`` whose first lines are all ``text<TAB>label`` is read as TSV: THUCNews and most
    Chinese classification sets ship that way, and counting the label digits as characters of
    the text would be a silent error. ``fmt="text"`` forces plain text.
    """
    return _detect(path, fmt)[0]


def _detect(path: PathLike, fmt: str | None) -> tuple[str, bool]:
    """(canonical format, whether a ``.txt`` was sniffed as TSV)."""
    if fmt is not None:
        canonical = FORMAT_ALIASES.get(fmt.lower())
        if canonical is None:
            raise ConfigError(f"unknown corpus format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        return canonical, False
    suffix = Path(path).suffix.lower()
    canonical = FORMAT_BY_SUFFIX.get(suffix)
    if canonical is None and Path(path).is_dir():
        raise ConfigError(f"{path} is a directory, not a data file")
    if canonical is None:
        known = ", ".join(FORMAT_BY_SUFFIX)
        raise ConfigError(
            f"{path}: cannot tell the corpus format from the extension {suffix or '(none)'!r} "
            f"(known: {known}); give the format ({', '.join(FORMATS)})"
        )
    if canonical == "text" and sniff_tsv(path)[0]:
        return "tsv", True
    return canonical, False


_N_SNIFF_LINES = 50


def _tsv_like(line: str) -> str | None:
    """Why ``line`` is not ``text<TAB>label`` with a short, spaceless label (None when it is)."""
    if line.count("\t") != 1:
        return f"has {line.count(chr(9))} tabs" if line.count("\t") else "has no tab"
    label = line.split("\t")[1].strip()
    if not 0 < len(label) <= 32:
        return "has no label after its tab" if not label else "has a label over 32 characters"
    if any(c.isspace() for c in label):
        return "has a label with a space"
    return None


def sniff_tsv(path: PathLike) -> tuple[bool, tuple[int, str] | None]:
    """Whether a ``.txt`` reads as TSV: every one of its first non-blank lines is ``text<TAB>label``.
    When some are and a later one is not, ``(line number, why)`` of that line: a label error in a
    file read as plain text names it, with a hint to give ``--format tsv``."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            lines = [(n, ln.rstrip("\r\n")) for n, ln in zip(range(1, _N_SNIFF_LINES + 1), f)]
    except OSError:
        return False, None  # the reader reports the real problem
    lines = [(n, ln) for n, ln in lines if ln.strip()]
    broken = next(((n, why) for n, ln in lines if (why := _tsv_like(ln)) is not None), None)
    if not lines:
        return False, None
    if broken is None:
        return True, None
    return False, (broken if broken[0] != lines[0][0] else None)


def plain_text_hint(path: PathLike, fmt: str | None) -> str:
    """For an error about a .txt read as plain text whose first lines looked like TSV: which line
    made it plain text, and what to give instead ("" otherwise)."""
    if fmt is not None or Path(path).suffix.lower() != ".txt":
        return ""
    _, broken = sniff_tsv(path)
    if broken is None:
        return ""
    return (f" (read as plain text: line {broken[0]} {broken[1]}, unlike the lines before it; if this is "
            "text<TAB>label, give --format tsv)")


def iter_texts(
    path: PathLike, *, fmt: str | None = None, text_column: Column = None
) -> Iterator[str]:
    """Yield the text of every record in ``path``. Labels are not read, so cannot fail."""
    reader = _reader(path, fmt=fmt, text_column=text_column, label_column=None, want_label=False)
    return (text for _, text, _ in reader)


def iter_examples(
    path: PathLike,
    *,
    fmt: str | None = None,
    text_column: Column = None,
    label_column: Column = None,
) -> Iterator[Example]:
    """Yield ``(text, label)`` for every record in ``path``.

    ``label_column=None`` takes the label where the format usually has one: TSV column 1, a CSV
    column or JSON key named ``label``; the label is ``None`` where there is none. A label column
    that is named explicitly must be present on every record.
    """
    records = iter_records(path, fmt=fmt, text_column=text_column, label_column=label_column)
    return ((text, label) for _, text, label in records)


def iter_records(
    path: PathLike,
    *,
    fmt: str | None = None,
    text_column: Column = None,
    label_column: Column = None,
) -> Iterator[Record]:
    """Like ``iter_examples``, with the 1-based line number of each record first, so that a
    bad label or an empty text can be reported as ``file:line``."""
    return _reader(
        path, fmt=fmt, text_column=text_column, label_column=label_column, want_label=True
    )


def _reader(
    path: PathLike, *, fmt: str | None, text_column: Column, label_column: Column, want_label: bool
) -> Iterator[Record]:
    # Arguments are checked here, eagerly, so a bad call fails before the first next().
    canonical, sniffed = _detect(path, fmt)
    opener, check = _FORMATS[canonical]
    check(text_column, label_column)
    if sniffed:  # every row must then have the shape the first lines showed
        return _read_sniffed_tsv(path, want_label)
    return opener(path, text_column, label_column, want_label)


def _lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_no, line)`` with line endings kept; decodes per line to name a bad one."""
    with open(path, "rb") as f:  # binary: split only on b"\n", never on U+2028 and friends
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise MalformedFileError(
                    path, line_no, f"not valid UTF-8 ({e.reason} at byte {e.start})"
                ) from None
            if line_no == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield line_no, line


def empty_corpus_error(paths: list[PathLike], *, fmt: str | None, level: str) -> EmbgraftError:
    """The error for a corpus that gave no token: names the first row that gave none, if any
    (every row then gave none: an empty text column, say), else says the files hold no text."""
    for path in paths:
        skip = 1 if detect_format(path, fmt) == "csv" else 0  # a CSV's first row is its header
        with open(path, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                if line_no > skip and raw.strip(b" \t\r\n\v\f").removeprefix(b"\xef\xbb\xbf"):
                    return MalformedFileError(
                        path, line_no, f"the corpus is empty: no row gives a {level} token, "
                        "this one being the first (is the text column right?)")
    if len(paths) == 1:
        return MalformedFileError(paths[0], None, "the corpus is empty: the file holds no text")
    return EmbgraftError(f"the corpus is empty: {', '.join(map(str, paths))} hold no text")


def first_undecodable_line(path: PathLike) -> int | None:
    """The 1-based number of the first line that is not UTF-8 (for error messages only)."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return line_no
    return None


def strip_eol(line: str) -> str:
    """``line`` without its trailing \\n or \\r\\n."""
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    return line


# --- plain text ------------------------------------------------------------------------------


def _check_text(text_column: Column, label_column: Column) -> None:
    if text_column not in (None, 0):
        raise ConfigError("plain text corpora have one column; text_column does not apply")
    if label_column is not None:
        raise ConfigError(
            "plain text corpora have no labels; use tsv, csv or jsonl for labelled data"
        )


def _read_text(
    path: PathLike, text_column: Column, label_column: Column, want_label: bool
) -> Iterator[Record]:
    for line_no, line in _lines(path):
        text = strip_eol(line)
        if text.strip():
            yield line_no, text, None


# --- TSV -------------------------------------------------------------------------------------


def _tsv_index(column: Column, what: str) -> int | None:
    if column is None:
        return None
    if isinstance(column, str) and column.isascii() and column.isdigit():
        column = int(column)
    if not isinstance(column, int) or isinstance(column, bool) or column < 0:
        raise ConfigError(
            f"tsv files have no header: give {what} as a 0-based column index, not {column!r}"
        )
    return column


def _check_tsv(text_column: Column, label_column: Column) -> None:
    _tsv_index(text_column, "text_column")
    _tsv_index(label_column, "label_column")


def _read_tsv(
    path: PathLike, text_column: Column, label_column: Column, want_label: bool
) -> Iterator[Record]:
    text_i = _tsv_index(text_column, "text_column")
    text_i = 0 if text_i is None else text_i
    label_i = _tsv_index(label_column, "label_column")
    for line_no, line in _lines(path):
        line = strip_eol(line)
        if not line.strip():
            continue
        fields = line.split("\t")
        needed = max(text_i, label_i if label_i is not None and want_label else 0) + 1
        if len(fields) < needed:
            raise MalformedFileError(
                path,
                line_no,
                f"expected at least {needed} tab-separated columns, found {len(fields)}",
            )
        label = None
        if want_label:
            if label_i is not None:
                label = fields[label_i]
            elif text_i != 1 and len(fields) > 1:
                label = fields[1]
        yield line_no, fields[text_i], label


def _read_sniffed_tsv(path: PathLike, want_label: bool) -> Iterator[Record]:
    """A ``.txt`` read as TSV because its first lines are ``text<TAB>label``: a later line of
    another shape is an error at that line, never a text cut at a stray tab into a new class."""
    for line_no, line in _lines(path):
        line = strip_eol(line)
        if not line.strip():
            continue
        if line.count("\t") != 1:
            raise MalformedFileError(path, line_no, f"this .txt reads as TSV (its first lines are text<TAB>label), "
                                     f"but this line has {line.count(chr(9))} tabs: give --format tsv with "
                                     "--text-column/--label-column, or --format text")
        text, label = line.split("\t")
        yield line_no, text, label if want_label else None


# --- CSV -------------------------------------------------------------------------------------


def _check_csv(text_column: Column, label_column: Column) -> None:
    for what, column in (("text_column", text_column), ("label_column", label_column)):
        if column is not None and (isinstance(column, bool) or not isinstance(column, (int, str))):
            raise ConfigError(
                f"csv {what} must be a column name or a 0-based index, not {column!r}"
            )
        if isinstance(column, int) and column < 0:
            raise ConfigError(f"csv {what} must be a 0-based index, not {column}")


def _csv_index(path: PathLike, header: list[str], column: int | str, what: str) -> int:
    if isinstance(column, str) and column in header:
        return header.index(column)
    if isinstance(column, str) and column.isascii() and column.isdigit():
        column = int(column)
    if isinstance(column, int) and column < len(header):
        return column
    raise MalformedFileError(
        path, 1, f"no {what} {column!r}; the header has columns: {', '.join(map(repr, header))}"
    )


def _read_csv(
    path: PathLike, text_column: Column, label_column: Column, want_label: bool
) -> Iterator[Record]:
    # csv.reader wants lines with their endings (as newline="" would give) so quoted newlines work.
    reader = csv.reader(line for _, line in _lines(path))
    try:
        header = next(reader, None)
        if header is None:
            return  # an empty file has no records
        text_i = _csv_index(
            path, header, "text" if text_column is None else text_column, "text column"
        )
        label_i = None
        if want_label and label_column is not None:
            label_i = _csv_index(path, header, label_column, "label column")
        elif want_label and "label" in header:
            label_i = header.index("label")
        needed = max(text_i, -1 if label_i is None else label_i) + 1
        start = reader.line_num + 1  # where the next record begins (a quoted field may span lines)
        for row in reader:
            if row and len(row) < needed and reader.line_num > start and any("\n" in c for c in row):
                raise MalformedFileError(path, start, "a quote opened in this record is not closed before line "
                                                      f"{reader.line_num}: an unterminated quote?")
            if row and len(row) < needed:
                raise MalformedFileError(
                    path, reader.line_num, f"expected at least {needed} columns, found {len(row)}"
                )
            if row:  # else a blank line
                yield reader.line_num, row[text_i], (None if label_i is None else row[label_i])
            start = reader.line_num + 1
    except csv.Error as e:
        raise MalformedFileError(path, reader.line_num, f"bad CSV: {e}") from None


# --- JSONL -----------------------------------------------------------------------------------


def _check_jsonl(text_column: Column, label_column: Column) -> None:
    for what, column in (("text_column", text_column), ("label_column", label_column)):
        if column is not None and not isinstance(column, str):
            raise ConfigError(f"jsonl {what} must be a key (a string), not {column!r}")


def _label_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)  # 3 -> "3", true -> "true"


_ARRAY_HINT = "; a JSON array is not supported, write one object per line (JSONL)"


def _read_jsonl(
    path: PathLike, text_column: Column, label_column: Column, want_label: bool
) -> Iterator[Record]:
    text_key = "text" if text_column is None else str(text_column)
    for line_no, line in _lines(path):
        if not line.strip():
            continue
        # A whole-file JSON array is the likeliest mistake with a .json corpus: say so.
        hint = _ARRAY_HINT if line_no == 1 and line.lstrip().startswith("[") else ""
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise MalformedFileError(
                path, line_no, f"bad JSON: {e.msg} at column {e.colno}{hint}"
            ) from None
        if not isinstance(record, dict):
            raise MalformedFileError(
                path, line_no, f"expected a JSON object, found {type(record).__name__}{hint}"
            )
        if text_key not in record:
            keys = ", ".join(map(repr, record)) or "(none)"
            raise MalformedFileError(
                path, line_no, f"no key {text_key!r}; the object has keys: {keys}"
            )
        text = record[text_key]
        if not isinstance(text, str):
            raise MalformedFileError(
                path, line_no, f"{text_key!r} must be a string, found {type(text).__name__}"
            )
        label = None
        if want_label and label_column is not None:
            if label_column not in record:
                keys = ", ".join(map(repr, record))
                raise MalformedFileError(
                    path, line_no, f"no key {label_column!r}; the object has keys: {keys}"
                )
            label = _label_str(record[label_column])
        elif want_label:
            label = _label_str(record.get("label"))
        yield line_no, text, label


Opener = Callable[[PathLike, Column, Column, bool], Iterator[Record]]
Checker = Callable[[Column, Column], None]

_FORMATS: dict[str, tuple[Opener, Checker]] = {
    "text": (_read_text, _check_text),
    "tsv": (_read_tsv, _check_tsv),
    "csv": (_read_csv, _check_csv),
    "jsonl": (_read_jsonl, _check_jsonl),
}
