import json

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from embgraft.errors import EmbgraftError, MalformedFileError, OutputExistsError
from embgraft.evaluation.metrics import (compute_metrics, confident_errors, metrics_table, read_errors_tsv,
                                         write_errors_tsv)
from embgraft.evaluation.stats import paired_test

LABELS3 = ["财经", "体育", "科技"]


def softmax_rows(rng, n, k, y, skill=1.5):
    """(n, k) probabilities that lean towards the gold class ``y`` (n,) by ``skill``."""
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += skill
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture
def multi():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=120)
    return y, softmax_rows(rng, 120, 3, y)


@pytest.fixture
def binary():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=80)
    return y, softmax_rows(rng, 80, 2, y, skill=1.0)


def test_multiclass_metrics_match_sklearn(multi):
    y, p = multi
    pred = p.argmax(1)
    m = compute_metrics(y, p, LABELS3)
    json.dumps(m, allow_nan=False)  # strictly JSON-serialisable
    assert m["n_examples"] == 120 and m["labels"] == LABELS3 and m["classes_absent"] == []
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    P, R, F, S = skm.precision_recall_fscore_support(y, pred)
    for i, name in enumerate(LABELS3):
        assert m["per_class"][name] == pytest.approx(
            {"precision": P[i], "recall": R[i], "f1": F[i], "support": S[i]})
    for avg in ("macro", "micro", "weighted"):
        ap, ar, af, _ = skm.precision_recall_fscore_support(y, pred, average=avg)
        assert m[avg] == pytest.approx({"precision": ap, "recall": ar, "f1": af})
    assert m["confusion"]["counts"] == skm.confusion_matrix(y, pred).tolist()
    assert np.allclose(m["confusion"]["normalised"], skm.confusion_matrix(y, pred, normalize="true"))
    assert m["roc"]["kind"] == "ovr" and set(m["roc"]["curves"]) == set(LABELS3)
    assert m["roc"]["auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    for i, name in enumerate(LABELS3):
        fpr, tpr, _ = skm.roc_curve(y == i, p[:, i])
        assert np.allclose(m["roc"]["curves"][name]["fpr"], fpr)
        assert np.allclose(m["roc"]["curves"][name]["tpr"], tpr)
        assert m["pr"]["curves"][name]["average_precision"] == pytest.approx(
            skm.average_precision_score(y == i, p[:, i]))
    assert m["pr"]["average_precision"] == pytest.approx(
        skm.average_precision_score(label_binarize(y, classes=[0, 1, 2]), p, average="macro"))
    assert m["roc"]["undefined"] == {} and "note" not in m["roc"]


def test_binary_uses_id_1_as_positive(binary):
    y, p = binary
    m = compute_metrics(y, p, ["负面", "正面"])
    assert m["roc"]["kind"] == "binary" and m["roc"]["positive"] == "正面"
    assert list(m["roc"]["curves"]) == ["正面"]
    assert m["roc"]["auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
    assert m["pr"]["average_precision"] == pytest.approx(skm.average_precision_score(y, p[:, 1]))
    fpr, tpr, thr = skm.roc_curve(y, p[:, 1])
    assert np.allclose(m["roc"]["curves"]["正面"]["tpr"], tpr)
    assert m["roc"]["curves"]["正面"]["thresholds"][0] is None  # roc_curve's +inf, JSON-safe
    assert m["roc"]["curves"]["正面"]["thresholds"][1:] == pytest.approx(thr[1:].tolist())


def test_absent_class_keeps_columns_and_is_reported(multi):
    y, p = multi
    keep = y != 2  # no 科技 in the test set, but the model still predicts it sometimes
    y, p = y[keep], p[keep]
    assert (p.argmax(1) == 2).any()
    pred = p.argmax(1)
    m = compute_metrics(y, p, LABELS3)
    json.dumps(m, allow_nan=False)
    assert m["classes_absent"] == ["科技"]
    assert m["per_class"]["科技"]["support"] == 0
    assert m["confusion"]["counts"] == skm.confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    assert len(m["confusion"]["counts"]) == 3 and m["confusion"]["normalised"][2] == [0.0, 0.0, 0.0]
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=[0, 1, 2]))
    assert m["roc"]["undefined"] == {"科技": "no example of this class in y_true"}
    aucs = [skm.roc_auc_score(y == i, p[:, i]) for i in (0, 1)]
    assert m["roc"]["auc"] == pytest.approx(np.mean(aucs))
    assert "2 of 3" in m["roc"]["note"] and "科技" in m["roc"]["note"]
    assert "no test example of: 科技" in metrics_table(m)


def test_float32_probabilities_are_accepted_quietly(multi):
    import warnings
    y, p = multi
    p32 = p.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "y_prob values do not sum to one" from scikit-learn
        m = compute_metrics(y, p32, LABELS3)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-5)


def test_single_class_test_set_does_not_crash():
    p = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    m = compute_metrics(np.array([0, 0, 0]), p, ["负面", "正面"])
    assert m["roc"]["auc"] is None and m["pr"]["average_precision"] is None
    assert m["roc"]["undefined"] == {"正面": "no example of this class in y_true"}
    assert "n/a" in metrics_table(m)


def test_calibration_bins_and_ece(multi):
    y, p = multi
    m = compute_metrics(y, p, LABELS3, n_bins=10)
    cal = m["calibration"]
    conf = p.max(1)
    correct = p.argmax(1) == y
    # the definition, written out independently: bin by confidence, weight |acc - conf| by bin size
    edges = np.linspace(0, 1, 11)
    ece = 0.0
    for b in range(10):
        inside = (conf > edges[b]) & (conf <= edges[b + 1]) if b else (conf <= edges[1])
        assert cal["bins"][b]["count"] == inside.sum()
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
            assert cal["bins"][b]["accuracy"] == pytest.approx(correct[inside].mean())
            assert cal["bins"][b]["confidence"] == pytest.approx(conf[inside].mean())
        else:
            assert cal["bins"][b]["accuracy"] is None
    assert cal["ece"] == pytest.approx(ece) and cal["ece"] > 0
    assert sum(b_["count"] for b_ in cal["bins"]) == len(y)


def test_perfectly_calibrated_one_hot_has_zero_ece():
    y = np.array([0, 1, 2, 1])
    m = compute_metrics(y, np.eye(3)[y], LABELS3)
    assert m["calibration"]["ece"] == 0.0 and m["accuracy"] == 1.0
    assert m["roc"]["auc"] == 1.0


@pytest.mark.parametrize("y, p, match", [
    (np.array([0, 1]), np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]]), "3 columns for 2"),
    (np.array([0, 2]), np.array([[0.5, 0.5], [0.2, 0.8]]), "outside"),
    (np.array([0, 1]), np.array([[0.5, 0.6], [0.2, 0.8]]), "sum to 1"),
    (np.array([0.5, 1]), np.array([[0.5, 0.5], [0.2, 0.8]]), "integer"),
    (np.array(["a", "b"]), np.array([[0.5, 0.5], [0.2, 0.8]]), "integer"),
    (np.array([True, False]), np.array([[0.5, 0.5], [0.2, 0.8]]), "integer"),
    (np.array([0, 1, 1]), np.array([[0.5, 0.5], [0.2, 0.8]]), r"\(n,\)"),
])
def test_bad_inputs_raise(y, p, match):
    with pytest.raises(EmbgraftError, match=match):
        compute_metrics(y, p, ["a", "b"])


def test_confident_errors_order_and_round_trip(tmp_path):
    texts = ["股市\t大涨", "球赛", "新手机\n发布", "央行降息", "篮球"]
    y = np.array([0, 1, 2, 0, 1])
    p = np.array([[0.2, 0.7, 0.1],    # wrong, 0.7
                  [0.1, 0.8, 0.1],    # right
                  [0.05, 0.9, 0.05],  # wrong, 0.9
                  [0.3, 0.1, 0.6],    # wrong, 0.6
                  [0.7, 0.3, 0.0]])   # wrong, 0.7 (tie: input order)
    errs = confident_errors(texts, y, p, LABELS3, n=3)
    assert [(e["text"], e["gold"], e["predicted"]) for e in errs] == [
        ("新手机\n发布", "科技", "体育"), ("股市\t大涨", "财经", "体育"), ("篮球", "体育", "财经")]
    assert [e["probability"] for e in errs] == [0.9, 0.7, 0.7]
    out = write_errors_tsv(tmp_path / "errors.tsv", errs)
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "text\tgold\tpredicted\tprobability" and len(lines) == 5 and lines[-1] == ""
    assert lines[2] == "股市\\t大涨\t财经\t体育\t0.7"
    assert read_errors_tsv(out) == errs
    with pytest.raises(OutputExistsError):
        write_errors_tsv(out, errs)
    write_errors_tsv(out, errs[:1], force=True)
    assert len(read_errors_tsv(out)) == 1
    assert confident_errors(texts, y, p, LABELS3, n=0) == []


def test_read_errors_tsv_names_bad_line(tmp_path):
    f = tmp_path / "errors.tsv"
    f.write_text("text\tgold\tpredicted\tprobability\n好\t财经\t体育\t0.5\n坏\t财经\t体育\n", encoding="utf-8")
    with pytest.raises(MalformedFileError, match=r"errors.tsv:3: expected 4"):
        read_errors_tsv(f)


def test_metrics_table_aligns_cjk(multi):
    y, p = multi
    m = compute_metrics(y, p, ["财经新闻", "体育", "tech"])
    table = metrics_table(m)
    lines = table.splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "f1", "support"]
    rows = {ln.split()[0]: ln for ln in lines if ln.split() and ln.split()[0] in ("财经新闻", "体育", "tech")}

    def width(s):
        import unicodedata
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
    # right-aligned numbers end in the same display column for CJK and ASCII class names
    assert len({width(r) for r in rows.values()}) == 1
    assert f"{m['per_class']['体育']['f1']:.4f}" in rows["体育"]
    for key in ("macro avg", "micro avg", "weighted avg", "accuracy", "log loss",
                "ROC AUC (macro, one-vs-rest)", "average precision (macro)", "ECE (15 bins)"):
        assert key in table
    assert f"{m['accuracy']:.4f}" in table and f"{m['calibration']['ece']:.4f}" in table


def test_mcnemar_exact_and_chi2_match_scipy():
    # 3 items A right/B wrong, 9 the other way: few discordant pairs -> exact binomial
    a = np.array([1] * 3 + [0] * 9 + [1] * 50 + [0] * 8, dtype=bool)
    b = np.array([0] * 3 + [1] * 9 + [1] * 50 + [0] * 8, dtype=bool)
    r = paired_test(a, b)
    assert r["test"] == "mcnemar-exact" and (r["n01"], r["n10"]) == (3, 9)
    assert r["p_value"] == pytest.approx(stats.binomtest(3, 12, 0.5).pvalue)
    assert r["difference"] == pytest.approx(a.mean() - b.mean())
    # many discordant pairs -> chi-square with continuity correction
    a = np.array([1] * 40 + [0] * 20 + [1] * 30, dtype=bool)
    b = np.array([0] * 40 + [1] * 20 + [1] * 30, dtype=bool)
    r = paired_test(a, b, method="mcnemar")
    assert r["test"] == "mcnemar-chi2-cc"
    assert r["statistic"] == pytest.approx((abs(40 - 20) - 1) ** 2 / 60)
    assert r["p_value"] == pytest.approx(stats.chi2.sf((abs(40 - 20) - 1) ** 2 / 60, 1))
    same = paired_test(a, a)
    assert same["p_value"] == 1.0 and "agree" in same["note"]


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    b = rng.random(400) < 0.7
    a = b | (rng.random(400) < 0.3)  # A fixes some of B's mistakes
    r = paired_test(a, b, method="bootstrap", n_boot=2000, seed=1)
    assert r["test"] == "paired-bootstrap" and r["method"] == "bootstrap"
    diff = a.mean() - b.mean()
    assert r["difference"] == pytest.approx(diff) and diff > 0.05
    lo, hi = r["ci"]
    assert 0 < lo < diff < hi
    dist_tail = 0  # A never loses an item here, so no resample has d* <= 0
    assert r["p_value"] == pytest.approx(2 * (dist_tail + 1) / (2000 + 1))
    assert paired_test(a, b, method="bootstrap", n_boot=2000, seed=1) == r  # seeded
    # no real difference: a wide interval around zero
    c = rng.random(400) < 0.7
    r0 = paired_test(b, c, method="bootstrap", n_boot=2000)
    assert r0["ci"][0] < 0 < r0["ci"][1] or r0["p_value"] > 0.05
    assert paired_test(a, a, method="bootstrap")["p_value"] == 1.0


def test_paired_test_rejects_bad_input():
    with pytest.raises(EmbgraftError, match="one length"):
        paired_test([True, False], [True])
    with pytest.raises(EmbgraftError, match="unknown method"):
        paired_test([True], [False], method="t-test")
    with pytest.raises(EmbgraftError, match="booleans"):
        paired_test([2, 0], [1, 0])


def test_summarise_results_over_seeds_and_fractions():
    import statistics

    from embgraft.evaluation.stats import summarise_results
    accs = {("g", 1.0): [0.85, 0.87, 0.86], ("r", 1.0): [0.80, 0.83, 0.81], ("g", 0.1): [0.7]}
    results = [{"setup": s, "seed": i, "train_fraction": f, "test": {"accuracy": a, "macro_f1": a - 0.02},
                "run_dir": f"runs/{s}/{f}/{i}"}
               for (s, f), xs in accs.items() for i, a in enumerate(xs)]
    rows = summarise_results(results)
    assert [(r["setup"], r["train_fraction"], r["n_seeds"]) for r in rows] == [("g", 1.0, 3), ("r", 1.0, 3),
                                                                              ("g", 0.1, 1)]
    for r in rows:
        xs = accs[(r["setup"], r["train_fraction"])]
        assert r["accuracy_mean"] == pytest.approx(statistics.mean(xs))
        assert r["macro_f1_mean"] == pytest.approx(statistics.mean(xs) - 0.02)
        if len(xs) > 1:
            assert r["accuracy_sd"] == pytest.approx(statistics.stdev(xs))
        else:
            assert r["accuracy_sd"] is None
    folds = [{"fold": i, "accuracy": a, "log_loss": 1 - a} for i, a in enumerate([0.7, 0.8])]
    (cv,) = summarise_results(folds, metrics=("accuracy", "log_loss"), by=(), split=None)
    assert cv["n_seeds"] == 2 and cv["log_loss_mean"] == pytest.approx(0.25)
    assert cv["accuracy_sd"] == pytest.approx(statistics.stdev([0.7, 0.8]))
    with pytest.raises(EmbgraftError, match="no test.macro_f1"):
        summarise_results([{"setup": "g", "train_fraction": 1.0, "test": {"accuracy": 0.5}}])


def test_compare_table():
    from embgraft.evaluation.stats import compare_table
    summary = [{"setup": "textcnn/嫁接", "train_fraction": 1.0, "n_seeds": 3, "accuracy_mean": 0.86,
                "accuracy_sd": 0.01, "macro_f1_mean": 0.84, "macro_f1_sd": 0.02, "vs": "textcnn/random",
                "p_value": 0.0123, "test": "mcnemar-exact"},
               {"setup": "textcnn/random", "train_fraction": 1.0, "n_seeds": 3, "accuracy_mean": 0.8,
                "accuracy_sd": 0.015, "macro_f1_mean": 0.79, "macro_f1_sd": 0.01}]
    table = compare_table(summary, baseline={"name": "tfidf+linearsvc", "train_fraction": 1.0, "n_seeds": 1,
                                             "accuracy_mean": 0.87, "accuracy_sd": None, "macro_f1_mean": 0.86})
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["set-up", "fraction", "seeds"]
    assert "0.8600 ± 0.0100" in lines[2] and "0.8400 ± 0.0200" in lines[2] and "0.0123" in lines[2]
    assert "mcnemar-exact" in lines[2] and "textcnn/random" in lines[2]
    assert lines[4].startswith("tfidf+linearsvc (baseline)") and "0.8700" in lines[4]
    # CJK set-up names are padded by display width: the seeds column lines up
    import unicodedata

    def col(line, text):
        i = line.index(text)
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line[:i])
    assert col(lines[2], "0.8600") == col(lines[3], "0.8000")
