"""embgraft train --train F --dev F --test F --graft DIR --model NAME --out RUN [--config run.yaml]

Every ``TrainConfig`` field is a flag (``--embedding-lr`` for ``embedding_lr``); a flag given on
the command line overrides the same key in ``--config``, which overrides the defaults.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, fields

_SKIP = {"extra"}


def flag_type(hint) -> typing.Callable[[str], typing.Any]:
    """How a flag's text becomes the field's value, from the field's type: ``int | None`` takes an
    int, a tuple takes the comma-separated text (``TrainConfig`` splits it)."""
    base = hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None
        base = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(base) is tuple or base is tuple:
        return str
    return base if base in (int, float, str) else str


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing RUN_DIR")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its last checkpoint")
    add_config_arguments(p)


def add_config_arguments(p: argparse.ArgumentParser, *, skip: frozenset[str] = frozenset()) -> None:
    """``--config`` and one flag per ``TrainConfig`` field (but ``skip``); shared with cv and compare."""
    from embgraft.training.config import TrainConfig

    p.add_argument("--config", metavar="FILE", help="YAML or JSON config; flags override its keys")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    hints = typing.get_type_hints(TrainConfig)
    g = p.add_argument_group("training config (also as keys of --config)")
    for f in fields(TrainConfig):
        if f.name in _SKIP or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is MISSING else f.default
        help_text = f.metadata.get("help", "")
        if hints[f.name] is bool:
            g.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            if isinstance(default, tuple):
                default = ",".join(map(str, default)) or None
            shown = "" if "default" in help_text or default in (None, "") else f" (default {default})"
            g.add_argument(flag, type=flag_type(hints[f.name]), default=argparse.SUPPRESS,
                           metavar=f.name.upper(), help=help_text + shown)


def config_from_args(args: argparse.Namespace, *, not_config: frozenset[str] = frozenset(), **fixed):
    """The ``TrainConfig`` of ``--config`` plus the flags given (``not_config`` are other options)."""
    from embgraft.training.config import TrainConfig

    skip = {"config", "out", "force", "resume", "no_progress", "command", "debug"} | set(not_config)
    overrides = {k: v for k, v in vars(args).items() if k not in skip}
    overrides.update(fixed)
    return TrainConfig.from_sources(file=args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    from embgraft.training.loop import train

    config = config_from_args(args)
    train(config, out=args.out, force=args.force, resume=args.resume, progress=not args.no_progress)
    return 0
