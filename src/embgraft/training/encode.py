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
    rows follow the token rows); n-grams are built from the tokens *before* the ``max_len`` cut
    so a bag sees the whole text. With ``words``, the ids of the text's jieba words longer than
    ``ngrams`` characters that the vocabulary holds come last (see :mod:`embgraft.grafting.ngrams`).
    """

    def __init__(self, vocab: Vocab, recipe: Recipe, *, ngrams: int = 1, words: bool = False) -> None:
        self.vocab = vocab
        self.recipe = recipe
        self.ngrams = ngrams
        self.tokenize = recipe.tokenizer()
        self.split_words = word_splitter(ngrams, recipe) if words else None

    def encode(self, text: str) -> list[int]:
        toks = self.tokenize(text)
        ids = self.vocab.encode(toks[: self.recipe.max_len] if self.recipe.max_len else toks)
        get = self.vocab.get
        if self.ngrams > 1:
            ids.extend(j for j in map(get, ngram_tokens(toks, self.ngrams, self.recipe.level)) if j is not None)
        if self.split_words is not None:
            ids.extend(j for j in map(get, self.split_words(text)) if j is not None)
        return ids


class HFTextEncoder:
    """Texts -> the checkpoint tokenizer's ids (with its specials), cut to ``max_len``."""

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
    """``ids``: (n, max_len) int64, right-padded with ``pad_id``; ``lengths``: (n,); ``labels``: (n,)."""

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.labels)


def encode(texts: Sequence[str], labels: np.ndarray, encoder: TextEncoder | HFTextEncoder, *,
           min_len: int = 1) -> EncodedSet:
    """Encode every text once. A text left with no known token keeps one ``<unk>`` so no row is
    empty; ``min_len`` pads short texts (a convolution needs at least its width)."""
    seqs = [encoder.encode(t) or [encoder.vocab.unk_id] for t in texts]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = max(int(lengths.max(initial=0)), min_len)
    ids = np.full((len(seqs), width), encoder.vocab.pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    return EncodedSet(ids, lengths, np.asarray(labels, dtype=np.int64), encoder.vocab.pad_id)
