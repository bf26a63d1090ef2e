"""``embgraft evaluate``: a run directory scored on a labelled file, into ``RUN/evaluation/``::

    evaluation/
      metrics.json       compute_metrics' result, plus the data file and the rows skipped
      errors.tsv         the most confident mistakes
      drift.json         how far each embedding row moved (runs that kept their initial rows)
      confusion.png  roc.png  pr.png  reliability.png  [drift.png]
      (multi-label runs: per_label.png in place of confusion.png)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from embgraft.evaluation.drift import drift_for_run
from embgraft.evaluation.metrics import (compute_metrics, compute_multilabel_metrics, confident_errors, metrics_table,
                                         multilabel_errors, write_errors_tsv)
from embgraft.files import OutputKind, atomic_dir, check_writable, write_json
from embgraft.training import rundir
from embgraft.training.data import read_examples

EVALUATION_DIR = rundir.EVALUATION_DIR
METRICS_FILE = "metrics.json"
ERRORS_FILE = "errors.tsv"
DRIFT_FILE = "drift.json"
EVALUATION = OutputKind("evaluation directory", directory=True, marker=METRICS_FILE)
# plot file -> what it draws
PLOT_FILES = {"confusion": "confusion.png", "roc": "roc.png", "pr": "pr.png", "reliability": "reliability.png",
              "drift": "drift.png", "per_label": "per_label.png"}


def evaluate_run(run: str | os.PathLike, data: str | os.PathLike, *, out: str | os.PathLike | None = None,
                 fmt: str | None = None, text_column: str | None = None, label_column: str | None = None,
                 on_bad_row: str = "error", n_errors: int = 20, force: bool = False, trust_remote_code: bool = False,
                 log=print) -> dict[str, Any]:
    """Score a run directory on a labelled file; write ``metrics.json``, ``errors.tsv``,
    ``drift.json`` and the plots into ``out`` (default ``RUN/evaluation``) and print the table.

    Labels go through the run's own ``labels.txt``: a label the run was not trained on is an
    error at its file:line (``on_bad_row="skip"`` counts it instead).
    """
    from embgraft.evaluation.plots import (plot_confusion, plot_drift, plot_per_label, plot_pr, plot_reliability,
                                           plot_roc)
    from embgraft.training.classifier import Classifier  # torch: imported when a run is scored

    run = Path(run)
    target = Path(out) if out is not None else run / EVALUATION_DIR
    # before the model is loaded and the data scored; the evaluated run and data are never replaced
    check_writable(target, force=force, kind=EVALUATION, inputs=(run, data))
    clf = Classifier.load(run, trust_remote_code=trust_remote_code)
    examples = read_examples(data, fmt=fmt, text_column=text_column, label_column=label_column,
                             on_bad_row=on_bad_row)
    y, examples = clf.labels.encode(examples, on_bad_row=on_bad_row, multi_label=clf.multi_label,
                                    separator=clf.config.get("label_separator"))
    proba = clf.predict_proba(examples.texts)
    if clf.multi_label:
        metrics = compute_multilabel_metrics(y, proba, clf.labels.names, clf.thresholds)
        errors = multilabel_errors(examples.texts, y, proba, clf.labels.names, clf.thresholds, n=n_errors)
    else:
        metrics = compute_metrics(y, proba, clf.labels.names)
        errors = confident_errors(examples.texts, y, proba, clf.labels.names, n=n_errors)
    metrics.update(data=str(data), n_skipped=examples.n_skipped, skipped=examples.skipped)
    drift = None
    if clf.model.embedding is not None and (run / rundir.INIT_FILE).is_file():
        drift = drift_for_run(run, clf.model.embedding.full_weight().detach().cpu().numpy())
    with atomic_dir(target, force=force, kind=EVALUATION, inputs=(run, data)) as tmp:
        write_json(tmp / METRICS_FILE, metrics)
        write_errors_tsv(tmp / ERRORS_FILE, errors)
        if clf.multi_label:
            plot_per_label(metrics, tmp / PLOT_FILES["per_label"])
        else:
            plot_confusion(metrics["confusion"]["counts"], clf.labels.names, tmp / PLOT_FILES["confusion"])
        plot_roc(metrics, tmp / PLOT_FILES["roc"])
        plot_pr(metrics, tmp / PLOT_FILES["pr"])
        plot_reliability(metrics, tmp / PLOT_FILES["reliability"])
        if drift is not None:
            write_json(tmp / DRIFT_FILE, drift)
            plot_drift(drift, tmp / PLOT_FILES["drift"])
    log(metrics_table(metrics))
    if examples.n_skipped:
        log(f"skipped {examples.n_skipped} bad rows, e.g. " + "; ".join(examples.skipped[:3]))
    log(f"-> {target}: {METRICS_FILE}, {ERRORS_FILE}, {DRIFT_FILE + ', ' if drift else ''}"
        f"{'per_label' if clf.multi_label else 'confusion'}/roc/pr/reliability PNGs")
    return metrics
