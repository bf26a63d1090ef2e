"""N-gram rows for bags (and textcnn's bag branch), grafted by composition, not hashed at random.

fastText gives each character bigram a random row in a hashed bucket. Here every 2..n-gram
seen at least ``min_count`` times in the training texts gets its own row, composed as the mean
of its pieces' grafted rows (provenance ``composed:ngram``), so a bigram starts where its two
characters point. The rows are appended after the graft's own, so token ids do not move.

On a character vocabulary, ``words`` also gives each jieba word of the training texts longer
than ``n`` characters a row, the mean of its characters (``composed:word``): a bag then sees
"人工智能" as one feature as well as its characters and bigrams. Words join the n-gram ids
(``TextEncoder(words=True)``), so they are looked up the same way in training and serving.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator, Sequence

import numpy as np

from embgraft.errors import ConfigError
from embgraft.grafting.result import GraftResult, Provenance
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab

NGRAM_METHOD = "composed:ngram"
WORD_METHOD = "composed:word"


def ngram_token(pieces: Sequence[str], level: str) -> str:
    """The vocabulary entry of an n-gram: characters joined as they are, words with a space."""
    return ("" if level == "char" else " ").join(pieces)


def ngram_pieces(gram: str, level: str) -> list[str]:
    """Inverse of :func:`ngram_token`: the tokens an n-gram entry is made of."""
    return list(gram) if level == "char" else gram.split(" ")


def ngram_tokens(tokens: Sequence[str], n: int, level: str) -> Iterator[str]:
    """The vocabulary entries of every 2..``n``-gram of ``tokens``: all bigrams left to right, then
    all trigrams... The one enumeration, for counting (graft) and encoding (training, serving)."""
    for k in range(2, n + 1):
        for i in range(len(tokens) - k + 1):
            yield ngram_token(tokens[i:i + k], level)


def count_ngrams(texts: Sequence[str], recipe, *, n: int, words: bool = False) -> tuple[Counter, Counter]:
    """``({ngram token: count}, {word: count})``: the 2..n-grams of ``texts`` tokenised by
    ``recipe`` and, with ``words``, their jieba words longer than ``n`` characters."""
    tokenize = recipe.tokenizer()
    split_words = word_splitter(n, recipe) if words else None
    counts: Counter = Counter()
    word_counts: Counter = Counter()
    for text in texts:
        counts.update(ngram_tokens(tokenize(text), n, recipe.level))
        if split_words is not None:
            word_counts.update(split_words(text))
    return counts, word_counts


def word_splitter(n: int, recipe):
    """``text -> [word, ...]``: jieba's words of ``text`` longer than ``n`` characters (shorter
    ones are already n-gram rows), whitespace dropped, lower-cased when ``recipe`` lower-cases
    (so a word's characters are the ones its text was tokenised into)."""
    segment = Recipe(level="word", lowercase=recipe.lowercase).tokenizer()
    return lambda text: [w for w in segment(text) if len(w) > n]


def add_ngram_rows(result: GraftResult, texts: Sequence[str], *, n: int, min_count: int = 1,
                   scale: float = 1.0, words: bool = False) -> GraftResult:
    """A new ``GraftResult`` with one row per frequent 2..n-gram of ``texts`` appended (then,
    with ``words``, one per frequent jieba word longer than ``n`` characters).

    Each new row is ``scale`` times the mean of its pieces' rows; a piece outside the
    vocabulary contributes the ``<unk>`` row. N-grams already in the vocabulary (a word-level
    vocabulary may hold them) keep their grafted row.
    """
    if n < 2:
        raise ConfigError(f"n-grams need n >= 2, not {n}")
    if min_count < 1:
        raise ConfigError(f"ngram min_count must be >= 1, not {min_count}")
    recipe = result.tokenisation()
    if words and recipe.level != "char":
        raise ConfigError(f"word rows are for character vocabularies; this graft's level is {recipe.level!r}")
    vocab = result.vocab
    counts, word_counts = count_ngrams(texts, recipe, n=n, words=words)
    new = [(g, c, NGRAM_METHOD) for g, c in counts.most_common() if c >= min_count and g not in vocab]
    new += [(w, c, WORD_METHOD) for w, c in word_counts.most_common() if c >= min_count and w not in vocab]
    dim = result.weights.shape[1]
    rows = np.empty((len(new), dim), dtype=np.float32)
    provenance = []
    for r, (gram, _, method) in enumerate(new):
        pieces = ngram_pieces(gram, recipe.level)
        ids = vocab.encode(pieces)
        rows[r] = result.weights[ids].mean(axis=0) * scale
        provenance.append(Provenance(method, method.split(":")[1], tuple(pieces)))
    tokens = vocab.tokens + [g for g, _, _ in new]
    counts_all = vocab.counts + [c for _, c, _ in new]
    grown = Vocab(tokens, counts=counts_all, specials=vocab.specials, level=vocab.level,
                  n_corpus_tokens=vocab.n_corpus_tokens, n_oov_tokens=vocab.n_oov_tokens, recipe=recipe)
    return GraftResult(weights=np.concatenate([result.weights.astype(np.float32), rows]),
                       vocab=grown, provenance=list(result.provenance) + provenance,
                       report=result.report, dtype=result.dtype, recipe=recipe)

