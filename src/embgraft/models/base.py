"""``TextClassifier``: what the training loop, the optimiser set-up and serving ask of a model.

Every model subclasses it and overrides only what differs: ``min_len`` (a convolution needs at
least its widest kernel), ``pad_multiple`` (batch widths rounded up, see TextCNN),
``embedding_parameters`` and ``parameter_depths`` (an ``hf`` encoder's own layers). The one
parameter-group rule lives here, as nanoGPT's model owns ``configure_optimizers``.
"""

from __future__ import annotations

import os
from typing import Mapping

import torch
from torch import nn

from embgraft.errors import MalformedFileError

EMBEDDING_WEIGHT = "embedding.weight"  # the embedding's one table in a saved state (``export_state``)


class TextClassifier(nn.Module):
    """``forward(ids (B, T) int64) -> logits (B, n_classes)``; ``embedding`` is the model's
    :class:`~embgraft.models.embedding.TokenEmbedding`, or None for an ``hf`` encoder on its own
    input table."""

    min_len: int = 1  # the narrowest batch width the model takes
    pad_multiple: int = 1  # batch widths are rounded up to a multiple of this
    embedding_depth: int = 0  # layers between the embedding and the output, for layer-wise LR decay

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The parameters holding the trainable input rows (the fine-tuning mode's business)."""
        return [self.embedding.trainable]

    def parameter_depths(self) -> dict[int, int]:
        """``id(parameter) -> depth`` below the output layer for layer-wise LR decay; a parameter
        not named is at depth 0 (the top's rate)."""
        return {}

    def set_embedding_trainable(self, flag: bool) -> None:
        """Freeze or unfreeze the input rows as a whole (``gradual:N`` mode)."""
        for p in self.embedding_parameters():
            p.requires_grad_(flag)

    def param_groups(self, *, lr: float, embedding_lr: float | None, weight_decay: float,
                     layer_lr_decay: float = 1.0) -> dict[str, list[dict]]:
        """``{"dense": [...], "sparse": [...]}`` optimiser groups, each recording its ``base_lr``.

        The embedding's rows get ``embedding_lr`` (default: the rate of its depth,
        ``lr * layer_lr_decay ** embedding_depth``) and no weight decay: a decayed row drifts
        towards zero whether or not its token occurs. A parameter at depth d gets
        ``lr * layer_lr_decay ** d``; matrices get ``weight_decay``, biases and norms none.
        Parameters frozen for the whole run (``requires_grad`` False, e.g. by ``--train-layers``)
        are left out, but the embedding's are kept (``gradual`` unfreezes them later).
        """
        embedding = self.embedding_parameters()
        emb_ids = {id(p) for p in embedding}
        depths = self.parameter_depths()
        buckets: dict[tuple[str, float, float], list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if id(p) in emb_ids or not p.requires_grad:
                continue
            rate = lr * layer_lr_decay ** depths.get(id(p), 0)
            decays = p.ndim >= 2 and "norm" not in name.lower()
            key = ("body" if decays else "body_no_decay", rate, weight_decay if decays else 0.0)
            buckets.setdefault(key, []).append(p)
        groups: dict[str, list[dict]] = {"dense": [], "sparse": []}
        if embedding:
            rate = lr * layer_lr_decay ** self.embedding_depth if embedding_lr is None else embedding_lr
            sparse = self.embedding is not None and self.embedding.sparse
            groups["sparse" if sparse else "dense"].append(_group("embedding", embedding, rate, 0.0))
        groups["dense"] += [_group(name, ps, rate, wd) for (name, rate, wd), ps in buckets.items()]
        return groups

    def export_state(self) -> dict[str, torch.Tensor]:
        """The weights a trained model is saved with: the embedding as one (n_tokens, dim) table in
        token-id order under ``embedding.weight`` (however it was split for training), the rest as
        in ``state_dict``; contiguous CPU tensors, for safetensors."""
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("embedding.")}
        if self.embedding is not None:
            state[EMBEDDING_WEIGHT] = self.embedding.full_weight()
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def load_export(self, state: Mapping[str, torch.Tensor], *, where: str | os.PathLike) -> None:
        """Load a state written by :meth:`export_state` into this model, built on an embedding of
        that state's ``embedding.weight``; strictly (:func:`load_strict`)."""
        rest = {k: v for k, v in state.items() if k != EMBEDDING_WEIGHT}
        if self.embedding is not None:
            rest["embedding.trainable"] = self.embedding.trainable.detach()
        load_strict(self, rest, where=where)


def check_state(model_state: Mapping[str, torch.Tensor],
                given: Mapping[str, tuple[torch.dtype | None, tuple[int, ...], str]], *,
                where: str | os.PathLike) -> None:
    """Raise :class:`MalformedFileError` naming ``where`` unless ``given`` describes exactly the
    tensors of ``model_state``: the same keys, each with its dtype and shape. ``given`` maps a key
    to ``(dtype, shape, the dtype as the file names it)``. The one check every loader makes."""
    missing, unexpected = sorted(set(model_state) - set(given)), sorted(set(given) - set(model_state))
    if missing or unexpected:
        raise MalformedFileError(where, None, f"does not fit the model: missing {missing}, unexpected {unexpected}")
    for k, target in model_state.items():
        dtype, shape, shown = given[k]
        if dtype != target.dtype or tuple(shape) != tuple(target.shape):
            raise MalformedFileError(where, None, f"{k}: {shown} {tuple(shape)}, the model's is "
                                                  f"{target.dtype} {tuple(target.shape)}")


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], *, where: str | os.PathLike) -> None:
    """``model.load_state_dict(state)`` after :func:`check_state`: a file that does not fit is a
    one-line error naming it, never a traceback or a silently half-loaded model."""
    check_state(model.state_dict(), {k: (v.dtype, tuple(v.shape), str(v.dtype)) for k, v in state.items()},
                where=where)
    model.load_state_dict(state, strict=True)


def _group(name: str, params: list[nn.Parameter], lr: float, weight_decay: float) -> dict:
    return {"params": params, "name": name, "lr": lr, "base_lr": lr, "weight_decay": weight_decay}
