"""embgraft cv --folds K --data FILE (or --train/--dev/--test, pooled) --graft DIR --model NAME --out DIR"""

from __future__ import annotations

import argparse

from embgraft.cli.train import add_config_arguments, config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="folder for cv.json, cv.csv and fold-K/ runs")
    p.add_argument("--force", action="store_true", help="overwrite an existing DIR")
    p.add_argument("--folds", type=int, default=5, help="stratified folds (default 5)")
    p.add_argument("--dev-share", type=float, default=0.1,
                   help="share of each fold's training part held out for early stopping (default 0.1)")
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    from embgraft.evaluation.cv import cross_validate

    base = config_from_args(args, not_config=frozenset({"folds", "dev_share"}))
    cross_validate(base, folds=args.folds, out=args.out, force=args.force, progress=not args.no_progress,
                   dev_share=args.dev_share)
    return 0
