"""embgraft evaluate RUN --data FILE [--out DIR]"""

from __future__ import annotations

import argparse

from embgraft.cli._common import add_corpus_arguments
from embgraft.training.data import ON_BAD_ROW


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="a finished run directory (embgraft train --out)")
    p.add_argument("--data", required=True, metavar="FILE", help="labelled file to score (TSV, CSV, JSONL)")
    p.add_argument("--out", metavar="DIR", help="where to write (default: RUN_DIR/evaluation)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    add_corpus_arguments(p, labels=True)
    p.add_argument("--on-bad-row", choices=list(ON_BAD_ROW), default="error",
                   help="a row with no label, an empty text or a label the run does not know")
    p.add_argument("--n-errors", type=int, default=20, help="most confident mistakes kept in errors.tsv (default 20)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="hf runs: allow code the run's encoder config names (off: a run never decides that)")


def run(args: argparse.Namespace) -> int:
    from embgraft.evaluation.run import evaluate_run

    evaluate_run(args.run, args.data, out=args.out, fmt=args.corpus_format, text_column=args.text_column,
                 label_column=args.label_column, on_bad_row=args.on_bad_row, n_errors=args.n_errors,
                 force=args.force, trust_remote_code=args.trust_remote_code)
    return 0
