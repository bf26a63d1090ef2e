"""embgraft graft --source FILE --corpus FILE --level char --out DIR"""

from __future__ import annotations

import argparse

from embgraft.cli._common import (add_graft_arguments, add_vocab_arguments, contextual_from_args,
                                  graft_config_from_args, open_sources, vocab_from_args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_graft_arguments(p)
    add_vocab_arguments(p)
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR",
                   help="writes embedding.safetensors, vocab.txt, provenance.tsv, graft_report.json")
    g.add_argument("--force", action="store_true", help="overwrite an existing --out")
    g.add_argument("--export-word2vec", metavar="FILE", help="also write the matrix in word2vec format (text, "
                   "or binary with --export-binary), readable by gensim's KeyedVectors.load_word2vec_format")
    g.add_argument("--export-binary", action="store_true", help="--export-word2vec as word2vec binary")
    g.add_argument("--export-specials", action="store_true",
                   help="--export-word2vec keeps the special tokens (<pad>, <unk>, ...)")
    g.add_argument("--tensor-key", help="checkpoint sources: the input-embedding tensor's name")
    g.add_argument("--revision", help="hub sources: branch, tag or commit")
    g.add_argument("--trust-remote-code", action="store_true", default=None,
                   help="hub sources: allow the checkpoint's own tokenizer code (off by default)")
    n = p.add_argument_group("n-gram and word rows (character vocabularies)")
    n.add_argument("--ngrams", type=int, default=1, metavar="N",
                   help="also graft a row for every 2..N-gram of the corpus (exact where the source has it, else "
                        "as the source composes it; --rows output runs each through the encoder); train --ngrams "
                        "takes them before composing its own (default 1: none)")
    n.add_argument("--ngram-min-count", type=int, default=1, metavar="K", help="with --ngrams: n-grams seen fewer "
                   "times get no row (default 1)")
    n.add_argument("--words", action="store_true", help="with --ngrams: also a row per jieba word of the corpus "
                   "longer than N characters")


def run(args: argparse.Namespace) -> int:
    from embgraft.files import check_outputs
    from embgraft.grafting.cascade import graft

    from embgraft.files import FILE
    from embgraft.grafting.result import GRAFT_DIR

    outputs = [(args.out, GRAFT_DIR), (args.export_word2vec, FILE)]
    inputs = [*(args.corpus or []), args.vocab, *args.source, args.source_vocab, args.user_dict]
    check_outputs(outputs, force=args.force, inputs=inputs)  # every output, before the long part
    config = graft_config_from_args(args)
    vocab = vocab_from_args(args)  # it carries its recipe into the graft's recipe.json
    ngrams = _ngram_entries(args, vocab)
    contexts = _contexts(args, vocab)
    result = graft(vocab, open_sources(args, config, contexts=contexts), config=config,
                   progress=not args.no_progress, ngrams=ngrams)
    check_outputs(outputs, force=args.force, inputs=inputs)  # and again before writing any
    result.save(args.out, force=args.force, inputs=inputs)
    if args.export_word2vec:
        result.export_word2vec(args.export_word2vec, force=args.force, binary=args.export_binary,
                               include_specials=args.export_specials)
        left_out = result.word2vec_left_out(include_specials=args.export_specials, binary=args.export_binary)
        if left_out:
            print(f"{len(left_out)} tokens with a space left out of {args.export_word2vec} (a binary word2vec "
                  f"token ends at a space), e.g. {left_out[:3]}")
    print(f"grafted {len(vocab):,} tokens x {result.weights.shape[1]} dims "
          f"in {result.report.seconds:.2f}s -> {args.out}")
    print(result.report.coverage_table())
    if ngrams is not None:
        print(f"+ {len(result.ngrams.tokens):,} n-gram{' and word' if args.words else ''} rows (2..{args.ngrams}, "
              f"seen >= {args.ngram_min_count} times) in ngrams.safetensors")
    return 0


def _corpus_texts(args: argparse.Namespace) -> list[str]:
    from embgraft.text.corpus import iter_texts

    return [t for path in args.corpus for t in iter_texts(path, fmt=args.corpus_format, text_column=args.text_column)]


def _contexts(args: argparse.Namespace, vocab) -> list[str] | None:
    """The corpus's texts, as the vocabulary sees them, for ``--contextual-context corpus``; else None."""
    from embgraft.errors import ConfigError

    contextual = contextual_from_args(args)
    if contextual is None or contextual.context != "corpus":
        return None
    if not args.corpus:
        raise ConfigError("--contextual-context corpus runs the corpus's texts through the encoder: give --corpus, "
                          "not --vocab")
    texts = _corpus_texts(args)
    return [t.lower() for t in texts] if vocab.recipe.lowercase else texts


def _ngram_entries(args: argparse.Namespace, vocab):
    """The corpus's n-gram (and word) entries the graft should hold, or None without --ngrams."""
    from embgraft.errors import ConfigError
    from embgraft.grafting.ngrams import ngram_entries

    if args.ngrams == 1 and not args.words and args.ngram_min_count == 1:
        return None
    if args.ngrams < 2:
        raise ConfigError("--words and --ngram-min-count add to n-gram rows: give --ngrams N (N >= 2) with them")
    if not args.corpus:
        raise ConfigError("--ngrams counts the n-grams of the corpus: give --corpus, not --vocab")
    return ngram_entries(_corpus_texts(args), vocab.recipe, n=args.ngrams, min_count=args.ngram_min_count, words=args.words)
