"""``textcnn``: Kim (2014). Convolutions of several widths over the token rows, max over time.

With ``ngrams`` > 1 a second branch sits beside the convolutions: the mean of the text's token
and n-gram rows (the ``bag`` model's features), concatenated with the pooled filters before the
output layer. The convolutions see local order; the bag branch gives every n-gram of the
training texts its own grafted row, which a few hundred filters cannot hold. On THUCNews titles
it lifted test accuracy by about two points (see README, training benchmark).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from embgraft.models.dropout import Dropout
from embgraft.models.base import TextClassifier
from embgraft.models.embedding import TokenEmbedding


class TextCNN(TextClassifier):
    """``ngram_start``: the first n-gram row's id (n-gram rows follow the token rows; the encoder
    puts a text's n-gram ids after its token ids). Kept as a buffer, so a saved model knows it."""

    def __init__(self, *, embedding: TokenEmbedding, n_classes: int, n_filters: int = 256,
                 kernel_sizes: Sequence[int] = (2, 3, 4), dropout: float = 0.5, ngrams: int = 1,
                 ngram_start: int | None = None) -> None:
        super().__init__()
        if ngrams < 1:
            raise ValueError(f"ngrams must be >= 1, not {ngrams}")
        self.embedding = embedding
        self.kernel_sizes = tuple(kernel_sizes)
        self.ngrams = ngrams
        # one Conv1d per width; channels-first input (B, dim, T) is what oneDNN's kernels want
        self.convs = nn.ModuleList(nn.Conv1d(embedding.dim, n_filters, k) for k in self.kernel_sizes)
        self.dropout = Dropout(dropout)
        n_features = n_filters * len(self.kernel_sizes) + (embedding.dim if ngrams > 1 else 0)
        self.out = nn.Linear(n_features, n_classes)
        if ngrams > 1:
            start = embedding.n_tokens if ngram_start is None else ngram_start
            if not 0 < start <= embedding.n_tokens:
                raise ValueError(f"ngram_start must be in 1..{embedding.n_tokens}, not {start}")
            self.register_buffer("ngram_start", torch.tensor(start, dtype=torch.long))

    @property
    def min_len(self) -> int:
        return max(self.kernel_sizes)

    # batch widths are rounded up to a multiple of 4: oneDNN builds (and keeps) convolution
    # primitives for every input shape it meets, and titles of 10-33 characters gave ~20 widths.
    # Measured on THUCNews titles: peak RSS 462 -> 427 MB for ~7 % more convolution work
    # (8: 417 MB, ~15 %)
    pad_multiple = 4

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T >= max kernel width) -> logits (B, n_classes). With n-grams, each row
        is the text's token ids, then its n-gram ids, then padding."""
        tokens = self._token_ids(ids) if self.ngrams > 1 else ids
        x = self.embedding(tokens).transpose(1, 2)  # (B, dim, T)
        lengths = (tokens != self.embedding.padding_idx).sum(dim=1)  # (B,)
        # max over time, then ReLU: the same values (ReLU is monotone) with the ReLU and its
        # backward on (B, n_filters) instead of (B, n_filters, T). Only windows that start within
        # the text count (at least the first): padding added to fit the batch's longest text must
        # not change a text's score, so a text scores the same alone and in any batch
        features = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = conv(x)  # (B, n_filters, T - k + 1)
            starts = torch.arange(h.shape[2], device=h.device)
            outside = starts[None, :] >= (lengths - k + 1).clamp_min(1)[:, None]  # (B, T - k + 1)
            features.append(torch.relu(h.masked_fill(outside[:, None, :], float("-inf")).amax(dim=2)))
        if self.ngrams > 1:
            features.append(self.embedding.bag(ids))  # (B, dim): mean of token and n-gram rows
        return self.out(self.dropout(torch.cat(features, dim=1)))

    def _token_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T') the token ids of ``ids``, n-gram ids replaced by padding, cut to the longest
        text's tokens (rounded up to ``pad_multiple``, at least ``min_len``)."""
        pad = self.embedding.padding_idx
        is_token = ids < self.ngram_start
        tokens = torch.where(is_token, ids, torch.full_like(ids, pad))
        n = int((is_token & (ids != pad)).sum(dim=1).max()) if ids.numel() else 0
        width = -(-max(n, self.min_len) // self.pad_multiple) * self.pad_multiple
        if width > tokens.shape[1]:
            return F.pad(tokens, (0, width - tokens.shape[1]), value=pad)
        return tokens[:, :width]
