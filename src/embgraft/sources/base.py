"""The contract every source of pretrained parameters follows: the :class:`Source` base class.

A *source* holds someone else's vectors: a word-vector file or a transformer's input-embedding
table. The graft asks it three things, in this order:

1. ``requests(token)`` -- which source keys the cascade could need for one target token besides
   the token itself (sub-words for composition). Static files must know this *before* their one
   streaming pass; checkpoints can read any row at any time and return nothing here.
2. ``lookup(keys)`` -- one pass; returns ``{key: vector}`` for the keys the source has, exactly
   (no normalisation: that is the graft's job). Vectors have shape ``(dim,)`` and the ``dtype``
   the source was opened with (float32 unless asked for float64); every value is finite.
3. ``pieces_batch(tokens, found)`` -- for each absent token, the pieces to compose it from, as
   ``Piece`` records (label for provenance, vector), or ``[]`` when it cannot be composed. The
   base class asks ``pieces(token, found)`` token by token; a checkpoint answers for all of them
   at once (one tokenizer call, one read of the rows).

``special_tokens`` maps our specials (``<pad>``, ``<cls>`` ...) to the source's own tokens for
the same roles; only checkpoints have any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import ClassVar, Iterable, Mapping, Sequence

import numpy as np

from embgraft.errors import ConfigError, MalformedFileError

ON_BAD_LINE = ("error", "skip")  # what a reader does with a malformed row it needs
SOURCE_DTYPES = ("float32", "float64")  # what a reader can return rows as
MAX_SKIPPED_SAMPLES = 10  # skipped rows quoted in the report; all are counted
# options every static vector reader takes (each reader class declares its own ``OPTIONS``)
STATIC_OPTIONS = frozenset({"on_bad_line", "progress", "max_piece_chars", "dtype"})


def check_reader_options(on_bad_line: str, dtype: str, *, dtypes=SOURCE_DTYPES) -> None:
    """The options every reader validates the same way (``dtypes``: those it can return rows
    as); all problems in one message."""
    errors = []
    if on_bad_line not in ON_BAD_LINE:
        errors.append(f"on_bad_line must be one of {list(ON_BAD_LINE)}, not {on_bad_line!r}")
    if dtype not in dtypes:
        errors.append(f"a source's dtype must be one of {list(dtypes)}, not {dtype!r}")
    if errors:
        raise ConfigError("; ".join(errors))


@dataclass(frozen=True)
class Piece:
    """One piece used to compose a token: ``label`` is written to provenance; ``n_chars`` is
    how many characters of the token it covers (the caller checks coverage with it).

    ``kind`` is ``row`` for an ordinary piece; ``bytes`` for a part of a character's UTF-8
    bytes (byte-level BPE), whose row says little about the character; ``unknown`` for text
    the source does not know, named for provenance only: its ``vector`` is None and it covers
    nothing.
    """

    label: str
    vector: np.ndarray | None  # (dim,) in the source's dtype; None for an unknown piece
    n_chars: int
    kind: str = "row"


@dataclass
class ScanStats:
    """What one pass over a source saw; goes into the graft report."""

    n_rows: int = 0  # rows (lines/records) in the source
    n_requested: int = 0
    n_found: int = 0
    n_skipped: int = 0  # malformed rows skipped at the user's request
    skipped_samples: list[str] = field(default_factory=list)  # "file:line: problem", first few
    n_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    contextual: dict | None = None  # output rows of a checkpoint: how, how fast, the scale factor

    def bad_row(self, on_bad_line: str, path: object, line_no: int | None, problem: str) -> None:
        """A malformed row a reader needs: raised as :class:`MalformedFileError`, or, with
        ``on_bad_line="skip"``, counted here with the first few messages kept as samples."""
        err = MalformedFileError(path, line_no, problem)
        if on_bad_line != "skip":
            raise err
        self.n_skipped += 1
        if len(self.skipped_samples) < MAX_SKIPPED_SAMPLES:
            self.skipped_samples.append(str(err))

    def to_dict(self) -> dict:
        return {
            "n_rows": self.n_rows,
            "n_requested": self.n_requested,
            "n_found": self.n_found,
            "n_skipped": self.n_skipped,
            "skipped_samples": list(self.skipped_samples),
            "n_bytes": self.n_bytes,
            "notes": list(self.notes),
            **({"contextual": dict(self.contextual)} if self.contextual is not None else {}),
        }


class Source:
    """Base of every reader (see the module docstring); subclass it for a source of your own."""

    name: str  # how the report names it (a path or hub id)
    kind: str  # e.g. "word2vec-text", "glove-text", "word2vec-binary", "npy", "checkpoint"
    OPTIONS: ClassVar[frozenset[str]] = frozenset()  # keyword options its constructor takes (open_source checks)
    # provenance of the rows ``lookup`` returns for a token itself (a checkpoint's output rows:
    # ``contextual:<pool>@<layer>``)
    row_method: str = "exact"
    # True where a key costs work of its own (an encoder run per entry), not a pass over a file:
    # the graft then asks for the vocabulary's own tokens first, and the normalised forms and
    # pieces of only those left unfound
    staged_lookup: bool = False
    dim: int
    scan: ScanStats

    def requests(self, token: str) -> Iterable[str]:
        """Keys besides ``token`` itself that composing it could need (default: none)."""
        return ()

    def method_of(self, key: str) -> str:
        """Provenance of the row :meth:`lookup` gave ``key`` (default: :attr:`row_method`, one for all)."""
        return self.row_method

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def pieces(self, token: str, found: Mapping[str, np.ndarray]) -> list[Piece]:
        """The pieces to compose ``token`` from (default: none, it cannot be composed)."""
        return []

    def pieces_batch(self, tokens: Sequence[str], found: Mapping[str, np.ndarray]) -> list[list[Piece]]:
        """``pieces`` of each of ``tokens``; a source that can do many at once overrides this."""
        return [self.pieces(t, found) for t in tokens]

    @property
    def special_tokens(self) -> dict[str, str]:
        """Our specials -> the source's tokens for the same roles (default: none)."""
        return {}


class StaticReader(Source):
    """The options and state every static vector file reader shares (text, binary, npy)."""

    OPTIONS: ClassVar[frozenset[str]] = STATIC_OPTIONS

    def __init__(self, path: str | os.PathLike, *, on_bad_line: str = "error", progress: bool = True,
                 max_piece_chars: int = 4, dtype: str = "float32") -> None:
        check_reader_options(on_bad_line, dtype)
        self.path = Path(path)
        self.name = str(path)
        self.on_bad_line = on_bad_line
        self.progress = progress
        self.max_piece_chars = max_piece_chars
        self.dtype = np.dtype(dtype)
        self.scan = ScanStats()


def longest_match_pieces(
    token: str, found: Mapping[str, np.ndarray], *, max_piece_chars: int
) -> list[Piece]:
    """Split ``token`` left to right into the longest sub-strings the source has.

    Forward maximum matching, as Chinese word segmenters do: "北京大学生" with "北京", "大学"
    and every character known gives 北京 / 大学 / 生. A character the source lacks is dropped,
    and the caller decides from the returned labels whether enough of the word was covered.
    """
    out: list[Piece] = []
    i, n = 0, len(token)
    while i < n:
        for j in range(min(n, i + max_piece_chars), i, -1):
            sub = token[i:j]
            if j - i < n and sub in found:  # never the whole token: that would be an exact match
                out.append(Piece(sub, found[sub], len(sub)))
                i = j
                break
        else:
            i += 1  # unknown character: skipped here, counted by the caller
    return out


def substrings(token: str, *, max_piece_chars: int) -> Iterable[str]:
    """Every proper sub-string of ``token`` up to ``max_piece_chars`` characters."""
    n = len(token)
    for i in range(n):
        for j in range(i + 1, min(n, i + max_piece_chars) + 1):
            if j - i < n:
                yield token[i:j]


class CharacterPieces(StaticReader):
    """A static vector file streamed once: a word the file lacks is composed from its longest
    sub-strings the file has, which it must therefore ask for before the pass."""

    def requests(self, token: str) -> Iterable[str]:
        return substrings(token, max_piece_chars=self.max_piece_chars)

    def pieces(self, token: str, found: Mapping[str, np.ndarray]) -> list[Piece]:
        return longest_match_pieces(token, found, max_piece_chars=self.max_piece_chars)
