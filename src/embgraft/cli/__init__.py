"""``embgraft <command>``: one thin module per subcommand, imported only when it runs.

Each module defines ``add_arguments(parser)`` (argparse only, cheap) and ``run(args) -> int``
(where the heavy imports happen), so ``embgraft graft`` never pays for torch.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "graft": ("embgraft.cli.graft", "graft pretrained vectors onto a corpus vocabulary"),
    "extend": ("embgraft.cli.extend", "add tokens to a transformer's tokenizer and embedding (mean of old pieces)"),
    "train": ("embgraft.cli.train", "train a text classifier on a grafted (or random) embedding"),
    "predict": ("embgraft.cli.predict", "classify texts with a trained run directory"),
    "evaluate": ("embgraft.cli.evaluate", "score a run on labelled data: metrics, plots, errors, drift"),
    "cv": ("embgraft.cli.cv", "k-fold stratified cross-validation with the train options"),
    "compare": ("embgraft.cli.compare", "set-ups x seeds (+ TF-IDF baseline, significance vs random init)"),
    "report": ("embgraft.cli.report", "one self-contained report.html for a run or compare directory"),
    "export": ("embgraft.cli.export", "a run as ONNX (+ int8) with its tokenisation, for the torch-free Predictor"),
    "serve": ("embgraft.cli.serve", "a JSON HTTP API (POST /predict, GET /health, GET /labels) on a run or export"),
    "demo": ("embgraft.cli.demo", "offline demo: stand-in vectors from People's Daily, grafted onto review sentiment"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embgraft",
        description="Graft pretrained parameters onto your own vocabulary as a PyTorch embedding.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks instead of one-line errors")
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from embgraft.errors import EmbgraftError

    try:
        return importlib.import_module(COMMANDS[args.command][0]).run(args) or 0
    except BrokenPipeError:  # `embgraft predict ... | head`: the reader had enough
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        if args.debug:
            raise
        hint = " (a run with a checkpoint continues with --resume)" if args.command == "train" else ""
        print(f"embgraft {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, never a traceback without --debug
        if args.debug:
            raise
        message = _one_line(exc)
        if not isinstance(exc, (EmbgraftError, OSError, ImportError)):
            # a problem the library did not put into words: say what it was, and how to see more
            message = f"{type(exc).__name__}: {message} (--debug shows where)"
        print(f"embgraft {args.command}: error: {message}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    """The message, file first: an ``OSError`` from ``open`` reads ``FILE: Is a directory``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        # an output is written under a temporary name beside it: name the output the user gave
        return f"{_TEMP_NAME.sub(lambda m: m.group(1) + m.group(2), str(exc.filename))}: {exc.strerror}"
    return " ".join(str(exc).split("\n"))


_TEMP_NAME = re.compile(r"(^|/)\.([^/]+?)\.tmp-[^/]*")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
