"""The token embedding every model is built on: one table, split by which rows may train.

Fine-tuning modes decide which rows move. ``full``: all; ``frozen``: none; ``partial``: only
the rows the source lacked (composed and initialised ones). A zeroed gradient is not enough for
``partial``: AdamW's weight decay and momentum would still move a row. So the frozen rows live
in a buffer the optimiser never sees, the trainable ones in a parameter, and two slot maps send
a token id to its row in one table and to the other table's zero padding row. With one side
empty it is a single lookup.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TokenEmbedding(nn.Module):
    """``weight``: (n_tokens, dim); ``frozen``: (n_tokens,) bool, True for rows that never change.

    ``padding_idx``'s row is zero and stays zero. ``sparse`` makes the trainable table's
    gradient sparse (for ``torch.optim.SparseAdam``): a bag touches a few hundred rows of a
    75k-row table per step, and a dense gradient would update all of them.
    """

    def __init__(self, weight: torch.Tensor, *, frozen: torch.Tensor | None = None,
                 padding_idx: int = 0, sparse: bool = False) -> None:
        super().__init__()
        n_tokens, dim = weight.shape
        weight = weight.detach().float()
        frozen = torch.zeros(n_tokens, dtype=torch.bool) if frozen is None else frozen.clone().bool()
        frozen[padding_idx] = False
        real = torch.ones(n_tokens, dtype=torch.bool)
        real[padding_idx] = False
        is_f, is_t = frozen & real, ~frozen & real
        n_f, n_t = int(is_f.sum()), int(is_t.sum())
        # each table ends in a zero row that stands for "not mine" and for padding
        f_slot = torch.full((n_tokens,), n_f, dtype=torch.long)
        f_slot[is_f] = torch.arange(n_f)
        t_slot = torch.full((n_tokens,), n_t, dtype=torch.long)
        t_slot[is_t] = torch.arange(n_t)
        self.register_buffer("f_slot", f_slot, persistent=False)
        self.register_buffer("t_slot", t_slot, persistent=False)
        self.register_buffer("frozen_mask", is_f, persistent=False)
        self.register_buffer("trainable_mask", is_t, persistent=False)
        self.register_buffer("frozen_table", torch.cat([weight[is_f], weight.new_zeros(1, dim)]),
                             persistent=False)
        self.trainable = nn.Parameter(torch.cat([weight[is_t], weight.new_zeros(1, dim)]))
        self.n_tokens, self.dim, self.padding_idx, self.sparse = n_tokens, dim, padding_idx, sparse
        self.n_frozen, self.n_trainable = n_f, n_t

    def _parts(self) -> list[tuple[torch.Tensor, torch.Tensor, int, bool]]:
        """(slot map, table, its padding row, sparse) for each non-empty side."""
        parts = []
        if self.n_frozen:
            parts.append((self.f_slot, self.frozen_table, self.n_frozen, False))
        if self.n_trainable or not parts:
            parts.append((self.t_slot, self.trainable, self.n_trainable, self.sparse))
        return parts

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T) int64 -> (B, T, dim)."""
        out = None
        for slot, table, pad, sparse in self._parts():
            e = F.embedding(slot[ids], table, padding_idx=pad, sparse=sparse)
            out = e if out is None else out + e
        return out

    def bag(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T) int64 -> (B, dim): the mean of each row's non-padding tokens (zeros if none)."""
        parts = self._parts()
        if len(parts) == 1:
            slot, table, pad, sparse = parts[0]
            return F.embedding_bag(slot[ids], table, mode="mean", padding_idx=pad, sparse=sparse)
        total = sum(F.embedding_bag(slot[ids], table, mode="sum", padding_idx=pad, sparse=sparse)
                    for slot, table, pad, sparse in parts)
        return total / (ids != self.padding_idx).sum(dim=1, keepdim=True).clamp_min(1)

    def full_weight(self) -> torch.Tensor:
        """(n_tokens, dim): the current rows in token-id order (what is saved and reloaded)."""
        out = self.trainable.new_zeros(self.n_tokens, self.dim)
        with torch.no_grad():
            out[self.frozen_mask] = self.frozen_table[:-1]
            out[self.trainable_mask] = self.trainable[:-1]
        return out

    def set_trainable(self, flag: bool) -> None:
        """Freeze or unfreeze the trainable rows as a whole (``gradual:N`` mode)."""
        self.trainable.requires_grad_(flag)
