"""Optimisers and learning-rate schedules.

Parameter groups come from the model (``TextClassifier.param_groups``: the one rule). A sparse
embedding gradient goes to :class:`RowAdam` (SparseAdam's lazy update: only touched rows move),
the rest to AdamW.

A schedule is a multiplier of each group's base LR, a pure function of the step (plus, for
``plateau``, of the dev metrics seen), so it is easy to test and to resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from embgraft.training.config import OPTIMIZERS, SCHEDULES


@dataclass
class Schedule:
    """LR multiplier: linear warm-up over ``warmup_steps``, then the named shape.

    ``linear``: down to 0 at ``total_steps``; ``cosine``: half a cosine down to 0;
    ``exponential``: ``gamma`` per epoch (``steps_per_epoch`` steps), smoothly per step;
    ``plateau``: constant, times ``plateau_factor`` each time the dev metric has not improved for
    ``plateau_patience`` epochs (PyTorch's ReduceLROnPlateau, in the same terms).
    """

    name: str
    total_steps: int
    warmup_steps: int = 0
    steps_per_epoch: int = 1
    gamma: float = 0.9
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    # plateau state, saved with a checkpoint
    plateau_scale: float = 1.0
    best: float | None = None
    bad_epochs: int = 0
    _shapes: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.name!r}")

    def factor(self, step: int) -> float:
        """Multiplier for optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = min(max(step - self.warmup_steps, 0) / decay_steps, 1.0)
        if self.name == "linear":
            return 1.0 - progress
        if self.name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.name == "exponential":
            return self.gamma ** ((step - self.warmup_steps) / max(self.steps_per_epoch, 1))
        if self.name == "plateau":
            return self.plateau_scale
        return 1.0

    def end_epoch(self, metric: float) -> None:
        """Tell a ``plateau`` schedule the epoch's dev metric (higher is better)."""
        if self.name != "plateau":
            return
        if self.best is None or metric > self.best:
            self.best, self.bad_epochs = metric, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.plateau_patience:
            self.plateau_scale *= self.plateau_factor
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale, self.best, self.bad_epochs = state["plateau_scale"], state["best"], state["bad_epochs"]


def warmup_steps(warmup: float, total_steps: int) -> int:
    """``warmup`` below 1 is a share of ``total_steps``; 1 or more is a step count."""
    return int(round(warmup * total_steps)) if 0 < warmup < 1 else int(warmup)


def build_optimizers(model, *, name: str, lr: float, embedding_lr: float | None, weight_decay: float,
                     layer_lr_decay: float = 1.0, momentum: float = 0.9, fused: bool | None = None) -> list:
    """The optimisers for ``model``: one for dense gradients, and ``RowAdam`` for a sparse embedding.

    ``fused=True`` AdamW is several times faster per step on CPU than the default for-each
    implementation; it is used wherever PyTorch supports it.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")
    groups = model.param_groups(lr=lr, embedding_lr=embedding_lr, weight_decay=weight_decay,
                                layer_lr_decay=layer_lr_decay)
    optimizers = []
    if groups["dense"]:
        if name == "adamw":
            try:
                optimizers.append(torch.optim.AdamW(groups["dense"], fused=True if fused is None else fused))
            except (RuntimeError, TypeError):  # no fused kernel for this device/dtype
                optimizers.append(torch.optim.AdamW(groups["dense"]))
        else:
            optimizers.append(torch.optim.SGD(groups["dense"], momentum=momentum))
    if groups["sparse"]:
        sparse = [{k: v for k, v in g.items() if k != "weight_decay"} for g in groups["sparse"]]
        if name == "adamw":
            optimizers.append(RowAdam(sparse))
        else:  # SGD takes sparse gradients as long as it keeps no momentum
            optimizers.append(torch.optim.SGD(sparse, momentum=0.0))
    return optimizers


def set_lr(optimizers: list, factor: float) -> None:
    for opt in optimizers:
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor


class RowAdam(torch.optim.Optimizer):
    """Adam on the rows of a sparse gradient only (lazy Adam, as ``torch.optim.SparseAdam``):
    a row's moments and value change only in steps whose batch holds its token, with the
    optimiser's global step count in the bias correction.

    SparseAdam builds masked views of its moment tables with ``sparse_mask``, which cost
    more than all the rest of a bag's training step here. This gathers the touched rows of
    the weight and both moments, updates them with PyTorch's fused Adam kernel (one pass),
    and writes them back. Its update is Adam's (eps added to the bias-corrected root, where
    SparseAdam adds it before the correction: the same up to that eps; tests/test_optim.py
    compares the two).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.grad.is_sparse:
                    raise RuntimeError("RowAdam takes sparse gradients; use AdamW for dense ones")
                rows, g = _unique_rows(p.grad)
                if rows.numel() == 0:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                w, m, v = (t.index_select(0, rows) for t in (p, state["exp_avg"], state["exp_avg_sq"]))
                _adam_rows(w, g.contiguous(), m, v, state["step"], lr=group["lr"], beta1=beta1, beta2=beta2,
                           eps=group["eps"])
                for table, new in ((p, w), (state["exp_avg"], m), (state["exp_avg_sq"], v)):
                    table.index_copy_(0, rows, new)
        return loss


def _adam_rows(w, g, m, v, step, *, lr, beta1, beta2, eps):
    """One Adam step on the gathered rows, in place: PyTorch's fused kernel where it has one
    for this device, else the same arithmetic op by op."""
    fused = getattr(torch, "_fused_adam_", None)  # a private op: absent from older PyTorch
    if fused is not None:
        try:
            fused([w], [g], [m], [v], [], [step], lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps,
                  amsgrad=False, maximize=False)
            return
        except (NotImplementedError, RuntimeError):  # no kernel for this device
            pass
    t = float(step)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = (v / (1 - beta2 ** t)).sqrt_().add_(eps)
    w.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))


def _unique_rows(grad):
    """(row ids, their gradient rows) of a sparse gradient, one row per id. A gradient from
    ``models.embedding._Bag`` is already so (sorted and distinct), but autograd's
    accumulation drops its "coalesced" flag: check the order instead of sorting again."""
    rows, values = grad._indices()[0], grad._values()
    if rows.numel() > 1 and not bool((rows[1:] > rows[:-1]).all()):
        grad = grad.coalesce()
        rows, values = grad._indices()[0], grad._values()
    return rows, values
