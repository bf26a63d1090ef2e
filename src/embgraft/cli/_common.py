"""Argument groups shared by several subcommands (vocabulary and graft options)."""

from __future__ import annotations

import argparse


def add_vocab_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target vocabulary")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", action="append", metavar="FILE",
                     help="corpus file (.txt, .tsv text<TAB>label, .csv, .jsonl); repeatable")
    src.add_argument("--vocab", metavar="FILE", help="a saved vocabulary (vocab.txt) instead of a corpus")
    g.add_argument("--format", dest="corpus_format", choices=["txt", "tsv", "csv", "jsonl"],
                   help="corpus format (default: from the file extension)")
    g.add_argument("--text-column", help="CSV/JSONL column (name or 0-based index) holding the text")
    g.add_argument("--level", choices=["char", "word", "space"], default="char",
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
    from embgraft.vocab import Vocab

    if args.vocab:
        return Vocab.load(args.vocab)
    return Vocab.from_corpus(
        args.corpus, level=args.level, fmt=args.corpus_format, text_column=args.text_column,
        user_dict=args.user_dict, min_freq=args.min_freq, max_size=args.max_size,
        extra_specials=tuple(args.special), lowercase=args.lowercase,
    )


def recipe_from_args(args: argparse.Namespace):
    """The tokenisation recipe the vocabulary was (or, with --vocab, is declared to be) built with."""
    from embgraft.tokenize import Recipe

    return Recipe(level=args.level, user_dict=args.user_dict, lowercase=args.lowercase,
                  max_len=args.max_len)


def add_graft_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("graft")
    g.add_argument("--source", action="append", required=True, metavar="FILE|DIR|HUB_ID",
                   help="pretrained vectors; repeat for ordered fall-backs")
    g.add_argument("--source-kind", default="auto",
                   choices=["auto", "text", "word2vec", "fasttext", "glove", "word2vec-binary", "npy",
                            "checkpoint"], help="how to read the source (default: from its name)")
    g.add_argument("--source-vocab", metavar="FILE", help="vocabulary of a .npy/.npz source")
    g.add_argument("--on-bad-line", choices=["error", "skip"], default="error",
                   help="a malformed line in a vector file: stop (default) or skip and count it")
    g.add_argument("--normalise", default="nfkc,lower,t2s",
                   help="normalisation rules, in order, comma-separated, or 'none' (default: nfkc,lower,t2s)")
    g.add_argument("--compose", default="mean", choices=["mean", "sum", "max", "first", "last", "off"],
                   help="pool absent words from their pieces (default: mean)")
    g.add_argument("--compose-min-coverage", type=float, default=1.0,
                   help="share of a word's characters its known pieces must cover (default 1.0)")
    g.add_argument("--init", default="normal", choices=["normal", "uniform", "zeros", "mean"],
                   help="rows left over, fitted to the found rows' per-dimension mean/std (default: normal)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--scale", type=float, default=1.0, help="multiply every row by this")
    g.add_argument("--centre", action="store_true", help="subtract the mean of the found rows")
    g.add_argument("--unit-norm", action="store_true", help="L2-normalise every row")
    g.add_argument("--dim", type=int, help="target width, reached by PCA fitted on the found rows")
    g.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"])
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def graft_config_from_args(args: argparse.Namespace):
    from embgraft.graft import GraftConfig

    rules = () if args.normalise.strip().lower() in ("", "none") else tuple(
        r.strip() for r in args.normalise.split(",") if r.strip())
    return GraftConfig(
        normalise=rules, compose=args.compose, compose_min_coverage=args.compose_min_coverage,
        init=args.init, seed=args.seed, scale=args.scale, centre=args.centre,
        unit_norm=args.unit_norm, dim=args.dim, dtype=args.dtype,
    )


def open_sources(args: argparse.Namespace, config) -> list:
    from embgraft.sources import open_source

    extra = {k: getattr(args, k, None) for k in ("tensor_key", "revision", "trust_remote_code")}
    return [
        open_source(spec, kind=args.source_kind, on_bad_line=args.on_bad_line,
                    progress=not args.no_progress, max_piece_chars=config.max_piece_chars,
                    vocab=args.source_vocab, **extra)
        for spec in args.source
    ]
