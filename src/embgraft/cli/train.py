"""embgraft train --train F --dev F --test F --graft DIR --model NAME --out RUN [--config run.yaml]

Every ``TrainConfig`` field is a flag (``--embedding-lr`` for ``embedding_lr``); a flag given on
the command line overrides the same key in ``--config``, which overrides the defaults.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, fields

# field -> help; the flags are generated from TrainConfig, the words live here
HELP = {
    "train": "training file (TSV text<TAB>label, CSV, JSONL)",
    "dev": "dev file: early stopping and model selection",
    "test": "test file, scored once with the best weights",
    "data": "one labelled file to split (see --split) instead of --train/--dev/--test",
    "split": "train,dev,test shares for --data (default 0.8,0.1,0.1; stratified, seed 0)",
    "format": "data format: tsv, csv or jsonl (default: from the extension)",
    "text_column": "CSV/JSONL column (TSV: 0-based index) of the text",
    "label_column": "CSV/JSONL column (TSV: 0-based index) of the label",
    "classes": "file of class names, one per line in id order (default: labels found in train)",
    "on_bad_row": "a row with no label, an empty text or an unseen label: error (default) or skip and count",
    "train_fraction": "train on a stratified share of the training set (e.g. 0.1)",
    "graft": "graft directory (embgraft graft --out): embedding rows, vocabulary and tokenisation",
    "random_init": "the graft's vocabulary and width with random rows (the baseline to beat)",
    "level": "without --graft: char, word (jieba) or space tokens",
    "embedding_dim": "without --graft: embedding width (default 200)",
    "max_len": "tokens kept per text (default: the graft's recipe, else 256)",
    "ngrams": "bag and textcnn: also 2..N-gram rows, composed as the mean of their pieces; textcnn adds "
              "their mean as a bag branch beside its convolutions (default 1)",
    "ngram_min_count": "n-grams seen fewer times in train get no row (default 1)",
    "ngram_scale": "multiply composed n-gram rows by this (default 1)",
    "words": "with --ngrams on a character graft: also a row per jieba word of the training texts longer than "
             "the n-grams, composed as the mean of its characters",
    "embedding": "full | frozen | partial (train only rows the source lacked) | gradual:N (frozen N epochs)",
    "sparse": "sparse embedding gradients: auto (adamw with a bag or n-gram rows), on, off",
    "model": "bag | textcnn | bilstm | transformer | hf",
    "dropout": "dropout (default: the model's)",
    "n_filters": "textcnn: filters per width (default 256)",
    "kernel_sizes": "textcnn: widths, comma-separated (default 2,3,4)",
    "hidden_dim": "bilstm: hidden size per direction (128); transformer: feed-forward width (512)",
    "n_layers": "bilstm / transformer layers",
    "n_heads": "transformer attention heads (must divide the embedding width)",
    "pooling": "bag: mean (default) | max | mean+max; bilstm: max (default) | mean | attention",
    "positions": "transformer positions: learned | sinusoidal",
    "max_positions": "transformer: longest input (default 512)",
    "hf_model": "hf: encoder checkpoint, a directory or hub id",
    "train_layers": "hf: none | first:N | last:N | all encoder layers trained",
    "layer_lr_decay": "hf: LR multiplier per layer below the top (layer-wise decay, default 1)",
    "trust_remote_code": "hf: allow the checkpoint's own code (off by default)",
    "optimizer": "adamw (default) or sgd",
    "epochs": "most epochs (default 10)",
    "batch_size": "examples per step (default 64)",
    "length_bucket": "length bucketing: shuffled texts are sorted by length inside windows of this many batches "
                     "(less padding, but batches of alike lengths); 1 = plain shuffled batches "
                     "(default: 50 for bag, 1 for the other models)",
    "lr": "learning rate of the layers above the embedding (default 1e-3)",
    "embedding_lr": "learning rate of the embedding rows (default: --lr)",
    "weight_decay": "AdamW weight decay of weight matrices; never on embeddings, biases, norms (default 0.01)",
    "schedule": "constant | linear | exponential | cosine | plateau",
    "warmup": "linear warm-up: steps, or a share of all steps when below 1",
    "gamma": "exponential schedule: LR factor per epoch (default 0.9)",
    "plateau_factor": "plateau schedule: LR factor on a plateau (default 0.5)",
    "plateau_patience": "plateau schedule: epochs without dev gain before cutting the LR (default 1)",
    "grad_clip": "clip the gradient norm (default 1.0)",
    "label_smoothing": "cross-entropy label smoothing (default 0)",
    "patience": "early stopping: epochs without dev gain (default 3)",
    "metric": "dev metric for early stopping and the best checkpoint: accuracy | macro_f1",
    "teachers": "knowledge distillation: run directories (comma-separated) whose averaged predictions on the "
                "training texts the model also learns (default: none)",
    "distill_weight": "with --teachers: the teachers' share of the loss, the labels get the rest (default 0.5)",
    "distill_temperature": "with --teachers: softmax temperature of teachers and student (default 1)",
    "seed": "random seed (default 0)",
    "device": "auto | cpu | cuda",
    "amp": "bf16 autocast: auto (CUDA with bf16), bf16, off",
    "compile": "torch.compile the model",
    "threads": "CPU threads for PyTorch",
    "log_every": "also log every N steps to history_steps.csv",
    "tensorboard": "TensorBoard events in RUN/tensorboard: auto (if installed), on, off",
}
_SKIP = {"extra"}


def _parse_type(hint) -> typing.Callable[[str], typing.Any]:
    text = str(hint)
    if "tuple" in text:
        return str  # comma-separated; TrainConfig splits it
    if "float" in text:
        return float
    if "int" in text:
        return int
    return str


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing RUN_DIR")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its last checkpoint")
    add_config_arguments(p)


def add_config_arguments(p: argparse.ArgumentParser, *, skip: frozenset[str] = frozenset()) -> None:
    """``--config`` and one flag per ``TrainConfig`` field (but ``skip``); shared with cv and compare."""
    from embgraft.config import TrainConfig

    p.add_argument("--config", metavar="FILE", help="YAML or JSON config; flags override its keys")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    hints = typing.get_type_hints(TrainConfig)
    g = p.add_argument_group("training config (also as keys of --config)")
    for f in fields(TrainConfig):
        if f.name in _SKIP or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is MISSING else f.default
        help_text = HELP.get(f.name, "")
        if hints[f.name] is bool:
            g.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            g.add_argument(flag, type=_parse_type(hints[f.name]), default=argparse.SUPPRESS,
                           metavar=f.name.upper(), help=help_text + ("" if "default" in help_text or default
                                                                     in (None, "") else f" (default {default})"))


def config_from_args(args: argparse.Namespace, *, not_config: frozenset[str] = frozenset(), **fixed):
    """The ``TrainConfig`` of ``--config`` plus the flags given (``not_config`` are other options)."""
    from embgraft.config import TrainConfig

    skip = {"config", "out", "force", "resume", "no_progress", "command", "debug"} | set(not_config)
    overrides = {k: v for k, v in vars(args).items() if k not in skip}
    overrides.update(fixed)
    return TrainConfig.from_sources(file=args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    from embgraft.train import train

    config = config_from_args(args)
    train(config, out=args.out, force=args.force, resume=args.resume, progress=not args.no_progress)
    return 0
