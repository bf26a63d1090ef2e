"""The classification loss: cross-entropy, optionally weighted per class and focal; multi-label,
binary cross-entropy per label, weighted and focal the same way. And the distillation terms
(``--distill-loss``, :data:`DISTILL_LOSSES`; the teachers' targets come from ``distill.py``).

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


def distill_loss(logits, soft, *, temperature: float):
    """``T² * KL(soft || softmax(logits / T))``, averaged over the batch.

    ``logits`` (B, C) float; ``soft`` (B, C) the teachers' probabilities at ``T``. The ``T²``
    keeps the gradient's size independent of ``T`` (Hinton et al.).
    """
    import torch.nn.functional as F

    log_p = F.log_softmax(logits / temperature, dim=-1)
    return F.kl_div(log_p, soft, reduction="batchmean") * temperature ** 2


def distill_loss_multilabel(logits, soft, *, temperature: float):
    """``T² *`` the binary KL divergence of ``sigmoid(logits / T)`` from the teachers' ``soft``
    (B, C) per-label probabilities at ``T``, averaged over texts and labels (0 where they agree)."""
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits / temperature, soft, reduction="none")
    s = soft.clamp(1e-12, 1 - 1e-12)
    entropy = -(s * torch.log(s) + (1 - s) * torch.log1p(-s))
    return (bce - entropy).mean() * temperature ** 2


def distill_loss_mse(logits, soft, *, temperature: float = 1.0):
    """Mean over the batch and the classes of ``(z - mean(z) - (t - mean(t)))²``, ``z`` the
    student's ``logits`` (B, C) and ``t = log(soft)`` the teachers' logits recovered from their
    averaged probabilities ``soft`` (B, C) (each row's mean removed: a softmax ignores it).
    ``temperature`` must be 1 (the config refuses another): logits are compared unsoftened."""
    import torch

    if temperature != 1:
        raise ValueError(f"the mse distillation loss compares logits and takes no temperature, not {temperature:g}")
    t = torch.log(soft.clamp_min(1e-12))
    z = logits - logits.mean(dim=-1, keepdim=True)
    return ((z - (t - t.mean(dim=-1, keepdim=True))) ** 2).mean()


def distill_loss_multilabel_mse(logits, soft, *, temperature: float = 1.0):
    """Mean over texts and labels of ``(z - log(s / (1 - s)))²``, ``z`` the student's per-label
    ``logits`` (B, C), ``s`` the teachers' averaged per-label probabilities ``soft`` (B, C), held
    inside ``[1e-7, 1 - 1e-7]`` (a float32 probability of 1 has no finite logit)."""
    import torch

    if temperature != 1:
        raise ValueError(f"the mse distillation loss compares logits and takes no temperature, not {temperature:g}")
    s = soft.clamp(1e-7, 1 - 1e-7)
    return ((logits - (torch.log(s) - torch.log1p(-s))) ** 2).mean()


# --distill-loss NAME -> (single-label loss, multi-label loss), each (logits, soft, *, temperature) -> scalar
DISTILL_LOSSES = {
    "kl": (distill_loss, distill_loss_multilabel),
    "mse": (distill_loss_mse, distill_loss_multilabel_mse),
}
