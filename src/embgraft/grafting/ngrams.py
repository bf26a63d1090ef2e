"""N-gram rows for bags (and textcnn's bag branch), grafted by composition, not hashed at random.

fastText gives each character bigram a random row in a hashed bucket. Here every 2..n-gram
seen at least ``min_count`` times in the training texts gets its own row, composed as the mean
of its pieces' grafted rows (provenance ``composed:ngram``), so a bigram starts where its two
characters point. The rows are appended after the graft's own, so token ids do not move.

On a character vocabulary, ``words`` also gives each jieba word of the training texts longer
than ``n`` characters a row, the mean of its characters (``composed:word``): a bag then sees
"人工智能" as one feature as well as its characters and bigrams. Words join the n-gram ids
(``TextEncoder(words=True)``), so they are looked up the same way in training and serving.

A graft can hold such rows itself (``graft --ngrams N [--words]``, :func:`ngram_entries`): then
each entry goes through the graft's cascade like a token (a checkpoint's contextual row of the
n-gram's own text, a vector file's exact row of a word it has, or a composition of the source's
own pieces), and :func:`add_ngram_rows` takes those rows before composing the rest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
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


@dataclass(frozen=True)
class NgramEntries:
    """The n-gram and word entries a graft grafts beside its vocabulary, with their counts."""

    counts: dict[str, int]  # entry -> count in the texts, n-grams first, then words
    n: int
    words: bool = False
    min_count: int = 1

    def extend(self, vocab: Vocab) -> Vocab:
        """``vocab`` with the entries it does not hold appended (its own ids unchanged)."""
        extra = [(t, c) for t, c in self.counts.items() if t not in vocab]
        return Vocab(vocab.tokens + [t for t, _ in extra], counts=list(vocab.counts) + [c for _, c in extra],
                     specials=vocab.specials, level=vocab.level, n_corpus_tokens=vocab.n_corpus_tokens,
                     n_oov_tokens=vocab.n_oov_tokens, recipe=vocab.recipe)


def _check_ngram_options(n: int, min_count: int, words: bool, level: str) -> None:
    errors = []
    if n < 2:
        errors.append(f"n-grams need n >= 2, not {n}")
    if min_count < 1:
        errors.append(f"ngram min_count must be >= 1, not {min_count}")
    if words and level != "char":
        errors.append(f"word rows are for character vocabularies; this graft's level is {level!r}")
    if errors:
        raise ConfigError("; ".join(errors))


def ngram_entries(texts: Sequence[str], recipe: Recipe, *, n: int, min_count: int = 1,
                  words: bool = False) -> NgramEntries:
    """The 2..n-grams (and, with ``words``, jieba words longer than ``n``) of ``texts`` seen at
    least ``min_count`` times, for :func:`embgraft.grafting.cascade.graft`'s ``ngrams``. Only for
    character vocabularies: a word n-gram (``北京 大学``) is no text a source has a row for."""
    _check_ngram_options(n, min_count, words, recipe.level)
    if recipe.level != "char":
        raise ConfigError(f"a graft's n-gram rows are for character vocabularies; this one's level is "
                          f"{recipe.level!r} (train --ngrams composes word n-grams)")
    counts, word_counts = count_ngrams(texts, recipe, n=n, words=words)
    entries = {g: c for g, c in counts.most_common() if c >= min_count}
    for w, c in word_counts.most_common():
        if c >= min_count:
            entries.setdefault(w, c)
    return NgramEntries(entries, n=n, words=words, min_count=min_count)


def add_ngram_rows(result: GraftResult, texts: Sequence[str], *, n: int, min_count: int = 1,
                   scale: float = 1.0, words: bool = False) -> GraftResult:
    """A new ``GraftResult`` with one row per frequent 2..n-gram of ``texts`` appended (then,
    with ``words``, one per frequent jieba word longer than ``n`` characters).

    An entry the graft holds rows for (``result.ngrams``: ``graft --ngrams``) takes that row and
    its provenance; every other new row is ``scale`` times the mean of its pieces' rows; a piece
    outside the vocabulary contributes the ``<unk>`` row. N-grams already in the vocabulary (a
    word-level vocabulary may hold them) keep their grafted row.
    """
    recipe = result.tokenisation()
    _check_ngram_options(n, min_count, words, recipe.level)
    vocab = result.vocab
    grafted = result.ngrams
    counts, word_counts = count_ngrams(texts, recipe, n=n, words=words)
    new = [(g, c, NGRAM_METHOD) for g, c in counts.most_common() if c >= min_count and g not in vocab]
    new += [(w, c, WORD_METHOD) for w, c in word_counts.most_common() if c >= min_count and w not in vocab]
    dim = result.weights.shape[1]
    rows = np.empty((len(new), dim), dtype=np.float32)
    provenance = []
    for r, (gram, _, method) in enumerate(new):
        j = grafted.get(gram) if grafted is not None else None
        if j is not None:
            rows[r] = grafted.weights[j]
            provenance.append(grafted.provenance[j])
            continue
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

