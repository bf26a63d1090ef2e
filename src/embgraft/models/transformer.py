"""``transformer``: a small encoder (learned or sinusoidal positions), mean-pooled."""

from __future__ import annotations

import math

import torch
from torch import nn

from embgraft.models.base import TextClassifier
from embgraft.models.spec import POSITIONS
from embgraft.models.embedding import TokenEmbedding



def sinusoidal_positions(n_positions: int, dim: int) -> torch.Tensor:
    """(n_positions, dim): Vaswani et al.'s fixed sine/cosine table."""
    pos = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return table


class TransformerClassifier(TextClassifier):
    def __init__(self, *, embedding: TokenEmbedding, n_classes: int, n_layers: int = 2, n_heads: int = 4,
                 hidden_dim: int = 512, max_positions: int = 512, positions: str = "learned",
                 dropout: float = 0.1) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, not {positions!r}")
        if embedding.dim % n_heads:
            raise ValueError(f"the embedding width {embedding.dim} is not divisible by n_heads={n_heads}")
        self.embedding = embedding
        self.max_positions = max_positions
        if positions == "learned":
            self.positions = nn.Parameter(torch.randn(max_positions, embedding.dim) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(max_positions, embedding.dim))
        layer = nn.TransformerEncoderLayer(embedding.dim, n_heads, hidden_dim, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embedding.dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(embedding.dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T <= max_positions) -> logits (B, n_classes)."""
        ids = ids[:, : self.max_positions]
        pad = ids == self.embedding.padding_idx  # (B, T), True where padding
        x = self.dropout(self.embedding(ids) + self.positions[: ids.shape[1]])
        h = self.norm(self.encoder(x, src_key_padding_mask=pad))
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1)
        return self.out(self.dropout(pooled))
