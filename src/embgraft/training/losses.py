"""The classification loss: cross-entropy, optionally weighted per class and focal; multi-label,
binary cross-entropy per label, weighted and focal the same way.

With neither class weights nor ``gamma`` it is ``F.cross_entropy`` (multi-label:
``F.binary_cross_entropy_with_logits``) itself, so runs without them train bit for bit as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embgraft.errors import ConfigError, MalformedFileError


def class_weights(spec: str | None, labels: np.ndarray, names: list[str]) -> np.ndarray | None:
    """``(n_classes,)`` float32 weights, or None: ``balanced`` gives ``n / (k * count_c)`` from the
    training label ids ``labels`` (scikit-learn's rule; a class absent from training gets 1), a
    file gives ``label<TAB>weight`` per line (every class named, weights > 0).

    Multi-label (``labels`` (n, k) multi-hot, -1 rows unlabelled): the weight of a label's
    *positive* term in its binary cross-entropy (``pos_weight``); ``balanced`` gives
    ``negatives / positives`` per label (1 for a label never or always present)."""
    if spec is None:
        return None
    k = len(names)
    if spec == "balanced" and labels.ndim == 2:
        known = labels[labels[:, 0] >= 0]
        pos = known.sum(axis=0).astype(np.float64)
        neg = len(known) - pos
        return np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1), 1.0).astype(np.float32)
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


def multilabel_loss(logits, targets, *, pos_weight=None, gamma: float = 0.0, label_smoothing: float = 0.0):
    """Mean over texts and labels of the binary cross-entropy of ``logits`` (B, C) against the
    multi-hot ``targets`` (B, C) float.

    ``label_smoothing`` e moves targets to ``e / 2`` and ``1 - e / 2``. ``pos_weight`` (C,): a
    label's positive term counts that many times. ``gamma`` > 0: each term is multiplied by
    ``(1 - p_t)^gamma``, ``p_t`` the model's probability of the term's target (sigmoid focal loss,
    Lin et al. 2017).
    """
    import torch
    import torch.nn.functional as F

    if label_smoothing:
        targets = targets * (1 - label_smoothing) + label_smoothing / 2
    if gamma == 0:
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    per = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    return ((1 - p_t).clamp_min(0) ** gamma * per).mean()


def labelled(labels):
    """(B,) bool: the texts with labels; unlabelled ones (``--unlabelled``) hold -1 (multi-label:
    a row of -1)."""
    return labels >= 0 if labels.dim() == 1 else labels[:, 0] >= 0


def task_loss(logits, labels, *, weight=None, gamma: float = 0.0, label_smoothing: float = 0.0):
    """The loss of the task ``labels`` say: class ids (B,) -> :func:`classification_loss`,
    multi-hot rows (B, C) -> :func:`multilabel_loss` (``weight`` then being ``pos_weight``)."""
    if labels.dim() == 2:
        return multilabel_loss(logits, labels, pos_weight=weight, gamma=gamma, label_smoothing=label_smoothing)
    return classification_loss(logits, labels, weight=weight, gamma=gamma, label_smoothing=label_smoothing)
