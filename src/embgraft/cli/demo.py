"""embgraft demo [--out DIR] [--cache-dir DIR] [--force] [--retrain]"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-out", metavar="DIR",
                   help="the demo's own output folder, replaced on every run (default: demo-out)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where the pre-trained stand-in vectors are kept "
                        "(default: $XDG_CACHE_HOME/embgraft/demo or ~/.cache/embgraft/demo)")
    p.add_argument("--force", action="store_true",
                   help="replace --out even when it holds files the demo did not make")
    p.add_argument("--retrain", action="store_true", help="train the stand-in vectors again, ignoring the cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from embgraft.demo import run_demo

    run_demo(out_dir=args.out, cache_dir=args.cache_dir, force=args.force, retrain=args.retrain,
             progress=not args.no_progress)
    return 0
