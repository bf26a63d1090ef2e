"""``TrainConfig``: every knob of ``embgraft train``, its help text beside it, validated at once.

A config comes from defaults, then a YAML/JSON file (``--config run.yaml``), then flags; each
later one overrides. The CLI's flags and their help are generated from the fields' metadata.
``__post_init__`` runs one check per section (data, embedding, model, optimisation,
distillation, runtime) and reports every problem found in one ``ConfigError``; then it derives
the defaults that depend on the model.
"""

from __future__ import annotations

import math
import os
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.files import read_json
from embgraft.models.spec import MODELS
from embgraft.text.corpus import FORMAT_ALIASES, first_undecodable_line
from embgraft.text.tokenize import TOKENIZERS
from embgraft.training.data import ON_BAD_ROW
from embgraft.training.losses import DISTILL_LOSSES

# the choice tables every training setting is validated against
EMBEDDING_MODES = ("full", "frozen", "partial", "gradual")
METRICS = ("accuracy", "macro_f1", "micro_f1")
DEVICES = ("auto", "cpu", "cuda")
AMP = ("auto", "bf16", "off")
SPARSE = ("auto", "on", "off")
TENSORBOARD = ("auto", "on", "off")
CHUNK_POOLS = ("mean", "max")
TRAIN_LAYERS = ("none", "all", "first", "last")
SCHEDULES = ("constant", "linear", "exponential", "cosine", "plateau")
OPTIMIZERS = ("adamw", "sgd")
_PATH_KEYS = ("train", "dev", "test", "data", "classes", "graft", "hf_model", "unlabelled", "class_weight")
_PATH_LIST_KEYS = ("teachers",)
# what a run directory's config.json records beside the settings (training.rundir.start); a run's
# config.json given back as --config ignores them
RUN_FACTS = ("graft_dir", "embgraft_version", "torch_version", "n_classes", "n_tokens", "dim", "data_files", "task")
# the optimisation each model's shipped config found on the THUCNews dev split
# (configs/thucnews-*.yaml); hf: the usual BERT fine-tuning recipe, as the m3e-small experiment ran it
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "bag": dict(lr=0.004, embedding_lr=0.001, batch_size=256, epochs=30, label_smoothing=0.1,
                schedule="constant", warmup=0.0),
    "textcnn": dict(lr=0.001, embedding_lr=0.0002, batch_size=128, epochs=12, label_smoothing=0.1,
                    schedule="constant", warmup=0.0),
    "bilstm": dict(lr=0.002, embedding_lr=0.0005, batch_size=128, epochs=8, label_smoothing=0.1,
                   schedule="constant", warmup=0.0),
    "transformer": dict(lr=0.001, embedding_lr=0.0005, batch_size=128, epochs=8, label_smoothing=0.1,
                        schedule="linear", warmup=0.1),
    "hf": dict(lr=5e-5, embedding_lr=5e-5, batch_size=32, epochs=4, label_smoothing=0.0, schedule="linear",
               warmup=0.1),
}
# learning rates above this are refused: no model here trains at them (a typo, or 1e30)
MAX_LR = 10.0
MAX_TEMPERATURE = 100.0


def knob(default: Any = None, help: str = "", **kwargs: Any) -> Any:
    """A config field with its help text beside it (the CLI's ``--help`` reads it from here)."""
    if "default_factory" in kwargs:
        return field(metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


def parse_embedding(text: str) -> tuple[str, int] | None:
    """``full`` -> ("full", 0), ``gradual:2`` -> ("gradual", 2); None when not a mode. The one parser
    of ``--embedding``; what each mode does is applied in ``prepare`` (which rows are frozen) and
    in the loop (``gradual`` unfreezing)."""
    mode, _, n = str(text).partition(":")
    if mode not in EMBEDDING_MODES or (mode == "gradual") != bool(n) or (n and not n.isdigit()):
        return None
    return mode, int(n or 0)


@dataclass
class TrainConfig:
    """What to train on, what to build, how to optimise. ``None`` means "the model's default"."""

    # --- data: train/dev/test files, or one file split by `split`
    train: str | None = knob(None, "training file (TSV text<TAB>label, CSV, JSONL)")
    dev: str | None = knob(None, "dev file: early stopping and model selection")
    test: str | None = knob(None, "test file, scored once with the best weights")
    data: str | None = knob(None, "one labelled file to split (see --split) instead of --train/--dev/--test")
    split: tuple[float, ...] = knob((0.8, 0.1, 0.1), "train,dev,test shares for --data (stratified, seed 0)")
    format: str | None = knob(None, "data format: tsv, csv or jsonl (default: from the extension)")
    text_column: str | None = knob(None, "CSV/JSONL column (TSV: 0-based index) of the text")
    label_column: str | None = knob(None, "CSV/JSONL column (TSV: 0-based index) of the label")
    classes: str | None = knob(None, "file of class names, one per line in id order (default: labels found in train)")
    on_bad_row: str = knob("error", "a row with no label, an empty text or an unseen label: error, or skip and count")
    multi_label: bool = knob(False, "several labels per text: sigmoid outputs, binary cross-entropy, per-label "
                                    "thresholds tuned on dev; on by itself when a label cell is a JSON list or "
                                    "holds --label-separator")
    label_separator: str | None = knob(None, "multi-label: the character between a cell's labels (e.g. '|'); "
                                             "JSONL may give a list instead")
    train_fraction: float = knob(1.0, "train on a stratified share of the training set (e.g. 0.1)")
    # --- the embedding: a graft directory, or a vocabulary built from the training texts
    graft: str | None = knob(None, "graft directory (embgraft graft --out): embedding rows, vocabulary and "
                                   "tokenisation")
    random_init: bool = knob(False, "the graft's vocabulary and width with random rows (the baseline to beat)")
    level: str | None = knob(None, "without --graft: char (default), word (jieba) or space tokens; a graft "
                                   "brings its own")
    embedding_dim: int = knob(200, "without --graft: embedding width")
    max_len: int | None = knob(None, "tokens kept per text (default: the graft's recipe, else the model's: 256, "
                                     "hf 128)")
    ngrams: int = knob(1, "bag and textcnn: also 2..N-gram rows, composed as the mean of their pieces; textcnn "
                          "adds their mean as a bag branch beside its convolutions")
    ngram_min_count: int = knob(1, "n-grams seen fewer times in train get no row")
    ngram_scale: float = knob(1.0, "multiply composed n-gram rows by this")
    chunk: int | None = knob(None, "long texts: windows of this many tokens, scored apart and their logits pooled "
                                   "(training and serving alike); texts within one window as without it")
    stride: int | None = knob(None, "with --chunk: tokens from one window's start to the next (default: --chunk)")
    chunk_pool: str = knob("mean", "with --chunk: how a text's window logits are pooled: mean | max")
    max_chunks: int = knob(32, "with --chunk: the most windows of a text, evenly spread over it")
    words: bool = knob(False, "with --ngrams on a character graft: also a row per jieba word of the training "
                              "texts longer than the n-grams, composed as the mean of its characters")
    embedding: str = knob("full", "full | frozen | partial (train only rows the source lacked) | gradual:N "
                                  "(frozen N epochs)")
    sparse: str = knob("auto", "sparse embedding gradients: auto (adamw with a bag or n-gram rows), on, off")
    # --- the model
    model: str = knob("textcnn", "bag | textcnn | bilstm | transformer | hf")
    dropout: float | None = knob(None, "dropout (default: the model's)")
    n_filters: int | None = knob(None, "textcnn: filters per width (default 256)")
    kernel_sizes: tuple[int, ...] | None = knob(None, "textcnn: widths, comma-separated (default 2,3,4)")
    hidden_dim: int | None = knob(None, "bilstm: hidden size per direction (128); transformer: feed-forward "
                                        "width (512)")
    n_layers: int | None = knob(None, "bilstm / transformer layers")
    n_heads: int | None = knob(None, "transformer attention heads (must divide the embedding width)")
    pooling: str | None = knob(None, "bag: mean (default) | max | mean+max; bilstm: max (default) | mean | "
                                     "attention")
    positions: str | None = knob(None, "transformer positions: learned | sinusoidal")
    max_positions: int | None = knob(None, "transformer: longest input (default 512)")
    hf_model: str | None = knob(None, "hf: encoder checkpoint, a directory or hub id")
    train_layers: str = knob("all", "hf: none | first:N | last:N | all encoder layers trained")
    layer_lr_decay: float = knob(1.0, "hf: LR multiplier per layer below the top (layer-wise decay)")
    trust_remote_code: bool = knob(False, "hf: allow the checkpoint's own code (off by default)")
    # --- optimisation
    optimizer: str = knob("adamw", "adamw or sgd")
    epochs: int | None = knob(None, "most epochs (default: the model's, MODEL_DEFAULTS)")
    batch_size: int | None = knob(None, "examples per step, per process: under torchrun the global batch is "
                                        "N x this (default: the model's)")
    # shuffled texts are sorted by length inside windows of this many batches; 1: plain shuffled
    # batches. Default: 50 for bags (order-free: padding is all it changes), 1 for the others
    length_bucket: int | None = knob(None, "length bucketing: shuffled texts are sorted by length inside windows "
                                           "of this many batches (less padding, but batches of alike lengths); "
                                           "1 = plain shuffled batches (default: 50 for bag, 1 for the other models)")
    lr: float | None = knob(None, "learning rate of the layers above the embedding (default: the model's)")
    embedding_lr: float | None = knob(None, "learning rate of the embedding rows (default: the model's; give "
                                            "it equal to --lr for one rate)")
    weight_decay: float = knob(0.01, "AdamW weight decay of weight matrices; never on embeddings, biases, norms")
    schedule: str | None = knob(None, "constant | linear | exponential | cosine | plateau (default: the model's)")
    warmup: float | None = knob(None, "linear warm-up: steps, or a share of all steps when below 1 "
                                      "(default: the model's)")
    gamma: float = knob(0.9, "exponential schedule: LR factor per epoch")
    plateau_factor: float = knob(0.5, "plateau schedule: LR factor on a plateau")
    plateau_patience: int = knob(1, "plateau schedule: epochs without dev gain before cutting the LR")
    grad_clip: float | None = knob(1.0, "clip the gradient norm")
    label_smoothing: float | None = knob(None, "cross-entropy label smoothing (default: the model's)")
    class_weight: str | None = knob(None, "imbalanced classes: 'balanced' (n / (classes x count), from the training "
                                          "labels) or a file of 'label<TAB>weight' lines; default: all 1")
    focal_gamma: float = knob(0.0, "focal loss (Lin et al. 2017): down-weight examples the model already gets "
                                   "right by (1 - p)^gamma; 0 is plain cross-entropy")
    patience: int | None = knob(3, "early stopping: epochs without dev gain; None: never")
    min_steps: int = knob(200, "early stopping waits for this many optimiser steps first, so a small training "
                               "set (a few steps an epoch) is not stopped on noise")
    metric: str | None = knob(None, "dev metric for early stopping and the best checkpoint: accuracy | macro_f1 | "
                                    "micro_f1 (default: accuracy; multi-label: micro_f1, its accuracy being "
                                    "subset accuracy)")
    # --- knowledge distillation: also fit the averaged predictions of trained runs (distill.py)
    teachers: tuple[str, ...] = knob((), "knowledge distillation: run directories (comma-separated) whose averaged "
                                         "predictions on the training texts the model also learns (default: none)")
    unlabelled: str | None = knob(None, "with --teachers: a file of texts without labels (any corpus format) that "
                                        "the student also learns, from the teachers' predictions alone")
    augment: int = knob(0, "with --teachers: this many altered copies of each labelled training text (tokens "
                           "deleted, replaced by a graft neighbour, or cut to a window; Tang et al. 2019), scored "
                           "by the teachers and learnt from their predictions alone")
    distill_weight: float = knob(0.5, "with --teachers: the teachers' share of the loss, the labels get the rest")
    distill_temperature: float = knob(1.0, "with --teachers and --distill-loss kl: softmax temperature of teachers "
                                           "and student")
    distill_loss: str = knob("kl", "with --teachers: kl (the softened probabilities, Hinton et al. 2015) | mse "
                                   "(the logits, each text's centred; Ba & Caruana 2014, Tang et al. 2019)")
    # --- runtime
    seed: int = knob(0, "random seed")
    device: str = knob("auto", "auto | cpu | cuda")
    amp: str = knob("auto", "bf16 autocast: auto (CUDA with bf16), bf16, off")
    compile: bool = knob(False, "torch.compile the model")
    threads: int | None = knob(None, "CPU threads for PyTorch (default: PyTorch's)")
    log_every: int = knob(0, "also log every N steps to history_steps.csv")
    tensorboard: str = knob("auto", "TensorBoard events in RUN/tensorboard: auto (if installed), on, off")
    extra: dict[str, Any] = knob(default_factory=dict, help="free-form notes, kept in config.json")

    def __post_init__(self) -> None:
        problems = _coerce_types(self)  # types first: the checks compare numbers
        if problems:
            raise ConfigError("invalid training config:\n  - " + "\n  - ".join(problems))
        self._model_defaults()
        problems = [p for check in _CHECKS for p in check(self)]
        if problems:
            raise ConfigError("invalid training config:\n  - " + "\n  - ".join(problems))
        self._derive_defaults()

    def _model_defaults(self) -> None:
        """Settings left unset take the model's (:data:`MODEL_DEFAULTS`), so ``--model bag`` alone
        trains as its config does; config.json records the values used."""
        for name, value in MODEL_DEFAULTS.get(self.model, MODEL_DEFAULTS["textcnn"]).items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def _derive_defaults(self) -> None:
        if self.length_bucket is None:
            # batches of alike lengths are batches of alike titles: on THUCNews, dev accuracy of
            # textcnn, bilstm and transformer was 0.2-0.6 points higher without them (3 seeds
            # each); a bag's was not (and its padding is all bucketing saves)
            self.length_bucket = 50 if MODELS[self.model].bag else 1

    # --- derived
    def chunking(self):
        """The :class:`~embgraft.training.encode.Chunking` of ``--chunk``, or None."""
        from embgraft.training.encode import Chunking

        if self.chunk is None:
            return None
        return Chunking(self.chunk, self.stride or self.chunk, self.chunk_pool, self.max_chunks)

    @property
    def tokenizer_level(self) -> str:
        """Without a graft, how texts become tokens (``level``, default char)."""
        return self.level or "char"

    @property
    def embedding_mode(self) -> str:
        return parse_embedding(self.embedding)[0]

    @property
    def gradual_epochs(self) -> int:
        return parse_embedding(self.embedding)[1]

    def model_options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    # --- files
    @classmethod
    def from_sources(cls, *, file: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
                     ) -> "TrainConfig":
        """Defaults <- ``file`` (YAML or JSON) <- ``overrides`` (flags actually given)."""
        values: dict[str, Any] = {}
        if file is not None:
            values.update({k: v for k, v in read_config_file(file).items() if k not in RUN_FACTS})
        values.update(overrides or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            import difflib

            hints = [f"{u!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, names, 1)) else "")
                     for u in unknown]
            raise ConfigError(f"unknown config key(s) in {file or 'arguments'}: {', '.join(hints)}")
        return cls(**values)


# --- the checks, one per section; each returns its problems ---------------------------------------
class _Problems(list):
    """Problems of one section, with the two checks most fields need."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    def choice(self, name: str, options) -> None:
        value = getattr(self.config, name)
        if value not in options:
            self.append(f"{name} must be one of {list(options)}, not {value!r}")

    def within(self, name: str, low: float, high: float, bounds: str = "(]") -> None:
        """``name`` lies between ``low`` and ``high``; ``bounds`` says which ends are open, ``(`` or
        closed, ``[`` (``"(]"``: ``low < value <= high``)."""
        v = getattr(self.config, name)
        above = v > low if bounds[0] == "(" else v >= low
        below = v < high if bounds[1] == ")" else v <= high
        if not (above and below):
            self.append(f"{name} must be in {bounds[0]}{low:g}, {high:g}{bounds[1]}, not {v}")

    def positive(self, name: str, *, allow_none: bool = False, integer: bool = True) -> None:
        v = getattr(self.config, name)
        if v is None and allow_none:
            return
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or v <= 0:
            self.append(f"{name} must be a positive {'integer' if integer else 'number'}, not {v!r}")


def _check_data(c: TrainConfig) -> list[str]:
    p = _Problems(c)
    if c.data is None and c.train is None:
        p.append("give --train (with --dev, --test) or --data with --split")
    if c.data is not None and c.train is not None:
        p.append("give either --train or --data, not both")
    if c.data is not None and (len(c.split) != 3 or any(x <= 0 for x in c.split) or abs(sum(c.split) - 1) > 1e-6):
        p.append(f"split must be three positive shares summing to 1 (train,dev,test), not {c.split}")
    if c.train is not None and c.dev is None:
        p.append("--dev is needed for early stopping and model selection")
    if c.data is not None and (c.dev is not None or c.test is not None):
        p.append("--data is split into train/dev/test by --split: give --dev and --test with --train instead")
    if c.format is not None and str(c.format).lower() not in FORMAT_ALIASES:
        p.append(f"format must be one of {list(dict.fromkeys(FORMAT_ALIASES.values()))}, not {c.format!r}")
    p.choice("on_bad_row", ON_BAD_ROW)
    p.within("train_fraction", 0, 1)
    if c.label_separator is not None and (not isinstance(c.label_separator, str) or not c.label_separator.strip()
                                          or "\t" in c.label_separator or "\n" in c.label_separator):
        p.append(f"label_separator must be a visible character such as '|', not {c.label_separator!r}")
    return p


def _check_embedding(c: TrainConfig) -> list[str]:
    p = _Problems(c)
    if c.level is not None:
        p.choice("level", TOKENIZERS)
        if c.graft is not None:
            p.append(f"level {c.level!r} does not apply with --graft: texts are tokenised as the graft's "
                     "recipe.json says (graft again with --level to change it)")
    p.positive("embedding_dim")
    p.positive("max_len", allow_none=True)
    if not isinstance(c.ngrams, int) or not 1 <= c.ngrams <= 5:
        p.append(f"ngrams must be 1..5, not {c.ngrams!r}")
    p.positive("ngram_min_count")
    if c.words and c.ngrams < 2:
        p.append("words joins the n-gram rows: give ngrams >= 2 with it")
    if c.ngrams > 1 and c.model in MODELS and not MODELS[c.model].ngrams:
        takers = ", ".join(name for name, spec in MODELS.items() if spec.ngrams)
        p.append(f"ngrams > 1 is for models that take n-gram rows ({takers}), not {c.model!r}")
    mode = parse_embedding(c.embedding)
    if mode is None:
        p.append(f"embedding must be full, frozen, partial or gradual:N, not {c.embedding!r}")
    elif mode[0] == "partial" and (c.graft is None or c.random_init):
        p.append("embedding partial keeps the rows found in a source: it needs --graft without --random-init")
    p.choice("sparse", SPARSE)
    if c.chunk is not None:
        p.positive("chunk")
        p.positive("stride", allow_none=True)
        if isinstance(c.stride, int) and isinstance(c.chunk, int) and c.stride > c.chunk:
            p.append(f"stride {c.stride} is longer than the chunk {c.chunk}: parts of the text would be skipped")
        if c.model in MODELS and MODELS[c.model].hf:
            p.append("chunk is for the static models: an hf encoder cuts texts at --max-len")
    elif c.stride is not None:
        p.append("stride is the step between windows: give --chunk with it")
    p.choice("chunk_pool", CHUNK_POOLS)
    p.positive("max_chunks")
    return p


def _check_model(c: TrainConfig) -> list[str]:
    p = _Problems(c)
    p.choice("model", MODELS)
    for name, allowed in MODELS[c.model].choices if c.model in MODELS else ():
        if getattr(c, name) is not None and getattr(c, name) not in allowed:
            p.append(f"{c.model} {name} must be one of {list(allowed)}, not {getattr(c, name)!r}")
    if c.dropout is not None:
        p.within("dropout", 0, 1, "[)")
    for name in ("n_filters", "hidden_dim", "n_layers", "n_heads", "max_positions"):
        p.positive(name, allow_none=True)
    if c.kernel_sizes is not None and (not c.kernel_sizes or any(k < 1 for k in c.kernel_sizes)):
        p.append(f"kernel_sizes must be positive widths, not {','.join(map(str, c.kernel_sizes)) or 'none'}")
    if c.model == "hf" and not c.hf_model:
        p.append("model hf needs --hf-model (a checkpoint directory or hub id)")
    layers, _, k = c.train_layers.partition(":")
    if layers not in TRAIN_LAYERS or (layers in ("first", "last")) != bool(k) or (k and not k.isdigit()):
        p.append(f"train_layers must be none, all, first:N or last:N, not {c.train_layers!r}")
    p.within("layer_lr_decay", 0, 1)
    return p


def _check_optimisation(c: TrainConfig) -> list[str]:
    p = _Problems(c)
    p.choice("optimizer", OPTIMIZERS)
    p.positive("epochs")
    p.positive("batch_size")
    p.positive("length_bucket", allow_none=True)
    p.positive("lr", integer=False)
    p.positive("embedding_lr", allow_none=True, integer=False)
    for name in ("lr", "embedding_lr"):
        if isinstance(getattr(c, name), (int, float)) and getattr(c, name) > MAX_LR:
            p.append(f"{name} {getattr(c, name):g} is above {MAX_LR:g}: no model here trains at such a rate")
    if c.weight_decay < 0:
        p.append(f"weight_decay must be >= 0, not {c.weight_decay}")
    p.choice("schedule", SCHEDULES)
    if c.warmup < 0:
        p.append(f"warmup must be >= 0 (steps, or a share below 1), not {c.warmup}")
    p.within("gamma", 0, 1)
    p.within("plateau_factor", 0, 1, "()")
    p.positive("plateau_patience")
    p.positive("grad_clip", allow_none=True, integer=False)
    p.within("label_smoothing", 0, 1, "[)")
    p.positive("patience", allow_none=True)
    if c.min_steps < 0:
        p.append(f"min_steps must be >= 0, not {c.min_steps}")
    if c.metric is not None:
        p.choice("metric", METRICS)
    if c.focal_gamma < 0 or c.focal_gamma > 10:
        p.append(f"focal_gamma must be in [0, 10], not {c.focal_gamma:g}")
    if c.class_weight is not None and c.class_weight != "balanced" and not os.path.isfile(c.class_weight):
        p.append(f"class_weight must be 'balanced' or a file of 'label<TAB>weight' lines; no file {c.class_weight}")
    return p


def _check_distillation(c: TrainConfig) -> list[str]:
    p = _Problems(c)
    p.within("distill_weight", 0, 1, "[]")
    p.positive("distill_temperature", integer=False)
    if c.unlabelled is not None and not c.teachers:
        p.append("unlabelled texts are learnt from the teachers' predictions: give --teachers with --unlabelled")
    if not isinstance(c.augment, int) or not 0 <= c.augment <= 50:
        p.append(f"augment must be a number of copies in 0..50, not {c.augment!r}")
    elif c.augment and not c.teachers:
        p.append("augmented copies are learnt from the teachers' predictions: give --teachers with --augment")
    elif c.augment and c.model in MODELS and MODELS[c.model].hf:
        p.append("augment makes copies in a static student's tokenisation: it is for bag, textcnn, bilstm and "
                 "transformer students, not hf")
    if c.distill_temperature > MAX_TEMPERATURE:
        p.append(f"distill_temperature must be at most {MAX_TEMPERATURE:g}, not {c.distill_temperature:g}")
    p.choice("distill_loss", tuple(DISTILL_LOSSES))
    if c.distill_loss == "mse" and c.distill_temperature != 1:
        p.append(f"distill_temperature is for the kl loss: mse compares logits unsoftened, so leave it at 1, not "
                 f"{c.distill_temperature:g}")
    return p


def _check_runtime(c: TrainConfig) -> list[str]:
    p = _Problems(c)
    p.choice("device", DEVICES)
    p.choice("amp", AMP)
    p.positive("threads", allow_none=True)
    if c.log_every < 0:
        p.append(f"log_every must be >= 0, not {c.log_every}")
    p.choice("tensorboard", TENSORBOARD)
    return p


def _coerce_types(c: TrainConfig) -> list[str]:
    """Every field to the type it is declared with, as YAML, JSON and flags may spell it: numbers
    from numeric strings (PyYAML reads ``1e-3`` as a string), tuples from comma-separated text or
    lists, booleans only from booleans (a quoted ``"false"`` is refused, never true). Returns the
    problems: a value of another type, or a non-finite number."""
    problems = []
    for f in fields(c):
        value = getattr(c, f.name)
        if value is None or f.name == "extra":
            continue
        kind = _FIELD_KINDS[f.name]
        try:
            setattr(c, f.name, _COERCE[kind](value))
        except (TypeError, ValueError) as e:
            problems.append(f"{f.name} must be {_KIND_WORDS[kind]}, not {value!r}" + (f" ({e})" if str(e) else ""))
    if not isinstance(c.extra, dict):
        problems.append(f"extra must be a mapping, not {c.extra!r}")
    return problems


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise TypeError("")


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise TypeError("")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("+-").isdigit():
        return int(v)
    raise TypeError("")


def _to_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise TypeError("")
    x = float(v)
    if not math.isfinite(x):
        raise ValueError("")
    return x


def _to_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise TypeError("")


def _to_column(v: Any) -> str | int:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise TypeError("")
    return v


def _items(v: Any) -> list:
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    if isinstance(v, (list, tuple)):
        return list(v)
    raise TypeError("")


_COERCE: dict[str, Callable[[Any], Any]] = {
    "bool": _to_bool, "int": _to_int, "float": _to_float, "str": _to_str, "column": _to_column,
    "floats": lambda v: tuple(_to_float(x) for x in _items(v)),
    "ints": lambda v: tuple(_to_int(x) for x in _items(v)),
    "strs": lambda v: tuple(_to_str(x) for x in _items(v)),
}
_KIND_WORDS = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string",
               "column": "a column name or index", "floats": "numbers separated by commas",
               "ints": "integers separated by commas", "strs": "names separated by commas"}


def _field_kinds() -> dict[str, str]:
    """Field name -> how its value is coerced, read off the type hints."""
    import typing

    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and args else hint
        if name in ("text_column", "label_column"):
            out[name] = "column"
        elif typing.get_origin(base) is tuple:
            out[name] = {float: "floats", int: "ints", str: "strs"}[typing.get_args(base)[0]]
        else:
            out[name] = {bool: "bool", int: "int", float: "float", str: "str"}.get(base, "any")
    return out


_CHECKS: tuple[Callable[[TrainConfig], list[str]], ...] = (
    _check_data, _check_embedding, _check_model, _check_optimisation, _check_distillation, _check_runtime)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A mapping of config keys (hyphens or underscores) from a YAML or JSON file."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = read_json(path)
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise MalformedFileError(path, first_undecodable_line(path), f"not valid UTF-8 ({e.reason}): save the "
                                     "config as UTF-8") from None
        import yaml  # a dependency

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise MalformedFileError(path, None if mark is None else mark.line + 1, f"bad YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MalformedFileError(path, None, f"expected a mapping of config keys, found {type(data).__name__}")
    base = path.parent
    out = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        # paths in a config file are relative to the file, not to where the command runs
        if key in _PATH_KEYS and isinstance(v, str):
            v = _relative_to(base, v)
        elif key in _PATH_LIST_KEYS and isinstance(v, list):
            v = [_relative_to(base, x) if isinstance(x, str) else x for x in v]
        out[key] = v
    return out


def _relative_to(base: Path, path: str) -> str:
    return str(base / path) if path and not os.path.isabs(path) and (base / path).exists() else path


_FIELD_KINDS = _field_kinds()
_COERCE["any"] = lambda v: v
