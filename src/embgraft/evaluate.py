"""Evaluation metrics for a classifier's predicted probabilities, and paired significance tests.

Every figure comes from scikit-learn (or SciPy for the tests); the only arithmetic done here is
the binning weights of the expected calibration error. All functions take class *ids* ``0..k-1``
with ``labels`` naming them in id order, and pass ``labels=range(k)`` to scikit-learn everywhere,
so a class absent from a small test set never shifts a column. Results are plain JSON types.

This module imports scikit-learn and SciPy; ``embgraft graft`` never imports it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embgraft._fs import atomic_file
from embgraft.errors import EmbgraftError, MalformedFileError
from embgraft.vocab import escape_token, unescape_token

ERRORS_HEADER = ("text", "gold", "predicted", "probability")
# discordant pairs below this count: exact binomial McNemar; from it on: chi-square with continuity
MCNEMAR_EXACT_BELOW = 25
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
    """
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (accuracy_score, auc, average_precision_score, confusion_matrix,
                                 log_loss, precision_recall_curve, precision_recall_fscore_support,
                                 roc_auc_score, roc_curve)

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
    roc_curves: dict[str, Any] = {}
    pr_curves: dict[str, Any] = {}
    undefined: dict[str, str] = {}
    for c in curve_ids:
        name = labels[c]
        if present[c] == 0 or present[c] == n:
            undefined[name] = _ABSENT if present[c] == 0 else _ALWAYS
            continue
        hit = (y == c).astype(np.int64)
        fpr, tpr, thr = roc_curve(hit, p[:, c], pos_label=1)
        roc_curves[name] = {"fpr": _floats(fpr), "tpr": _floats(tpr), "thresholds": _floats(thr),
                            "auc": float(roc_auc_score(hit, p[:, c]))}
        pr_p, pr_r, pr_t = precision_recall_curve(hit, p[:, c], pos_label=1, drop_intermediate=True)
        pr_curves[name] = {"precision": _floats(pr_p), "recall": _floats(pr_r), "thresholds": _floats(pr_t),
                           "average_precision": float(average_precision_score(hit, p[:, c])),
                           "auc": float(auc(pr_r, pr_p))}
    roc_auc = {n_: v["auc"] for n_, v in roc_curves.items()}
    ap = {n_: v["average_precision"] for n_, v in pr_curves.items()}
    kind = "binary" if k == 2 else "ovr"
    roc = {"kind": kind, "positive": labels[1] if k == 2 else None, "curves": roc_curves,
           "auc": _mean_defined(roc_auc) if kind == "ovr" else roc_auc.get(labels[1]),
           "undefined": undefined}
    pr = {"kind": kind, "positive": roc["positive"], "curves": pr_curves,
          "average_precision": _mean_defined(ap) if kind == "ovr" else ap.get(labels[1]),
          "undefined": dict(undefined)}
    if kind == "ovr" and undefined:
        note = (f"macro mean over the {len(roc_auc)} of {k} classes where it is defined; "
                f"undefined for {', '.join(undefined)}")
        roc["note"] = pr["note"] = note

    # calibration: confidence = max probability, outcome = prediction correct
    confidence = p.max(axis=1)
    correct = (pred == y).astype(np.int64)
    prob_true, prob_pred = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform",
                                             pos_label=1)
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
        "calibration": {"ece": ece, "n_bins": int(n_bins), "confidence": "max probability", "bins": bins},
    }


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
            f.write("\t".join([escape_token(str(e["text"])), escape_token(str(e["gold"])),
                               escape_token(str(e["predicted"])), repr(float(e["probability"]))]) + "\n")
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
                text, gold, predicted = (unescape_token(x) for x in fields[:3])
                prob = float(fields[3])
            except ValueError as e:
                raise MalformedFileError(path, line_no, str(e)) from None
            rows.append({"text": text, "gold": gold, "predicted": predicted, "probability": prob})
    return rows


# -- the printed table ------------------------------------------------------------------------------
def _table(rows: Sequence[Sequence[str]], *, rule_after: Sequence[int] = (0,), left: str = "l") -> str:
    """The shared printer (``table.format_table``, CJK = 2 columns): column i is left-aligned when
    ``left[i] == "l"`` (default: the first only), otherwise right-aligned; a rule follows each row
    index in ``rule_after``."""
    from embgraft.table import format_table

    align = "".join("l" if left[i:i + 1] == "l" else "r" for i in range(len(rows[0])))
    return "\n".join(line.rstrip() for line in format_table(rows, align, rules_after=rule_after))


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def metrics_table(metrics: dict[str, Any]) -> str:
    """The table ``embgraft evaluate`` prints: per class precision/recall/F1/support, then the
    macro, micro and weighted averages, then accuracy, log loss, AUC, average precision and ECE.
    ``metrics`` is :func:`compute_metrics`'s result (or its JSON read back)."""
    rows = [("class", "precision", "recall", "f1", "support")]
    for name, v in metrics["per_class"].items():
        rows.append((name, _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), f"{v['support']:,}"))
    n_classes = len(rows) - 1
    total = sum(v["support"] for v in metrics["per_class"].values())
    for avg in ("macro", "micro", "weighted"):
        v = metrics[avg]
        rows.append((f"{avg} avg", _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), f"{total:,}"))
    table = _table(rows, rule_after=(0, n_classes))
    roc, pr = metrics["roc"], metrics["pr"]
    auc_name = f"ROC AUC ({roc['positive']})" if roc["kind"] == "binary" else "ROC AUC (macro, one-vs-rest)"
    ap_name = (f"average precision ({pr['positive']})" if pr["kind"] == "binary"
               else "average precision (macro)")
    summary = [("accuracy", _fmt(metrics["accuracy"])), ("log loss", _fmt(metrics["log_loss"])),
               (auc_name, _fmt(roc["auc"])), (ap_name, _fmt(pr["average_precision"])),
               (f"ECE ({metrics['calibration']['n_bins']} bins)", _fmt(metrics["calibration"]["ece"]))]
    lines = [table, "", _table(summary, rule_after=())]
    if metrics.get("classes_absent"):
        lines.append(f"no test example of: {', '.join(metrics['classes_absent'])}")
    if roc.get("note"):
        lines.append(f"note: AUC and AP are a {roc['note']}")
    return "\n".join(lines)


# -- paired significance ----------------------------------------------------------------------------
def paired_test(correct_a: Any, correct_b: Any, *, method: str = "mcnemar", n_boot: int = 10000,
                seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Is set-up A's accuracy different from set-up B's on the same test items?

    ``correct_a``, ``correct_b``: (n,) bools, whether each set-up got item i right.

    ``method="mcnemar"``: with ``n01`` (A right, B wrong) and ``n10`` (A wrong, B right), the
    exact binomial test (``scipy.stats.binomtest``) when ``n01 + n10 < 25``, otherwise the
    chi-square statistic with continuity correction ``(|n01 - n10| - 1)^2 / (n01 + n10)`` on one
    degree of freedom. ``method="bootstrap"``: ``scipy.stats.bootstrap`` of the mean per-item
    difference (= the accuracy difference) over ``n_boot`` paired resamples, a percentile
    interval at ``confidence``, and a two-sided p-value ``2 * (min(#{d* <= 0}, #{d* >= 0}) + 1) / (n_boot + 1)``
    (capped at 1).

    Returns ``method``, ``test`` (the test actually used), ``n``, ``accuracy_a``, ``accuracy_b``,
    ``difference`` (A - B), ``p_value``, and the test's own fields.
    """
    from scipy import stats

    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise EmbgraftError(f"correct_a and correct_b must be (n,) of one length; got {a.shape} and {b.shape}")
    if a.size == 0:
        raise EmbgraftError("no items to compare")
    for arr in (a, b):
        if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
            raise EmbgraftError("correctness must be booleans (or 0/1)")
    a = a.astype(bool)
    b = b.astype(bool)
    n = int(a.size)
    out: dict[str, Any] = {"method": method, "n": n, "accuracy_a": float(a.mean()),
                           "accuracy_b": float(b.mean()), "difference": float(a.mean() - b.mean())}
    if method == "mcnemar":
        n01 = int(np.sum(a & ~b))
        n10 = int(np.sum(~a & b))
        m = n01 + n10
        out.update(n01=n01, n10=n10)
        if m == 0:
            out.update(test="mcnemar-exact", statistic=None, p_value=1.0,
                       note="no discordant pairs: the two set-ups agree on every item")
        elif m < MCNEMAR_EXACT_BELOW:
            out.update(test="mcnemar-exact", statistic=n01,
                       p_value=float(stats.binomtest(n01, m, 0.5, alternative="two-sided").pvalue))
        else:
            chi2 = (abs(n01 - n10) - 1) ** 2 / m
            out.update(test="mcnemar-chi2-cc", statistic=float(chi2), p_value=float(stats.chi2.sf(chi2, 1)))
        return out
    if method == "bootstrap":
        if n_boot < 1:
            raise EmbgraftError(f"n_boot must be positive, got {n_boot}")
        if not 0 < confidence < 1:
            raise EmbgraftError(f"confidence must be in (0, 1), got {confidence}")
        d = a.astype(np.float64) - b.astype(np.float64)
        out.update(test="paired-bootstrap", n_boot=int(n_boot), seed=int(seed), confidence=float(confidence))
        if np.all(d == d[0]):  # every resample gives the same difference
            out.update(ci=[float(d[0]), float(d[0])], p_value=1.0 if d[0] == 0 else 0.0,
                       note="the per-item difference is constant: no resampling variation")
            return out
        res = stats.bootstrap((d,), np.mean, n_resamples=int(n_boot), vectorized=True, paired=False,
                              confidence_level=confidence, method="percentile",
                              rng=np.random.default_rng(seed), batch=1000)
        dist = res.bootstrap_distribution
        # (count + 1) / (B + 1): never 0 from a finite number of resamples
        tail = min(int(np.sum(dist <= 0)), int(np.sum(dist >= 0)))
        p = min(1.0, 2 * (tail + 1) / (dist.size + 1))
        out.update(ci=[float(res.confidence_interval.low), float(res.confidence_interval.high)], p_value=p)
        return out
    raise EmbgraftError(f"unknown method {method!r}; use 'mcnemar' or 'bootstrap'")


# -- over seeds and folds ---------------------------------------------------------------------------
def summarise_results(results: Sequence[dict[str, Any]], *, metrics: Sequence[str] = ("accuracy", "macro_f1"),
                      by: Sequence[str] = ("setup", "train_fraction"), split: str = "test") -> list[dict[str, Any]]:
    """Mean and sample standard deviation (ddof=1; ``None`` from a single run) of each metric over
    the runs that share the ``by`` fields, groups in first-seen order.

    ``results``: dicts like ``compare.json``'s ``results`` rows, the metrics under ``split``
    (``{"setup": .., "seed": 0, "train_fraction": 1.0, "test": {"accuracy": .., "macro_f1": ..}}``),
    or flat (``{"fold": 0, "accuracy": ..}`` with ``split=None``). Returns one row per group:
    the ``by`` fields, ``n_seeds`` (runs in the group), ``<metric>_mean``, ``<metric>_sd``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        missing = [k for k in by if k not in r]
        if missing:
            raise EmbgraftError(f"a result has no {', '.join(missing)}: {r!r}")
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    rows = []
    for key, runs in groups.items():
        row: dict[str, Any] = dict(zip(by, key))
        row["n_seeds"] = len(runs)
        for m in metrics:
            try:
                values = np.array([float((r[split] if split else r)[m]) for r in runs])
            except (KeyError, TypeError) as e:
                raise EmbgraftError(f"a result of {dict(zip(by, key))} has no {split + '.' if split else ''}{m}") \
                    from e
            row[f"{m}_mean"] = float(values.mean())
            row[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else None
        rows.append(row)
    return rows


def compare_table(summary: Sequence[dict[str, Any]], *, baseline: dict[str, Any] | None = None) -> str:
    """The table ``embgraft compare`` prints: per set-up and train fraction, seeds, accuracy and
    macro-F1 as mean ± sd, the set-up compared with, the p-value and the test used."""
    def pm(r: dict[str, Any], m: str) -> str:
        mean, sd = r.get(f"{m}_mean"), r.get(f"{m}_sd")
        if mean is None:
            return "n/a"
        return f"{mean:.4f} ± {sd:.4f}" if sd is not None else f"{mean:.4f}"

    def p(r: dict[str, Any]) -> str:
        v = r.get("p_value")
        return "" if v is None else (f"{v:.2g}" if v < 1e-3 else f"{v:.4f}")

    rows = [("set-up", "fraction", "seeds", "accuracy", "macro-F1", "vs", "p", "test")]
    all_rows = [dict(r) for r in summary] + ([dict(baseline, setup=f"{baseline.get('name') or baseline.get('setup')}"
                                                                   " (baseline)")] if baseline else [])
    for r in all_rows:
        frac = r.get("train_fraction")
        rows.append((str(r.get("setup")), "" if frac is None else f"{frac:g}", str(r.get("n_seeds") or ""),
                     pm(r, "accuracy"), pm(r, "macro_f1"), str(r.get("vs") or ""), p(r), str(r.get("test") or "")))
    return _table(rows, left="l----l-l")


# -- a run on a data file ---------------------------------------------------------------------------
EVALUATION_DIR = "evaluation"


def evaluate_run(run: str | os.PathLike, data: str | os.PathLike, *, out: str | os.PathLike | None = None,
                 fmt: str | None = None, text_column: str | None = None, label_column: str | None = None,
                 on_bad_row: str = "error", n_errors: int = 20, force: bool = False, log=print) -> dict[str, Any]:
    """Score a run directory on a labelled file; write ``metrics.json``, ``errors.tsv``,
    ``drift.json`` and the plots into ``out`` (default ``RUN/evaluation``) and print the table.

    Labels go through the run's own ``labels.txt``: a label the run was not trained on is an
    error at its file:line (``on_bad_row="skip"`` counts it instead).
    """
    import json

    from embgraft._fs import atomic_dir, check_writable
    from embgraft.classifier import Classifier
    from embgraft.data import read_examples
    from embgraft.drift import drift_for_run
    from embgraft.plots import plot_confusion, plot_drift, plot_pr, plot_reliability, plot_roc

    run = Path(run)
    target = Path(out) if out is not None else run / EVALUATION_DIR
    check_writable(target, force=force)  # before the model is loaded and the data scored
    clf = Classifier.load(run)
    examples = read_examples(data, fmt=fmt, text_column=text_column, label_column=label_column,
                             on_bad_row=on_bad_row)
    y, examples = clf.labels.encode(examples, on_bad_row=on_bad_row)
    proba = clf.predict_proba(examples.texts)
    metrics = compute_metrics(y, proba, clf.labels.names)
    metrics.update(data=str(data), n_skipped=examples.n_skipped, skipped=examples.skipped)
    errors = confident_errors(examples.texts, y, proba, clf.labels.names, n=n_errors)
    drift = None
    if getattr(clf.model, "embedding", None) is not None and (run / "embedding_init.safetensors").is_file():
        drift = drift_for_run(run, clf.model.embedding.full_weight().detach().cpu().numpy())
    with atomic_dir(target, force=force) as tmp:
        with open(tmp / "metrics.json", "w", encoding="utf-8") as f:
            json.dump(metrics, f, ensure_ascii=False, indent=2)
        write_errors_tsv(tmp / "errors.tsv", errors)
        plot_confusion(metrics["confusion"]["counts"], clf.labels.names, tmp / "confusion.png")
        plot_roc(metrics, tmp / "roc.png")
        plot_pr(metrics, tmp / "pr.png")
        plot_reliability(metrics, tmp / "reliability.png")
        if drift is not None:
            with open(tmp / "drift.json", "w", encoding="utf-8") as f:
                json.dump(drift, f, ensure_ascii=False, indent=2)
            plot_drift(drift, tmp / "drift.png")
    log(metrics_table(metrics))
    if examples.n_skipped:
        log(f"skipped {examples.n_skipped} bad rows, e.g. " + "; ".join(examples.skipped[:3]))
    log(f"-> {target}: metrics.json, errors.tsv, {'drift.json, ' if drift else ''}confusion/roc/pr/reliability PNGs")
    return metrics
