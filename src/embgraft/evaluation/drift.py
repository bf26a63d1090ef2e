"""How far fine-tuning moved each embedding row from its grafted vector, per provenance method,
and how the nearest neighbours of frequent tokens changed.

Distances come from ``sklearn.metrics.pairwise``, unit rows for similarities from
``sklearn.preprocessing.normalize``. A row whose vector is zero
before or after (``<pad>``, ``init:zeros``) has no direction: its cosine distance is left out of
the cosine summaries and counted in ``n_cosine_undefined``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embgraft.errors import EmbgraftError, MalformedFileError
from embgraft.grafting.result import STAGES, read_provenance_table
from embgraft.text.vocab import Vocab
from embgraft.training import rundir

SPECIAL = "special"


def _summary(values: np.ndarray) -> dict[str, float | None]:
    """count, mean, median and max of the finite ``values``."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"count": 0, "mean": None, "median": None, "max": None}
    return {"count": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)), "max": float(v.max())}


def _method_order(method: str) -> tuple[int, str]:
    stage = method.split(":", 1)[0]
    return (STAGES.index(stage) if stage in STAGES else len(STAGES), method)


def embedding_drift(initial: Any, final: Any, methods: Sequence[str], tokens: Sequence[str],
                    counts: Sequence[int], *, n_neighbours: int = 8, n_tokens: int = 5,
                    n_most_moved: int = 10) -> dict[str, Any]:
    """Row-by-row movement of an embedding table during fine-tuning.

    ``initial``, ``final``: (n_rows, dim) float arrays, the table before and after training;
    ``methods``, ``tokens``, ``counts``: n_rows each, the provenance method (``exact``,
    ``normalised:lower``, ``composed:mean``, ``init:normal``, ``special``, ...), the token and its
    corpus count, in row order.

    Returns a JSON-serialisable dict:
    ``n_rows``, ``dim``; ``per_method`` {method: {``n_rows``, ``n_unchanged`` (bit-for-bit equal
    rows), ``n_cosine_undefined``, ``l2`` and ``cosine`` {count, mean, median, max}}} in cascade
    order, and ``overall`` the same over all rows; ``most_moved``: the ``n_most_moved`` non-special
    rows with the largest (non-zero) L2 distance {id, token, method, count, l2, cosine}; ``neighbours``: for
    each of the ``n_tokens`` most frequent non-special tokens (ties by id), its ``n_neighbours``
    nearest rows by cosine similarity before and after, excluding specials, zero rows and the
    token itself: {id, token, method, count, l2, cosine, ``before``/``after`` [{token,
    similarity}], ``kept`` (how many neighbours are in both lists)}.
    """
    from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances
    from sklearn.preprocessing import normalize

    a = np.asarray(initial, dtype=np.float64)
    b = np.asarray(final, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise EmbgraftError(f"initial and final must be (n_rows, dim) of one shape; got {a.shape} and {b.shape}")
    n = a.shape[0]
    if not (len(methods) == len(tokens) == len(counts) == n):
        raise EmbgraftError(f"{len(methods)} methods, {len(tokens)} tokens and {len(counts)} counts "
                            f"for {n} rows")
    if n_neighbours < 0 or n_tokens < 0 or n_most_moved < 0:
        raise EmbgraftError("n_neighbours, n_tokens and n_most_moved must be non-negative")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise EmbgraftError("the embedding holds NaN or infinite values")
    methods = [str(m) for m in methods]
    counts_arr = np.asarray(counts, dtype=np.int64)

    l2 = paired_euclidean_distances(a, b) if n else np.zeros(0)
    nonzero = (np.linalg.norm(a, axis=1) > 0) & (np.linalg.norm(b, axis=1) > 0)
    cos = np.full(n, np.nan)
    if nonzero.any():
        cos[nonzero] = paired_cosine_distances(a[nonzero], b[nonzero])  # 1 - cos, row by row
    unchanged = np.all(a == b, axis=1)

    def block(mask: np.ndarray) -> dict[str, Any]:
        return {"n_rows": int(mask.sum()), "n_unchanged": int(unchanged[mask].sum()),
                "n_cosine_undefined": int((~nonzero[mask]).sum()),
                "l2": _summary(l2[mask]), "cosine": _summary(cos[mask])}

    method_arr = np.array(methods, dtype=object)
    per_method = {m: block(method_arr == m) for m in sorted(set(methods), key=_method_order)}

    regular = np.array([m != SPECIAL for m in methods], dtype=bool)
    moved = np.flatnonzero(regular & (l2 > 0))
    moved = moved[np.argsort(-l2[moved], kind="stable")][:n_most_moved]

    def row(i: int) -> dict[str, Any]:
        return {"id": int(i), "token": str(tokens[i]), "method": methods[i], "count": int(counts_arr[i]),
                "l2": float(l2[i]), "cosine": None if np.isnan(cos[i]) else float(cos[i])}

    candidates_before = regular & (np.linalg.norm(a, axis=1) > 0)
    candidates_after = regular & (np.linalg.norm(b, axis=1) > 0)
    by_freq = np.flatnonzero(regular)
    by_freq = by_freq[np.argsort(-counts_arr[by_freq], kind="stable")][:n_tokens]

    unit_a = normalize(a) if n else a  # rows scaled to unit length (zero rows stay zero)
    unit_b = normalize(b) if n else b

    def nearest(unit: np.ndarray, i: int, candidates: np.ndarray) -> list[dict[str, Any]]:
        if n_neighbours == 0 or not np.any(unit[i]):
            return []
        sim = unit @ unit[i]  # cosine similarity to every row
        allowed = candidates.copy()
        allowed[i] = False
        idx = np.flatnonzero(allowed)
        idx = idx[np.argsort(-sim[idx], kind="stable")][:n_neighbours]
        return [{"token": str(tokens[j]), "similarity": float(sim[j])} for j in idx]

    neighbours = []
    for i in by_freq:
        before = nearest(unit_a, i, candidates_before)
        after = nearest(unit_b, i, candidates_after)
        kept = len({x["token"] for x in before} & {x["token"] for x in after})
        neighbours.append({**row(i), "before": before, "after": after, "kept": kept})

    return {"n_rows": int(n), "dim": int(a.shape[1]), "per_method": per_method,
            "overall": block(np.ones(n, dtype=bool)), "most_moved": [row(i) for i in moved],
            "neighbours": neighbours, "n_neighbours": int(n_neighbours)}


def read_provenance(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Tokens and provenance methods, in row order, from a ``provenance.tsv``; a bad line is a
    ``MalformedFileError`` (``grafting.result.read_provenance_table`` reads it)."""
    tokens, provenance = read_provenance_table(path)
    return tokens, [p.method for p in provenance]


def drift_for_run(run_dir: str | os.PathLike, final: Any, *, n_neighbours: int = 8,
                  n_tokens: int = 5) -> dict[str, Any]:
    """:func:`embedding_drift` for a run directory: the initial table from
    ``embedding_init.safetensors``, tokens and methods from ``provenance.tsv``, counts from
    ``vocab.txt``; ``final`` is the trained table, (n_vocab, dim), taken from the model by the caller."""
    run = Path(run_dir)
    if not (run / rundir.INIT_FILE).is_file():
        raise EmbgraftError(f"{run / rundir.INIT_FILE} not found: the run did not keep its initial embedding")
    initial = rundir.load_init_embedding(run)
    tokens, methods = read_provenance(run / rundir.PROVENANCE_FILE)
    vocab = Vocab.load(run / rundir.VOCAB_FILE)
    if not (initial.shape[0] == len(tokens) == len(vocab)):
        raise MalformedFileError(run, None, f"{initial.shape[0]} rows in {rundir.INIT_FILE}, {len(tokens)} in "
                                            f"{rundir.PROVENANCE_FILE} and {len(vocab)} tokens in {rundir.VOCAB_FILE}")
    if list(vocab.tokens) != tokens:
        raise MalformedFileError(run / rundir.PROVENANCE_FILE, None, f"tokens differ from {rundir.VOCAB_FILE}")
    return embedding_drift(initial, final, methods, tokens, list(vocab.counts), n_neighbours=n_neighbours,
                           n_tokens=n_tokens)
