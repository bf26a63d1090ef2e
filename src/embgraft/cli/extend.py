"""embgraft extend --model DIR_OR_ID (--tokens FILE | --corpus FILE --top N) --out DIR"""

from __future__ import annotations

import argparse

from embgraft.cli._common import add_corpus_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR|HUB_ID", help="the transformer checkpoint to extend")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--tokens", metavar="FILE", help="tokens to add, one per line (UTF-8)")
    what.add_argument("--corpus", action="append", metavar="FILE",
                      help="add the corpus's most frequent words that the tokenizer splits; repeatable")
    p.add_argument("--top", type=int, metavar="N", help="with --corpus: how many words to add (required)")
    p.add_argument("--level", choices=["word", "space"], default="word",
                   help="with --corpus: jieba words or whitespace tokens (default: word)")
    p.add_argument("--user-dict", metavar="FILE", help="jieba user dictionary for --level word")
    add_corpus_arguments(p)
    p.add_argument("--pad-to-multiple-of", type=int, metavar="N",
                   help="round the embedding's row count up to a multiple of N (e.g. 64 for tensor cores)")
    p.add_argument("--revision", help="hub models: branch, tag or commit")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the checkpoint's own model/tokenizer code (off by default)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes the extended checkpoint (model, tokenizer) and extend_report.json")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (transformers' own included)")


def run(args: argparse.Namespace) -> int:
    from embgraft.errors import ConfigError
    from embgraft.hf.extend import REPORT_FILE, extend, read_token_file

    if args.corpus and args.top is None:
        raise ConfigError("--corpus needs --top N: how many of its most frequent words to add")
    report = extend(
        args.model, out=args.out, force=args.force,
        tokens=read_token_file(args.tokens) if args.tokens else None,
        corpus=args.corpus, top=args.top, level=args.level, fmt=args.corpus_format,
        text_column=args.text_column, user_dict=args.user_dict,
        pad_to_multiple_of=args.pad_to_multiple_of, revision=args.revision,
        trust_remote_code=args.trust_remote_code, progress=not args.no_progress,
    )
    print(report.table())
    print(f"saved to {args.out} (report: {REPORT_FILE}) in {report.seconds:.2f}s")
    return 0
