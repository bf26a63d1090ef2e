"""``textcnn``: Kim (2014). Convolutions of several widths over the token rows, max over time."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from embgraft.models.dropout import Dropout
from embgraft.models.embedding import TokenEmbedding


class TextCNN(nn.Module):
    def __init__(self, *, embedding: TokenEmbedding, n_classes: int, n_filters: int = 256,
                 kernel_sizes: Sequence[int] = (2, 3, 4), dropout: float = 0.5) -> None:
        super().__init__()
        self.embedding = embedding
        self.kernel_sizes = tuple(kernel_sizes)
        # one Conv1d per width; channels-first input (B, dim, T) is what oneDNN's kernels want
        self.convs = nn.ModuleList(nn.Conv1d(embedding.dim, n_filters, k) for k in self.kernel_sizes)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(n_filters * len(self.kernel_sizes), n_classes)

    @property
    def min_len(self) -> int:
        return max(self.kernel_sizes)

    # batch widths are rounded up to a multiple of 4: oneDNN builds (and keeps) convolution
    # primitives for every input shape it meets, and titles of 10-33 characters gave ~20 widths.
    # Measured on THUCNews titles: peak RSS 462 -> 427 MB for ~7 % more convolution work
    # (8: 417 MB, ~15 %)
    pad_multiple = 4

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T >= max kernel width) -> logits (B, n_classes)."""
        x = self.embedding(ids).transpose(1, 2)  # (B, dim, T)
        # max over time, then ReLU: the same values (ReLU is monotone) with the ReLU and its
        # backward on (B, n_filters) instead of (B, n_filters, T)
        pooled = [torch.relu(conv(x).amax(dim=2)) for conv in self.convs]  # each (B, n_filters)
        return self.out(self.dropout(torch.cat(pooled, dim=1)))
