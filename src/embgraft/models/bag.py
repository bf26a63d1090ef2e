"""``bag``: mean of the token (and n-gram) rows -> dropout -> linear. fastText's architecture."""

from __future__ import annotations

import torch
from torch import nn

from embgraft.models.dropout import Dropout
from embgraft.models.embedding import TokenEmbedding


class BagClassifier(nn.Module):
    def __init__(self, *, embedding: TokenEmbedding, n_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.embedding = embedding
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(embedding.dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T) -> logits (B, n_classes). Token order is ignored."""
        return self.out(self.dropout(self.embedding.bag(ids)))
