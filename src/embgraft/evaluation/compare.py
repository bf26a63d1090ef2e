"""Did the pretrained rows help? ``compare``: set-ups × seeds × train fractions, a TF-IDF
baseline always beside them, paired tests against random init.

It drives ``training.loop.train`` with ordinary ``TrainConfig``s, so every run it makes is a
normal run directory that ``predict``, ``evaluate`` and ``report`` understand.

Multi-label data: an item is "correct" when its whole label set is (subset accuracy), so the
paired test compares exact matches item by item; the baseline is one LinearSVC per label
(one-vs-rest) on the same TF-IDF features, and ``accuracy`` in the tables is subset accuracy.
"""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from embgraft.console import quiet
from embgraft.errors import ConfigError
from embgraft.evaluation.stats import compare_table, paired_test, summarise_results
from embgraft.files import OutputKind, atomic_dir, atomic_file, check_writable, write_json
from embgraft.training.config import TrainConfig

COMPARE_FILE = "compare.json"
COMPARE_CSV = "compare.csv"
COMPARE_PLOT = "compare.png"
RUNS_DIR = "runs"
COMPARE_DIR = OutputKind("compare directory", directory=True, marker=COMPARE_FILE)

BASELINE_NAME = "tfidf+linearsvc"
PAIRED_TEST = "mcnemar"
PAIRED_TEST_NOTE = ("McNemar's test on every (test item, seed) pair, seed s of a set-up against seed s of "
                    "random init of the same model (exact binomial below 25 discordant pairs)")
MULTILABEL_NOTE = ("multi-label: an item counts as correct when its predicted label set equals the true one "
                   "(subset accuracy)")


@dataclass(frozen=True)
class Setup:
    """One way of training: a model, an embedding source (a graft, or its random twin), a mode."""

    name: str
    model: str
    graft: str | None
    random_init: bool
    embedding: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "graft_dir": self.graft, "random_init": self.random_init,
                "embedding": self.embedding}


def make_setups(*, models: Sequence[str], grafts: Sequence[str], embeddings: Sequence[str]) -> list[Setup]:
    """Every model × graft × mode, plus random init for every model (the reference for the tests).
    Random init takes the first graft's vocabulary and scale with random rows."""
    if not grafts:
        raise ConfigError("compare needs at least one --graft (random init takes its vocabulary)")
    setups = []
    many_grafts = len(grafts) > 1
    for model in models:
        setups.append(Setup(f"{model}/random", model, grafts[0], True, "full"))
        for g in grafts:
            for mode in embeddings:
                label = "grafted" if not many_grafts else Path(g).name
                setups.append(Setup(f"{model}/{label}" + ("" if mode == "full" else f"/{mode}"), model, g, False, mode))
    names = [s.name for s in setups]
    if len(set(names)) != len(names):
        raise ConfigError(f"two set-ups share a name: {names} (give the grafts distinct folder names)")
    return setups


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "-", text).strip("-") or "run"


def correct_on(run: Path, texts: list[str], labels: np.ndarray, *, trust_remote_code: bool = False) -> np.ndarray:
    """(n,) bool: whether the run's best weights classify each text correctly (multi-hot
    ``labels`` (n, k): whether its label set, at the run's thresholds, is exactly right)."""
    from embgraft.training.classifier import Classifier
    from embgraft.training.multilabel import exact_sets

    clf = Classifier.load(run, trust_remote_code=trust_remote_code)
    proba = clf.predict_proba(texts)
    if clf.multi_label:
        return exact_sets(proba, clf.thresholds, labels)
    return proba.argmax(axis=1) == labels


def tfidf_baseline(train_texts: Sequence[str], train_y: np.ndarray, test_texts: Sequence[str],
                   test_y: np.ndarray, n_classes: int) -> tuple[dict[str, Any], np.ndarray]:
    """TF-IDF character 1–2-grams + LinearSVC (C=1): the linear model a neural one must beat.
    Multi-hot ``train_y``/``test_y`` (n, k): one LinearSVC per label (one-vs-rest)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    multi = np.ndim(train_y) == 2
    started = time.perf_counter()
    svm = OneVsRestClassifier(LinearSVC(C=1.0)) if multi else LinearSVC(C=1.0)
    clf = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 2)), svm)
    clf.fit(list(train_texts), (train_y > 0.5).astype(np.int64) if multi else train_y)
    seconds = time.perf_counter() - started
    pred = clf.predict(list(test_texts))
    if multi:
        truth = (test_y > 0.5).astype(np.int64)
        return ({"accuracy": float(accuracy_score(truth, pred)),
                 "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
                 "micro_f1": float(f1_score(truth, pred, average="micro", zero_division=0)),
                 "fit_seconds": seconds}, (pred == truth).all(axis=1))
    return ({"accuracy": float(accuracy_score(test_y, pred)),
             "macro_f1": float(f1_score(test_y, pred, labels=list(range(n_classes)), average="macro",
                                        zero_division=0)),
             "fit_seconds": seconds}, pred == test_y)


def compare(base: TrainConfig, *, setups: Sequence[Setup], seeds: int, out: str | Path,
            train_fractions: Sequence[float] = (1.0,), epochs_by_fraction: dict[float, int] | None = None,
            force: bool = False, progress: bool = False, log: Callable[..., None] = print) -> dict[str, Any]:
    """Train every set-up over ``seeds`` seeds at every train fraction; write ``compare.json``,
    ``compare.csv``, ``compare.png`` and one run directory per run under ``out/runs``.
    ``epochs_by_fraction`` gives the small fractions more epochs (a few hundred texts are a few
    steps an epoch); a fraction it does not name takes ``base.epochs``."""
    # training (and so torch) is imported here, not with the module: `embgraft report` reads
    # this module's file names and should not pay for it
    from embgraft.training.loop import train
    from embgraft.training.prepare import read_labelled

    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, not {seeds}")
    bad = [f for f in train_fractions if not 0 < f <= 1]
    if bad:
        raise ConfigError(f"train fractions must be in (0, 1], not {bad}")
    inputs = (base.train, base.dev, base.test, base.data, base.classes, *(s.graft for s in setups))
    out = check_writable(Path(out), force=force, kind=COMPARE_DIR, inputs=inputs)
    data = read_labelled(base, log=log)  # one read for the test items and the baseline
    (_, _), (_, _), (test_ex, test_y) = data.splits
    if test_ex is None:
        raise ConfigError("compare needs a test set: --test FILE (or --data with --split)")
    started = time.perf_counter()
    results, correct, baselines = [], {}, {}
    with atomic_dir(out, force=force, kind=COMPARE_DIR, inputs=inputs) as tmp:
        for frac in train_fractions:
            # the baseline sees exactly the training texts the neural runs see at this fraction
            frac_data = read_labelled(replace(base, train_fraction=frac), log=quiet)
            (tr_ex, tr_y) = frac_data.splits[0]
            scores, ok = tfidf_baseline(tr_ex.texts, tr_y, test_ex.texts, test_y, len(data.labels))
            baselines[frac], correct[(BASELINE_NAME, frac)] = scores, [ok]
            log(f"{BASELINE_NAME:24s} fraction {frac:g}: test accuracy {scores['accuracy']:.4f}  "
                f"macro-F1 {scores['macro_f1']:.4f}  (fit {scores['fit_seconds']:.1f}s)")
            for s in setups:
                for seed in range(seeds):
                    # replace() validates again: each set-up must make a valid config on its own
                    cfg = replace(base, model=s.model, graft=s.graft, random_init=s.random_init,
                                  embedding=s.embedding, seed=seed, train_fraction=frac,
                                  epochs=(epochs_by_fraction or {}).get(frac, base.epochs))
                    rel = Path(RUNS_DIR) / _slug(s.name) / f"fraction-{frac:g}-seed-{seed}"
                    outcome = train(cfg, out=tmp / rel, force=True, progress=progress, log=quiet)
                    test = outcome.metrics["test"]
                    ok = correct_on(tmp / rel, test_ex.texts, test_y, trust_remote_code=base.trust_remote_code)
                    correct.setdefault((s.name, frac), []).append(ok)
                    results.append({"setup": s.name, "seed": seed, "train_fraction": frac,
                                    "test": {k: test[k] for k in ("accuracy", "macro_f1", "loss")},
                                    "dev": {k: outcome.metrics["dev"][k] for k in ("accuracy", "macro_f1")},
                                    "epochs_run": outcome.metrics["epochs_run"],
                                    "samples_per_s": outcome.metrics["samples_per_s"],
                                    "run_dir": str(out / rel)})
                    log(f"{s.name:24s} fraction {frac:g} seed {seed}: test accuracy {test['accuracy']:.4f}  "
                        f"macro-F1 {test['macro_f1']:.4f}  ({outcome.metrics['epochs_run']} epochs, "
                        f"{outcome.metrics['samples_per_s']:,.0f} samples/s)")
        summary = summarise_results(results)
        by_name = {s.name: s for s in setups}
        for row in summary:
            s = by_name[row["setup"]]
            ref = f"{s.model}/random"
            if s.random_init:
                continue
            frac = row["train_fraction"]
            row.update(_paired(correct[(s.name, frac)], correct[(ref, frac)], paired_test), vs=ref)
            # and against the TF-IDF baseline on the same items (its one fit stands for every seed)
            versus = _paired(correct[(s.name, frac)], correct[(BASELINE_NAME, frac)] * seeds, paired_test)
            row["vs_baseline"] = {"p_value": versus["p_value"], "test": versus["test"],
                                  "difference": versus["difference"]}
        baseline_rows = []
        for frac, scores in baselines.items():
            row = {"setup": BASELINE_NAME, "name": BASELINE_NAME, "train_fraction": frac, "n_seeds": 1,
                   "accuracy_mean": scores["accuracy"], "accuracy_sd": None, "macro_f1_mean": scores["macro_f1"],
                   "macro_f1_sd": None, "fit_seconds": scores["fit_seconds"]}
            refs = [f"{m}/random" for m in dict.fromkeys(s.model for s in setups)]
            if refs:
                seeds_ok = correct[(refs[0], frac)]
                row.update(_paired([correct[(BASELINE_NAME, frac)][0]] * len(seeds_ok), seeds_ok, paired_test),
                           vs=refs[0])
            baseline_rows.append(row)
        # the last fraction's baseline is the one the table and the plot set beside the set-ups
        report = {"setups": [s.to_dict() for s in setups], "results": results, "summary": summary,
                  "baseline": baseline_rows[-1],
                  "baselines": baseline_rows, "seeds": seeds, "train_fractions": list(train_fractions),
                  "test_items": len(test_y),
                  "paired_test": PAIRED_TEST_NOTE + ("; " + MULTILABEL_NOTE if data.multi_label else ""),
                  "task": "multi_label" if data.multi_label else "single_label",
                  "config": base.to_dict(), "seconds": time.perf_counter() - started}
        _write(tmp, report)
    table = compare_table(summary + [r for r in baseline_rows[:-1]], baseline=baseline_rows[-1])
    log("")
    log(table)
    log(f"p: {report['paired_test']}")
    log(f"-> {out}/{COMPARE_FILE}, {COMPARE_CSV}, {COMPARE_PLOT}; `embgraft report {out}` writes report.html")
    return report


def _paired(a_runs: list[np.ndarray], b_runs: list[np.ndarray], paired_test) -> dict[str, Any]:
    n = min(len(a_runs), len(b_runs))
    res = paired_test(np.concatenate(a_runs[:n]), np.concatenate(b_runs[:n]), method=PAIRED_TEST)
    return {"p_value": res["p_value"], "test": res["test"], "difference": res["difference"]}


def _write(tmp: Path, report: dict[str, Any]) -> None:
    from embgraft.evaluation.plots import plot_compare

    write_json(tmp / COMPARE_FILE, report)
    fields = ["setup", "train_fraction", "n_seeds", "accuracy_mean", "accuracy_sd", "macro_f1_mean", "macro_f1_sd",
              "vs", "p_value", "test"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in report["summary"] + report["baselines"]:
        w.writerow(row)
    with atomic_file(tmp / COMPARE_CSV, force=True) as f:
        f.write(buf.getvalue())
    plot_compare(report["summary"], tmp / COMPARE_PLOT, baseline=report["baselines"])
