"""Composing the rows of words a source lacks from the rows of their pieces.

Per source, the pieces of every word still pending come in one batch (``Source.pieces_batch``:
one tokenizer call and one read of the rows for a checkpoint); the first form of a word whose
known pieces cover enough of it wins. The chosen words are then pooled in one NumPy reduction
per chunk of words.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from embgraft.grafting.result import Provenance
from embgraft.sources.base import Piece, Source

# pooling name -> (pieces of many words, stacked word after word (n_pieces, dim) float32;
# each word's first row (n_words,); its number of pieces (n_words,)) -> (n_words, dim).
# One reduction for every composed word; sums accumulate in float64.
POOLINGS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "mean": lambda m, starts, counts: np.add.reduceat(m, starts, axis=0, dtype=np.float64) / counts[:, None],
    "sum": lambda m, starts, counts: np.add.reduceat(m, starts, axis=0, dtype=np.float64),
    "max": lambda m, starts, counts: np.maximum.reduceat(m, starts, axis=0),
    "first": lambda m, starts, counts: m[starts],
    "last": lambda m, starts, counts: m[starts + counts - 1],
}
# composing from pieces that are parts of a character's bytes (byte-level BPE): on | off
COMPOSE_BYTES = ("on", "off")
# how provenance names a piece the source does not know (left out of the pooling)
UNKNOWN_PIECE = "unknown:{}"
_COMPOSE_CHUNK = 8192  # words pooled at once: bounds the stacked pieces' memory


def compose_rows(pending: dict[int, list[str]], srcs: Sequence[Source], found: Sequence[dict], *,
                 pooling: str, min_coverage: float, compose_bytes: str, dtype: np.dtype
                 ) -> tuple[dict[int, tuple[np.ndarray, Provenance]], dict[int, tuple[str, ...]]]:
    """Compose every row in ``pending`` (row -> forms to try, in order) at once.

    Returns ``{row: (vector (dim,) of ``dtype``, provenance)}`` and, for rows left over, the
    unknown pieces that kept them out (for their init provenance).
    """
    chosen, unknown = _choose_pieces(pending, srcs, found, min_coverage=min_coverage,
                                     compose_bytes=compose_bytes)
    out: dict[int, tuple[np.ndarray, Provenance]] = {}
    order = list(chosen)
    for lo in range(0, len(order), _COMPOSE_CHUNK):
        block = order[lo:lo + _COMPOSE_CHUNK]
        known = [[p for p in chosen[i][1] if p.kind != "unknown"] for i in block]
        counts = np.array([len(k) for k in known], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        stacked = np.stack([p.vector for k in known for p in k])  # (n_pieces, dim)
        pooled = POOLINGS[pooling](stacked, starts, counts).astype(dtype, copy=False)
        for i, vec, pieces in zip(block, pooled, known):
            src, all_pieces = chosen[i]
            # byte-level pieces of a character carry little of it: said apart in the provenance
            method = "composed:bytes" if any(p.kind == "bytes" for p in pieces) else f"composed:{pooling}"
            out[i] = vec, Provenance(method, src.name, tuple(piece_label(p) for p in all_pieces))
    return out, {i: u for i, u in unknown.items() if i not in out}


def _choose_pieces(pending: dict[int, list[str]], srcs: Sequence[Source], found: Sequence[dict], *,
                   min_coverage: float, compose_bytes: str
                   ) -> tuple[dict[int, tuple[Source, list[Piece]]], dict[int, tuple[str, ...]]]:
    """For each pending row, the first (source, form) whose known pieces cover enough of it."""
    chosen: dict[int, tuple[Source, list[Piece]]] = {}
    unknown: dict[int, tuple[str, ...]] = {}
    left = dict(pending)
    for src, got in zip(srcs, found):
        if not left:
            break
        forms = list(dict.fromkeys(f for fs in left.values() for f in fs))
        pieces_of = dict(zip(forms, src.pieces_batch(forms, got)))
        for i, fs in list(left.items()):
            for form in fs:
                pieces = pieces_of[form]
                known = [p for p in pieces if p.kind != "unknown"]
                if len(known) < len(pieces) and i not in unknown:  # for the init provenance, should nothing work
                    unknown[i] = tuple(piece_label(p) for p in pieces if p.kind == "unknown")
                if not known or (compose_bytes == "off" and any(p.kind == "bytes" for p in known)):
                    continue
                if sum(p.n_chars for p in known) / max(len(form), 1) + 1e-9 < min_coverage:
                    continue
                chosen[i] = (src, pieces)
                del left[i]
                break
    return chosen, unknown


def piece_label(piece: Piece) -> str:
    """A piece as provenance names it: an unknown one says so (its row was never used)."""
    return UNKNOWN_PIECE.format(piece.label) if piece.kind == "unknown" else piece.label
