"""``bilstm``: a bidirectional LSTM over the token rows, pooled by max, mean or attention."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from embgraft.models.spec import BILSTM_POOLINGS as POOLINGS
from embgraft.models.dropout import Dropout
from embgraft.models.base import TextClassifier
from embgraft.models.embedding import TokenEmbedding


class BiLSTM(TextClassifier):
    def __init__(self, *, embedding: TokenEmbedding, n_classes: int, hidden_dim: int = 128,
                 n_layers: int = 1, pooling: str = "max", dropout: float = 0.5) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.embedding = embedding
        self.pooling = pooling
        self.lstm = nn.LSTM(embedding.dim, hidden_dim, num_layers=n_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if n_layers > 1 else 0.0)
        self.attention = nn.Linear(2 * hidden_dim, 1) if pooling == "attention" else None
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(2 * hidden_dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T) -> logits (B, n_classes)."""
        mask = ids != self.embedding.padding_idx  # (B, T)
        lengths = mask.sum(dim=1).clamp_min(1)
        packed = pack_padded_sequence(self.dropout(self.embedding(ids)), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=ids.shape[1])
        mask = mask.unsqueeze(-1)  # (B, T, 1)
        if self.pooling == "max":
            pooled = h.masked_fill(~mask, float("-inf")).amax(dim=1)
        elif self.pooling == "mean":
            pooled = (h * mask).sum(dim=1) / lengths.unsqueeze(-1)
        else:
            scores = self.attention(h).masked_fill(~mask, float("-inf"))  # (B, T, 1)
            pooled = (torch.softmax(scores, dim=1) * h).sum(dim=1)
        return self.out(self.dropout(pooled))
