"""Benchmark: a Chinese transformer's knowledge in a fast model (issue 17), on THUCNews-10k.

In one run, each graft and training run in its own process (``_measure.run_child``: wall time, peak RSS):

* TF-IDF character 1-2-grams + LinearSVC (the peer every row is read against);
* ``bag+words`` (``configs/thucnews-bag-words.yaml``) on the Tencent character graft, on the checkpoint's
  input characters, on its output rows (``graft --rows output --ngrams 2 --words``: every character,
  bigram and jieba word of the table run through the encoder, scale-matched), and from random init;
* **word rows**: a bag over a jieba-word vocabulary (``graft --level word``, ``configs/thucnews-bag.yaml``)
  with (a) the checkpoint's input rows (words composed from their characters' rows), (b) its output
  rows (``graft --rows output``: each word run through the encoder, mean of the last layer over its
  pieces, scale-matched to the input table), (c) random rows (``--random-init``); (a) and (b) again
  with ``--centre`` (the mean of the found rows subtracted, as ``../shared/EXPERIMENTS.md`` ran them);
  (b) as Model2Vec makes its rows (``--contextual-pool mean-all --contextual-scale-to none``), from the
  last layer and from the mean of the last three (``--contextual-last-k 3``); and that last again with
  ``--contextual-context corpus``: each word's row the mean over its occurrences in the training titles
  (labels unread), not the word run alone;
  the output grafts' wall time and tokens/s are reported;
* **character rows**: a character bag (``configs/thucnews-bag.yaml``) and a TextCNN
  (``configs/thucnews-textcnn.yaml``) on the Tencent characters, on the checkpoint's input rows, and
  from random init (the Tencent graft's vocabulary and scale, random rows); the TextCNN also on the
  checkpoint's output character rows (scale-matched); a 1-layer transformer
  (``configs/thucnews-transformer.yaml``) and a BiLSTM (``configs/thucnews-bilstm.yaml``) on the same
  three character sources;
* a Chinese BERT fine-tuned (``--model hf``, ``configs/thucnews-hf-10pct.yaml``'s settings);
* seven students distilled from it with ``--teachers`` (distill weight 1 unless ``--distill-weight``;
  patience 6; ``--student-args`` adds train arguments, e.g. a schedule), over the training titles read as
  unlabelled text (``--unlabelled``) and ``--augment N`` altered copies of the labelled ones (the only
  larger transfer set at ``--fraction 1``): ``bag+words`` (jieba at predict time) on the Tencent
  characters, on the checkpoint's input characters and on its output rows (the bag+words output graft
  above, and the same graft in the training titles' context, ``--contextual-context corpus``),
  ``bag+bigrams`` (``configs/thucnews-bag-bigrams.yaml``: no words, no jieba) on the Tencent
  characters and on the output rows of the characters and bigrams in context, and a TextCNN with its
  bigram bag branch (``configs/thucnews-textcnn-bigrams.yaml``) on the checkpoint's input characters;
* ``predict`` texts/s of the students and of the fine-tuned teacher (seed 0) on the test titles,
  measured the same way (``Classifier.predict_proba`` in a fresh process, model loading excluded);
* with ``--ensemble``, the teachers of every seed are trained first and each student learns from their
  averaged probabilities (``--teachers t0,t1,t2``) instead of its own seed's teacher alone;
* with ``--model2vec-python PY`` (a Python that has ``model2vec[distill,train,quantization]``; it pins
  ``transformers<5.4``, so it lives in a venv of its own, never this project's): **Model2Vec's own
  ``distill``** of the same checkpoint with the jieba-word vocabulary of the word grafts (no PCA and
  float32, so its rows keep our rows' 512 dims; SIF 1e-4, its default), timed beside our output-row
  graft and fed to the same word bag; and
  **Model2Vec's classifier** (``StaticModelForClassification`` on that model, fitted on the same
  labelled titles with dev for early stopping; raw titles in, as its users give them), with its
  ``predict`` texts/s. Without it those rows are left out and the run says so.

At ``--fraction 0.1`` (default) the labelled set is the stratified 900 titles every embgraft run
takes with ``train_fraction 0.1``; the unlabelled text is the whole training file, labels unread.
Supervised rows at a fraction below 1 get 3x their config's epochs and patience (900 titles are 4-8
steps an epoch), as ``bench/train.py`` gives them. The checkpoint is given by ``--hf-model``: m3e-small
(``make models`` puts it in ``.cache/models/m3e-small``; non-commercial research licence, benchmarks
only) was used for the figures in the README. Each finished row is written to ``OUT/results.json`` at
once; ``--summarise OUT`` prints the tables of a run (finished or cut short) again; ``--only TEXT``
(repeatable) trains only the rows whose name contains TEXT (every graft still runs). Run from the
repository root (23-43 min a seed on 2 shared cores; ``--only 'word bag, m3e'`` ~4 min a seed)::

    make models
    .venv/bin/python bench/transfer.py --hf-model .cache/models/m3e-small [--fraction 0.1] [--seeds 1] [--out DIR]

and with the Model2Vec peers (its venv once: ``python3 -m venv .venv-model2vec &&
.venv-model2vec/bin/pip install torch==2.13.0 'model2vec[distill,train,quantization]==0.10.0'``)::

    .venv/bin/python bench/transfer.py --hf-model .cache/models/m3e-small --model2vec-python .venv-model2vec/bin/python
"""

from __future__ import annotations

import argparse
import json
import shlex
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

# Model2Vec's side, run by --model2vec-python (model2vec is not importable here: see the docstring).
_M2V_DISTILL = r"""
import sys
from model2vec.distill import distill
model, words, out = sys.argv[1:4]
vocabulary = open(words, encoding="utf-8").read().splitlines()
# all 512 dims in float32, as our rows keep them: the rows differ in how they are made, not in size
distill(model_name=model, vocabulary=vocabulary, device="cpu", pca_dims=None,
        quantize_to="float32").save_pretrained(out)
"""

_M2V_CLASSIFIER = r"""
import json, sys, time
import numpy as np
from model2vec.train import StaticModelForClassification
model, data, seed, out = sys.argv[1], json.load(open(sys.argv[2], encoding="utf-8")), int(sys.argv[3]), sys.argv[4]
clf = StaticModelForClassification.from_pretrained(path=model)
t = time.perf_counter()
clf.fit(data["train"]["texts"], data["train"]["labels"], X_val=data["dev"]["texts"], y_val=data["dev"]["labels"],
        device="cpu", random_seed=seed)
fit_s = time.perf_counter() - t
test = data["test"]["texts"]
clf.predict(test[:64])  # warm-up, as for our predict
t = time.perf_counter()
predicted = clf.predict(test)
texts_per_s = len(test) / (time.perf_counter() - t)
accuracy = float(np.mean(np.asarray(predicted) == np.asarray(data["test"]["labels"])))
json.dump({"accuracy": accuracy, "fit_s": fit_s, "texts_per_s": texts_per_s}, open(out, "w"))
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


def _n_rows(graft: dict) -> str:
    """A graft's rows as the tables and notes give them: its tokens', plus its n-gram/word rows if any."""
    n_ngram = graft.get("n_ngram_rows")
    return f"{graft['n_types']:,}" + (f" + {n_ngram:,} n-gram/word" if n_ngram else "")


def summarise(results: dict) -> None:
    """The run's tables, from ``results.json`` (what :func:`main` writes after every row)."""
    rows, grafts, speeds = results["rows"], results.get("grafts", {}), results.get("predict_texts_per_s", {})
    seeds = max((len(r["accuracy"]) for r in rows.values()), default=0)
    print(f"\nTHUCNews-10k, {results['fraction']:g} of the training titles labelled, up to {seeds} seed(s) "
          f"a row (n = seeds run), test accuracy (mean ± sd)"
          + (f"; the students' --augment {results['augment']}" if results.get("augment") else "")
          + (f"; distill weight {results['distill_weight']:g}" if results.get("distill_weight", 1) != 1 else "")
          + (f"; {results['teacher_seeds']} teacher(s) for every student" if results.get("teacher_seeds") else "")
          + (f"; the students' {results['student_args']}" if results.get("student_args") else "")
          + ":\n")
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
            print(f"| {name} | {_n_rows(g)} | {g['wall']:.1f} | {g['rss']:.0f} | {tps} |")
    if speeds:
        teacher = next((v for k, v in speeds.items() if k.startswith("teacher")), None)
        print(f"\npredict on the {SPLIT.name} test titles (10,000, one process each, seed-0 runs):\n")
        print("| model | texts/s | × the teacher |")
        print("|---|---|---|")
        for name, v in speeds.items():
            ratio = f"{v / teacher:.1f}x" if teacher else ""
            print(f"| {name} | {v:,.0f} | {ratio} |")


def model2vec_distill(python: Path | None, hf: str, word_graft: Path, out: Path, launch, results: dict,
                      note) -> Path | None:
    """Model2Vec's ``distill`` of ``hf`` with ``word_graft``'s vocabulary (specials left out), timed as
    a graft is; the model's directory, or None (with the reason said) without ``python``."""
    if python is None:
        note("Model2Vec rows left out: no --model2vec-python (see the docstring for its venv)")
        return None
    from embgraft.text.vocab import Vocab

    vocab = Vocab.load(word_graft / "vocab.txt")
    words = out / "logs" / "m2v-vocabulary.txt"
    words.write_text("".join(t + "\n" for t in vocab.tokens if not vocab.is_special(t)), encoding="utf-8")
    model = out / "m2v-distill"
    wall, rss = launch("m2v-distill", [str(python), "-c", _M2V_DISTILL, hf, str(words), str(model)])
    results["grafts"]["Model2Vec distill (its own run, same vocabulary)"] = {
        "wall": wall, "rss": rss, "n_types": len(vocab) - len(vocab.specials), "tokens_per_s": None}
    note(f"Model2Vec distill: {wall:.1f}s wall, {rss:.0f} MB")
    return model


def model2vec_data(fraction: float, path: Path) -> Path:
    """The labelled titles every run here trains on (the same stratified subset), dev and test, as
    JSON for Model2Vec's classifier (its Python cannot import embgraft)."""
    from embgraft.training.data import read_examples, stratified_subset

    def split(examples) -> dict:
        return {"texts": examples.texts, "labels": examples.labels}

    train = read_examples(SPLIT / "train.txt")
    data = {"train": split(stratified_subset(train, fraction, seed=0)),
            "dev": split(read_examples(SPLIT / "dev.txt")), "test": split(read_examples(SPLIT / "test.txt"))}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hf-model", help="a Chinese BERT checkpoint directory (the teacher and the source of "
                                      "the m3e rows)")
    p.add_argument("--fraction", type=float, default=0.1, help="share of the training titles with labels")
    p.add_argument("--seeds", type=int, default=1, help="seeds per trained row (default 1)")
    p.add_argument("--hf-epochs", type=int, help="the teacher's epochs (default: its config's)")
    p.add_argument("--ensemble", action="store_true",
                   help="train every seed's teacher first; each student learns from all of them, averaged")
    p.add_argument("--teacher-seeds", type=int, metavar="N",
                   help="with --ensemble: train N teachers (seeds 0..N-1), not one per seed (default: --seeds)")
    p.add_argument("--distill-weight", type=float, default=1.0, metavar="W",
                   help="the students' --distill-weight (default 1: the teachers' predictions only, as at 10 %%; "
                        "at --fraction 1 the labels are better than the teacher on the training titles)")
    p.add_argument("--augment", type=int, default=0, metavar="N",
                   help="the students' --augment: N altered copies of each labelled title join the transfer "
                        "set (default 0; at --fraction 1 the unlabelled text is the labelled titles)")
    p.add_argument("--student-args", default="", metavar="ARGS",
                   help="more `embgraft train` arguments for every student, one quoted string (e.g. "
                        "'--schedule cosine --epochs 8 --patience 8', as the README's full-data figures)")
    p.add_argument("--model2vec-python", type=Path, metavar="PY",
                   help="a Python with model2vec[distill,train,quantization] (its own venv): adds "
                        "Model2Vec's distill and classifier as peers")
    p.add_argument("--out", type=Path, default=REPO / "bench-transfer-out")
    p.add_argument("--only", metavar="TEXT", action="append",
                   help="train only the rows whose name contains TEXT (e.g. 'word bag'); repeat for more")
    p.add_argument("--summarise", type=Path, metavar="OUT", help="print the tables of OUT/results.json and stop")
    args = p.parse_args(argv)
    if args.summarise:
        summarise(json.loads((args.summarise / "results.json").read_text(encoding="utf-8")))
        return 0
    if not args.hf_model:
        p.error("--hf-model is required")
    if args.teacher_seeds is not None and not (args.ensemble and args.teacher_seeds >= 1):
        p.error("--teacher-seeds N (N >= 1) goes with --ensemble")
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {"fraction": args.fraction, "seeds": args.seeds, "hf_model": str(args.hf_model),
                     "augment": args.augment, "teacher_seeds": args.teacher_seeds,
                     "distill_weight": args.distill_weight, "student_args": args.student_args,
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
                                   "n_ngram_rows": (report.get("ngrams") or {}).get("n_rows", 0),
                                   "seconds_in_graft": report["seconds"], "contextual": ctx,
                                   "tokens_per_s": ctx["tokens_per_s"] if ctx else None,
                                   "scale_factor": ctx["scale_factor"] if ctx else None}
        save()
        note(f"graft {name}: {_n_rows(results['grafts'][name])} rows in {wall:.1f}s wall, {rss:.0f} MB"
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
    # Model2Vec's own recipe in our graft (mean over specials too, unscaled): the like-for-like row
    m3e_word_out_raw = grafted("m3e output rows, jieba words (mean-all, unscaled)", g / "m3e-word-output-raw",
                               "--source", hf, "--level", "word", "--rows", "output", "--contextual-device", "cpu",
                               "--contextual-pool", "mean-all", "--contextual-scale-to", "none")
    # the same, pooled from the mean of the last three layers (chosen on dev among the last 1-4, 10 %)
    last3 = ("--source", hf, "--level", "word", "--rows", "output", "--contextual-device", "cpu",
             "--contextual-pool", "mean-all", "--contextual-scale-to", "none", "--contextual-last-k", "3")
    in_context = ("--contextual-context", "corpus")  # each row its mean over the training titles (labels unread)
    m3e_word_out_last3 = grafted("m3e output rows, jieba words (mean-all, unscaled, last 3 layers)",
                                 g / "m3e-word-output-raw-last3", *last3)
    m3e_word_ctx = grafted("m3e output rows in the titles' context, jieba words (unscaled, last 3 layers)",
                           g / "m3e-word-output-context", *last3, *in_context)
    # characters, and a bag+words table (chars, every bigram, jieba words) with every row run through the
    # encoder (the default pooling and scale): the output rows in the models the input rows go into
    m3e_char_out = grafted("m3e output rows, chars (scale-matched)", g / "m3e-char-output", "--source", hf,
                           "--rows", "output", "--contextual-device", "cpu")
    bigrams_out = ("--source", hf, "--rows", "output", "--contextual-device", "cpu", "--ngrams", "2",
                   "--ngram-min-count", "1")
    m3e_bag_out = grafted("m3e output rows, chars + bigrams + jieba words (scale-matched)", g / "m3e-bag-words-output",
                          *bigrams_out, "--words")
    m3e_bag_ctx = grafted("m3e output rows in the titles' context, chars + bigrams + jieba words (scale-matched)",
                          g / "m3e-bag-words-output-context", *bigrams_out, "--words", *in_context)
    m3e_bigram_ctx = grafted("m3e output rows in the titles' context, chars + bigrams (scale-matched)",
                             g / "m3e-bag-bigrams-output-context", *bigrams_out, *in_context)
    m2v_word = model2vec_distill(args.model2vec_python, hf, m3e_word_in, out, launch, results, note)
    if m2v_word is not None:
        # this run's labelled subset, written anew: a file left by a run at another --fraction is not it
        m2v_data = model2vec_data(args.fraction, out / "logs" / "m2v-data.json")
        m2v_word = grafted("Model2Vec distill, jieba words", g / "m2v-word", "--source", str(m2v_word),
                           "--level", "word")

    common = ["--train", str(SPLIT / "train.txt"), "--dev", str(SPLIT / "dev.txt"), "--test", str(SPLIT / "test.txt"),
              "--classes", str(SPLIT / "class.txt"), "--train-fraction", str(args.fraction), "--no-progress",
              "--tensorboard", "off", "--device", "cpu", "--force"]

    tfidf_json = out / "logs" / "tfidf.json"
    wall, rss = launch("tfidf", [sys.executable, "-c", _TFIDF, str(SPLIT), str(args.fraction), str(tfidf_json)])
    rows["TF-IDF + LinearSVC"] = {"accuracy": [json.loads(tfidf_json.read_text())["accuracy"]], "rss": rss}
    save()
    note(f"TF-IDF: {rows['TF-IDF + LinearSVC']['accuracy'][0]:.4f}")

    def wanted(name: str) -> bool:
        return args.only is None or any(text in name for text in args.only)

    def record(name: str, seed: int, accuracy: float, wall: float, rss: float) -> dict:
        """One seed of a row into ``results.json``; the row, for what only some rows have."""
        row = rows.setdefault(name, {"accuracy": [], "samples_per_s": [], "best_epoch": [], "rss": 0.0,
                                     "wall": [], "seeds": []})
        row["accuracy"].append(accuracy)
        row["wall"].append(wall)
        row["seeds"].append(seed)
        row["rss"] = max(row["rss"], rss)
        return row

    def trained(name: str, seed: int, run: Path, argv: list[str], *, needed: bool = False) -> bool:
        if not (needed or wanted(name)):
            return False
        wall, rss = launch(f"{run.name}", argv)
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        row = record(name, seed, metrics["test"]["accuracy"], wall, rss)
        row["samples_per_s"].append(metrics["samples_per_s"])
        if metrics.get("best_epoch") is not None:
            row["best_epoch"].append(metrics["best_epoch"])
        save()
        note(f"{name} (seed {seed}): test {metrics['test']['accuracy']:.4f}  {metrics['samples_per_s']:,.0f} "
             f"samples/s  best epoch {metrics.get('best_epoch')}  {rss:.0f} MB  {wall:.0f}s")
        return True

    def supervised(name: str, tag: str, config: str, graft: Path, seed: int, *extra: str) -> None:
        run = out / "runs" / f"{tag}-s{seed}"
        trained(name, seed, run, embgraft("train", "--config", str(CONFIGS / config), *common,
                                          *small_data(config, args.fraction), "--graft", str(graft),
                                          "--seed", str(seed), "--out", str(run), *extra))

    def student(name: str, tag: str, config: str, graft: Path, teachers: list[Path | None],
                seed: int) -> Path | None:
        run = out / "runs" / f"{tag}-s{seed}"
        return run if trained(name, seed, run, embgraft("train", "--config", str(CONFIGS / config), *common, "--graft",
                                          str(graft), "--seed", str(seed), "--patience", "6",
                                          "--teachers", ",".join(map(str, teachers)),
                                          "--distill-weight", str(args.distill_weight),
                                          "--unlabelled", str(SPLIT / "train.txt"), "--augment",
                                          str(args.augment), *shlex.split(args.student_args),
                                          "--out", str(run))) else None

    def predict(name: str, run: Path | None) -> None:
        if run is None:  # not trained in this run (--only)
            return
        result = out / "logs" / f"predict-{run.name}.json"
        launch(f"predict-{run.name}", [sys.executable, "-c", _PREDICT, str(run), str(SPLIT / "test.txt"), str(result)])
        results["predict_texts_per_s"][name] = json.loads(result.read_text())["texts_per_s"]
        save()
        note(f"predict {name}: {results['predict_texts_per_s'][name]:,.0f} texts/s")

    def m2v_classifier(seed: int) -> None:
        name = "Model2Vec classifier (its distill of m3e)"
        if not wanted(name):
            return
        result = out / "logs" / f"m2v-classifier-s{seed}.json"
        wall, rss = launch(f"m2v-classifier-s{seed}", [str(args.model2vec_python), "-c", _M2V_CLASSIFIER,
                                                     str(out / "m2v-distill"), str(m2v_data), str(seed), str(result)])
        r = json.loads(result.read_text())
        record(name, seed, r["accuracy"], wall, rss)
        if seed == 0:
            results["predict_texts_per_s"]["Model2Vec classifier"] = r["texts_per_s"]
        save()
        note(f"{name} (seed {seed}): test {r['accuracy']:.4f}  fit {r['fit_s']:.0f}s  predict "
             f"{r['texts_per_s']:,.0f} texts/s  {rss:.0f} MB")

    random = ["--random-init"]
    students = ("bag+words distilled, unlabelled text (Tencent chars)",
                "bag+words distilled, unlabelled text (m3e input chars)",
                "bag+bigrams distilled, unlabelled text (Tencent chars, no jieba)",
                "TextCNN+bigrams distilled, unlabelled text (m3e input chars)",
                "bag+words distilled, unlabelled text (m3e output rows)",
                "bag+words distilled, unlabelled text (m3e output rows in context)",
                "bag+bigrams distilled, unlabelled text (m3e output rows in context, no jieba)")

    hf_epochs = ["--epochs", str(args.hf_epochs)] if args.hf_epochs else []

    def teach(seed: int) -> Path | None:
        run = out / "runs" / f"hf-s{seed}"
        argv = embgraft("train", "--config", str(CONFIGS / "thucnews-hf-10pct.yaml"), *common, "--hf-model", hf,
                        "--seed", str(seed), "--out", str(run), *hf_epochs)
        return run if trained("m3e fine-tuned (teacher)", seed, run, argv, needed=any(map(wanted, students))) else None

    # --ensemble: every seed's teacher first, and every student learns from all of them
    n_teachers = args.teacher_seeds or args.seeds
    ensemble = [teach(seed) for seed in range(n_teachers)] if args.ensemble else None
    for seed in range(args.seeds):
        # the teacher first: the students of this seed learn from it (or from the ensemble)
        if ensemble is None:
            teacher = teach(seed)
            teachers = [teacher]
        else:  # this seed's own teacher only where one was trained (--teacher-seeds): predict times seed 0's
            teacher = ensemble[seed] if seed < n_teachers else None
            teachers = [t for t in ensemble if t]
        words_student = student(students[0], "student-bag-words", "thucnews-bag-words.yaml", tencent, teachers,
                                seed)
        m3e_student = student(students[1], "student-bag-words-m3e", "thucnews-bag-words.yaml", m3e_char, teachers,
                              seed)
        bigram_student = student(students[2], "student-bag-bigrams", "thucnews-bag-bigrams.yaml", tencent, teachers,
                                 seed)
        cnn_student = student(students[3], "student-textcnn-bigrams-m3e", "thucnews-textcnn-bigrams.yaml", m3e_char,
                              teachers, seed)
        out_student = student(students[4], "student-bag-words-m3e-output", "thucnews-bag-words.yaml", m3e_bag_out,
                              teachers, seed)
        ctx_student = student(students[5], "student-bag-words-m3e-output-context", "thucnews-bag-words.yaml",
                              m3e_bag_ctx, teachers, seed)
        ctx_bigram_student = student(students[6], "student-bag-bigrams-m3e-output-context",
                                     "thucnews-bag-bigrams.yaml", m3e_bigram_ctx, teachers, seed)
        if seed == 0:  # all in a row, in this run, on the same machine
            predict("teacher: m3e fine-tuned", teacher)
            predict("student: bag+words", words_student)
            predict("student: bag+words (m3e chars)", m3e_student)
            predict("student: bag+bigrams (no jieba)", bigram_student)
            predict("student: TextCNN+bigrams (m3e chars)", cnn_student)
            predict("student: bag+words (m3e output rows)", out_student)
            predict("student: bag+words (m3e output rows in context)", ctx_student)
            predict("student: bag+bigrams (m3e output rows in context, no jieba)", ctx_bigram_student)
        supervised("bag+words, Tencent chars", "bag-words-tencent", "thucnews-bag-words.yaml", tencent, seed)
        supervised("bag+words, m3e input chars", "bag-words-m3e-input", "thucnews-bag-words.yaml", m3e_char, seed)
        supervised("bag+words, m3e output rows", "bag-words-m3e-output", "thucnews-bag-words.yaml", m3e_bag_out,
                   seed)
        supervised("bag+words, m3e output rows in context", "bag-words-m3e-output-context",
                   "thucnews-bag-words.yaml", m3e_bag_ctx, seed)
        supervised("bag+words, random", "bag-words-random", "thucnews-bag-words.yaml", tencent, seed, *random)
        supervised("word bag, m3e input rows (composed)", "wordbag-m3e-input", "thucnews-bag.yaml", m3e_word_in, seed)
        supervised("word bag, m3e output rows", "wordbag-m3e-output", "thucnews-bag.yaml", m3e_word_out, seed)
        supervised("word bag, m3e input rows (composed), centred", "wordbag-m3e-input-centre", "thucnews-bag.yaml",
                   m3e_word_in_c, seed)
        supervised("word bag, m3e output rows, centred", "wordbag-m3e-output-centre", "thucnews-bag.yaml",
                   m3e_word_out_c, seed)
        supervised("word bag, m3e output rows (mean-all, unscaled)", "wordbag-m3e-output-raw", "thucnews-bag.yaml",
                   m3e_word_out_raw, seed)
        supervised("word bag, m3e output rows (mean-all, unscaled, last 3 layers)", "wordbag-m3e-output-raw-last3",
                   "thucnews-bag.yaml", m3e_word_out_last3, seed)
        supervised("word bag, m3e output rows in context (unscaled, last 3 layers)", "wordbag-m3e-output-context",
                   "thucnews-bag.yaml", m3e_word_ctx, seed)
        if m2v_word is not None:
            supervised("word bag, Model2Vec distill rows", "wordbag-m2v", "thucnews-bag.yaml", m2v_word, seed)
            m2v_classifier(seed)
        supervised("word bag, random", "wordbag-random", "thucnews-bag.yaml", m3e_word_in, seed, *random)
        supervised("char bag, Tencent chars", "charbag-tencent", "thucnews-bag.yaml", tencent, seed)
        supervised("char bag, m3e input rows", "charbag-m3e-input", "thucnews-bag.yaml", m3e_char, seed)
        supervised("char bag, random", "charbag-random", "thucnews-bag.yaml", tencent, seed, *random)
        supervised("TextCNN, Tencent chars", "textcnn-tencent", "thucnews-textcnn.yaml", tencent, seed)
        supervised("TextCNN, m3e input rows", "textcnn-m3e-input", "thucnews-textcnn.yaml", m3e_char, seed)
        supervised("TextCNN, m3e output rows", "textcnn-m3e-output", "thucnews-textcnn.yaml", m3e_char_out, seed)
        supervised("TextCNN, random", "textcnn-random", "thucnews-textcnn.yaml", tencent, seed, *random)
        # the order-aware models on the same three character sources: a 1-layer transformer (the kind of
        # model m3e's input rows were trained in) and a BiLSTM
        for model, config in (("Transformer", "thucnews-transformer.yaml"), ("BiLSTM", "thucnews-bilstm.yaml")):
            tag = model.lower()
            supervised(f"{model}, Tencent chars", f"{tag}-tencent", config, tencent, seed)
            supervised(f"{model}, m3e input rows", f"{tag}-m3e-input", config, m3e_char, seed)
            supervised(f"{model}, random", f"{tag}-random", config, tencent, seed, *random)
        note(f"seed {seed} done")

    summarise(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
