"""embgraft compare --train F --dev F --test F --graft DIR [--graft DIR2] --model NAME [--model NAME2]
                    [--embedding MODE ...] --seeds N [--train-fractions 0.1,1] --out DIR"""

from __future__ import annotations

import argparse

from embgraft.cli.train import add_config_arguments, config_from_args

_OWN = frozenset({"model", "graft", "embedding", "seed", "random_init"})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="compare directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing DIR")
    p.add_argument("--graft", action="append", required=True, metavar="DIR",
                   help="graft directory; repeat to compare sources (random init uses the first one's vocabulary)")
    p.add_argument("--model", action="append", metavar="NAME", help="model; repeat to compare (default textcnn)")
    p.add_argument("--embedding", action="append", metavar="MODE",
                   help="fine-tuning mode of the grafted set-ups; repeat to compare (default full)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per set-up: 0..N-1 (default 3)")
    p.add_argument("--train-fractions", default="1", metavar="F,F,...",
                   help="stratified shares of the training set (multi-label: shuffled), e.g. 0.05,0.1,0.25,1 for a learning curve")
    add_config_arguments(p, skip=_OWN)


def run(args: argparse.Namespace) -> int:
    from embgraft.evaluation.compare import compare, make_setups
    from embgraft.errors import ConfigError

    try:
        fractions = [float(x) for x in args.train_fractions.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--train-fractions must be numbers separated by commas, not {args.train_fractions!r}") \
            from None
    models = args.model or ["textcnn"]
    base = config_from_args(args, not_config=frozenset({"seeds", "train_fractions"}) | _OWN,
                            model=models[0], graft=args.graft[0])
    setups = make_setups(models=models, grafts=args.graft, embeddings=args.embedding or ["full"])
    compare(base, setups=setups, seeds=args.seeds, out=args.out, train_fractions=fractions, force=args.force,
            progress=not args.no_progress)
    return 0
