"""The classification loss: cross-entropy, optionally weighted per class and focal.

With neither class weights nor ``gamma`` it is ``F.cross_entropy`` itself, so runs without them
train bit for bit as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embgraft.errors import ConfigError, MalformedFileError


def class_weights(spec: str | None, labels: np.ndarray, names: list[str]) -> np.ndarray | None:
    """``(n_classes,)`` float32 weights, or None: ``balanced`` gives ``n / (k * count_c)`` from the
    training label ids ``labels`` (scikit-learn's rule; a class absent from training gets 1), a
    file gives ``label<TAB>weight`` per line (every class named, weights > 0)."""
    if spec is None:
        return None
    k = len(names)
    if spec == "balanced":
        counts = np.bincount(labels[labels >= 0], minlength=k).astype(np.float64)
        n = counts.sum()
        return np.where(counts > 0, n / (k * np.maximum(counts, 1)), 1.0).astype(np.float32)
    weights: dict[str, float] = {}
    path = Path(spec)
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.rpartition("\t")
        try:
            w = float(value)
        except ValueError:
            w = float("nan")
        if not sep or not (w > 0 and np.isfinite(w)):
            raise MalformedFileError(path, line_no, "expected 'label<TAB>weight' with a positive weight")
        if name not in names:
            raise MalformedFileError(path, line_no, f"{name!r} is not one of the classes {names}")
        weights[name] = w
    missing = [n for n in names if n not in weights]
    if missing:
        raise ConfigError(f"{path}: no weight for {', '.join(missing)}")
    return np.array([weights[n] for n in names], dtype=np.float32)


def classification_loss(logits, labels, *, weight=None, gamma: float = 0.0, label_smoothing: float = 0.0):
    """Mean loss of ``logits`` (B, C) float against ``labels`` (B,) int64.

    ``weight`` (C,): each example counts ``weight[label]`` times (the mean divides by their sum,
    as ``F.cross_entropy`` does). ``gamma`` > 0: each example's loss is multiplied by
    ``(1 - p)^gamma``, ``p`` the model's probability of its label (focal loss).
    """
    import torch
    import torch.nn.functional as F

    if gamma == 0:
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=label_smoothing)
    per = F.cross_entropy(logits, labels, weight=weight, label_smoothing=label_smoothing, reduction="none")
    p = torch.softmax(logits, dim=-1).gather(1, labels[:, None])[:, 0]
    focal = (1 - p).clamp_min(0) ** gamma
    total = weight[labels].sum() if weight is not None else torch.tensor(float(len(labels)), device=logits.device)
    return (focal * per).sum() / total
