"""The evaluation building blocks on a real run directory written by `train`: the flow
`embgraft evaluate` and `embgraft report` will follow."""

import json

import numpy as np
import pytest

import matplotlib  # noqa: F401
import torch  # noqa: F401

from embgraft.evaluation import plots  # noqa: E402
from embgraft.evaluation.drift import drift_for_run  # noqa: E402
from embgraft.evaluation.metrics import compute_metrics, confident_errors, metrics_table, write_errors_tsv  # noqa: E402
from embgraft.evaluation.report import write_report  # noqa: E402
from embgraft.training.data import LabelSet  # noqa: E402

pytestmark = pytest.mark.slow  # trains models end to end


def test_evaluate_and_report_a_trained_run(tiny_task, tmp_path):
    from sklearn.metrics import accuracy_score, f1_score

    from embgraft.training import rundir
    from embgraft.training.classifier import Classifier
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), test=str(tiny_task["test"]),
                      graft=str(tiny_task["graft"]), model="bag", epochs=2, batch_size=16, lr=0.05, patience=None,
                      seed=1, tensorboard="off", embedding="partial", sparse="off")
    run = train(cfg, out=tmp_path / "run", progress=False, log=lambda *a, **k: None).out

    labels = LabelSet.load(run / "labels.txt").names
    rows = [line.split("\t") for line in tiny_task["test"].read_text(encoding="utf-8").splitlines()]
    texts = [t for t, _ in rows]
    y = np.array([labels.index(label) for _, label in rows])
    proba = Classifier.load(run).predict_proba(texts)

    m = compute_metrics(y, proba, labels)
    # the same figures as the training run's own test metrics
    trained = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["test"]
    assert m["accuracy"] == pytest.approx(trained["accuracy"])
    assert m["macro"]["f1"] == pytest.approx(trained["macro_f1"])
    assert m["accuracy"] == pytest.approx(accuracy_score(y, proba.argmax(1)))
    assert m["macro"]["f1"] == pytest.approx(f1_score(y, proba.argmax(1), average="macro"))
    assert labels[0] in metrics_table(m)

    ev = run / "evaluation"
    ev.mkdir()
    (ev / "metrics.json").write_text(json.dumps({**m, "data": str(tiny_task["test"])}, ensure_ascii=False),
                                     encoding="utf-8")
    write_errors_tsv(ev / "errors.tsv", confident_errors(texts, y, proba, labels))
    final = rundir.load_model_state(run)["embedding.weight"].numpy()
    d = drift_for_run(run, final)
    # `partial`: the rows found in the source did not move, the others did
    assert d["per_method"]["exact"]["n_unchanged"] == d["per_method"]["exact"]["n_rows"] > 0
    moved = [k for k in d["per_method"] if k.startswith("init:")]
    assert moved and all(d["per_method"][k]["n_unchanged"] == 0 for k in moved)
    (ev / "drift.json").write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    plots.plot_confusion(m["confusion"]["counts"], labels, ev / "confusion.png")

    text = write_report(run).read_text(encoding="utf-8")
    assert "could not be shown" not in text and "not available" not in text
    assert text.count('src="data:image/png;base64,') == 7
