"""evaluate / cv / compare / report from the command line, on the tiny task."""

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from embgraft.cli import main

pytestmark = pytest.mark.slow  # trains models end to end

FAST = ["--batch-size", "16", "--no-progress", "--tensorboard", "off", "--lr", "0.05", "--patience", "2"]


def data_args(task):
    return ["--train", str(task["train"]), "--dev", str(task["dev"]), "--test", str(task["test"])]


@pytest.fixture
def run_dir(tiny_task, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *data_args(tiny_task), "--graft", str(tiny_task["graft"]), "--model", "bag",
                 "--epochs", "2", "--out", str(out), *FAST]) == 0
    return out


def test_evaluate_writes_metrics_checked_against_sklearn(run_dir, tiny_task, capsys):
    from embgraft.training.classifier import Classifier
    from embgraft.training.data import read_examples

    assert main(["evaluate", str(run_dir), "--data", str(tiny_task["test"])]) == 0
    printed = capsys.readouterr().out
    ev = run_dir / "evaluation"
    metrics = json.loads((ev / "metrics.json").read_text(encoding="utf-8"))
    clf = Classifier.load(run_dir)
    ex = read_examples(tiny_task["test"])
    y, _ = clf.labels.encode(ex)
    pred = clf.predict_proba(ex.texts).argmax(axis=1)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=0)
    assert metrics["macro"]["f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)
    assert {p.name for p in ev.iterdir()} >= {"metrics.json", "errors.tsv", "drift.json", "confusion.png",
                                              "roc.png", "pr.png", "reliability.png"}
    assert "体育" in printed and "macro" in printed
    drift = json.loads((ev / "drift.json").read_text(encoding="utf-8"))
    assert drift["per_method"]["exact"]["n_rows"] > 0
    # again without --force: refused, nothing lost
    assert main(["evaluate", str(run_dir), "--data", str(tiny_task["test"])]) == 2
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize("content, where", [
    ("球赛\t体育\n银行\t娱乐\n", "bad.tsv:2: label '娱乐'"),  # a label the run was not trained on
    ("球赛\t体育\n银行\t\n", "bad.tsv:2: no label"),  # a malformed row
    ("球赛\t体育\n\t财经\n", "bad.tsv:2: empty text"),
])
def test_evaluate_bad_rows_name_file_and_line(run_dir, tmp_path, capsys, content, where):
    bad = tmp_path / "bad.tsv"
    bad.write_text(content, encoding="utf-8")
    assert main(["evaluate", str(run_dir), "--data", str(bad)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and where in err[0] and "Traceback" not in captured.err + captured.out
    assert not (run_dir / "evaluation").exists()


def test_compare_random_vs_grafted_with_baseline_and_report(tiny_task, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *data_args(tiny_task), "--graft", str(tiny_task["graft"]), "--model", "bag",
                 "--embedding", "full", "--embedding", "partial", "--seeds", "2", "--epochs", "2",
                 "--train-fractions", "0.5,1", "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    names = [s["name"] for s in report["setups"]]
    assert names == ["bag/random", "bag/grafted", "bag/grafted/partial"]
    assert len(report["results"]) == 3 * 2 * 2
    for row in report["summary"]:
        runs = [r["test"]["accuracy"] for r in report["results"]
                if r["setup"] == row["setup"] and r["train_fraction"] == row["train_fraction"]]
        assert row["accuracy_mean"] == pytest.approx(np.mean(runs)) and row["n_seeds"] == 2
        assert row["accuracy_sd"] == pytest.approx(np.std(runs, ddof=1))
        if row["setup"] != "bag/random":
            assert row["vs"] == "bag/random" and 0 <= row["p_value"] <= 1 and row["test"].startswith("mcnemar")
    assert {b["train_fraction"] for b in report["baselines"]} == {0.5, 1.0}
    assert "tfidf+linearsvc" in printed and (out / "compare.png").is_file() and (out / "compare.csv").is_file()
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "bag/grafted/partial" in html and "data:image/png;base64," in html


def test_cv_folds_write_runs_and_summary(tiny_task, tmp_path):
    out = tmp_path / "cv"
    assert main(["cv", "--folds", "3", *data_args(tiny_task), "--graft", str(tiny_task["graft"]), "--model", "bag",
                 "--epochs", "1", "--out", str(out), *FAST]) == 0
    cv = json.loads((out / "cv.json").read_text(encoding="utf-8"))
    assert [f["fold"] for f in cv["folds"]] == [1, 2, 3]
    assert sum(f["n_test"] for f in cv["folds"]) == 200  # every example is tested once
    accs = [f["accuracy"] for f in cv["folds"]]
    assert cv["summary"]["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert all((out / f"fold-{k}" / "run" / "model.safetensors").is_file() for k in (1, 2, 3))


def test_cv_refuses_teachers_that_saw_its_test_folds(run_dir, tiny_task, tmp_path, capsys):
    assert main(["cv", "--folds", "3", *data_args(tiny_task), "--graft", str(tiny_task["graft"]), "--model", "bag",
                 "--teachers", str(run_dir), "--out", str(tmp_path / "cv"), *FAST]) == 2
    assert "cv does not take teachers" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists()


def test_report_for_a_run(run_dir, tiny_task):
    assert main(["evaluate", str(run_dir), "--data", str(tiny_task["test"])]) == 0
    assert main(["report", str(run_dir)]) == 0
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "球赛" in html or "银行" in html or "errors" in html.lower()
    assert html.count("data:image/png;base64,") >= 5
