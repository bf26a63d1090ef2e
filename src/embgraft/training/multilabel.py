"""Multi-label scoring: a text may carry any number of labels, each a sigmoid output.

Training picks the best epoch by :func:`multilabel_scores` at threshold 0.5, then
:func:`tune_thresholds` sets each label's threshold to the one that maximises that label's F1 on
dev; the run keeps them (``thresholds.json``) and serves label sets with them. NumPy only:
scikit-learn costs a training process ~80 MB of peak RSS (``evaluate`` uses it for the full
report, and a test checks the two agree).
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.5
# candidate thresholds; a label whose F1 ties across several takes the one nearest 0.5, so a
# flat dev curve leaves the default alone
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, in float64 without overflow warnings."""
    x = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _f1_per_label(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """(C,) F1 per label (0 where a label is neither true nor predicted, scikit-learn's
    ``zero_division=0``), and the micro counts TP, FP, FN."""
    tp = (truth & pred).sum(axis=0).astype(np.float64)
    fp = (~truth & pred).sum(axis=0).astype(np.float64)
    fn = (truth & ~pred).sum(axis=0).astype(np.float64)
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1, int(tp.sum()), int(fp.sum()), int(fn.sum())


def multilabel_scores(logits: np.ndarray, targets: np.ndarray, thresholds: np.ndarray | None = None) -> dict:
    """Scores of ``logits`` (n, C) against multi-hot ``targets`` (n, C), a label predicted where
    its probability reaches its threshold (``thresholds`` (C,), default 0.5 each).

    ``accuracy`` is subset accuracy (every label of a text right, scikit-learn's
    ``accuracy_score`` on label sets); ``macro_f1`` / ``micro_f1`` as scikit-learn's ``f1_score``
    with ``zero_division=0``; ``hamming_loss`` the share of wrong (text, label) cells; ``loss``
    the mean binary cross-entropy.
    """
    logits = np.asarray(logits, dtype=np.float64)
    truth = np.asarray(targets) > 0.5
    n, k = truth.shape
    thresholds = np.full(k, DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    pred = sigmoid(logits) >= thresholds
    f1, tp, fp, fn = _f1_per_label(truth, pred)
    # mean BCE with logits, stable: max(x, 0) - x * y + log(1 + exp(-|x|))
    bce = np.maximum(logits, 0) - logits * truth + np.log1p(np.exp(-np.abs(logits)))
    micro_denom = 2 * tp + fp + fn
    return {"accuracy": float((pred == truth).all(axis=1).mean()) if n else 0.0,
            "macro_f1": float(f1.mean()) if k else 0.0,
            "micro_f1": float(2 * tp / micro_denom) if micro_denom else 0.0,
            "hamming_loss": float((pred != truth).mean()) if n else 0.0,
            "loss": float(bce.mean()) if n else float("nan"), "n": int(n)}


def tune_thresholds(proba: np.ndarray, targets: np.ndarray, *, grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """(C,) float64: for each label, the threshold of ``grid`` that maximises its F1 on
    ``proba`` (n, C) against ``targets`` (n, C); ties go to the one nearest 0.5, and a label with
    no positive example keeps 0.5 (there is nothing to tune it on)."""
    proba = np.asarray(proba, dtype=np.float64)
    truth = np.asarray(targets) > 0.5
    k = truth.shape[1]
    best = np.full(k, DEFAULT_THRESHOLD)
    order = np.argsort(np.abs(grid - DEFAULT_THRESHOLD), kind="stable")  # nearest 0.5 first: wins ties
    f1s = np.stack([_f1_per_label(truth, proba >= t)[0] for t in grid[order]])  # (len(grid), C)
    pick = f1s.argmax(axis=0)
    has_positive = truth.any(axis=0)
    best[has_positive] = grid[order][pick[has_positive]]
    return best


def exact_sets(proba: np.ndarray, thresholds: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(n,) bool: whether each text's predicted label set (``proba`` (n, C) at ``thresholds``
    (C,)) equals its true one (multi-hot ``targets`` (n, C)): the per-item "correct" of subset
    accuracy."""
    return ((np.asarray(proba) >= thresholds) == (np.asarray(targets) > 0.5)).all(axis=1)
