"""embgraft predict RUN "文本" ... | --input FILE [--output FILE] [--top-k K]"""

from __future__ import annotations

import argparse
import json
import sys

from embgraft.cli._common import add_corpus_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="a finished run directory (embgraft train --out)")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    p.add_argument("--input", metavar="FILE",
                   help="texts from a file: one per line, or a TSV/CSV/JSONL corpus (its text column)")
    add_corpus_arguments(p.add_argument_group("--input"))
    p.add_argument("--output", metavar="FILE", help="write TSV (text, label, probability, top-k JSON) here")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    p.add_argument("--top-k", type=int, default=1, help="labels shown per text (default 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="hf runs: allow code the run's encoder config names (off: a run never decides that)")


def run(args: argparse.Namespace) -> int:
    from embgraft.errors import ConfigError
    from embgraft.files import atomic_file, check_writable
    from embgraft.text.corpus import iter_texts
    from embgraft.training.classifier import Classifier

    if not args.texts and not args.input:
        raise ConfigError("give texts to classify, or --input FILE")
    if args.output:
        check_writable(args.output, force=args.force)
    clf = Classifier.load(args.run, device=args.device, trust_remote_code=args.trust_remote_code)
    texts = list(args.texts)
    if args.input:
        texts += list(iter_texts(args.input, fmt=args.corpus_format, text_column=args.text_column))
    results = clf.predict(texts, top_k=args.top_k)
    if args.output:
        with atomic_file(args.output, force=args.force) as f:
            f.write("text\tlabel\tprobability\ttop_k\n")
            for text, top in zip(texts, results):
                f.write(f"{text}\t{top[0][0]}\t{top[0][1]:.6f}\t"
                        f"{json.dumps([[lab, round(p, 6)] for lab, p in top], ensure_ascii=False)}\n")
        print(f"{len(texts):,} predictions -> {args.output}")
        return 0
    for text, top in zip(texts, results):
        shown = "  ".join(f"{lab} {p:.4f}" for lab, p in top)
        sys.stdout.write(f"{shown}\t{text}\n")
    return 0
