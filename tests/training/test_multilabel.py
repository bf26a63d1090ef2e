"""Multi-label classification (issue 19, item 1): label cells, the loss, scores and thresholds,
then a run end to end through train / predict / evaluate / report / export / cv / compare and
distillation, and the bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embgraft.cli import main
from embgraft.errors import MalformedFileError
from embgraft.training.data import Examples, LabelSet, is_multi_label, label_set
from embgraft.training.losses import class_weights, multilabel_loss
from embgraft.training.multilabel import multilabel_scores, sigmoid, tune_thresholds

QUIET = ["--no-progress", "--tensorboard", "off"]


# -- label cells ------------------------------------------------------------------------------------
def test_a_label_cell_is_a_json_list_a_separated_string_or_one_label():
    assert label_set('["体育", "财经"]') == ["体育", "财经"]
    assert label_set("体育|财经| 体育 ", "|") == ["体育", "财经"]  # stripped, repeats dropped, order kept
    assert label_set("体育|财经") is None  # no separator given: one label that happens to hold a bar
    assert label_set("体育", "|") is None
    assert label_set("[]") == [] and label_set("|", "|") == []
    assert label_set("[not json") is None
    ex = Examples(["a", "b"], ["x", '["x", "y"]'], [1, 2], "t.jsonl")
    assert is_multi_label(ex) and not is_multi_label(Examples(["a"], ["x|y"], [1]))


def test_labels_encode_as_multi_hot_rows_and_bad_cells_name_their_line():
    ex = Examples(["a", "b", "c"], ["y|x", "z", "x"], [1, 2, 3], "d.tsv")
    labels = LabelSet.discover(ex, multi_label=True, separator="|")
    assert labels.names == ["x", "y", "z"]
    y, kept = labels.encode(ex, multi_label=True, separator="|")
    assert y.dtype == np.float32 and y.tolist() == [[1, 1, 0], [0, 0, 1], [1, 0, 0]]
    with pytest.raises(MalformedFileError, match=r"d.tsv:2: label 'w' is not one of the 3 training classes"):
        labels.encode(Examples(["a", "b"], ["x", "x|w"], [1, 2], "d.tsv"), multi_label=True, separator="|")
    with pytest.raises(MalformedFileError, match=r"d.tsv:1: an empty label set"):
        labels.encode(Examples(["a"], ["[]"], [1], "d.tsv"), multi_label=True)
    y, kept = labels.encode(Examples(["a", "b"], ["[]", "x"], [1, 2], "d.tsv"), multi_label=True,
                            on_bad_row="skip")
    assert y.tolist() == [[1, 0, 0]] and kept.n_skipped == 1 and kept.skipped == ["d.tsv:1: an empty label set"]


def test_label_sets_above_their_thresholds_most_probable_first():
    labels = LabelSet(["a", "b", "c"])
    proba = np.array([[0.9, 0.2, 0.6], [0.1, 0.2, 0.3]])
    assert labels.above(proba, np.array([0.5, 0.5, 0.5])) == [[("a", 0.9), ("c", 0.6)], []]
    assert labels.above(proba, np.array([0.95, 0.1, 0.5])) == [[("c", 0.6), ("b", 0.2)], [("b", 0.2)]]


# -- loss, scores, thresholds -------------------------------------------------------------------------
def test_the_loss_is_binary_cross_entropy_weighted_and_focal_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    y = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0], [0, 1, 1]], dtype=torch.float32)
    assert torch.equal(multilabel_loss(logits, y), F.binary_cross_entropy_with_logits(logits, y))
    smoothed = y * 0.9 + 0.05
    assert torch.allclose(multilabel_loss(logits, y, label_smoothing=0.1),
                          F.binary_cross_entropy_with_logits(logits, smoothed))
    w = torch.tensor([1.0, 2.0, 0.5])
    p = torch.sigmoid(logits)
    per = -(w * y * p.log() + (1 - y) * (1 - p).log())
    p_t = p * y + (1 - p) * (1 - y)
    assert torch.allclose(multilabel_loss(logits, y, pos_weight=w, gamma=2.0), ((1 - p_t) ** 2 * per).mean(),
                          atol=1e-6)


def test_balanced_weights_are_negatives_over_positives_per_label():
    y = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 1, 1], [-1, -1, -1]], dtype=np.float32)  # last: unlabelled
    # a: 1 of 4 -> 3; b: 1 of 4 -> 3; c: present in all four -> 1 (nothing to balance)
    assert class_weights("balanced", y, ["a", "b", "c"]).tolist() == [3.0, 3.0, 1.0]


def test_scores_agree_with_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss

    rng = np.random.default_rng(0)
    truth = (rng.random((200, 6)) < 0.3).astype(np.float32)
    logits = rng.normal(size=(200, 6)) + 2.5 * (truth - 0.5)
    thresholds = np.array([0.3, 0.5, 0.5, 0.6, 0.45, 0.5])
    got = multilabel_scores(logits, truth, thresholds)
    pred = (sigmoid(logits) >= thresholds).astype(int)
    assert got["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert got["micro_f1"] == pytest.approx(f1_score(truth, pred, average="micro"))
    assert got["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0))
    assert got["hamming_loss"] == pytest.approx(hamming_loss(truth, pred))
    assert got["loss"] == pytest.approx(float(F.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(truth).double())))


def test_thresholds_maximise_each_labels_f1_on_dev():
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    # label a: positives at 0.3 and 0.35, negatives at 0.1 and 0.2: any threshold in (0.2, 0.3] separates
    # them, and of the grid's 0.25 and 0.3 the one nearer 0.5 wins; label b has no positive: 0.5 stays
    proba = np.array([[0.3, 0.9], [0.35, 0.1], [0.1, 0.2], [0.2, 0.7]])
    assert tune_thresholds(proba, truth).tolist() == [0.3, 0.5]


# -- a run end to end -----------------------------------------------------------------------------
# three labels told apart by their characters; a text holds one, two or all three
_CHARS = {"体育": "球赛队员跑跳冠军", "财经": "股市银行利率基金", "科技": "芯片手机电脑网络"}


def _write(path, n, rng, *, fmt="jsonl"):
    names = list(_CHARS)
    rows = []
    for _ in range(n):
        k = int(rng.integers(1, 4))
        labs = sorted(rng.choice(names, size=k, replace=False).tolist(), key=names.index)
        text = "".join("".join(rng.choice(list(_CHARS[lab]), size=int(rng.integers(3, 6)))) for lab in labs)
        rows.append((text, labs))
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": labs}, ensure_ascii=False) + "\n"
                                for t, labs in rows), encoding="utf-8")
    else:
        path.write_text("".join(f"{t}\t{'|'.join(labs)}\n" for t, labs in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ml_task(tmp_path_factory):
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("ml_task")
    return {split: _write(root / f"{split}.jsonl", n, rng) for split, n in (("train", 240), ("dev", 60),
                                                                            ("test", 60))}


def _train(task, out, *more):
    return ["train", "--train", str(task["train"]), "--dev", str(task["dev"]), "--test", str(task["test"]),
            "--model", "bag", "--embedding-dim", "32", "--epochs", "20", "--lr", "0.05", "--min-steps", "0", "--batch-size", "16",
            "--out", str(out), *QUIET, *more]


@pytest.fixture(scope="module")
def ml_run_and_log(ml_task, tmp_path_factory):
    """One trained run for the tests that only read it (evaluate writes into it: RUN/evaluation)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("ml_run") / "run"
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        assert main(_train(ml_task, out)) == 0
    return out, log.getvalue()


@pytest.fixture
def ml_run(ml_run_and_log):
    return ml_run_and_log[0]


def test_json_list_labels_make_the_task_multi_label(ml_run_and_log):
    assert "a multi-label task" in ml_run_and_log[1]  # found from the JSON lists, no --multi-label needed


def test_a_multi_label_run_learns_label_sets_and_keeps_its_thresholds(ml_run, capsys):
    metrics = json.loads((ml_run / "metrics.json").read_text(encoding="utf-8"))
    config = json.loads((ml_run / "config.json").read_text(encoding="utf-8"))
    assert config["task"] == "multi_label" and metrics["task"] == "multi_label" and metrics["metric"] == "micro_f1"
    assert metrics["test"]["micro_f1"] > 0.95 and metrics["test"]["accuracy"] > 0.8, metrics["test"]
    thresholds = json.loads((ml_run / "thresholds.json").read_text(encoding="utf-8"))
    assert set(thresholds) == set(_CHARS) and metrics["thresholds"] == thresholds
    assert main(["predict", str(ml_run), "球赛冠军股市基金", "芯片手机"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = {pair.split()[0] for pair in lines[0].split("\t")[0].split("  ")}
    assert first == {"体育", "财经"} and lines[1].split()[0] == "科技" and "财经" not in lines[1]


def test_predict_writes_label_sets(ml_run, ml_task, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(ml_run), "--input", str(ml_task["test"]), "--output", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    gold = [json.loads(x)["label"] for x in ml_task["test"].read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 60 and all(len(r["labels"]) == len(r["probabilities"]) for r in rows)
    assert np.mean([set(r["labels"]) == set(g) for r, g in zip(rows, gold)]) > 0.8
    tsv = tmp_path / "pred.tsv"
    assert main(["predict", str(ml_run), "--input", str(ml_task["test"]), "--output", str(tsv)]) == 0
    header, first = tsv.read_text(encoding="utf-8").splitlines()[:2]
    assert header == "text\tlabels\tprobabilities\tpairs"
    assert first.split("\t")[1].split("|") == rows[0]["labels"]


def test_evaluate_and_report_show_per_label_scores(ml_run, ml_task, capsys):
    from sklearn.metrics import f1_score

    assert main(["evaluate", str(ml_run), "--data", str(ml_task["test"])]) == 0
    printed = capsys.readouterr().out
    assert "subset accuracy" in printed and "Hamming loss" in printed and "label-ranking AP" in printed
    ev = ml_run / "evaluation"
    m = json.loads((ev / "metrics.json").read_text(encoding="utf-8"))
    assert m["task"] == "multi_label" and set(m["per_class"]) == set(_CHARS)
    assert (ev / "per_label.png").is_file() and not (ev / "confusion.png").exists()
    # the same figure as training's own scoring of the test set, and as scikit-learn on predict's sets
    run_metrics = json.loads((ml_run / "metrics.json").read_text(encoding="utf-8"))
    assert m["micro"]["f1"] == pytest.approx(run_metrics["test"]["micro_f1"])
    assert m["hamming_loss"] == pytest.approx(run_metrics["test"]["hamming_loss"])
    assert 0 < m["label_ranking_average_precision"] <= 1
    from embgraft.training.classifier import Classifier

    clf = Classifier.load(ml_run)
    rows = [json.loads(x) for x in ml_task["test"].read_text(encoding="utf-8").splitlines()]
    names = clf.labels.names
    truth = np.array([[n in r["label"] for n in names] for r in rows], dtype=int)
    pred = np.array([[n in dict(p) for n in names] for p in clf.predict([r["text"] for r in rows])], dtype=int)
    assert m["micro"]["f1"] == pytest.approx(f1_score(truth, pred, average="micro"))
    assert main(["report", str(ml_run)]) == 0
    html = (ml_run / "report.html").read_text(encoding="utf-8")
    assert "subset accuracy" in html and "threshold" in html and "no confusion between them" in html


def test_an_export_serves_the_same_label_sets(ml_run, ml_task, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from embgraft.export.predictor import Predictor
    from embgraft.training.classifier import Classifier

    out = tmp_path / "export"
    assert main(["export", str(ml_run), "--format", "onnx", "--labelled", str(ml_task["test"]), "--out", str(out)]) == 0
    assert "same label set 100.00%" in capsys.readouterr().out
    texts = [json.loads(x)["text"] for x in ml_task["test"].read_text(encoding="utf-8").splitlines()]
    texts += ["", "球" * 300]
    clf, pred = Classifier.load(ml_run), Predictor.load(out)
    np.testing.assert_allclose(pred.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)
    assert [[lab for lab, _ in row] for row in pred.predict(texts)] == [[lab for lab, _ in row]
                                                                        for row in clf.predict(texts)]


def test_a_separator_makes_a_tsv_multi_label_and_bad_cells_are_file_line_errors(tmp_path, capsys):
    rng = np.random.default_rng(5)
    task = {split: _write(tmp_path / f"{split}.tsv", n, rng, fmt="tsv") for split, n in (("train", 120), ("dev", 30),
                                                                                        ("test", 30))}
    out = tmp_path / "run"
    assert main(_train(task, out, "--label-separator", "|", "--epochs", "5")) == 0
    capsys.readouterr()
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["task"] == "multi_label"
    bad = tmp_path / "bad.tsv"
    bad.write_text("球赛\t体育\n股市\t财经|天气\n", encoding="utf-8")
    assert main(["evaluate", str(out), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}:2" in err[0] and "'天气' is not one of the 3 training classes" in err[0]
    bad.write_text("球赛\t体育\n股市\t|\n", encoding="utf-8")
    assert main(_train(dict(task, dev=bad), tmp_path / "run2", "--label-separator", "|")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}:2" in err[0] and "an empty label set" in err[0]
    assert not (tmp_path / "run2").exists()
    bad.write_text("球赛\t体育\n股市\t财经|天气\n", encoding="utf-8")  # an unknown label in dev, at training
    assert main(_train(dict(task, dev=bad), tmp_path / "run3", "--label-separator", "|")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and f"{bad}:2" in err
    assert "'天气' is not one of the 3 training classes" in err and not (tmp_path / "run3").exists()


def test_class_weights_and_focal_loss_apply_to_labels(ml_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train(ml_task, out, "--class-weight", "balanced", "--focal-gamma", "2", "--epochs", "3")) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["focal_gamma"] == 2.0 and set(metrics["class_weights"]) == set(_CHARS)


@pytest.mark.parametrize("loss", ["kl", "mse"])
def test_a_student_learns_label_sets_from_a_multi_label_teacher_over_unlabelled_text(ml_run, ml_task, tmp_path,
                                                                                     capsys, loss):
    """The student sees 12 labelled texts, all of them 体育 alone; the unlabelled texts carry the
    rest, and only the teacher's per-label probabilities (or their logits, ``mse``) say what they hold."""
    rows = [json.loads(x) for x in ml_task["train"].read_text(encoding="utf-8").splitlines()]
    few = tmp_path / "few.jsonl"
    sports = [r for r in rows if r["label"] == ["体育"]][:12]
    few.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sports), encoding="utf-8")
    unlabelled = tmp_path / "texts.txt"
    unlabelled.write_text("".join(r["text"] + "\n" for r in rows), encoding="utf-8")
    common = ["--train", str(few), "--dev", str(ml_task["dev"]), "--test", str(ml_task["test"]), "--multi-label",
              "--model", "bag", "--embedding-dim", "32", "--epochs", "40", "--lr", "0.02", "--min-steps", "0", "--batch-size", "16", *QUIET]
    assert main(["train", *common, "--out", str(tmp_path / "alone")]) == 2  # 财经 and 科技 never appear: refused
    err = capsys.readouterr().err
    assert "label '财经' is not one of the 1 training classes" in err or "at least 2 classes" in err
    classes = tmp_path / "classes.txt"
    classes.write_text("体育\n科技\n财经\n", encoding="utf-8")
    common += ["--classes", str(classes)]
    assert main(["train", *common, "--out", str(tmp_path / "alone")]) == 0
    assert main(["train", *common, "--teachers", str(ml_run), "--distill-weight", "1", "--distill-loss", loss,
                 "--unlabelled", str(unlabelled), "--out", str(tmp_path / "student")]) == 0
    capsys.readouterr()
    alone = json.loads((tmp_path / "alone" / "metrics.json").read_text(encoding="utf-8"))["test"]
    student = json.loads((tmp_path / "student" / "metrics.json").read_text(encoding="utf-8"))["test"]
    # alone, the dev-tuned thresholds still catch some texts that are "not only 体育"; whole sets it misses
    assert student["accuracy"] > 0.9 and alone["accuracy"] < 0.5, (student, alone)
    assert student["micro_f1"] > alone["micro_f1"] + 0.1


def test_a_single_label_teacher_is_refused_for_a_multi_label_task(ml_task, tiny_task, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    assert main(["train", "--train", str(tiny_task["train"]), "--dev", str(tiny_task["dev"]), "--model", "bag",
                 "--epochs", "1", "--out", str(teacher), *QUIET]) == 0
    capsys.readouterr()
    assert main(_train(ml_task, tmp_path / "student", "--teachers", str(teacher))) == 2
    err = capsys.readouterr().err
    assert "is a single-label run, this task is multi-label" in err


@pytest.mark.slow
def test_cv_and_compare_take_multi_label_data(ml_task, tmp_path, capsys):
    assert main(["cv", "--data", str(ml_task["train"]), "--folds", "3", "--model", "bag", "--embedding-dim", "16",
                 "--epochs", "10", "--lr", "0.02", "--min-steps", "0", "--out", str(tmp_path / "cv"), *QUIET]) == 0
    report = json.loads((tmp_path / "cv" / "cv.json").read_text(encoding="utf-8"))
    assert report["task"] == "multi_label" and report["folding"].startswith("KFold")
    assert report["summary"]["micro_f1_mean"] > 0.8 and len(report["folds"]) == 3
    # compare: grafted vs random rows, the one-vs-rest TF-IDF baseline, paired tests on exact label sets
    rng = np.random.default_rng(0)
    chars = sorted(set("".join(_CHARS.values())))
    vectors = tmp_path / "vectors.txt"
    vectors.write_text(f"{len(chars)} 16\n" + "".join(c + " " + " ".join(f"{x:.4f}" for x in rng.normal(size=16))
                                                      + "\n" for c in chars), encoding="utf-8")
    assert main(["graft", "--source", str(vectors), "--corpus", str(ml_task["train"]), "--out",
                 str(tmp_path / "graft"), "--no-progress"]) == 0
    assert main(["compare", "--train", str(ml_task["train"]), "--dev", str(ml_task["dev"]), "--test",
                 str(ml_task["test"]), "--graft", str(tmp_path / "graft"), "--model", "bag", "--seeds", "1",
                 "--epochs", "20", "--lr", "0.05", "--batch-size", "16", "--min-steps", "0",
                 "--out", str(tmp_path / "cmp"), *QUIET]) == 0
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text(encoding="utf-8"))
    assert cmp["task"] == "multi_label" and "subset accuracy" in cmp["paired_test"]
    assert cmp["baseline"]["accuracy_mean"] > 0.5 and any("p_value" in row for row in cmp["summary"])
    capsys.readouterr()
