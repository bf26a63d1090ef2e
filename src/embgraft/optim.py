"""Optimisers and learning-rate schedules.

Parameter groups: the embedding's trainable rows get ``embedding_lr`` and no weight decay (a
decayed row drifts towards zero whether or not its token occurs); matrices of the other layers
get ``lr`` and ``weight_decay``; biases and norms get ``lr`` and no decay. A sparse embedding
gradient goes to ``torch.optim.SparseAdam`` (only touched rows move), the rest to AdamW.

A schedule is a multiplier of each group's base LR, a pure function of the step (plus, for
``plateau``, of the dev metrics seen), so it is easy to test and to resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SCHEDULES = ("constant", "linear", "exponential", "cosine", "plateau")
OPTIMIZERS = ("adamw", "sgd")


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


def param_groups(model, *, lr: float, embedding_lr: float | None, weight_decay: float,
                 layer_lr_decay: float = 1.0) -> dict[str, list[dict]]:
    """``{"dense": [...], "sparse": [...]}`` groups; each group records its ``base_lr``.
    ``embedding_lr`` None means ``lr``. A model with layers of its own (``hf``) makes its groups
    itself, with layer-wise decay."""
    if hasattr(model, "param_groups"):
        return model.param_groups(lr=lr, embedding_lr=embedding_lr, weight_decay=weight_decay,
                                  layer_lr_decay=layer_lr_decay)
    embedding_lr = lr if embedding_lr is None else embedding_lr
    emb = getattr(model, "embedding", None)
    emb_params = [emb.trainable] if emb is not None and hasattr(emb, "trainable") else []
    emb_ids = {id(p) for p in emb_params}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if id(p) in emb_ids:
            continue
        (decay if p.ndim >= 2 and "norm" not in name.lower() else no_decay).append(p)
    groups = {"dense": [], "sparse": []}
    for name, params, group_lr, wd, kind in (
        ("embedding", emb_params, embedding_lr, 0.0, "sparse" if emb is not None and emb.sparse else "dense"),
        ("body", decay, lr, weight_decay, "dense"),
        ("body_no_decay", no_decay, lr, 0.0, "dense"),
    ):
        if params:
            groups[kind].append({"params": params, "name": name, "lr": group_lr, "base_lr": group_lr,
                                 "weight_decay": wd})
    return groups


def build_optimizers(model, *, name: str, lr: float, embedding_lr: float | None, weight_decay: float,
                     layer_lr_decay: float = 1.0, momentum: float = 0.9, fused: bool | None = None) -> list:
    """The optimisers for ``model``: one for dense gradients, and SparseAdam for a sparse embedding.

    ``fused=True`` AdamW is many times faster per step on CPU than the default for-each
    implementation (measured in ``EXPERIMENTS.md``); it is used wherever PyTorch supports it.
    """
    import torch

    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")
    groups = param_groups(model, lr=lr, embedding_lr=embedding_lr, weight_decay=weight_decay,
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
            optimizers.append(torch.optim.SparseAdam(sparse))
        else:  # SGD takes sparse gradients as long as it keeps no momentum
            optimizers.append(torch.optim.SGD(sparse, momentum=0.0))
    return optimizers


def set_lr(optimizers: list, factor: float) -> None:
    for opt in optimizers:
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
