"""``cross_validate``: k stratified folds of the labelled data, one run directory per fold.

It drives ``training.loop.train`` with ordinary ``TrainConfig``s on per-fold JSONL files, so
every fold's run is a normal run directory.

Multi-label data is folded with a plain shuffled ``KFold`` (and its dev share split the same way):
scikit-learn has no multi-label stratification, and a fold per label combination would leave
rare combinations out. The scores add micro-F1 and Hamming loss; ``accuracy`` is subset accuracy.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from embgraft.console import quiet
from embgraft.errors import ConfigError
from embgraft.evaluation.stats import summarise_results
from embgraft.files import OutputKind, atomic_dir, atomic_file, check_writable, read_json, write_json
from embgraft.training import rundir
from embgraft.training.config import TrainConfig
from embgraft.training.data import Examples, stratified_split
from embgraft.training.loop import train
from embgraft.training.prepare import multi_label_task, read_splits

CV_FILE = "cv.json"
CV_CSV = "cv.csv"
CV_DIR = OutputKind("cv directory", directory=True, marker=CV_FILE)


def _point_at_final_paths(run: Path, final: dict[str, Path]) -> None:
    """A fold's run was trained on files inside the temporary folder that becomes ``out``: its
    config.json names them where they will be, so the run can be read (and resumed) later."""
    config = read_json(run / rundir.CONFIG_FILE, expect=dict)
    config.update({name: str(path) for name, path in final.items()})
    write_json(run / rundir.CONFIG_FILE, config)


def cross_validate(base: TrainConfig, *, folds: int, out: str | Path, force: bool = False, progress: bool = False,
                   dev_share: float = 0.1, log: Callable[..., None] = print) -> dict[str, Any]:
    """``folds`` stratified folds of the labelled data (``--data``, or ``--train`` plus ``--dev``
    and ``--test`` pooled): each fold is the test set once; early stopping uses a stratified
    ``dev_share`` of the rest. Writes ``cv.json``, ``cv.csv`` and ``fold-K/`` run directories."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds < 2:
        raise ConfigError(f"folds must be >= 2, not {folds}")
    if base.split != TrainConfig.__dataclass_fields__["split"].default:
        raise ConfigError("cv makes its own stratified folds: --split does not apply (give --folds and --dev-share)")
    if base.teachers:
        raise ConfigError("cv does not take teachers: runs trained outside the folds have seen each fold's test "
                          "texts, so the scores would leak")
    inputs = (base.train, base.dev, base.test, base.data, base.classes, base.graft)
    out = check_writable(Path(out), force=force, kind=CV_DIR, inputs=inputs)
    parts = [ex for ex in read_splits(replace(base, train_fraction=1.0)) if ex is not None]
    texts = [t for ex in parts for t in ex.texts]
    labels = [y for ex in parts for y in ex.labels]
    multi = multi_label_task(base, parts[0])
    if multi:
        if len(labels) < 2 * folds:
            raise ConfigError(f"{len(labels)} examples are too few for {folds} folds")
        kfold = KFold(n_splits=folds, shuffle=True, random_state=base.seed)
    else:
        smallest = min(labels.count(y) for y in set(labels))
        if smallest < folds:
            raise ConfigError(f"a class has only {smallest} examples: too few for {folds} stratified folds")
        kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=base.seed)
    rows = []
    with atomic_dir(out, force=force, kind=CV_DIR, inputs=inputs) as tmp:
        for k, (rest, held) in enumerate(kfold.split(np.zeros(len(labels)), labels), start=1):
            fold_dir = tmp / f"fold-{k}"
            data_dir = fold_dir / "data"
            data_dir.mkdir(parents=True)
            rest_ex = Examples([texts[i] for i in rest], [labels[i] for i in rest], list(range(1, len(rest) + 1)))
            train_ex, dev_ex = stratified_split(rest_ex, [1 - dev_share, dev_share], seed=base.seed,
                                                stratify=not multi)
            paths = {}
            for name, idx_texts, idx_labels in (("train", train_ex.texts, train_ex.labels),
                                                ("dev", dev_ex.texts, dev_ex.labels),
                                                ("test", [texts[i] for i in held], [labels[i] for i in held])):
                paths[name] = data_dir / f"{name}.jsonl"
                with atomic_file(paths[name], force=True) as f:
                    for t, y in zip(idx_texts, idx_labels):
                        f.write(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n")
            cfg = replace(base, data=None, train=str(paths["train"]), dev=str(paths["dev"]), test=str(paths["test"]),
                          format="jsonl", text_column="text", label_column="label", multi_label=multi)
            outcome = train(cfg, out=fold_dir / "run", force=True, progress=progress, log=quiet)
            _point_at_final_paths(fold_dir / "run", {name: out / f"fold-{k}" / "data" / p.name
                                                     for name, p in paths.items()})
            test = outcome.metrics["test"]
            rows.append({"fold": k, "n_train": len(train_ex), "n_test": len(held), **test})
            log(f"fold {k}/{folds}: test {'subset ' if multi else ''}accuracy {test['accuracy']:.4f}  "
                + (f"micro-F1 {test['micro_f1']:.4f}  " if multi else "")
                + f"macro-F1 {test['macro_f1']:.4f}  ({len(train_ex):,} train, {len(held):,} test)")
        names = ("accuracy", "macro_f1", "micro_f1", "hamming_loss", "loss") if multi else ("accuracy", "macro_f1",
                                                                                           "loss")
        summary = summarise_results(rows, metrics=names, by=(), split=None)[0]
        report = {"folds": rows, "summary": summary, "config": base.to_dict(), "n_folds": folds,
                  "task": "multi_label" if multi else "single_label",
                  "folding": "KFold, shuffled (multi-label)" if multi else "StratifiedKFold, shuffled"}
        write_json(tmp / CV_FILE, report)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["fold", "n_train", "n_test", *names],
                           extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        with atomic_file(tmp / CV_CSV, force=True) as f:
            f.write(buf.getvalue())
    log(f"mean over {folds} folds: {'subset ' if multi else ''}accuracy {summary['accuracy_mean']:.4f} ± "
        f"{summary['accuracy_sd']:.4f}  " + (f"micro-F1 {summary['micro_f1_mean']:.4f} ± {summary['micro_f1_sd']:.4f}  "
                                             if multi else "") + f"macro-F1 {summary['macro_f1_mean']:.4f} ± {summary['macro_f1_sd']:.4f}  -> {out}/{CV_FILE}")
    return report
