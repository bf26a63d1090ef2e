"""``TrainConfig``: every knob of ``embgraft train``, validated at once.

A config comes from defaults, then a YAML/JSON file (``--config run.yaml``), then flags; each
later one overrides. ``__post_init__`` reports every problem in one ``ConfigError``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from embgraft.errors import ConfigError

EMBEDDING_MODES = ("full", "frozen", "partial", "gradual")
METRICS = ("accuracy", "macro_f1")
DEVICES = ("auto", "cpu", "cuda")
AMP = ("auto", "bf16", "off")
SPARSE = ("auto", "on", "off")
TRAIN_LAYERS = ("none", "all", "first", "last")
_PATH_KEYS = ("train", "dev", "test", "data", "classes", "graft", "hf_model")
_PATH_LIST_KEYS = ("teachers",)


@dataclass
class TrainConfig:
    """What to train on, what to build, how to optimise. ``None`` means "the model's default"."""

    # --- data: train/dev/test files, or one file split by `split`
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    data: str | None = None
    split: tuple[float, ...] = (0.8, 0.1, 0.1)
    format: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    classes: str | None = None  # file of class names, one per line, in id order
    on_bad_row: str = "error"
    train_fraction: float = 1.0  # a stratified share of the training set (learning curves)
    # --- the embedding: a graft directory, or a vocabulary built from the training texts
    graft: str | None = None
    random_init: bool = False  # same vocabulary and width, random rows (the baseline)
    level: str = "char"  # without a graft: how to tokenise
    embedding_dim: int = 200  # without a graft: the width
    max_len: int | None = None  # tokens kept per text; default: the graft recipe's, else 256
    ngrams: int = 1  # bag and textcnn: add 2..n-gram rows, composed from their pieces
    ngram_min_count: int = 1
    ngram_scale: float = 1.0
    words: bool = False  # with ngrams: also a row per jieba word of train longer than the n-grams (char level)
    embedding: str = "full"  # full | frozen | partial | gradual:N
    sparse: str = "auto"  # sparse embedding gradients: auto = with AdamW, for bags and n-gram rows
    # --- the model
    model: str = "textcnn"
    dropout: float | None = None
    n_filters: int | None = None
    kernel_sizes: tuple[int, ...] | None = None
    hidden_dim: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    pooling: str | None = None
    positions: str | None = None
    max_positions: int | None = None
    hf_model: str | None = None  # `hf`: encoder checkpoint (directory or hub id)
    train_layers: str = "all"  # `hf`: none | first:N | last:N | all
    layer_lr_decay: float = 1.0  # `hf`: LR multiplier per layer further from the output
    trust_remote_code: bool = False
    # --- optimisation
    optimizer: str = "adamw"
    epochs: int = 10
    batch_size: int = 64
    # shuffled texts are sorted by length inside windows of this many batches; 1: plain shuffled
    # batches. Default: 50 for bags (order-free: padding is all it changes), 1 for the others
    length_bucket: int | None = None
    lr: float = 1e-3
    embedding_lr: float | None = None  # default: lr
    weight_decay: float = 0.01
    schedule: str = "constant"
    warmup: float = 0.0  # steps, or a share of all steps when below 1
    gamma: float = 0.9  # exponential schedule: factor per epoch
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.0
    patience: int | None = 3  # epochs without dev improvement before stopping; None: never
    metric: str = "accuracy"  # the dev metric for early stopping and the best checkpoint
    # --- knowledge distillation: also fit the averaged predictions of trained runs (distill.py)
    teachers: tuple[str, ...] = ()  # run directories trained on the same classes
    distill_weight: float = 0.5  # the teachers' share of the loss; the gold labels get the rest
    distill_temperature: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # bf16 autocast: auto = on CUDA devices that support it
    compile: bool = False
    threads: int | None = None  # torch CPU threads; default: PyTorch's
    log_every: int = 0  # also log every N steps to history_steps.csv
    tensorboard: str = "auto"  # auto = when the tensorboard package is installed
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, kept in config.json

    def __post_init__(self) -> None:
        from embgraft.models import MODELS
        from embgraft.optim import OPTIMIZERS, SCHEDULES
        from embgraft.tokenize import TOKENIZERS

        if isinstance(self.split, str):
            self.split = tuple(float(x) for x in self.split.split(","))
        self.split = tuple(self.split)
        if isinstance(self.kernel_sizes, str):
            self.kernel_sizes = tuple(int(x) for x in self.kernel_sizes.split(","))
        if self.kernel_sizes is not None:
            self.kernel_sizes = tuple(self.kernel_sizes)
        if isinstance(self.teachers, str):
            self.teachers = tuple(t for t in self.teachers.split(",") if t)
        self.teachers = tuple(str(t) for t in self.teachers)
        p: list[str] = []

        def choice(name: str, options) -> None:
            if getattr(self, name) not in options:
                p.append(f"{name} must be one of {list(options)}, not {getattr(self, name)!r}")

        def positive(name: str, *, allow_none: bool = False, integer: bool = True) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            ok = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok or v <= 0:
                p.append(f"{name} must be a positive {'integer' if integer else 'number'}, not {v!r}")

        if self.data is None and self.train is None:
            p.append("give --train (with --dev, --test) or --data with --split")
        if self.data is not None and self.train is not None:
            p.append("give either --train or --data, not both")
        if self.data is not None and (len(self.split) != 3 or any(x <= 0 for x in self.split)
                                      or abs(sum(self.split) - 1) > 1e-6):
            p.append(f"split must be three positive shares summing to 1 (train,dev,test), not {self.split}")
        if self.train is not None and self.dev is None:
            p.append("--dev is needed for early stopping and model selection")
        choice("on_bad_row", ("error", "skip"))
        if not 0 < self.train_fraction <= 1:
            p.append(f"train_fraction must be in (0, 1], not {self.train_fraction}")
        choice("level", TOKENIZERS)
        positive("embedding_dim")
        positive("max_len", allow_none=True)
        if not isinstance(self.ngrams, int) or not 1 <= self.ngrams <= 5:
            p.append(f"ngrams must be 1..5, not {self.ngrams!r}")
        positive("ngram_min_count")
        if self.length_bucket is None and self.model in MODELS:
            # batches of alike lengths are batches of alike titles: on THUCNews, dev accuracy of
            # textcnn, bilstm and transformer was 0.2-0.6 points higher without them (3 seeds
            # each); a bag's was not (and its padding is all bucketing saves)
            self.length_bucket = 50 if MODELS[self.model].bag else 1
        positive("length_bucket", allow_none=True)
        if self.words and self.ngrams < 2:
            p.append("words joins the n-gram rows: give ngrams >= 2 with it")
        choice("model", MODELS)
        for name, allowed in MODELS[self.model].choices if self.model in MODELS else ():
            if getattr(self, name) is not None and getattr(self, name) not in allowed:
                p.append(f"{self.model} {name} must be one of {list(allowed)}, not {getattr(self, name)!r}")
        if self.ngrams > 1 and self.model in MODELS and not MODELS[self.model].ngrams:
            takers = ", ".join(name for name, spec in MODELS.items() if spec.ngrams)
            p.append(f"ngrams > 1 is for models that take n-gram rows ({takers}), not {self.model!r}")
        mode, _, n = self.embedding.partition(":")
        if mode not in EMBEDDING_MODES or (mode == "gradual") != bool(n) or (n and not n.isdigit()):
            p.append(f"embedding must be full, frozen, partial or gradual:N, not {self.embedding!r}")
        if mode == "partial" and (self.graft is None or self.random_init):
            p.append("embedding partial keeps the rows found in a source: it needs --graft without --random-init")
        choice("sparse", SPARSE)
        if self.model == "hf" and not self.hf_model:
            p.append("model hf needs --hf-model (a checkpoint directory or hub id)")
        layers, _, k = self.train_layers.partition(":")
        if layers not in TRAIN_LAYERS or (layers in ("first", "last")) != bool(k) or (k and not k.isdigit()):
            p.append(f"train_layers must be none, all, first:N or last:N, not {self.train_layers!r}")
        if not 0 < self.layer_lr_decay <= 1:
            p.append(f"layer_lr_decay must be in (0, 1], not {self.layer_lr_decay}")
        choice("optimizer", OPTIMIZERS)
        positive("epochs")
        positive("batch_size")
        positive("lr", integer=False)
        positive("embedding_lr", allow_none=True, integer=False)
        if self.weight_decay < 0:
            p.append(f"weight_decay must be >= 0, not {self.weight_decay}")
        choice("schedule", SCHEDULES)
        if self.warmup < 0:
            p.append(f"warmup must be >= 0 (steps, or a share below 1), not {self.warmup}")
        if not 0 < self.gamma <= 1:
            p.append(f"gamma must be in (0, 1], not {self.gamma}")
        if not 0 < self.plateau_factor < 1:
            p.append(f"plateau_factor must be in (0, 1), not {self.plateau_factor}")
        positive("plateau_patience")
        positive("grad_clip", allow_none=True, integer=False)
        if not 0 <= self.label_smoothing < 1:
            p.append(f"label_smoothing must be in [0, 1), not {self.label_smoothing}")
        positive("patience", allow_none=True)
        choice("metric", METRICS)
        if not 0 <= self.distill_weight <= 1:
            p.append(f"distill_weight must be in [0, 1], not {self.distill_weight}")
        positive("distill_temperature", integer=False)
        choice("device", DEVICES)
        choice("amp", AMP)
        positive("threads", allow_none=True)
        if self.log_every < 0:
            p.append(f"log_every must be >= 0, not {self.log_every}")
        choice("tensorboard", ("auto", "on", "off"))
        if self.dropout is not None and not 0 <= self.dropout < 1:
            p.append(f"dropout must be in [0, 1), not {self.dropout}")
        if p:
            raise ConfigError("invalid training config:\n  - " + "\n  - ".join(p))

    # --- derived
    @property
    def embedding_mode(self) -> str:
        return self.embedding.partition(":")[0]

    @property
    def gradual_epochs(self) -> int:
        return int(self.embedding.partition(":")[2] or 0)

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
            values.update(read_config_file(file))
        values.update(overrides or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            import difflib

            hints = [f"{u!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, names, 1)) else "")
                     for u in unknown]
            raise ConfigError(f"unknown config key(s) in {file or 'arguments'}: {', '.join(hints)}")
        return cls(**values)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A mapping of config keys (hyphens or underscores) from a YAML or JSON file."""
    from embgraft.errors import MalformedFileError

    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise MalformedFileError(path, e.lineno, f"bad JSON: {e.msg}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise ImportError("YAML configs need PyYAML: pip install pyyaml (or use a .json config)") from None
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
