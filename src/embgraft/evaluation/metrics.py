"""Evaluation metrics for a classifier's predicted probabilities, its most confident errors
(``errors.tsv``) and the table ``embgraft evaluate`` prints.

Every figure comes from scikit-learn; the only arithmetic done here is the binning weights of
the expected calibration error. All functions take class *ids* ``0..k-1``
with ``labels`` naming them in id order, and pass ``labels=range(k)`` to scikit-learn everywhere,
so a class absent from a small test set never shifts a column. Results are plain JSON types.

scikit-learn is imported inside the functions; ``embgraft graft`` never imports this module.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embgraft.console import format_table
from embgraft.errors import EmbgraftError, MalformedFileError
from embgraft.files import atomic_file, escape_field, unescape_field

ERRORS_HEADER = ("text", "gold", "predicted", "probability")
_ABSENT = "no example of this class in y_true"
_ALWAYS = "every example is of this class"


# -- validation -------------------------------------------------------------------------------------
def _check_inputs(y_true: Any, proba: Any, labels: Sequence[str], *,
                  renormalise: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    labels = [str(x) for x in labels]
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    k = len(labels)
    if k < 2:
        raise EmbgraftError(f"need at least 2 classes, got {k}")
    if len(set(labels)) != k:
        raise EmbgraftError("class names are not unique")
    if y.ndim != 1 or p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise EmbgraftError(f"y_true must be (n,) and proba (n, n_classes); got {y.shape} and {p.shape}")
    if p.shape[0] == 0:
        raise EmbgraftError("no examples to evaluate")
    if p.shape[1] != k:
        raise EmbgraftError(f"proba has {p.shape[1]} columns for {k} class names")
    if y.dtype.kind not in "iu" and (y.dtype.kind != "f" or not np.all(np.equal(np.mod(y, 1), 0))):
        raise EmbgraftError(f"y_true must hold integer class ids, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= k:
        raise EmbgraftError(f"y_true holds ids outside 0..{k - 1}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise EmbgraftError("proba must hold finite probabilities in [0, 1]")
    worst = float(np.abs(p.sum(axis=1) - 1).max())
    if worst > 1e-3:
        raise EmbgraftError(f"proba rows must sum to 1 (off by up to {worst:.3g})")
    if renormalise:  # float32 softmax rows sum to 1 only to ~1e-7: renormalise in float64 (argmax unchanged)
        p = p / p.sum(axis=1, keepdims=True)
    return y, p, labels


def _floats(xs: Any) -> list[float | None]:
    """A JSON list: NaN and ±inf (e.g. roc_curve's first threshold) become ``None``."""
    return [float(x) if math.isfinite(x) else None for x in np.asarray(xs, dtype=np.float64).tolist()]


def _mean_defined(values: dict[str, float | None]) -> float | None:
    defined = [v for v in values.values() if v is not None]
    return float(np.mean(defined)) if defined else None


# -- metrics ----------------------------------------------------------------------------------------
def compute_metrics(y_true: Any, proba: Any, labels: Sequence[str], *, n_bins: int = 15) -> dict[str, Any]:
    """Every metric of one evaluation, as a JSON-serialisable dict.

    ``y_true``: (n,) int class ids; ``proba``: (n, n_classes) floats whose rows sum to 1;
    ``labels``: the n_classes class names in id order. The prediction is ``proba.argmax(1)``.

    Keys: ``n_examples``, ``labels``, ``classes_absent`` (names with no example in ``y_true``),
    ``accuracy``, ``log_loss``, ``per_class`` {name: precision, recall, f1, support},
    ``macro``/``micro``/``weighted`` {precision, recall, f1}, ``confusion`` {``counts``,
    ``normalised`` (rows divided by their sum; an absent class's row is zeros)}, ``roc`` and ``pr``
    (below), ``calibration`` {``ece``, ``n_bins``, ``bins``} with confidence = max probability.

    ``roc``: ``kind`` ``binary`` (one curve, positive class = id 1) or ``ovr`` (one-vs-rest, one
    curve per class); ``curves`` {name: fpr, tpr, thresholds, auc}; ``auc`` (binary: the positive
    class's; ovr: macro mean over the classes where it is defined); ``undefined`` {name: reason}
    for classes whose curve cannot exist (absent, or the only class present).
    ``pr``: the same shape with precision, recall, thresholds, ``average_precision``, and
    ``average_precision`` (binary: positive class; ovr: macro) at the top.

    Multi-hot ``y_true`` (n, n_classes) with independent probabilities: see
    :func:`compute_multilabel_metrics` (``thresholds`` then required).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

    y, p, labels = _check_inputs(y_true, proba, labels)
    if n_bins < 1:
        raise EmbgraftError(f"n_bins must be at least 1, got {n_bins}")
    k = len(labels)
    ids = list(range(k))
    pred = p.argmax(axis=1)
    present = np.bincount(y, minlength=k)
    n = int(y.shape[0])

    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
    per_class = {name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                        "support": int(support[i])} for i, name in enumerate(labels)}
    averages = {}
    for avg in ("macro", "micro", "weighted"):
        a_p, a_r, a_f, _ = precision_recall_fscore_support(y, pred, labels=ids, average=avg, zero_division=0)
        averages[avg] = {"precision": float(a_p), "recall": float(a_r), "f1": float(a_f)}

    counts = confusion_matrix(y, pred, labels=ids)
    normalised = confusion_matrix(y, pred, labels=ids, normalize="true")

    # one curve per class (binary: the positive class only)
    curve_ids = [1] if k == 2 else ids
    roc, pr = _curve_blocks({labels[c]: ((y == c).astype(np.int64), p[:, c]) for c in curve_ids},
                            kind="binary" if k == 2 else "ovr", positive=labels[1] if k == 2 else None)
    # calibration: confidence = max probability, outcome = prediction correct
    calibration = _calibration((pred == y).astype(np.int64), p.max(axis=1), n_bins=n_bins, what="max probability")

    return {
        "n_examples": n,
        "labels": labels,
        "classes_absent": [labels[c] for c in ids if present[c] == 0],
        "accuracy": float(accuracy_score(y, pred)),
        "log_loss": float(log_loss(y, p, labels=ids)),
        "per_class": per_class,
        **averages,
        "confusion": {"counts": counts.astype(int).tolist(),
                      "normalised": np.nan_to_num(normalised).astype(float).tolist()},
        "roc": roc,
        "pr": pr,
        "calibration": calibration,
    }


def compute_multilabel_metrics(y_true: Any, proba: Any, labels: Sequence[str], thresholds: Any, *,
                               n_bins: int = 15) -> dict[str, Any]:
    """Every metric of a multi-label evaluation, as a JSON-serialisable dict.

    ``y_true``: (n, k) 0/1 multi-hot; ``proba``: (n, k) independent label probabilities;
    ``thresholds``: (k,), a label predicted where its probability reaches its threshold.

    Keys: ``task`` (``multi_label``), ``n_examples``, ``labels``, ``thresholds`` {name: t},
    ``classes_absent``, ``subset_accuracy`` (also as ``accuracy``: every label of a text right),
    ``hamming_loss``, ``label_ranking_average_precision``, ``log_loss`` (mean binary
    cross-entropy over texts and labels), ``per_class`` {name: precision, recall, f1, support},
    ``macro``/``micro``/``weighted``/``samples`` {precision, recall, f1}, ``cardinality`` {true,
    predicted: mean labels per text}, ``roc``/``pr`` (one curve per label, ``kind`` ``per_label``,
    macro means) and ``calibration`` over every (text, label) cell (confidence = the label's
    probability, outcome = the label present). All from scikit-learn.
    """
    from sklearn.metrics import (accuracy_score, hamming_loss, label_ranking_average_precision_score,
                                 precision_recall_fscore_support)

    labels = [str(x) for x in labels]
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    k = len(labels)
    if y.ndim != 2 or p.shape != y.shape or y.shape[1] != k or t.shape != (k,):
        raise EmbgraftError(f"y_true and proba must be (n, {k}) and thresholds ({k},); got {y.shape}, {p.shape}, "
                            f"{t.shape}")
    if y.shape[0] == 0:
        raise EmbgraftError("no examples to evaluate")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise EmbgraftError("proba must hold finite probabilities in [0, 1]")
    truth = (y > 0.5).astype(np.int64)
    pred = (p >= t).astype(np.int64)
    n = int(y.shape[0])
    prec, rec, f1, support = precision_recall_fscore_support(truth, pred, zero_division=0)
    per_class = {name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                        "support": int(support[i])} for i, name in enumerate(labels)}
    averages = {}
    for avg in ("macro", "micro", "weighted", "samples"):
        a_p, a_r, a_f, _ = precision_recall_fscore_support(truth, pred, average=avg, zero_division=0)
        averages[avg] = {"precision": float(a_p), "recall": float(a_r), "f1": float(a_f)}
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    bce = -(truth * np.log(clipped) + (1 - truth) * np.log1p(-clipped))
    roc, pr = _curve_blocks({name: (truth[:, i], p[:, i]) for i, name in enumerate(labels)}, kind="per_label",
                            positive=None)
    has_label = truth.sum(axis=1) > 0  # ranking AP is defined over texts with a true label
    lrap = (float(label_ranking_average_precision_score(truth[has_label], p[has_label]))
            if has_label.any() else None)
    subset = float(accuracy_score(truth, pred))
    return {
        "task": "multi_label",
        "n_examples": n,
        "labels": labels,
        "thresholds": dict(zip(labels, t.tolist())),
        "classes_absent": [labels[i] for i in range(k) if truth[:, i].sum() == 0],
        "subset_accuracy": subset,
        "accuracy": subset,
        "hamming_loss": float(hamming_loss(truth, pred)),
        "label_ranking_average_precision": lrap,
        "log_loss": float(bce.mean()),
        "per_class": per_class,
        **averages,
        "cardinality": {"true": float(truth.sum(axis=1).mean()), "predicted": float(pred.sum(axis=1).mean())},
        "roc": roc,
        "pr": pr,
        "calibration": _calibration(truth.ravel(), p.ravel(), n_bins=n_bins, what="each label's probability"),
    }


def _curve_blocks(columns: dict[str, tuple[np.ndarray, np.ndarray]], *, kind: str,
                  positive: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``roc`` and ``pr`` blocks of :func:`compute_metrics` from ``columns`` {name: (hit (n,)
    0/1, score (n,))}: a curve per name where both outcomes occur; ``kind`` ``binary`` reads the
    one curve's scores as the overall, otherwise the macro mean over the defined curves."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    roc_curves: dict[str, Any] = {}
    pr_curves: dict[str, Any] = {}
    undefined: dict[str, str] = {}
    for name, (hit, score) in columns.items():
        if hit.sum() == 0 or hit.sum() == len(hit):
            undefined[name] = _ABSENT if hit.sum() == 0 else _ALWAYS
            continue
        fpr, tpr, thr = roc_curve(hit, score, pos_label=1)
        roc_curves[name] = {"fpr": _floats(fpr), "tpr": _floats(tpr), "thresholds": _floats(thr),
                            "auc": float(roc_auc_score(hit, score))}
        pr_p, pr_r, pr_t = precision_recall_curve(hit, score, pos_label=1, drop_intermediate=True)
        pr_curves[name] = {"precision": _floats(pr_p), "recall": _floats(pr_r), "thresholds": _floats(pr_t),
                           "average_precision": float(average_precision_score(hit, score)),
                           "auc": float(auc(pr_r, pr_p))}
    roc_auc = {n_: v["auc"] for n_, v in roc_curves.items()}
    ap = {n_: v["average_precision"] for n_, v in pr_curves.items()}
    roc = {"kind": kind, "positive": positive, "curves": roc_curves,
           "auc": roc_auc.get(positive) if kind == "binary" else _mean_defined(roc_auc), "undefined": undefined}
    pr = {"kind": kind, "positive": positive, "curves": pr_curves,
          "average_precision": ap.get(positive) if kind == "binary" else _mean_defined(ap),
          "undefined": dict(undefined)}
    if kind != "binary" and undefined:
        note = (f"macro mean over the {len(roc_auc)} of {len(columns)} classes where it is defined; "
                f"undefined for {', '.join(undefined)}")
        roc["note"] = pr["note"] = note
    return roc, pr


def _calibration(outcome: np.ndarray, confidence: np.ndarray, *, n_bins: int, what: str) -> dict[str, Any]:
    """Reliability bins of ``confidence`` (n,) against the 0/1 ``outcome`` (n,) (scikit-learn's
    ``calibration_curve``, uniform bins) and the expected calibration error."""
    from sklearn.calibration import calibration_curve

    n = len(outcome)
    prob_true, prob_pred = calibration_curve(outcome, confidence, n_bins=n_bins, strategy="uniform", pos_label=1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_of = np.searchsorted(edges[1:-1], confidence)  # the binning calibration_curve uses
    bin_count = np.bincount(bin_of, minlength=n_bins)
    filled = np.flatnonzero(bin_count)
    if len(filled) != len(prob_true):
        raise RuntimeError("calibration bins disagree with scikit-learn's calibration_curve")
    bins = [{"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": int(bin_count[b]),
             "accuracy": None, "confidence": None} for b in range(n_bins)]
    for b, acc, conf in zip(filled, prob_true, prob_pred):
        bins[b]["accuracy"], bins[b]["confidence"] = float(acc), float(conf)
    ece = float(np.sum(bin_count[filled] / n * np.abs(prob_true - prob_pred)))
    return {"ece": ece, "n_bins": int(n_bins), "confidence": what, "bins": bins}


# -- errors -----------------------------------------------------------------------------------------
def confident_errors(texts: Sequence[str], y_true: Any, proba: Any, labels: Sequence[str], *,
                     n: int = 20) -> list[dict[str, Any]]:
    """The ``n`` mistakes the model was surest of, most confident first.

    ``texts``: n_examples strings; ``y_true``: (n_examples,) int ids; ``proba``: (n_examples,
    n_classes). Each item: ``text``, ``gold`` and ``predicted`` (class names), ``probability``
    (of the predicted class). Ties keep the input order.
    """
    y, p, labels = _check_inputs(y_true, proba, labels, renormalise=False)  # report the model's own figure
    if len(texts) != len(y):
        raise EmbgraftError(f"{len(texts)} texts for {len(y)} labels")
    if n < 0:
        raise EmbgraftError(f"n must be non-negative, got {n}")
    pred = p.argmax(axis=1)
    conf = p[np.arange(len(y)), pred]
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    return [{"text": str(texts[i]), "gold": labels[y[i]], "predicted": labels[pred[i]],
             "probability": float(conf[i])} for i in order]


def write_errors_tsv(path: str | os.PathLike, errors: Sequence[dict[str, Any]], *, force: bool = False) -> Path:
    """Writes ``errors`` (from :func:`confident_errors`) as TSV with header
    ``text gold predicted probability``; tab, newline and backslash in a field are escaped as
    ``\\t \\n \\\\``. Atomic; an existing file needs ``force``."""
    with atomic_file(path, force=force) as f:
        f.write("\t".join(ERRORS_HEADER) + "\n")
        for e in errors:
            f.write("\t".join([escape_field(str(e["text"])), escape_field(str(e["gold"])),
                               escape_field(str(e["predicted"])), repr(float(e["probability"]))]) + "\n")
    return Path(path)


def read_errors_tsv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads a file written by :func:`write_errors_tsv`; a bad line is a ``MalformedFileError``."""
    rows = []
    with open(path, encoding="utf-8", newline="\n") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if line_no == 1:
                if tuple(fields) != ERRORS_HEADER:
                    raise MalformedFileError(path, 1, f"header must be {' '.join(ERRORS_HEADER)!r}")
                continue
            if not line.strip():
                continue
            if len(fields) != 4:
                raise MalformedFileError(path, line_no, f"expected 4 tab-separated fields, got {len(fields)}")
            try:
                text, gold, predicted = (unescape_field(x) for x in fields[:3])
                prob = float(fields[3])
            except ValueError as e:
                raise MalformedFileError(path, line_no, str(e)) from None
            rows.append({"text": text, "gold": gold, "predicted": predicted, "probability": prob})
    return rows


# -- the printed table ------------------------------------------------------------------------------
def text_table(rows: Sequence[Sequence[str]], *, rule_after: Sequence[int] = (0,), left: str = "l") -> str:
    """The shared printer (``console.format_table``, CJK = 2 columns): column i is left-aligned
    when ``left[i] == "l"`` (default: the first only), otherwise right-aligned; a rule follows each
    row index in ``rule_after``."""
    align = "".join("l" if left[i:i + 1] == "l" else "r" for i in range(len(rows[0])))
    return "\n".join(line.rstrip() for line in format_table(rows, align, rules_after=rule_after))


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def multilabel_errors(texts: Sequence[str], y_true: Any, proba: Any, labels: Sequence[str], thresholds: Any, *,
                      n: int = 20) -> list[dict[str, Any]]:
    """The ``n`` texts whose predicted label set is furthest from the true one (most wrong labels,
    then the most confident wrong call), in ``errors.tsv``'s columns: ``gold`` and ``predicted``
    are label sets written ``a|b``, ``probability`` the most confident wrong call's."""
    y = np.asarray(y_true) > 0.5
    p = np.asarray(proba, dtype=np.float64)
    pred = p >= np.asarray(thresholds, dtype=np.float64)
    wrong = pred != y
    n_wrong = wrong.sum(axis=1)
    # how sure the model was of its worst wrong call: p for a false yes, 1 - p for a false no
    sure = np.where(wrong, np.where(pred, p, 1 - p), 0.0).max(axis=1)
    order = np.lexsort((-sure, -n_wrong))
    names = list(labels)
    return [{"text": texts[i], "gold": "|".join(names[j] for j in np.flatnonzero(y[i])),
             "predicted": "|".join(names[j] for j in np.flatnonzero(pred[i])), "probability": float(sure[i])}
            for i in order[:n] if n_wrong[i] > 0]


def multilabel_table(metrics: dict[str, Any]) -> str:
    """The table ``embgraft evaluate`` prints for a multi-label run: per label threshold,
    precision/recall/F1/support, the four averages, then subset accuracy, Hamming loss, ranking
    AP, log loss, mean AUC and AP."""
    rows = [("label", "threshold", "precision", "recall", "f1", "support")]
    for name, v in metrics["per_class"].items():
        rows.append((name, _fmt(metrics["thresholds"][name], 2), _fmt(v["precision"]), _fmt(v["recall"]),
                     _fmt(v["f1"]), f"{v['support']:,}"))
    n_labels = len(rows) - 1
    for avg in ("macro", "micro", "weighted", "samples"):
        v = metrics[avg]
        rows.append((f"{avg} avg", "", _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), ""))
    summary = [("subset accuracy", _fmt(metrics["subset_accuracy"])), ("Hamming loss", _fmt(metrics["hamming_loss"])),
               ("label-ranking AP", _fmt(metrics["label_ranking_average_precision"])),
               ("log loss (per label)", _fmt(metrics["log_loss"])),
               ("ROC AUC (macro over labels)", _fmt(metrics["roc"]["auc"])),
               ("average precision (macro)", _fmt(metrics["pr"]["average_precision"])),
               ("labels per text (true / predicted)",
                f"{metrics['cardinality']['true']:.2f} / {metrics['cardinality']['predicted']:.2f}")]
    lines = [text_table(rows, rule_after=(0, n_labels)), "", text_table(summary, rule_after=())]
    if metrics.get("classes_absent"):
        lines.append(f"no test example of: {', '.join(metrics['classes_absent'])}")
    return "\n".join(lines)


def metrics_table(metrics: dict[str, Any]) -> str:
    """The table ``embgraft evaluate`` prints: per class precision/recall/F1/support, then the
    macro, micro and weighted averages, then accuracy, log loss, AUC, average precision and ECE.
    ``metrics`` is :func:`compute_metrics`'s result (or its JSON read back); a multi-label
    result prints :func:`multilabel_table`."""
    if metrics.get("task") == "multi_label":
        return multilabel_table(metrics)
    rows = [("class", "precision", "recall", "f1", "support")]
    for name, v in metrics["per_class"].items():
        rows.append((name, _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), f"{v['support']:,}"))
    n_classes = len(rows) - 1
    total = sum(v["support"] for v in metrics["per_class"].values())
    for avg in ("macro", "micro", "weighted"):
        v = metrics[avg]
        rows.append((f"{avg} avg", _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), f"{total:,}"))
    table = text_table(rows, rule_after=(0, n_classes))
    roc, pr = metrics["roc"], metrics["pr"]
    auc_name = f"ROC AUC ({roc['positive']})" if roc["kind"] == "binary" else "ROC AUC (macro, one-vs-rest)"
    ap_name = (f"average precision ({pr['positive']})" if pr["kind"] == "binary"
               else "average precision (macro)")
    summary = [("accuracy", _fmt(metrics["accuracy"])), ("log loss", _fmt(metrics["log_loss"])),
               (auc_name, _fmt(roc["auc"])), (ap_name, _fmt(pr["average_precision"])),
               (f"ECE ({metrics['calibration']['n_bins']} bins)", _fmt(metrics["calibration"]["ece"]))]
    lines = [table, "", text_table(summary, rule_after=())]
    if metrics.get("classes_absent"):
        lines.append(f"no test example of: {', '.join(metrics['classes_absent'])}")
    if roc.get("note"):
        lines.append(f"note: AUC and AP are a {roc['note']}")
    return "\n".join(lines)
