import base64
import csv
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import matplotlib  # noqa: F401
from matplotlib import image as mpimg  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

from embgraft.evaluation.drift import embedding_drift  # noqa: E402
from embgraft.errors import EmbgraftError, OutputExistsError  # noqa: E402
from embgraft.evaluation.metrics import compute_metrics, confident_errors, write_errors_tsv  # noqa: E402
from embgraft.evaluation.report import read_history, write_report  # noqa: E402
from helpers.imports import assert_not_imported  # noqa: E402
from embgraft.text.vocab import Vocab  # noqa: E402

LABELS = ["财经", "体育", "科技"]
TOKENS = ["<pad>", "<unk>", "股", "市", "球", "赛", "机", "新"]
METHODS = ["special", "special", "exact", "exact", "exact", "normalised:lower", "composed:mean", "init:normal"]
COUNTS = [0, 0, 40, 30, 25, 20, 10, 5]
TEXTS = ["股市大涨<b>", "球赛精彩", "新手机发布", "<script>alert(1)</script>股市", "赛事直播\t回放", "新机"]
HISTORY = "epoch,step,train_loss,dev_loss,dev_accuracy,dev_macro_f1,lr,embedding_lr,seconds,samples_per_s\n"


def make_run(root, *, evaluated=True, grafted=True):
    """A run directory as the training code writes it, small and consistent."""
    run = root / "run"
    run.mkdir()
    cfg = {"model": "textcnn", "embedding": "partial", "lr": 0.001, "epochs": 3, "seed": 0,
           "graft_dir": str(root / "graft") if grafted else None, "random_init": not grafted,
           "train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", "note": "<i>不是HTML</i>"}
    (run / "config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    (run / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    Vocab.from_tokens(TOKENS[2:], counts=COUNTS[2:]).save(run / "vocab.txt")
    (run / "recipe.json").write_text(json.dumps({"level": "char", "user_dict": None, "lowercase": False,
                                                 "max_len": 64, "ngrams": 1}), encoding="utf-8")
    rng = np.random.default_rng(0)
    init = rng.normal(size=(len(TOKENS), 4)).astype(np.float32)
    init[0] = 0
    final = init.copy()
    final[5:] += rng.normal(scale=0.3, size=(3, 4)).astype(np.float32)  # partial: found rows stay
    save_file({"embedding": init}, str(run / "embedding_init.safetensors"))
    save_file({"embedding.weight": final}, str(run / "model.safetensors"))
    with open(run / "provenance.tsv", "w", encoding="utf-8") as f:
        f.write("id\ttoken\tmethod\tsource\tsource_tokens\n")
        for i, (t, m) in enumerate(zip(TOKENS, METHODS)):
            f.write(f"{i}\t{t}\t{m}\t{'' if m.startswith(('init', 'special')) else 'vec'}\t[]\n")
    if grafted:
        methods = {}
        for m in dict.fromkeys(METHODS):
            rows = [i for i, x in enumerate(METHODS) if x == m]
            methods[m] = {"n_types": len(rows), "share_types": 0.0 if m == "special" else len(rows) / 6,
                          "n_tokens": sum(COUNTS[i] for i in rows),
                          "share_tokens": sum(COUNTS[i] for i in rows) / sum(COUNTS)}
        (run / "graft_report.json").write_text(json.dumps(
            {"n_types": 8, "n_corpus_tokens": sum(COUNTS), "n_oov_tokens": 0, "dim": 4, "methods": methods,
             "stages": {}, "init_sample": [["新", 5]], "sources": [], "config": {}, "notes": []},
            ensure_ascii=False), encoding="utf-8")
    (run / "metrics.json").write_text(json.dumps(
        {"dev": {"accuracy": 0.8, "macro_f1": 0.78, "loss": 0.55}, "test": {"accuracy": 0.67, "macro_f1": 0.6,
                                                                          "loss": 0.7},
         "best_epoch": 3, "train_seconds": 1.5, "samples_per_s": 1200.0}), encoding="utf-8")
    (run / "history.csv").write_text(HISTORY + "".join(
        f"{e},{10 * e},{1 / e:.4f},{1.1 / e:.4f},{0.6 + 0.1 * e:.2f},{0.55 + 0.1 * e:.2f},0.001,0.0001,0.5,1200\n"
        for e in (1, 2, 3)), encoding="utf-8")
    if evaluated:
        ev = run / "evaluation"
        ev.mkdir()
        y = np.array([0, 1, 2, 0, 1, 2])
        proba = np.array([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.1, 0.3, 0.6],
                          [0.3, 0.3, 0.4], [0.5, 0.1, 0.4]])
        m = compute_metrics(y, proba, LABELS)
        m.update(data="test.tsv", n_examples=len(y))
        (ev / "metrics.json").write_text(json.dumps(m, ensure_ascii=False), encoding="utf-8")
        write_errors_tsv(ev / "errors.tsv", confident_errors(TEXTS, y, proba, LABELS))
        d = embedding_drift(init, final, METHODS, TOKENS, COUNTS, n_neighbours=3, n_tokens=3)
        (ev / "drift.json").write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    return run


def make_compare(root, fractions=(1.0,)):
    cmp = root / "cmp"
    cmp.mkdir()
    setups = [{"name": "textcnn/grafted", "model": "textcnn", "graft_dir": "/g", "random_init": False,
               "embedding": "full"},
              {"name": "textcnn/random", "model": "textcnn", "graft_dir": None, "random_init": True,
               "embedding": "full"}]
    results, summary = [], []
    for frac in fractions:
        for s, base in (("textcnn/grafted", 0.85), ("textcnn/random", 0.82)):
            accs = [base * frac ** 0.1 + 0.01 * seed for seed in range(3)]
            for seed, acc in enumerate(accs):
                results.append({"setup": s, "seed": seed, "train_fraction": frac,
                                "test": {"accuracy": acc, "macro_f1": acc - 0.02}, "run_dir": f"runs/{s}/{seed}"})
            summary.append({"setup": s, "train_fraction": frac, "n_seeds": 3, "accuracy_mean": float(np.mean(accs)),
                            "accuracy_sd": float(np.std(accs, ddof=1)), "macro_f1_mean": float(np.mean(accs)) - 0.02,
                            "macro_f1_sd": float(np.std(accs, ddof=1)),
                            "vs": None if s == "textcnn/random" else "textcnn/random",
                            "p_value": None if s == "textcnn/random" else 0.0123, "test": "mcnemar"})
    baseline = {"name": "tfidf+linearsvc", "train_fraction": 1.0, "n_seeds": 1, "accuracy_mean": 0.87,
                "accuracy_sd": 0.0, "macro_f1_mean": 0.86, "macro_f1_sd": 0.0, "vs": "textcnn/random",
                "p_value": 0.2, "test": "mcnemar"}
    (cmp / "compare.json").write_text(json.dumps({"setups": setups, "results": results, "summary": summary,
                                                  "baseline": baseline}), encoding="utf-8")
    with open(cmp / "compare.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    return cmp


def images(html_text):
    srcs = re.findall(r'<img[^>]*\bsrc="([^"]*)"', html_text)
    out = []
    for s in srcs:
        assert s.startswith("data:image/png;base64,"), s[:60]
        png = base64.b64decode(s.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        out.append(mpimg.imread(io.BytesIO(png)))
    return out


def assert_self_contained(text):
    assert "<script" not in text.lower()
    # nothing to fetch: every src/href is inline data, and no url() in the CSS
    for attr in re.findall(r'\b(?:src|href)="([^"]*)"', text):
        assert attr.startswith("data:"), attr[:60]
    assert "url(" not in text and "@import" not in text
    assert "default-src 'none'" in text


def test_run_report_has_every_section(tmp_path):
    run = make_run(tmp_path)
    out = write_report(run)
    assert out == run / "report.html"
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    for heading in ("Run configuration", "Training results", "Graft coverage", "Training curves", "Metrics",
                    "Confusion matrix", "ROC and precision-recall", "Calibration", "Embedding drift",
                    "The 20 most confident errors"):
        assert f"<h2>{heading}</h2>" in text
    assert "not available" not in text and "could not be shown" not in text
    imgs = images(text)
    # coverage, history, confusion, roc, pr, reliability, drift
    assert len(imgs) == 7
    assert [im.shape[:2] for im in imgs] == [(450, 800), (400, 1200), (500, 500), (500, 600), (500, 600),
                                             (600, 600), (400, 1000)]
    # user text is escaped, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;股市" in text
    assert "股市大涨&lt;b&gt;" in text and "&lt;i&gt;不是HTML&lt;/i&gt;" in text
    # the errors in confidence order, with their texts and labels
    errs = re.findall(r'<td class="text">(.*?)</td>', text)
    assert errs == ["股市大涨&lt;b&gt;", "&lt;script&gt;alert(1)&lt;/script&gt;股市", "新机",
                    "赛事直播\t回放"]
    m = json.loads((run / "evaluation" / "metrics.json").read_text(encoding="utf-8"))
    assert f"{m['accuracy']:.4f}" in text and f"{m['calibration']['ece']:.4f}" in text
    assert f"{m['per_class']['科技']['f1']:.4f}" in text
    assert "init:normal" in text and "composed:mean" in text


def test_minimal_run_says_what_is_missing(tmp_path):
    run = make_run(tmp_path, evaluated=False, grafted=False)
    (run / "history.csv").unlink()
    text = write_report(run).read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "random initialisation, no graft" in text
    assert "unset (defaults of the model or data): graft_dir" in text and "<td>graft_dir</td>" not in text
    assert text.count("not available (run <code>embgraft evaluate") == 6
    assert "history.csv (training curves): not available" in text
    assert images(text) == []


def test_malformed_part_is_shown_not_fatal(tmp_path):
    run = make_run(tmp_path)
    (run / "evaluation" / "drift.json").write_text('{"per_method": \n oops', encoding="utf-8")
    (run / "history.csv").write_text(HISTORY + "1,10,0.5\n", encoding="utf-8")
    text = write_report(run).read_text(encoding="utf-8")
    assert re.search(r"could not be shown: .*drift\.json:2: bad JSON", text)
    assert re.search(r"could not be shown: .*history\.csv:2: expected 10 comma-separated fields, got 3", text)
    assert len(images(text)) == 5  # the other sections still drew


def test_overwrite_needs_force_and_out(tmp_path):
    run = make_run(tmp_path, evaluated=False, grafted=False)
    (run / "history.csv").unlink()  # nothing to draw: this test is about files
    write_report(run)
    with pytest.raises(OutputExistsError):
        write_report(run)
    write_report(run, force=True)
    other = write_report(run, out=tmp_path / "elsewhere" / "r.html")
    assert other.is_file()
    assert not list(run.glob(".report.html.tmp-*"))


def test_not_a_run_or_compare_dir(tmp_path):
    with pytest.raises(EmbgraftError, match="neither a run directory"):
        write_report(tmp_path)
    with pytest.raises(EmbgraftError, match="not a directory"):
        write_report(tmp_path / "missing")


def test_compare_report(tmp_path):
    cmp = make_compare(tmp_path)
    text = write_report(cmp).read_text(encoding="utf-8")
    assert_self_contained(text)
    data = json.loads((cmp / "compare.json").read_text(encoding="utf-8"))
    g = data["summary"][0]
    assert f"{g['accuracy_mean']:.4f} ± {g['accuracy_sd']:.4f}" in text
    assert "0.0123" in text and "mcnemar" in text and "tfidf+linearsvc (baseline)" in text
    assert text.count("runs/textcnn/") == 6
    imgs = images(text)
    assert [im.shape[:2] for im in imgs] == [(450, 1000)]


def test_compare_report_without_summary_summarises_results(tmp_path):
    cmp = make_compare(tmp_path)
    data = json.loads((cmp / "compare.json").read_text(encoding="utf-8"))
    g = data.pop("summary")[0]
    (cmp / "compare.json").write_text(json.dumps(data), encoding="utf-8")
    text = write_report(cmp).read_text(encoding="utf-8")
    assert "summary computed from the per-run results" in text
    assert f"{g['accuracy_mean']:.4f} ± {g['accuracy_sd']:.4f}" in text
    assert len(images(text)) == 1


def test_compare_report_with_learning_curve(tmp_path):
    cmp = make_compare(tmp_path, fractions=(0.1, 0.5, 1.0))
    imgs = images(write_report(cmp).read_text(encoding="utf-8"))
    assert [im.shape[:2] for im in imgs] == [(450, 1600)]


def test_read_history(tmp_path):
    f = tmp_path / "history.csv"
    f.write_text(HISTORY + "1,10,0.9,1.0,0.5,0.4,0.001,,2.0,100\n", encoding="utf-8")
    rows = read_history(f)
    assert rows == [{"epoch": "1", "step": "10", "train_loss": "0.9", "dev_loss": "1.0", "dev_accuracy": "0.5",
                     "dev_macro_f1": "0.4", "lr": "0.001", "embedding_lr": "", "seconds": "2.0",
                     "samples_per_s": "100"}]


def test_report_modules_stay_out_of_graft():
    """`embgraft graft` must not pay for matplotlib or scikit-learn."""
    code = ("import embgraft, embgraft.cli, embgraft.grafting.cascade, embgraft.evaluation.report, "
            "embgraft.evaluation.plots, embgraft.evaluation.metrics, embgraft.evaluation.stats, "
            "embgraft.evaluation.drift, embgraft.evaluation.run")
    assert_not_imported(code, ["matplotlib", "sklearn", "scipy"])


# -- rendering in a real browser --------------------------------------------------------------------
def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render(html_path, shot, profile):
    exe = chromium()
    if exe is None:
        pytest.skip("chromium is not installed (.ci/run installs it with apt-get); the browser check is skipped")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
           "--window-size=1200,2000", "--hide-scrollbars", html_path.as_uri()]
    fc = shutil.which("fc-list")
    if fc and not subprocess.run([fc, ":lang=zh", "family"], capture_output=True, text=True).stdout.strip():
        import warnings
        warnings.warn("no CJK font for Chromium (apt-get install fonts-noto-cjk): Chinese text in the "
                      "screenshot is drawn as boxes; console errors are still checked", stacklevel=2)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Refused to" in ln
               or "Uncaught" in ln or "net::ERR" in ln]
    return proc, console


def test_console_check_can_fail(tmp_path):
    """The browser check does see console errors and blocked fetches."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
                   "content=\"default-src 'none'; img-src data:\"></head><body>坏"
                   "<img src='http://127.0.0.1:9/x.png'></body></html>", encoding="utf-8")
    proc, console = render(bad, tmp_path / "bad.png", tmp_path / "profile")
    assert any("Content Security Policy" in line for line in console), proc.stderr[-2000:]


@pytest.mark.parametrize("kind", ["run", "compare"])
def test_report_renders_in_chromium(tmp_path, kind):
    d = make_run(tmp_path) if kind == "run" else make_compare(tmp_path, fractions=(0.1, 1.0))
    out = write_report(d)
    shot = tmp_path / "shot.png"
    proc, console = render(out, shot, tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console == [], console
    assert shot.is_file()
    img = mpimg.imread(shot)
    assert img.shape[:2] == (2000, 1200)
    assert len(np.unique(img.reshape(-1, img.shape[2])[::7], axis=0)) > 50  # not a blank page
