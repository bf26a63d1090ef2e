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
        # gathered straight into the parameter's storage: ``torch.cat([weight[is_t], zeros])``
        # held two extra copies of the table at once (~120 MB for a 75k-row bigram bag)
        trainable = weight.new_zeros(n_t + 1, dim)
        torch.index_select(weight, 0, torch.nonzero(is_t).squeeze(1), out=trainable[:n_t])
        self.trainable = nn.Parameter(trainable)
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

    def bag(self, ids: torch.Tensor, *, mode: str = "mean") -> torch.Tensor:
        """``ids`` (B, T) int64 -> (B, dim): the mean (``mode="max"``: the elementwise maximum)
        of each row's non-padding tokens' rows; zeros for a row with none."""
        parts = self._parts()
        if mode == "max":
            return _max_bag(ids, self.padding_idx, parts)
        if mode != "mean":
            raise ValueError(f"bag mode must be mean or max, not {mode!r}")
        if len(parts) == 1:
            slot, table, pad, sparse = parts[0]
            return _embedding_bag(slot[ids], table, pad, mean=True, sparse=sparse)
        total = sum(_embedding_bag(slot[ids], table, pad, mean=False, sparse=sparse)
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


def _embedding_bag(ids: torch.Tensor, table: torch.Tensor, pad: int, *, mean: bool, sparse: bool) -> torch.Tensor:
    """The mean (or sum) of each row of ``ids``' non-``pad`` rows of ``table``, whose ``pad`` row is zero.

    ``F.embedding_bag`` is called without ``padding_idx``: given one, PyTorch's CPU kernel leaves
    its fast path and took 4-7x longer here; the zero ``pad`` row adds nothing to a sum, and the
    mean divides by the count of real tokens. Gradients come from ``_Bag``, which keeps the
    ``pad`` row out of them.
    """
    if table.requires_grad and torch.is_grad_enabled():
        return _Bag.apply(ids, table, pad, mean, sparse)
    out = F.embedding_bag(ids, table, mode="sum")
    return out / _counts(ids, pad, out.dtype) if mean else out


def _max_bag(ids: torch.Tensor, padding_idx: int, parts) -> torch.Tensor:
    """(B, dim): the elementwise maximum of each row's non-padding rows, over every part.

    Padding must not take part (its zero row would beat negative values), and masking a
    (B, T, dim) block costs more than the max itself. So each padding position (and each
    position of the other part) repeats the row's first real id, which leaves the max
    unchanged. A row with no id in a part gives -inf there, so the other part's maximum wins;
    a row with no id at all gives zeros.
    """
    out = None
    for slot, table, pad, sparse in parts:
        local = slot[ids]
        real = local != pad
        first = local.gather(1, real.to(torch.uint8).argmax(dim=1, keepdim=True))  # (B, 1); pad if none
        filled = torch.where(real, local, first)
        if table.requires_grad and torch.is_grad_enabled():
            m = _MaxBag.apply(filled, table, pad, sparse)
        else:
            m = _gather(filled, table).amax(dim=1)
        m = m.masked_fill(~real.any(dim=1, keepdim=True), float("-inf"))
        out = m if out is None else torch.maximum(out, m)
    return out.masked_fill(torch.isinf(out), 0.0)


def _gather(local: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(B, T) row ids -> (B, T, dim) rows (``index_select``: faster than ``F.embedding`` on CPU)."""
    return table.index_select(0, local.reshape(-1)).view(*local.shape, table.shape[1])


class _MaxBag(torch.autograd.Function):
    """Max-pooled bag whose backward sends each (row, dim) gradient to the one id that won that
    dimension: one gradient row per distinct winning id, sparse or dense.

    On CPU (THUCNews titles, 87k x 200 table, batch 256), a gather and ``max`` with indices, as
    here, trained at 11.1k samples/s against 10.4k for PyTorch's max-mode ``embedding_bag``
    (whose forward alone took 8 ms a batch); ``amax`` and its own backward took twice as long.
    """

    @staticmethod
    def forward(ctx, filled, table, pad, sparse):
        out, where = _gather(filled, table.detach()).max(dim=1)  # (B, dim) each
        ctx.save_for_backward(filled.gather(1, where))  # (B, dim): the id that won each dimension
        ctx.pad, ctx.sparse, ctx.table_shape = pad, sparse, table.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (winners,) = ctx.saved_tensors
        dim = ctx.table_shape[1]
        real = winners != ctx.pad  # a row with no id at all: nothing won
        cols = real.nonzero()[:, 1]
        ids, where = torch.unique(winners[real], sorted=True, return_inverse=True)
        values = grad_out.new_zeros(len(ids) * dim).index_add_(0, where * dim + cols, grad_out[real]).view(-1, dim)
        return None, _row_gradient(ids, values, ctx.table_shape, sparse=ctx.sparse), None, None


def _counts(ids: torch.Tensor, pad: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1): real tokens per row (at least 1, so an all-padding row gives zeros, not NaN)."""
    return (ids != pad).sum(dim=1, keepdim=True).clamp_min(1).to(dtype)


class _Bag(torch.autograd.Function):
    """Embedding bag whose backward gives one gradient row per distinct id, sparse or dense.

    PyTorch's own sparse backward of ``embedding_bag`` costs in proportion to the whole table
    (on a 75k-row bigram table, ~10x the forward) and returns one row per *occurrence*, which
    the optimiser must then sort and sum (``coalesce``). Here: the batch's distinct ids (one sort
    of B x T ints), each one's gradient summed by one ``index_add_`` over its occurrences,
    returned as a coalesced sparse tensor (``sparse``) or scattered into a zero table.
    """

    @staticmethod
    def forward(ctx, ids, table, pad, mean, sparse):
        # detached: PyTorch picks its training kernel for a weight that requires grad, which
        # also builds the index maps its own backward needs (and ours does not)
        out = F.embedding_bag(ids, table.detach(), mode="sum")
        counts = _counts(ids, pad, out.dtype) if mean else None
        ctx.save_for_backward(ids, counts)
        ctx.pad, ctx.sparse, ctx.table_shape, ctx.dtype = pad, sparse, table.shape, table.dtype
        return out / counts if mean else out

    @staticmethod
    def backward(ctx, grad_out):
        ids, counts = ctx.saved_tensors
        grad_out = grad_out.to(ctx.dtype)  # under autocast it may come back in bf16
        if counts is not None:  # a bag's mean spreads its gradient evenly over its tokens
            grad_out = grad_out / counts
        keep = ids != ctx.pad
        bag = keep.nonzero()[:, 0]  # row-major, the order of ids[keep]
        rows, where = torch.unique(ids[keep], sorted=True, return_inverse=True)
        values = grad_out.new_zeros(len(rows), grad_out.shape[1]).index_add_(0, where, grad_out.index_select(0, bag))
        return None, _row_gradient(rows, values, ctx.table_shape, sparse=ctx.sparse), None, None, None


def _row_gradient(rows: torch.Tensor, values: torch.Tensor, shape, *, sparse: bool) -> torch.Tensor:
    """The gradient of a table of ``shape`` whose only non-zero rows are ``rows`` (sorted,
    distinct) with ``values`` (len(rows), dim): a coalesced sparse tensor, or a dense table."""
    if sparse:
        return torch.sparse_coo_tensor(rows.unsqueeze(0), values, shape, is_coalesced=True, check_invariants=False)
    return values.new_zeros(shape).index_copy_(0, rows, values)
