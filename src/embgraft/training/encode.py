"""Texts -> token ids, once per split: ``TextEncoder`` (a graft's recipe and vocabulary, plus
n-gram and word ids for bags), ``HFTextEncoder`` (a checkpoint's own tokenizer), ``encode`` (one
padded int matrix per split, kept for every epoch).

Texts are tokenised through the recipe saved with the graft, never through flags of their own,
so that training and serving cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Sequence

import numpy as np

from embgraft.grafting.ngrams import ngram_tokens, word_splitter
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab


class TextEncoder:
    """Text -> token ids through a recipe and a vocabulary.

    With ``ngrams`` > 1, the ids of the text's 2..n-grams that the vocabulary holds follow the
    token ids (for bags, where order does not matter; textcnn tells them apart by id, as n-gram
    rows follow the token rows). With ``words``, the ids of the text's jieba words longer than
    ``ngrams`` characters that the vocabulary holds come last (see :mod:`embgraft.grafting.ngrams`).
    All of them come from the first ``max_len`` tokens (and the text they span), so a text's ids are
    bounded; ``chunks`` covers a long text with windows instead.
    """

    def __init__(self, vocab: Vocab, recipe: Recipe, *, ngrams: int = 1, words: bool = False,
                 chunks: Chunking | None = None) -> None:
        self.vocab = vocab
        self.recipe = recipe
        self.ngrams = ngrams
        self.tokenize = recipe.tokenizer()
        self.split_words = word_splitter(ngrams, recipe) if words else None
        self.chunks = chunks

    def encode(self, text: str) -> list[int]:
        toks = self.tokenize(text)
        cut = self.recipe.max_len
        if cut and len(toks) > cut:
            # n-grams and words of the kept tokens only: a text's ids stay bounded by max_len (one
            # 1 MB line with bigrams took 8.4 GB when they came from the whole text)
            return self.vocab.encode(toks[:cut]) + self._extra_ids(toks[:cut], self._prefix(text, cut))
        return self.vocab.encode(toks) + self._extra_ids(toks, text)

    def _prefix(self, text: str, n_tokens: int) -> str:
        """``text`` up to the end of its ``n_tokens``-th token (character level: whitespace is no
        token), the part whose words the kept tokens spell."""
        if self.recipe.level != "char":
            return text
        seen = 0
        for i, ch in enumerate(text):
            if not ch.isspace():
                seen += 1
                if seen == n_tokens:
                    return text[: i + 1]
        return text

    def _extra_ids(self, toks: list[str], text: str) -> list[int]:
        """The ids of ``toks``' n-grams and of ``text``'s words that the vocabulary holds."""
        get, ids = self.vocab.get, []
        if self.ngrams > 1:
            ids.extend(j for j in map(get, ngram_tokens(toks, self.ngrams, self.recipe.level)) if j is not None)
        if self.split_words is not None:
            ids.extend(j for j in map(get, self.split_words(text)) if j is not None)
        return ids

    def windows(self, text: str) -> list[list[int]]:
        """``text`` as the ids of its windows (:class:`Chunking`); a text that fits one window, or
        an encoder without chunking, gives ``[encode(text)]``."""
        if self.chunks is None:
            return [self.encode(text)]
        toks = self.tokenize(text)
        size, glue = self.chunks.size, "" if self.recipe.level == "char" else " "
        if len(toks) <= size:
            return [self.vocab.encode(toks) + self._extra_ids(toks, text)]
        out = []
        for start in self.chunks.starts(len(toks)):
            part = toks[start:start + size]
            out.append(self.vocab.encode(part) + self._extra_ids(part, glue.join(part)))
        return out


@dataclass(frozen=True)
class Chunking:
    """Texts longer than ``size`` tokens become windows of ``size`` tokens, ``stride`` apart (the
    last one ends with the text), at most ``max_windows`` of them evenly spread; a model scores
    each window and their logits are pooled by ``pool`` (mean | max), in training and serving."""

    size: int
    stride: int
    pool: str = "mean"
    max_windows: int = 32

    def starts(self, n_tokens: int) -> list[int]:
        last = n_tokens - self.size
        starts = list(range(0, last, self.stride)) + [last]
        if len(starts) > self.max_windows:  # evenly spread, the first and the last kept
            pick = np.linspace(0, len(starts) - 1, self.max_windows).round().astype(int)
            starts = [starts[i] for i in sorted(set(pick.tolist()))]
        return starts


class HFTextEncoder:
    """Texts -> the checkpoint tokenizer's ids (with its specials), cut to ``max_len``."""

    chunks = None  # long texts are cut: windows are for the static models

    def __init__(self, tokenizer, *, max_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len
        pad = tokenizer.pad_token_id
        if pad is None:  # GPT-style tokenizers have no pad token; any id works behind the mask
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else pad
        self.vocab = SimpleNamespace(pad_id=int(pad), unk_id=int(unk))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, truncation=True, max_length=self.max_len)["input_ids"]


@dataclass
class EncodedSet:
    """``ids``: (n_rows, width) int64, right-padded with ``pad_id``; ``lengths``: (n_rows,);
    ``labels``: (n,) int64 class ids, or multi-label (n, n_classes) float32 multi-hot rows, one
    per text (-1 for an unlabelled text). A row is a text, or, with chunking, one window of a text:
    ``doc`` (n_rows,) then names each row's text (rows of a text are adjacent) and ``pool`` how
    their logits are pooled."""

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    pad_id: int
    doc: np.ndarray | None = None
    pool: str = "mean"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def text_lengths(self) -> np.ndarray:
        """(n,) tokens per text (all its windows'): what batches are sorted by."""
        if self.doc is None:
            return self.lengths
        return np.bincount(self.doc, weights=self.lengths, minlength=len(self.labels)).astype(np.int64)

    def rows_of(self, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows of ``texts`` (indices) and, with chunking, each row's position in ``texts``."""
        if self.doc is None:
            return texts, None
        starts = np.searchsorted(self.doc, np.arange(len(self.labels) + 1))
        rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in texts])
        segments = np.repeat(np.arange(len(texts)), starts[texts + 1] - starts[texts])
        return rows, segments


def encode(texts: Sequence[str], labels: np.ndarray, encoder: TextEncoder | HFTextEncoder, *,
           min_len: int = 1) -> EncodedSet:
    """Encode every text once. A text left with no known token keeps one ``<unk>`` so no row is
    empty; ``min_len`` pads short texts (a convolution needs at least its width). An encoder with
    chunking gives each text one row per window (``EncodedSet.doc``)."""
    chunks = encoder.chunks
    if chunks is not None:
        per_text = [[w or [encoder.vocab.unk_id] for w in encoder.windows(t)] for t in texts]
        seqs = [w for ws in per_text for w in ws]
        doc = np.repeat(np.arange(len(texts)), [len(ws) for ws in per_text])
    else:
        seqs = [encoder.encode(t) or [encoder.vocab.unk_id] for t in texts]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = max(int(lengths.max(initial=0)), min_len)
    ids = np.full((len(seqs), width), encoder.vocab.pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    labels = np.asarray(labels)
    labels = labels.astype(np.float32 if labels.ndim == 2 else np.int64, copy=False)
    if chunks is not None:
        return EncodedSet(ids, lengths, labels, encoder.vocab.pad_id, doc=doc, pool=chunks.pool)
    return EncodedSet(ids, lengths, labels, encoder.vocab.pad_id)
