"""Benchmark: classifiers trained on a grafted embedding, against random init and two peers.

On the shared THUCNews split (``../shared/data/thucnews-10k``: 9k train / 1k dev / 10k test
headlines, 10 classes), with the shared Tencent character vectors grafted at character level
once (``embgraft graft``, cached in the output folder), this runs in one go:

* every model of ``configs/thucnews-*.yaml`` (bag, bag with character bigrams seen twice or
  more, bag with every bigram, the same with jieba words and mean+max pooling, that bag distilled
  from its own seeds' runs, textcnn, textcnn with a bigram bag branch, bilstm, transformer),
  grafted and from random init
  (``random_init``), over several seeds, on the
  whole training split and on a stratified 10 % of it (``train_fraction=0.1``, 900 titles);
* the peers, on the same texts: TF-IDF character 1-2-grams + LinearSVC (C=1, scikit-learn),
  and fastText supervised (characters + bigrams, 25 epochs, lr 0.5, bucket 200k; initialised from
  the same Tencent file and at random) when ``fasttext`` (``pip install fasttext-wheel``) imports;
* TextCNN's three convolutions alone (200->256 channels, widths 2/3/4, length 32, batch 128,
  forward + backward, fp32), the yardstick for the TextCNN's own training speed.

Each training run (a model x init x data size x seed; a fastText seed; TF-IDF; the convolutions)
runs as its own child process, started by ``_measure.run_child``, so its peak RSS is its own; a
configuration's peak RSS is the largest of its seeds'.
Hyperparameters are those of the config files, chosen on dev; test accuracy is read only here.
Speeds are training samples per second of training time (evaluation excluded), and the
TextCNN's is reported as a ratio of its convolutions' speed measured in the same run.

Prints a markdown table and the targets of issue 6 (met / not met), writes ``results.json``.
Exit status 1 when a target is not met. Run from the repository root::

    .venv/bin/python bench/train.py [--quick] [--out DIR] [--data DIR] [--seeds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _measure import run_child

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
SPLIT = "thucnews-10k"
VECTORS = "pretrained/tencent-char-200d.txt"

# (row name, config file). bag+bigrams keeps bigrams seen twice (the lean one the speed and
# memory targets are about); bag+all-bigrams keeps every bigram (the most accurate on dev);
# bag+words adds jieba words and max pooling beside the mean; textcnn+bigrams is the TextCNN
# with a bag branch over its character and bigram rows
MODELS = [
    ("bag", "thucnews-bag.yaml"),
    ("bag+bigrams", "thucnews-bag-bigrams.yaml"),
    ("bag+all-bigrams", "thucnews-bag-bigrams-all.yaml"),
    ("bag+words", "thucnews-bag-words.yaml"),
    ("bag+words+kd", "thucnews-bag-words-kd.yaml"),
    ("textcnn", "thucnews-textcnn.yaml"),
    ("textcnn+bigrams", "thucnews-textcnn-bigrams.yaml"),
    ("bilstm", "thucnews-bilstm.yaml"),
    ("transformer", "thucnews-transformer.yaml"),
]
HEAVY = ("bilstm", "transformer")  # --heavy-seeds applies to these
# a distilled row learns from every seed's run of its teacher row (same init, same data size),
# which therefore runs first
TEACHER_ROWS = {"bag+words+kd": "bag+words"}
TEXTCNNS = ("textcnn", "textcnn+bigrams")
FRACTIONS = (1.0, 0.1)
SMALL_FRACTION = 0.1
# 900 titles are 4-8 steps an epoch: the small runs get 3x the epochs and 3x the patience of the
# config (still stopped early on dev), so they see enough updates and do not stop on noise
SMALL_DATA_FACTOR = 3

# fastText as the issue ran it
FASTTEXT = dict(dim=200, epoch=25, lr=0.5, wordNgrams=2, bucket=200_000, minCount=1, loss="softmax")
CONV = dict(batch=128, length=32, dim=200, channels=256, widths=(2, 3, 4))

TARGETS = {
    "best_test_accuracy": (">=", 0.875, "test accuracy (seed mean) of the embgraft configuration best on dev"),
    "best_above_every_peer": (">", 0.0, "that accuracy minus the best peer's"),
    "textcnn_grafted_accuracy": (">=", 0.845, "grafted textcnn test accuracy (seed mean; the textcnn row best on dev)"),
    "bag_gain_at_10pct": (">=", 0.03, "10 % data: grafted minus random test accuracy, bag"),
    "textcnn_gain_at_10pct": (">=", 0.03, "10 % data: grafted minus random test accuracy, textcnn"),
    "textcnn_speed_vs_convs": (">=", 0.75, "textcnn training samples/s / its three convolutions' fwd+bwd samples/s"),
    "bag_samples_per_s": (">=", 50_000, "bag training samples/s (grafted, full data)"),
    "bigram_bag_samples_per_s": (">=", 25_000, "bag+bigrams training samples/s (grafted, full data)"),
    "max_peak_rss_mb": ("<=", 500, "largest peak RSS of the bag, bag+bigrams and that textcnn's runs (MB)"),
}


# --- children: each runs in its own process ----------------------------------------------------


def child_embgraft(spec: dict) -> dict:
    """Train one configuration for each seed; return per-seed metrics."""
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    runs = []
    for seed in spec["seeds"]:
        cfg = TrainConfig.from_sources(file=spec["config"], overrides={**spec["overrides"], "seed": seed})
        out = train(cfg, out=Path(spec["out"]) / f"seed{seed}", force=True, progress=False, log=lambda *a, **k: None)
        m = out.metrics
        runs.append({"seed": seed, "test_accuracy": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
                     "dev_accuracy": m["dev"]["accuracy"], "samples_per_s": m["samples_per_s"],
                     "train_seconds": m["train_seconds"], "epochs_run": m["epochs_run"], "best_epoch": m["best_epoch"],
                     "first_epoch_samples_per_s": out.history[0]["samples_per_s"],
                     "later_epochs_samples_per_s": _later_speed(out.history)})
    import torch

    return {"runs": runs, "threads": torch.get_num_threads()}


def _later_speed(history: list[dict]) -> float | None:
    """Samples/s of epochs 2.. (the first one also pays for one-off kernel set-up)."""
    later = history[1:]
    if not later:
        return None
    return sum(r["samples_per_s"] * r["seconds"] for r in later) / sum(r["seconds"] for r in later)


def child_convs(spec: dict) -> dict:
    """TextCNN's three convolutions alone: fwd + bwd samples/s, with and without the gradient
    to their input (a fine-tuned embedding needs it, so the TextCNN pays for it)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    c = CONV
    convs = nn.ModuleList(nn.Conv1d(c["dim"], c["channels"], k) for k in c["widths"])
    x = torch.randn(c["batch"], c["dim"], c["length"])
    out = {"threads": torch.get_num_threads()}
    for name, need_input_grad in (("with_input_grad", True), ("weights_only", False)):
        xx = x.clone().requires_grad_(need_input_grad)

        def step():
            for conv in convs:
                conv.zero_grad(set_to_none=True)
            sum(conv(xx).sum() for conv in convs).backward()

        for _ in range(3):  # oneDNN builds its primitives on first use
            step()
        best = 0.0
        for _ in range(spec["repeats"]):  # the best of several rounds: the least disturbed one
            t = time.perf_counter()
            for _ in range(spec["steps"]):
                step()
            best = max(best, spec["steps"] * c["batch"] / (time.perf_counter() - t))
        out[name] = best
    return out


def _read_split(data: Path, fraction: float):
    from embgraft.training.data import LabelSet, read_examples, stratified_subset

    root = data / SPLIT
    labels = LabelSet.load(root / "class.txt")
    train = stratified_subset(read_examples(root / "train.txt"), fraction, seed=0)  # the same 900 as embgraft's
    test = read_examples(root / "test.txt")
    ids = lambda ex: [labels.id_of(y) for y in ex.labels]  # noqa: E731
    return train.texts, ids(train), test.texts, ids(test)


def child_sklearn(spec: dict) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    x_train, y_train, x_test, y_test = _read_split(Path(spec["data"]), spec["fraction"])
    runs = []
    for seed in spec["seeds"]:
        clf = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 2)),
                            LinearSVC(C=1.0, random_state=seed))
        t = time.perf_counter()
        clf.fit(x_train, y_train)
        seconds = time.perf_counter() - t
        acc = _accuracy(clf.predict(x_test), y_test)
        runs.append({"seed": seed, "test_accuracy": acc, "samples_per_s": len(x_train) / seconds,
                     "train_seconds": seconds})
    return {"runs": runs}


def _accuracy(pred, gold) -> float:
    return sum(int(p) == int(g) for p, g in zip(pred, gold)) / len(gold)


def _fasttext_line(text: str) -> str:
    # characters as fastText "words" (whitespace dropped: the Tencent file has no space token);
    # fastText's wordNgrams=2 then adds the character bigrams
    return " ".join(ch for ch in text if not ch.isspace())


def child_fasttext(spec: dict) -> dict:
    import fasttext

    x_train, y_train, x_test, y_test = _read_split(Path(spec["data"]), spec["fraction"])
    work = Path(spec["out"])
    work.mkdir(parents=True, exist_ok=True)
    train_file = work / "train.txt"
    train_file.write_text("".join(f"__label__{y} {_fasttext_line(t)}\n" for t, y in zip(x_train, y_train)),
                          encoding="utf-8")
    test_lines = [_fasttext_line(t) for t in x_test]
    params = {**FASTTEXT, "epoch": spec["epochs"], "thread": spec["threads"], "verbose": 0}
    if spec["pretrained"]:
        params["pretrainedVectors"] = spec["pretrained"]
    runs = []
    for seed in spec["seeds"]:
        t = time.perf_counter()
        model = fasttext.train_supervised(input=str(train_file), seed=seed, **params)
        seconds = time.perf_counter() - t
        # fasttext-wheel 0.9.2's Python predict() calls np.array(..., copy=False), which numpy 2
        # refuses; the C++ binding it wraps returns plain lists
        labels, _ = model.f.multilinePredict(test_lines, 1, 0.0, "strict")
        pred = [int(lab[0].replace("__label__", "")) if lab else -1 for lab in labels]
        runs.append({"seed": seed, "test_accuracy": _accuracy(pred, y_test),
                     "samples_per_s": len(x_train) * spec["epochs"] / seconds, "train_seconds": seconds})
    return {"runs": runs, "threads": spec["threads"]}


CHILDREN = {"embgraft": child_embgraft, "convs": child_convs, "sklearn": child_sklearn, "fasttext": child_fasttext}


# --- the parent --------------------------------------------------------------------------------


def ensure_graft(data: Path, out: Path) -> Path:
    """The graft of the train split's characters, made once and reused."""
    graft = out / "graft-char"
    if not (graft / "embedding.safetensors").exists():
        subprocess.run([sys.executable, "-m", "embgraft", "graft", "--source", str(data / VECTORS),
                        "--corpus", str(data / SPLIT / "train.txt"), "--level", "char", "--no-progress",
                        "--out", str(graft), "--force"], check=True, env=_child_env())
    return graft


def _child_env() -> dict:
    # the children import this checkout's embgraft, whatever is installed in the environment
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def launch(kind: str, spec: dict, out: Path, name: str, *, reuse: bool = False) -> dict:
    """Run ``CHILDREN[kind](spec)`` in its own process; add its wall time and peak RSS.

    ``reuse``: a configuration already measured in ``out`` with the same spec is read back
    instead of run again (to finish an interrupted benchmark)."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = logs / f"{name}.spec.json", logs / f"{name}.result.json"
    rusage_path = (logs / f"{name}.log").with_suffix(".rusage.json")
    if reuse and result_path.exists() and rusage_path.exists() and spec_path.exists() and \
            json.loads(spec_path.read_text(encoding="utf-8")) == json.loads(json.dumps(spec)):
        result = json.loads(result_path.read_text(encoding="utf-8"))
        usage = json.loads(rusage_path.read_text(encoding="utf-8"))
        result.update(wall=usage["wall"], peak_rss_mb=usage["maxrss_kb"] / 1024.0, reused=True)
        return result
    spec_path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    os.environ.update({k: v for k, v in _child_env().items() if k == "PYTHONPATH"})
    wall, rss, output, code = run_child([sys.executable, str(Path(__file__).resolve()), "--child", kind,
                                         str(spec_path), str(result_path)], log=logs / f"{name}.log")
    if code != 0 or not result_path.exists():
        tail = "\n".join(output.strip().splitlines()[-15:])
        return {"error": f"exit {code}", "log_tail": tail, "wall": wall, "peak_rss_mb": rss}
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result.update(wall=wall, peak_rss_mb=rss)
    return result


def launch_seeds(kind: str, spec: dict, out: Path, name: str, *, reuse: bool = False) -> dict:
    """``launch`` once per seed of ``spec["seeds"]``, each in its own process, merged: the runs
    of every seed, the sum of their wall times, and the largest of their peak RSS.

    One process per training run, as ``embgraft train`` is used and as the issue measured its
    peers: seeds run one after another in one process peaked higher than each alone, since part
    of what an earlier seed used stays with the process (textcnn+bigrams: 524 MB for three
    seeds in one process; fastText: 590 MB, against 313 MB for one seed)."""
    merged: dict = {"runs": []}
    for seed in spec["seeds"]:
        res = launch(kind, {**spec, "seeds": [seed]}, out, f"{name}-seed{seed}", reuse=reuse)
        if "error" in res:
            return res
        merged["runs"] += res["runs"]
        merged["threads"] = res.get("threads")
        merged["wall"] = merged.get("wall", 0.0) + res["wall"]
        merged["peak_rss_mb"] = max(merged.get("peak_rss_mb", 0.0), res["peak_rss_mb"])
        merged["reused"] = merged.get("reused", True) and res.get("reused", False)
    return merged


def summarise(result: dict) -> dict:
    """Mean and sample sd over seeds of the per-seed numbers."""
    runs = result.get("runs") or []
    out = {"n_seeds": len(runs), "peak_rss_mb": result.get("peak_rss_mb"), "wall": result.get("wall")}
    for key in ("test_accuracy", "dev_accuracy", "samples_per_s", "first_epoch_samples_per_s",
                "later_epochs_samples_per_s", "epochs_run"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        if vals:
            out[key] = statistics.fmean(vals)
            out[key + "_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return out


def _fmt_acc(s: dict | None) -> str:
    if not s or "test_accuracy" not in s:
        return "—"
    return f"{s['test_accuracy']:.4f} ± {s['test_accuracy_sd']:.4f}"


def _fmt_speed(s: dict | None) -> str:
    return "—" if not s or "samples_per_s" not in s else f"{s['samples_per_s']:,.0f}"


def _fmt_rss(s: dict | None) -> str:
    return "—" if not s or s.get("peak_rss_mb") is None else f"{s['peak_rss_mb']:.0f}"


def table(rows: dict, seeds: int) -> str:
    head = ("| system | init | test acc, full (mean ± sd) | samples/s | peak RSS MB | "
            "test acc, 10 % | samples/s | peak RSS MB |")
    lines = [head, "|" + "---|" * 8]
    for (system, init), by_fraction in rows.items():
        full, small = by_fraction.get(1.0), by_fraction.get(SMALL_FRACTION)
        lines.append(f"| {system} | {init} | {_fmt_acc(full)} | {_fmt_speed(full)} | {_fmt_rss(full)} | "
                     f"{_fmt_acc(small)} | {_fmt_speed(small)} | {_fmt_rss(small)} |")
    return "\n".join(lines)


def check_targets(rows: dict, convs: dict) -> dict:
    def get(system, init, fraction=1.0):
        return rows.get((system, init), {}).get(fraction) or {}

    got: dict[str, float | None] = {}
    embgraft = {k: v[1.0] for k, v in rows.items() if k[0] in dict(MODELS) and v.get(1.0, {}).get("dev_accuracy")}
    if embgraft:
        best = max(embgraft, key=lambda k: embgraft[k]["dev_accuracy"])  # chosen on dev, never on test
        got["best_test_accuracy"] = embgraft[best]["test_accuracy"]
        got["best_configuration"] = f"{best[0]} ({best[1]})"
        peers = [v[1.0]["test_accuracy"] for k, v in rows.items()
                 if k[0] not in dict(MODELS) and v.get(1.0, {}).get("test_accuracy") is not None]
        got["best_above_every_peer"] = got["best_test_accuracy"] - max(peers) if peers else None
    # the TextCNN targets are judged on the textcnn configuration (plain, or with its bag
    # branch) best on dev, grafted, full data; the table shows both
    cnns = [m for m in TEXTCNNS if get(m, "grafted").get("dev_accuracy") is not None]
    cnn_row = max(cnns, key=lambda m: get(m, "grafted")["dev_accuracy"]) if cnns else "textcnn"
    got["textcnn_configuration"] = cnn_row
    got["textcnn_grafted_accuracy"] = get(cnn_row, "grafted").get("test_accuracy")
    for model, key in (("bag", "bag_gain_at_10pct"), (cnn_row, "textcnn_gain_at_10pct")):
        g, r = get(model, "grafted", SMALL_FRACTION), get(model, "random", SMALL_FRACTION)
        got[key] = g["test_accuracy"] - r["test_accuracy"] if "test_accuracy" in g and "test_accuracy" in r else None
    cnn = get(cnn_row, "grafted").get("samples_per_s")
    conv = convs.get("with_input_grad")
    got["textcnn_speed_vs_convs"] = cnn / conv if cnn and conv else None
    got["bag_samples_per_s"] = get("bag", "grafted").get("samples_per_s")
    got["bigram_bag_samples_per_s"] = get("bag+bigrams", "grafted").get("samples_per_s")
    rss = [get(m, "grafted").get("peak_rss_mb") for m in ("bag", "bag+bigrams", cnn_row)]
    got["max_peak_rss_mb"] = max(rss) if all(r is not None for r in rss) else None
    report = {}
    for key, (op, target, what) in TARGETS.items():
        v = got.get(key)
        met = None if v is None else (v >= target if op == ">=" else v > target if op == ">" else v <= target)
        report[key] = {"value": v, "target": f"{op} {target}", "met": met, "what": what}
    report["best_test_accuracy"]["configuration"] = got.get("best_configuration")
    for key in ("textcnn_grafted_accuracy", "textcnn_gain_at_10pct", "textcnn_speed_vs_convs"):
        report[key]["configuration"] = got["textcnn_configuration"]
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, few epochs: a smoke test, not figures")
    p.add_argument("--out", type=Path, default=REPO / "bench-train-out", help="runs, logs, results.json")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 3, quick 1)")
    p.add_argument("--models", default=",".join(m for m, _ in MODELS), help="comma-separated rows to run")
    p.add_argument("--heavy-seeds", type=int, default=None,
                   help="seeds for bilstm and transformer, the slow ones (default: --seeds)")
    p.add_argument("--heavy-threads", type=int, default=None,
                   help="torch threads for bilstm and transformer (default: PyTorch's; 1 copes better with a "
                        "machine shared with other work)")
    p.add_argument("--resume", action="store_true",
                   help="read back configurations already measured in --out with the same spec")
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--child", nargs=3, metavar=("KIND", "SPEC", "RESULT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, spec_path, result_path = args.child
        result = CHILDREN[kind](json.loads(Path(spec_path).read_text(encoding="utf-8")))
        Path(result_path).write_text(json.dumps(result), encoding="utf-8")
        return 0

    data, out = args.data.resolve(), args.out.resolve()
    if not (data / SPLIT / "train.txt").exists():
        raise SystemExit(f"no {SPLIT} split under {data} (--data)")
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    wanted = [m for m in args.models.split(",") if m]
    started = time.perf_counter()

    def note(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", flush=True)

    graft = ensure_graft(data, out)
    root = data / SPLIT
    common = dict(train=str(root / "train.txt"), dev=str(root / "dev.txt"), test=str(root / "test.txt"),
                  classes=str(root / "class.txt"), graft=str(graft), tensorboard="off", device="cpu")
    results: dict = {"embgraft": {}, "peers": {}, "seeds": seeds, "quick": args.quick}

    convs = launch("convs", {"steps": 3 if args.quick else 10, "repeats": 2 if args.quick else 5}, out, "convs",
                   reuse=args.resume)
    results["convs"] = convs
    note(f"TextCNN's convolutions alone: {convs.get('with_input_grad', 0):,.0f} samples/s fwd+bwd "
         f"({convs.get('weights_only', 0):,.0f} without the input gradient)")

    rows: dict = {}
    specs: dict = {}
    from embgraft.training.config import read_config_file

    for name, config_file in MODELS:
        if name not in wanted:
            continue
        config_path = REPO / "configs" / config_file
        file_values = read_config_file(config_path)
        base_epochs, base_patience = file_values.get("epochs", 10), file_values.get("patience", 3)
        for fraction in FRACTIONS:
            for init in ("grafted", "random"):
                factor = SMALL_DATA_FACTOR if fraction < 1 else 1
                overrides = dict(common, train_fraction=fraction, random_init=init == "random",
                                 epochs=base_epochs * factor,
                                 patience=None if base_patience is None else base_patience * factor)
                if args.quick:
                    overrides["epochs"] = 2
                tag = f"{name}-{init}-{int(fraction * 100)}pct"
                run_seeds = seeds[: args.heavy_seeds] if name in HEAVY and args.heavy_seeds else seeds
                if name in HEAVY and args.heavy_threads:
                    overrides["threads"] = args.heavy_threads
                spec = {"config": str(config_path), "overrides": overrides, "seeds": run_seeds,
                        "out": str(out / "runs" / tag)}
                if name in TEACHER_ROWS:
                    teacher_tag = tag.replace(name, TEACHER_ROWS[name], 1)
                    if teacher_tag not in results["embgraft"] or "error" in results["embgraft"][teacher_tag]:
                        note(f"{tag}: left out, its teachers ({teacher_tag}) did not run")
                        continue
                    overrides["teachers"] = [str(out / "runs" / teacher_tag / f"seed{s}") for s in seeds]
                    spec["teacher_spec"] = specs[teacher_tag]  # --resume reruns the row when its teachers change
                specs[tag] = spec
                res = launch_seeds("embgraft", spec, out, tag, reuse=args.resume)
                results["embgraft"][tag] = res
                s = summarise(res)
                rows.setdefault((name, init), {})[fraction] = s
                note(f"{tag}: " + (f"test {_fmt_acc(s)}  dev {s.get('dev_accuracy', 0):.4f}  "
                                   f"{_fmt_speed(s)} samples/s  {_fmt_rss(s)} MB  {s.get('wall', 0):.0f}s wall"
                                   if "error" not in res else f"FAILED {res['error']}\n{res['log_tail']}"))

    if not args.no_peers:
        for fraction in FRACTIONS:
            tag = f"tfidf-svm-{int(fraction * 100)}pct"
            res = launch("sklearn", {"data": str(data), "fraction": fraction, "seeds": seeds}, out, tag,
                         reuse=args.resume)
            results["peers"][tag] = res
            s = summarise(res)
            rows.setdefault(("TF-IDF char 1-2 + LinearSVC", "—"), {})[fraction] = s
            note(f"{tag}: test {_fmt_acc(s)}  {_fmt_speed(s)} samples/s  {_fmt_rss(s)} MB"
                 if "error" not in res else f"{tag}: FAILED {res['error']}\n{res['log_tail']}")
        try:
            import fasttext  # noqa: F401

            have_fasttext = True
        except ImportError:
            have_fasttext = False
            note("fastText not installed (pip install fasttext-wheel): its rows are left out")
        for fraction in FRACTIONS if have_fasttext else ():
            for init in ("grafted", "random"):
                tag = f"fasttext-{init}-{int(fraction * 100)}pct"
                spec = {"data": str(data), "fraction": fraction, "seeds": seeds, "out": str(out / "runs" / tag),
                        "epochs": 5 if args.quick else FASTTEXT["epoch"], "threads": os.cpu_count() or 1,
                        "pretrained": str(data / VECTORS) if init == "grafted" else None}
                res = launch_seeds("fasttext", spec, out, tag, reuse=args.resume)
                results["peers"][tag] = res
                s = summarise(res)
                rows.setdefault(("fastText chars+bigrams", init), {})[fraction] = s
                note(f"{tag}: test {_fmt_acc(s)}  {_fmt_speed(s)} samples/s  {_fmt_rss(s)} MB"
                     if "error" not in res else f"{tag}: FAILED {res['error']}\n{res['log_tail']}")

    targets = check_targets(rows, convs)
    results["summary"] = {f"{k[0]} | {k[1]} | {int(f * 100)}%": v for k, by in rows.items() for f, v in by.items()}
    results["targets"] = targets
    results["wall_seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")

    print()
    print(f"## THUCNews-10k, {len(seeds)} seed(s){' (QUICK: not figures)' if args.quick else ''}")
    print()
    print(table(rows, len(seeds)))
    print()
    for name in TEXTCNNS:
        cnn = rows.get((name, "grafted"), {}).get(1.0, {})
        if cnn.get("samples_per_s") and convs.get("with_input_grad"):
            print(f"{name} trains at {cnn['samples_per_s'] / convs['with_input_grad']:.2f}x its three convolutions' "
                  f"fwd+bwd speed measured in this run ({cnn['samples_per_s'] / convs['weights_only']:.2f}x of "
                  "their speed without the gradient to their input)")
    print()
    print("Training speed, grafted, full data (samples/s over all epochs; the first epoch also pays "
          "for one-off set-up):")
    print()
    print("| model | samples/s | first epoch | later epochs | epochs run (mean) | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for name, _ in MODELS:
        s = rows.get((name, "grafted"), {}).get(1.0)
        if s and "samples_per_s" in s:
            later = s.get("later_epochs_samples_per_s")
            print(f"| {name} | {s['samples_per_s']:,.0f} | {s.get('first_epoch_samples_per_s', 0):,.0f} | "
                  f"{'—' if later is None else f'{later:,.0f}'} | {s.get('epochs_run', 0):.1f} | {_fmt_rss(s)} |")
    print()
    print("| target | value | required | met |")
    print("|---|---|---|---|")
    for key, t in targets.items():
        v = t["value"]
        shown = "—" if v is None else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4f}"
        extra = f" ({t['configuration']})" if t.get("configuration") else ""
        print(f"| {t['what']}{extra} | {shown} | {t['target']} | {'—' if t['met'] is None else 'yes' if t['met'] else 'NO'} |")
    print(f"\n{time.perf_counter() - started:.0f}s; results in {out / 'results.json'}")
    return 0 if all(t["met"] for t in targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
