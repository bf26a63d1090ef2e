"""N-gram rows for bags (and textcnn's bag branch), grafted by composition, not hashed at random.

fastText gives each character bigram a random row in a hashed bucket. Here every 2..n-gram
seen at least ``min_count`` times in the training texts gets its own row, composed as the mean
of its pieces' grafted rows (provenance ``composed:ngram``), so a bigram starts where its two
characters point. The rows are appended after the graft's own, so token ids do not move.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from embgraft.data import ngram_token
from embgraft.errors import ConfigError
from embgraft.result import GraftResult, Provenance

NGRAM_METHOD = "composed:ngram"


def count_ngrams(texts: Sequence[str], recipe, *, n: int) -> Counter:
    """``{ngram token: count}`` of the 2..n-grams of ``texts`` tokenised by ``recipe``."""
    tokenize = recipe.tokenizer()
    counts: Counter = Counter()
    for text in texts:
        toks = tokenize(text)
        for k in range(2, n + 1):
            counts.update(ngram_token(toks[i:i + k], recipe.level) for i in range(len(toks) - k + 1))
    return counts


def add_ngram_rows(result: GraftResult, texts: Sequence[str], *, n: int, min_count: int = 1,
                   max_rows: int | None = None, scale: float = 1.0) -> GraftResult:
    """A new ``GraftResult`` with one row per frequent 2..n-gram of ``texts`` appended.

    Each new row is ``scale`` times the mean of its pieces' rows; a piece outside the
    vocabulary contributes the ``<unk>`` row. N-grams already in the vocabulary (a word-level
    vocabulary may hold them) keep their grafted row. ``max_rows`` keeps the most frequent.
    """
    from embgraft.vocab import Vocab

    if n < 2:
        raise ConfigError(f"n-grams need n >= 2, not {n}")
    if min_count < 1:
        raise ConfigError(f"ngram min_count must be >= 1, not {min_count}")
    recipe = result.tokenisation()
    vocab = result.vocab
    counts = count_ngrams(texts, recipe, n=n)
    new = [(g, c) for g, c in counts.most_common() if c >= min_count and g not in vocab]
    if max_rows is not None:
        new = new[:max_rows]
    dim = result.weights.shape[1]
    rows = np.empty((len(new), dim), dtype=np.float32)
    provenance = []
    for r, (gram, _) in enumerate(new):
        pieces = _pieces(gram, recipe.level)
        ids = vocab.encode(pieces)
        rows[r] = result.weights[ids].mean(axis=0) * scale
        provenance.append(Provenance(NGRAM_METHOD, "ngram", tuple(pieces)))
    tokens = vocab.tokens + [g for g, _ in new]
    counts_all = vocab.counts + [c for _, c in new]
    grown = Vocab(tokens, counts=counts_all, specials=vocab.specials, level=vocab.level,
                  n_corpus_tokens=vocab.n_corpus_tokens, n_oov_tokens=vocab.n_oov_tokens)
    return GraftResult(weights=np.concatenate([result.weights.astype(np.float32), rows]),
                       vocab=grown, provenance=list(result.provenance) + provenance,
                       report=result.report, dtype=result.dtype, recipe=recipe)


def _pieces(gram: str, level: str) -> list[str]:
    return list(gram) if level == "char" else gram.split(" ")
