"""Argument groups shared by several subcommands: corpus files, the target vocabulary, the graft.

The graft's choices and help come from the tables and the ``GraftConfig`` fields the library
validates with, so a flag and the setting it sets cannot drift apart.
"""

from __future__ import annotations

import argparse
from dataclasses import fields


def add_corpus_arguments(g, *, labels: bool = False) -> None:
    """``--format`` and ``--text-column`` (and, with ``labels``, ``--label-column``): how a corpus
    file is read. The one definition for graft, extend, predict and evaluate."""
    from embgraft.text.corpus import FORMAT_ALIASES, FORMATS

    g.add_argument("--format", dest="corpus_format", choices=list(FORMAT_ALIASES), metavar="FORMAT",
                   help=f"corpus format: {', '.join(FORMATS)} (default: from the file extension; a .txt of "
                        "text<TAB>label lines is read as tsv)")
    g.add_argument("--text-column", help="CSV/JSONL column (name or 0-based index) holding the text")
    if labels:
        g.add_argument("--label-column", help="CSV/JSONL column (name or 0-based index) holding the label")


def add_vocab_arguments(p: argparse.ArgumentParser) -> None:
    from embgraft.text.tokenize import TOKENIZERS

    g = p.add_argument_group("target vocabulary")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", action="append", metavar="FILE",
                     help="corpus file (.txt, .tsv text<TAB>label, .csv, .jsonl); repeatable")
    src.add_argument("--vocab", metavar="FILE", help="a saved vocabulary (vocab.txt) instead of a corpus")
    add_corpus_arguments(g)
    g.add_argument("--level", choices=list(TOKENIZERS), default="char",
                   help="characters, jieba words, or whitespace tokens (default: char)")
    g.add_argument("--user-dict", metavar="FILE", help="jieba user dictionary for --level word")
    g.add_argument("--lowercase", action="store_true",
                   help="lower-case texts before tokenising (recorded; train and predict do the same)")
    g.add_argument("--max-len", type=int, metavar="N",
                   help="tokens kept per text when training on this graft (recorded in recipe.json)")
    g.add_argument("--min-freq", type=int, default=1, help="drop tokens seen fewer times (default 1)")
    g.add_argument("--max-size", type=int, help="keep at most this many tokens, specials included")
    g.add_argument("--special", action="append", default=[], metavar="TOKEN",
                   help="extra special token after <pad>=0 and <unk>=1; repeatable")


def vocab_from_args(args: argparse.Namespace):
    """The vocabulary of ``--corpus`` (or ``--vocab``), carrying the recipe its texts go through."""
    from embgraft.text.tokenize import Recipe
    from embgraft.text.vocab import Vocab

    recipe = Recipe(level=args.level, user_dict=args.user_dict, lowercase=args.lowercase, max_len=args.max_len)
    if args.vocab:
        return Vocab.load(args.vocab, recipe=recipe)  # declared: a vocabulary file does not record it
    return Vocab.from_corpus(
        args.corpus, recipe=recipe, fmt=args.corpus_format, text_column=args.text_column,
        min_freq=args.min_freq, max_size=args.max_size, extra_specials=tuple(args.special),
    )


def _graft_help(name: str, default_text: str | None = None) -> str:
    """A ``GraftConfig`` field's help, with its default."""
    from embgraft.grafting.config import GraftConfig

    f = next(f for f in fields(GraftConfig) if f.name == name)
    default = default_text if default_text is not None else f.default
    return f"{f.metadata['help']} (default: {default})"


def add_graft_arguments(p: argparse.ArgumentParser) -> None:
    # choices come from the tables the library validates with (grafting/, sources/)
    from embgraft.grafting.compose import COMPOSE_BYTES, POOLINGS
    from embgraft.grafting.config import DTYPES, INIT_METHODS
    from embgraft.sources import SOURCE_KINDS
    from embgraft.sources.base import ON_BAD_LINE

    g = p.add_argument_group("graft")
    g.add_argument("--source", action="append", required=True, metavar="FILE|DIR|HUB_ID",
                   help="pretrained vectors; repeat for ordered fall-backs")
    g.add_argument("--source-kind", default="auto",
                   choices=["auto", *SOURCE_KINDS], help="how to read the source (default: from its name)")
    g.add_argument("--source-vocab", metavar="FILE", help="vocabulary of a .npy/.npz source")
    g.add_argument("--on-bad-line", choices=list(ON_BAD_LINE), default="error",
                   help="a malformed line in a vector file: stop (default) or skip and count it")
    g.add_argument("--normalise", default="nfkc,lower,t2s",
                   help="normalisation rules, in order, comma-separated, or 'none' (default: nfkc,lower,t2s)")
    g.add_argument("--compose", default="mean", choices=[*POOLINGS, "off"], help=_graft_help("compose"))
    g.add_argument("--compose-min-coverage", type=float, default=1.0, help=_graft_help("compose_min_coverage"))
    g.add_argument("--compose-bytes", default="on", choices=list(COMPOSE_BYTES), help=_graft_help("compose_bytes"))
    g.add_argument("--init", default="normal", choices=list(INIT_METHODS), help=_graft_help("init"))
    g.add_argument("--seed", type=int, default=0, help=_graft_help("seed"))
    g.add_argument("--scale", type=float, default=1.0, help=_graft_help("scale"))
    g.add_argument("--centre", action="store_true", help=_graft_help("centre"))
    g.add_argument("--unit-norm", action="store_true", help=_graft_help("unit_norm"))
    g.add_argument("--dim", type=int, help=_graft_help("dim", "the source's"))
    g.add_argument("--dtype", default="float32", choices=list(DTYPES),
                   help=_graft_help("dtype") + "; float64 is read and computed in float64, float16/bfloat16 "
                                               "are rounded once, last")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_contextual_arguments(p)


# ContextualConfig field -> how its flag's text is read
_CONTEXTUAL_TYPES = {"layer": int, "last_k": int, "max_pieces": int, "batch_size": int, "sif": float,
                     "context_pieces": int}


def add_contextual_arguments(p: argparse.ArgumentParser) -> None:
    """``--rows input|output`` and one ``--contextual-NAME`` flag per ``ContextualConfig`` field,
    its help from the field's metadata."""
    from embgraft.hf.encoder import ContextualConfig
    from embgraft.sources.checkpoint import ROWS

    g = p.add_argument_group("checkpoint rows")
    g.add_argument("--rows", choices=list(ROWS), default="input",
                   help="checkpoint sources: the input-embedding table (input, default), or each vocabulary entry "
                        "run through the encoder as its own text, pooled and scale-matched (output; provenance "
                        "contextual:<pool>@<layer>)")
    for f in fields(ContextualConfig):
        g.add_argument(f"--contextual-{f.name.replace('_', '-')}", dest=f"contextual_{f.name}",
                       type=_CONTEXTUAL_TYPES.get(f.name, str), default=argparse.SUPPRESS,
                       help=f"with --rows output: {f.metadata['help']} (default: {f.default})")


def contextual_from_args(args: argparse.Namespace):
    """The ``ContextualConfig`` of the ``--contextual-*`` flags given, or None for input rows."""
    from embgraft.errors import ConfigError
    from embgraft.hf.encoder import ContextualConfig

    given = {k[len("contextual_"):]: v for k, v in vars(args).items() if k.startswith("contextual_")}
    if args.rows != "output":
        if given:
            raise ConfigError(f"--contextual-{next(iter(given)).replace('_', '-')} needs --rows output")
        return None
    return ContextualConfig(**given)


def graft_config_from_args(args: argparse.Namespace):
    from embgraft.grafting.config import GraftConfig

    rules = () if args.normalise.strip().lower() in ("", "none") else tuple(
        r.strip() for r in args.normalise.split(",") if r.strip())
    return GraftConfig(
        normalise=rules, compose=args.compose, compose_min_coverage=args.compose_min_coverage,
        compose_bytes=args.compose_bytes,
        init=args.init, seed=args.seed, scale=args.scale, centre=args.centre,
        unit_norm=args.unit_norm, dim=args.dim, dtype=args.dtype,
    )


def open_sources(args: argparse.Namespace, config, *, contexts=None) -> list:
    """The ``--source`` readers; ``contexts``, the corpus's texts, for ``--contextual-context corpus``."""
    from embgraft.sources import open_source

    extra = {k: getattr(args, k, None) for k in ("tensor_key", "revision", "trust_remote_code")}
    contextual = contextual_from_args(args)
    if contextual is not None:  # only checkpoints take these: another source says so
        extra.update(rows="output", contextual=contextual)
        if contextual.context == "corpus":
            extra.update(contexts=contexts)
    return [
        open_source(spec, kind=args.source_kind, on_bad_line=args.on_bad_line,
                    progress=not args.no_progress, max_piece_chars=config.max_piece_chars,
                    vocab=args.source_vocab, dtype=config.work_dtype.name, **extra)
        for spec in args.source
    ]
