"""embgraft report RUN_DIR|COMPARE_DIR [--out FILE]"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="RUN_OR_COMPARE_DIR", help="a run directory or an `embgraft compare` directory")
    p.add_argument("--out", metavar="FILE", help="where to write (default: DIR/report.html)")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")


def run(args: argparse.Namespace) -> int:
    from embgraft.evaluation.report import write_report

    path = write_report(args.path, out=args.out, force=args.force)
    print(f"report -> {path}")
    return 0
