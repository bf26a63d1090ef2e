"""Benchmark (issue 18): ONNX export fp32 vs int8, the torch-free Predictor vs Classifier, and
``embgraft serve`` on loopback vs ``embgraft predict --input``, each beside its alternative in
the same run.

1. A run: ``--run RUN``, or a bigram bag trained here on the shared THUCNews split (2 epochs).
2. ``export --format onnx`` fp32 and ``--quantize int8``, both scored on the test file: size,
   accuracy of the run and of each export.
3. ``Predictor.predict_proba`` vs ``Classifier.predict_proba`` on the same test titles,
   alternately, best of 3: texts/s.
4. The fp32 export served on a free 127.0.0.1 port (loopback only); ``--requests`` POSTs of one
   title each from ``--clients`` threads: requests/s, p50/p99 latency; beside it
   ``embgraft predict EXPORT_RUN --input`` on the same titles (one process, wall time).

Usage: python bench/serve.py [--run RUN] [--requests 400] [--clients 8] [--texts 2000]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "thucnews-10k"


def train_run(tmp: Path) -> Path:
    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    vocab = Vocab.from_corpus(DATA / "train.txt", level="char")
    rng = np.random.default_rng(0)
    tokens = [t for t in vocab.tokens[2:] if not any(c.isspace() for c in t)]
    rows = [f"{t} " + " ".join(f"{x:.4f}" for x in rng.normal(size=64)) for t in tokens]
    (tmp / "vectors.txt").write_text(f"{len(rows)} 64\n" + "\n".join(rows) + "\n", encoding="utf-8")
    graft(vocab, str(tmp / "vectors.txt")).save(tmp / "graft")
    cfg = TrainConfig(train=str(DATA / "train.txt"), dev=str(DATA / "dev.txt"), classes=str(DATA / "class.txt"),
                      graft=str(tmp / "graft"), model="bag", ngrams=2, epochs=2, lr=0.05, patience=None,
                      tensorboard="off")
    return train(cfg, out=tmp / "run", progress=False, log=lambda *a, **k: None).out


def rate(fn, texts, reps=3) -> float:
    best = min(_timed(fn, texts) for _ in range(reps))
    return len(texts) / best


def _timed(fn, texts) -> float:
    t = time.perf_counter()
    fn(texts)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--texts", type=int, default=2000)
    args = ap.parse_args()
    from embgraft.export.onnx import OnnxExportConfig, export_onnx
    from embgraft.export.predictor import Predictor
    from embgraft.serve.app import ServeConfig, create_app
    from embgraft.training.classifier import Classifier

    tmp = Path(tempfile.mkdtemp(prefix="embgraft-bench-serve-"))
    run = Path(args.run) if args.run else train_run(tmp)
    labelled = tmp / "test.tsv"
    lines = (DATA / "test.txt").read_text(encoding="utf-8").splitlines()[: args.texts]
    labelled.write_text("\n".join(lines) + "\n", encoding="utf-8")
    texts = [ln.split("\t")[0] for ln in lines]

    print("export            size (bytes)   accuracy   change vs run   max |dp|")
    for q in (None, "int8"):
        meta = export_onnx(run, tmp / f"export-{q or 'fp32'}", OnnxExportConfig(quantize=q, labelled=str(labelled)))
        a = meta["accuracy"]
        print(f"{q or 'fp32':<16} {meta['size_bytes']:>13,}   {a['export']:.4f}     {a['change']:+.4f}"
              f"         {a['max_abs_proba_diff']:.2e}   (run: {a['run']:.4f})")

    clf, pred = Classifier.load(run), Predictor.load(tmp / "export-fp32")
    pred8 = Predictor.load(tmp / "export-int8")
    r_clf, r_pred, r_pred8 = (rate(clf.predict_proba, texts), rate(pred.predict_proba, texts),
                              rate(pred8.predict_proba, texts))
    print(f"\n{len(texts):,} titles: Classifier (torch) {r_clf:,.0f} texts/s | Predictor fp32 {r_pred:,.0f} texts/s "
          f"| Predictor int8 {r_pred8:,.0f} texts/s")

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(tmp / "export-fp32", ServeConfig())
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/predict"
    asked = [texts[i % len(texts)] for i in range(args.requests)]

    def one(text: str) -> float:
        body = json.dumps({"texts": [text]}).encode()
        t = time.perf_counter()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
        return time.perf_counter() - t

    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        lat = np.array(list(pool.map(one, asked)))
    wall = time.perf_counter() - start
    batches = app.state.batcher.n_batches
    srv.should_exit = True
    thread.join(timeout=10)

    (tmp / "asked.txt").write_text("\n".join(asked) + "\n", encoding="utf-8")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "embgraft", "predict", str(run), "--input", str(tmp / "asked.txt"),
                    "--output", str(tmp / "pred.tsv")], check=True, capture_output=True)
    cli = time.perf_counter() - t
    print(f"\nserve (fp32 export, {args.clients} clients, {args.requests} requests of 1 title, loopback): "
          f"{args.requests / wall:,.0f} requests/s, p50 {np.percentile(lat, 50) * 1000:.1f} ms, "
          f"p99 {np.percentile(lat, 99) * 1000:.1f} ms, {batches} model calls")
    print(f"embgraft predict --input (same {args.requests} titles, one process incl. start-up): {cli:.2f} s "
          f"= {args.requests / cli:,.0f} texts/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
