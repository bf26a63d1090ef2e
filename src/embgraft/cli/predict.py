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
    p.add_argument("--output", metavar="FILE",
                   help="write the predictions here: TSV (line, text, label, probability, top-k JSON; tabs and "
                        "newlines escaped), or JSONL for a .jsonl path; one row per input row, a blank input "
                        "line as a row without a label")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    p.add_argument("--top-k", type=int, default=1,
                   help="labels shown per text (default 1); a multi-label run shows every label at or above its "
                        "threshold instead")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="hf runs: allow code the run's encoder config names (off: a run never decides that)")


def run(args: argparse.Namespace) -> int:
    from embgraft.errors import ConfigError, MalformedFileError
    from embgraft.files import FILE, check_writable
    from embgraft.text.corpus import detect_format, iter_records
    from embgraft.training.classifier import Classifier

    if not args.texts and not args.input:
        raise ConfigError("give texts to classify, or --input FILE")
    for i, text in enumerate(args.texts, 1):
        if not text.strip():
            raise ConfigError(f"text {i} is empty: there is nothing to classify (training refuses empty texts too)")
    if args.output:
        check_writable(args.output, force=args.force, kind=FILE, inputs=(args.run, args.input))
    rows: list[tuple[int | None, str | None]] = [(None, t) for t in args.texts]  # (input line, text or None: blank)
    if args.input:
        fmt = detect_format(args.input, args.corpus_format)
        records = [(line, text) for line, text, _ in iter_records(args.input, fmt=fmt, text_column=args.text_column)]
        if not records:
            raise MalformedFileError(args.input, None, "holds no text to classify")
        if fmt == "text":  # one row per input line: blank lines keep theirs, marked
            by_line = dict(records)
            with open(args.input, "rb") as f:
                n_lines = sum(1 for _ in f)
            records = [(n, by_line.get(n)) for n in range(1, n_lines + 1)]
        rows += [(n, text if text is not None and text.strip() else None) for n, text in records]
    clf = Classifier.load(args.run, device=args.device, trust_remote_code=args.trust_remote_code)
    found = iter(clf.predict([t for _, t in rows if t is not None], top_k=args.top_k))
    results = [None if t is None else next(found) for _, t in rows]
    if args.output:
        _write(args.output, rows, results, force=args.force, multi_label=clf.multi_label)
        print(f"{sum(r is not None for r in results):,} predictions, {sum(r is None for r in results):,} blank "
              f"lines kept as rows -> {args.output}")
        return 0
    for (_, text), top in zip(rows, results):
        shown = ("(blank line)" if top is None else "  ".join(f"{lab} {p:.4f}" for lab, p in top)
                 or "(no label at its threshold)")
        sys.stdout.write(f"{shown}\t{escape(text or '')}\n")
    return 0


def escape(text: str) -> str:
    from embgraft.files import escape_field

    return escape_field(text)


def _write(path: str, rows, results, *, force: bool, multi_label: bool = False) -> None:
    """TSV (fields escaped as ``\\t \\n \\\\``), or JSONL for a ``.jsonl``/``.json`` path: one row
    per input row, a blank input line as a row with no label. Multi-label: ``labels`` (JSONL) or
    the label column (TSV, ``a|b``) holds every label at its threshold, most probable first."""
    from embgraft.files import atomic_file

    jsonl = path.lower().endswith((".jsonl", ".json"))
    with atomic_file(path, force=force) as f:
        if not jsonl:
            f.write(("text\tlabels\tprobabilities\tpairs\n" if multi_label else "text\tlabel\tprobability\ttop_k\n"))
        for (line, text), top in zip(rows, results):
            pairs = [] if top is None else [[lab, round(p, 6)] for lab, p in top]
            if multi_label:
                if jsonl:
                    blank = top is None  # a blank input line: no labels at all, not an empty set
                    f.write(json.dumps({"line": line, "text": text or "",
                                        "labels": None if blank else [lab for lab, _ in pairs],
                                        "probabilities": None if blank else [p for _, p in pairs]},
                                       ensure_ascii=False) + "\n")
                else:
                    f.write(f"{escape(text or '')}\t{'|'.join(lab for lab, _ in pairs)}\t"
                            f"{'|'.join(str(p) for _, p in pairs)}\t{json.dumps(pairs, ensure_ascii=False)}\n")
                continue
            if jsonl:
                f.write(json.dumps({"line": line, "text": text or "", "label": pairs[0][0] if pairs else None,
                                    "probability": pairs[0][1] if pairs else None, "top_k": pairs},
                                   ensure_ascii=False) + "\n")
            else:
                f.write(f"{escape(text or '')}\t{pairs[0][0] if pairs else ''}\t{pairs[0][1] if pairs else ''}\t"
                        f"{json.dumps(pairs, ensure_ascii=False)}\n")
