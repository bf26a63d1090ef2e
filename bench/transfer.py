"""Benchmark: a Chinese transformer's knowledge in a fast model (issue 17), on THUCNews-10k.

In one run, each graft and training run in its own process (``_measure.run_child``: wall time, peak RSS):

* TF-IDF character 1-2-grams + LinearSVC (the peer every row is read against);
* ``bag+words`` (``configs/thucnews-bag-words.yaml``) on the Tencent character graft, and from random init;
* **word rows**: a bag over a jieba-word vocabulary (``graft --level word``, ``configs/thucnews-bag.yaml``)
  with (a) the checkpoint's input rows (words composed from their characters' rows), (b) its output
  rows (``graft --rows output``: each word run through the encoder, mean of the last layer over its
  pieces, scale-matched to the input table), (c) random rows (``--random-init``); (a) and (b) again
  with ``--centre`` (the mean of the found rows subtracted, as ``../shared/EXPERIMENTS.md`` ran them);
  the output grafts' wall time and tokens/s are reported;
* **character rows**: a character bag (``configs/thucnews-bag.yaml``) and a TextCNN
  (``configs/thucnews-textcnn.yaml``) on the Tencent characters, on the checkpoint's input rows, and
  from random init (the Tencent graft's vocabulary and scale, random rows);
* a Chinese BERT fine-tuned (``--model hf``, ``configs/thucnews-hf-10pct.yaml``'s settings);
* two students distilled from it with ``--teachers`` (distill weight 1, patience 6), over the
  training titles read as unlabelled text (``--unlabelled``), both on the Tencent characters:
  ``bag+words`` (jieba at predict time) and ``bag+bigrams`` (``configs/thucnews-bag-bigrams.yaml``: no words,
  no jieba);
* ``predict`` texts/s of both students and of the fine-tuned teacher (seed 0) on the test titles,
  measured the same way (``Classifier.predict_proba`` in a fresh process, model loading excluded).

At ``--fraction 0.1`` (default) the labelled set is the stratified 900 titles every embgraft run
takes with ``train_fraction 0.1``; the unlabelled text is the whole training file, labels unread.
Supervised rows at a fraction below 1 get 3x their config's epochs and patience (900 titles are 4-8
steps an epoch), as ``bench/train.py`` gives them. The checkpoint is given by ``--hf-model``: m3e-small
(``make models`` puts it in ``.cache/models/m3e-small``; non-commercial research licence, benchmarks
only) was used for the figures in the README. Each finished row is written to ``OUT/results.json`` at
once; ``--summarise OUT`` prints the tables of a run (finished or cut short) again; ``--only TEXT``
trains only the rows whose name contains TEXT (every graft still runs). Run from the
repository root (18-38 min a seed on 2 shared cores; ``--only 'word bag, m3e'`` ~4 min a seed)::

    make models
    .venv/bin/python bench/transfer.py --hf-model .cache/models/m3e-small [--fraction 0.1] [--seeds 1] [--out DIR]
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
CONFIGS = REPO / "configs"
SMALL_DATA_FACTOR = 3

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


def small_data(config: str, fraction: float) -> list[str]:
    """``--epochs/--patience`` at 3x the config's below full data (none at full data)."""
    if fraction >= 1:
        return []
    from embgraft.training.config import read_config_file

    values = read_config_file(CONFIGS / config)
    epochs, patience = values.get("epochs", 10), values.get("patience", 3)
    return ["--epochs", str(epochs * SMALL_DATA_FACTOR), "--patience", str(patience * SMALL_DATA_FACTOR)]


def _fmt_acc(acc: list[float]) -> str:
    sd = f" ± {statistics.stdev(acc):.4f}" if len(acc) > 1 else ""
    return f"{statistics.mean(acc):.4f}{sd}"


def summarise(results: dict) -> None:
    """The run's tables, from ``results.json`` (what :func:`main` writes after every row)."""
    rows, grafts, speeds = results["rows"], results.get("grafts", {}), results.get("predict_texts_per_s", {})
    seeds = max((len(r["accuracy"]) for r in rows.values()), default=0)
    print(f"\nTHUCNews-10k, {results['fraction']:g} of the training titles labelled, up to {seeds} seed(s) "
          f"a row (n = seeds run), test accuracy (mean ± sd):\n")
    print("| | test accuracy | n | training samples/s | best epoch | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        sps = f"{statistics.mean(r['samples_per_s']):,.0f}" if r.get("samples_per_s") else ""
        best = f"{statistics.mean(r['best_epoch']):.0f}" if r.get("best_epoch") else ""
        print(f"| {name} | {_fmt_acc(r['accuracy'])} | {len(r['accuracy'])} | {sps} | {best} | {r['rss']:.0f} |")
    if grafts:
        print("\n| graft | rows | wall (s) | peak RSS (MB) | encoder tokens/s |")
        print("|---|---|---|---|---|")
        for name, g in grafts.items():
            tps = f"{g['tokens_per_s']:,.0f}" if g.get("tokens_per_s") else ""
            print(f"| {name} | {g['n_types']:,} | {g['wall']:.1f} | {g['rss']:.0f} | {tps} |")
    if speeds:
        teacher = next((v for k, v in speeds.items() if k.startswith("teacher")), None)
        print(f"\npredict on the {SPLIT.name} test titles (10,000, one process each, seed-0 runs):\n")
        print("| model | texts/s | × the teacher |")
        print("|---|---|---|")
        for name, v in speeds.items():
            ratio = f"{v / teacher:.1f}x" if teacher else ""
            print(f"| {name} | {v:,.0f} | {ratio} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hf-model", help="a Chinese BERT checkpoint directory (the teacher and the source of "
                                      "the m3e rows)")
    p.add_argument("--fraction", type=float, default=0.1, help="share of the training titles with labels")
    p.add_argument("--seeds", type=int, default=1, help="seeds per trained row (default 1)")
    p.add_argument("--hf-epochs", type=int, default=5)
    p.add_argument("--out", type=Path, default=REPO / "bench-transfer-out")
    p.add_argument("--only", metavar="TEXT", help="train only the rows whose name contains TEXT (e.g. 'word bag')")
    p.add_argument("--summarise", type=Path, metavar="OUT", help="print the tables of OUT/results.json and stop")
    args = p.parse_args(argv)
    if args.summarise:
        summarise(json.loads((args.summarise / "results.json").read_text(encoding="utf-8")))
        return 0
    if not args.hf_model:
        p.error("--hf-model is required")
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {"fraction": args.fraction, "seeds": args.seeds, "hf_model": str(args.hf_model),
                     "rows": {}, "grafts": {}, "predict_texts_per_s": {}}
    rows = results["rows"]

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")

    def note(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", flush=True)

    def launch(name: str, argv: list[str]) -> tuple[float, float]:
        wall, rss, output, code = run_child(argv, log=out / "logs" / f"{name}.log")
        if code != 0:
            raise SystemExit(f"{name} failed (exit {code}):\n{output[-3000:]}")
        return wall, rss

    def grafted(name: str, directory: Path, *argv: str) -> Path:
        """Graft into ``directory``, timed (each graft runs in every run: its wall time is a figure)."""
        wall, rss = launch(f"graft-{directory.name}", embgraft("graft", *argv, "--corpus", str(SPLIT / "train.txt"),
                                                               "--no-progress", "--out", str(directory), "--force"))
        report = json.loads((directory / "graft_report.json").read_text(encoding="utf-8"))
        ctx = next((s["contextual"] for s in report.get("sources", []) if s.get("contextual")), None)
        results["grafts"][name] = {"wall": wall, "rss": rss, "n_types": report["n_types"],
                                   "seconds_in_graft": report["seconds"], "contextual": ctx,
                                   "tokens_per_s": ctx["tokens_per_s"] if ctx else None,
                                   "scale_factor": ctx["scale_factor"] if ctx else None}
        save()
        note(f"graft {name}: {report['n_types']:,} rows in {wall:.1f}s wall, {rss:.0f} MB"
             + (f", {ctx['tokens_per_s']:,.0f} tokens/s, scaled x{ctx['scale_factor']:.4g}" if ctx else ""))
        return directory

    hf = str(Path(args.hf_model).resolve()) if Path(args.hf_model).exists() else args.hf_model
    g = out / "grafts"
    tencent = grafted("Tencent chars", g / "tencent-char", "--source", str(VECTORS))
    m3e_char = grafted("m3e input rows, chars", g / "m3e-char-input", "--source", hf)
    m3e_word_in = grafted("m3e input rows, jieba words (composed)", g / "m3e-word-input",
                          "--source", hf, "--level", "word")
    m3e_word_out = grafted("m3e output rows, jieba words (scale-matched)", g / "m3e-word-output",
                           "--source", hf, "--level", "word", "--rows", "output", "--contextual-device", "cpu")
    m3e_word_in_c = grafted("m3e input rows, jieba words (composed), centred", g / "m3e-word-input-centre",
                            "--source", hf, "--level", "word", "--centre")
    m3e_word_out_c = grafted("m3e output rows, jieba words (scale-matched), centred", g / "m3e-word-output-centre",
                             "--source", hf, "--level", "word", "--rows", "output", "--contextual-device", "cpu",
                             "--centre")

    common = ["--train", str(SPLIT / "train.txt"), "--dev", str(SPLIT / "dev.txt"), "--test", str(SPLIT / "test.txt"),
              "--classes", str(SPLIT / "class.txt"), "--train-fraction", str(args.fraction), "--no-progress",
              "--tensorboard", "off", "--device", "cpu", "--force"]

    tfidf_json = out / "logs" / "tfidf.json"
    wall, rss = launch("tfidf", [sys.executable, "-c", _TFIDF, str(SPLIT), str(args.fraction), str(tfidf_json)])
    rows["TF-IDF + LinearSVC"] = {"accuracy": [json.loads(tfidf_json.read_text())["accuracy"]], "rss": rss}
    save()
    note(f"TF-IDF: {rows['TF-IDF + LinearSVC']['accuracy'][0]:.4f}")

    def wanted(name: str) -> bool:
        return args.only is None or args.only in name

    def trained(name: str, seed: int, run: Path, argv: list[str], *, needed: bool = False) -> bool:
        if not (needed or wanted(name)):
            return False
        wall, rss = launch(f"{run.name}", argv)
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        row = rows.setdefault(name, {"accuracy": [], "samples_per_s": [], "best_epoch": [], "rss": 0.0,
                                     "wall": [], "seeds": []})
        row["accuracy"].append(metrics["test"]["accuracy"])
        row["samples_per_s"].append(metrics["samples_per_s"])
        if metrics.get("best_epoch") is not None:
            row["best_epoch"].append(metrics["best_epoch"])
        row["wall"].append(wall)
        row["seeds"].append(seed)
        row["rss"] = max(row["rss"], rss)
        save()
        note(f"{name} (seed {seed}): test {metrics['test']['accuracy']:.4f}  {metrics['samples_per_s']:,.0f} "
             f"samples/s  best epoch {metrics.get('best_epoch')}  {rss:.0f} MB  {wall:.0f}s")
        return True

    def supervised(name: str, tag: str, config: str, graft: Path, seed: int, *extra: str) -> None:
        run = out / "runs" / f"{tag}-s{seed}"
        trained(name, seed, run, embgraft("train", "--config", str(CONFIGS / config), *common,
                                          *small_data(config, args.fraction), "--graft", str(graft),
                                          "--seed", str(seed), "--out", str(run), *extra))

    def student(name: str, tag: str, config: str, teacher: Path, seed: int) -> Path | None:
        run = out / "runs" / f"{tag}-s{seed}"
        return run if trained(name, seed, run, embgraft("train", "--config", str(CONFIGS / config), *common, "--graft",
                                          str(tencent), "--seed", str(seed), "--patience", "6",
                                          "--teachers", str(teacher), "--distill-weight", "1.0",
                                          "--unlabelled", str(SPLIT / "train.txt"), "--out", str(run))) else None

    def predict(name: str, run: Path | None) -> None:
        if run is None:  # not trained in this run (--only)
            return
        result = out / "logs" / f"predict-{run.name}.json"
        launch(f"predict-{run.name}", [sys.executable, "-c", _PREDICT, str(run), str(SPLIT / "test.txt"), str(result)])
        results["predict_texts_per_s"][name] = json.loads(result.read_text())["texts_per_s"]
        save()
        note(f"predict {name}: {results['predict_texts_per_s'][name]:,.0f} texts/s")

    random = ["--random-init"]
    students = ("bag+words distilled, unlabelled text (Tencent chars)",
                "bag+bigrams distilled, unlabelled text (Tencent chars, no jieba)")
    for seed in range(args.seeds):
        # the teacher first: the students of this seed learn from it
        teacher = out / "runs" / f"hf-s{seed}"
        taught = trained("m3e fine-tuned (teacher)", seed, teacher,
                embgraft("train", "--config", str(CONFIGS / "thucnews-hf-10pct.yaml"), *common,
                         "--hf-model", hf, "--epochs", str(args.hf_epochs), "--seed", str(seed),
                         "--out", str(teacher)), needed=any(map(wanted, students)))
        words_student = student(students[0], "student-bag-words", "thucnews-bag-words.yaml", teacher, seed)
        bigram_student = student(students[1], "student-bag-bigrams", "thucnews-bag-bigrams.yaml", teacher, seed)
        if seed == 0:  # the three in a row, in this run, on the same machine
            predict("teacher: m3e fine-tuned", teacher if taught else None)
            predict("student: bag+words", words_student)
            predict("student: bag+bigrams (no jieba)", bigram_student)
        supervised("bag+words, Tencent chars", "bag-words-tencent", "thucnews-bag-words.yaml", tencent, seed)
        supervised("bag+words, random", "bag-words-random", "thucnews-bag-words.yaml", tencent, seed, *random)
        supervised("word bag, m3e input rows (composed)", "wordbag-m3e-input", "thucnews-bag.yaml", m3e_word_in, seed)
        supervised("word bag, m3e output rows", "wordbag-m3e-output", "thucnews-bag.yaml", m3e_word_out, seed)
        supervised("word bag, m3e input rows (composed), centred", "wordbag-m3e-input-centre", "thucnews-bag.yaml",
                   m3e_word_in_c, seed)
        supervised("word bag, m3e output rows, centred", "wordbag-m3e-output-centre", "thucnews-bag.yaml",
                   m3e_word_out_c, seed)
        supervised("word bag, random", "wordbag-random", "thucnews-bag.yaml", m3e_word_in, seed, *random)
        supervised("char bag, Tencent chars", "charbag-tencent", "thucnews-bag.yaml", tencent, seed)
        supervised("char bag, m3e input rows", "charbag-m3e-input", "thucnews-bag.yaml", m3e_char, seed)
        supervised("char bag, random", "charbag-random", "thucnews-bag.yaml", tencent, seed, *random)
        supervised("TextCNN, Tencent chars", "textcnn-tencent", "thucnews-textcnn.yaml", tencent, seed)
        supervised("TextCNN, m3e input rows", "textcnn-m3e-input", "thucnews-textcnn.yaml", m3e_char, seed)
        supervised("TextCNN, random", "textcnn-random", "thucnews-textcnn.yaml", tencent, seed, *random)
        note(f"seed {seed} done")

    summarise(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
