"""Everything a training run needs before its first step, built from a ``TrainConfig``.

data files -> examples + labels -> the embedding's rows (a graft, n-gram rows, or random) ->
the frozen-row mask of the fine-tuning mode -> the model (static, or an ``hf`` encoder) and its
text encoder -> every split encoded once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embgraft.errors import ConfigError
from embgraft.grafting.ngrams import add_ngram_rows
from embgraft.grafting.result import GraftReport, GraftResult, Provenance
from embgraft.hf import import_transformers, library_bars
from embgraft.models import build_model, model_spec
from embgraft.models.base import TextClassifier
from embgraft.models.embedding import TokenEmbedding
from embgraft.models.hf import HFClassifier
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab
from embgraft.training.augment import augment, neighbour_table
from embgraft.training.config import TrainConfig
from embgraft.training.data import (Examples, LabelSet, is_multi_label, read_examples, read_unlabelled,
                                    stratified_split, stratified_subset)
from embgraft.training.encode import EncodedSet, HFTextEncoder, TextEncoder, encode

RANDOM_METHOD = "init:random"


@dataclass
class Prepared:
    recipe: Recipe | None  # max_len resolved; None for an hf encoder on its own tokenizer
    vocab: Vocab | None  # the model's vocabulary (the graft's, plus any n-gram rows)
    labels: LabelSet
    train: EncodedSet
    dev: EncodedSet
    test: EncodedSet | None
    init_weights: np.ndarray | None  # (n_tokens, dim) float32: the embedding before training
    provenance: list[Provenance]
    model: TextClassifier
    graft_report: dict | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    train_texts: list[str] = field(default_factory=list)  # the teachers score these (distillation)
    n_unlabelled: int = 0  # the last of the training texts have no label (label id -1): --unlabelled, --augment
    n_augmented: int = 0  # of them, the altered copies of labelled texts (--augment), the very last
    multi_label: bool = False  # labels are (n, n_classes) multi-hot rows: sigmoid outputs, BCE
    encoder_config: Any = None  # hf: the encoder's transformers config, saved into RUN/hf
    tokenizer: Any = None  # hf on its own tokenizer: saved into RUN/hf beside the config

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def min_len(self) -> int:
        return self.model.min_len

    def release_initial(self) -> None:
        """Drop the initial rows and their provenance once the run directory holds them: training
        never reads them, and with 80k n-gram rows they are a 60 MB table and 25 MB of records."""
        self.init_weights, self.provenance = None, []


def multi_label_task(config: TrainConfig, examples: Examples) -> bool:
    """A multi-label task: asked for (``--multi-label``), or a label cell of ``examples`` (the
    training data) holds a JSON list or ``--label-separator``."""
    return bool(config.multi_label) or is_multi_label(examples, config.label_separator)


def read_splits(config: TrainConfig) -> tuple[Examples, Examples, Examples | None]:
    """Train/dev/test examples. One ``--data`` file is split stratified with seed 0, so every
    training seed sees the same split; ``train_fraction`` then takes a stratified share of train.
    Multi-label data is split the same way but shuffled, not stratified (its label combinations
    are too many and too rare to stratify on)."""
    opts = dict(fmt=config.format, text_column=config.text_column, label_column=config.label_column,
                on_bad_row=config.on_bad_row)
    if config.data is not None:
        everything = read_examples(config.data, **opts)
        stratify = not multi_label_task(config, everything)
        train, dev, test = stratified_split(everything, config.split, seed=0, stratify=stratify)
        train.n_skipped = everything.n_skipped
    else:
        train = read_examples(config.train, **opts)
        dev = read_examples(config.dev, **opts)
        test = read_examples(config.test, **opts) if config.test else None
        stratify = not multi_label_task(config, train)
    if config.train_fraction < 1:
        train = stratified_subset(train, config.train_fraction, seed=0, stratify=stratify)
    return train, dev, test


@dataclass
class Labelled:
    labels: LabelSet
    # [(Examples, label ids)] for train, dev, test (test may be (None, None)); ids (n,) int64, or
    # multi-label (n, n_classes) float32 multi-hot
    splits: list
    skipped: dict[str, int]
    multi_label: bool = False


def read_labelled(config: TrainConfig, *, log=print) -> Labelled:
    """The three splits with their label ids; bad rows raise file:line (or are counted)."""
    train_ex, dev_ex, test_ex = read_splits(config)
    multi = multi_label_task(config, train_ex)
    sep = config.label_separator
    labels = (LabelSet.load(config.classes) if config.classes
              else LabelSet.discover(train_ex, multi_label=multi, separator=sep))
    splits = [labels.encode(ex, on_bad_row=config.on_bad_row, multi_label=multi, separator=sep)[::-1]
              if ex is not None else (None, None) for ex in (train_ex, dev_ex, test_ex)]
    skipped = {}
    for ex, _ in splits:
        if ex is not None and ex.n_skipped:
            skipped[ex.path] = ex.n_skipped
            log(f"{ex.path}: skipped {ex.n_skipped} bad rows, e.g. " + "; ".join(ex.skipped[:3]))
    if multi and not config.multi_label:
        log(f"{train_ex.path}: label cells hold several labels: a multi-label task (sigmoid outputs, "
            "per-label thresholds)")
    return Labelled(labels, splits, skipped, multi_label=multi)


# --- the embedding's rows ----------------------------------------------------------------------------
def embedding_rows(config: TrainConfig, train_texts: list[str]) -> tuple[GraftResult, dict | None, int]:
    """``(GraftResult, graft_report or None, n_token_rows)`` for the model's vocabulary: the graft
    (plus n-gram rows, appended after its ``n_token_rows`` rows), or a vocabulary of the training
    texts; random rows with ``random_init``."""
    if config.graft is not None:
        result = GraftResult.load(config.graft)
        report = result.report.to_dict()
    else:
        recipe = Recipe(level=config.tokenizer_level, max_len=config.max_len)
        tokenize = recipe.tokenizer()
        vocab = Vocab.build((tokenize(t) for t in train_texts), level=config.tokenizer_level, recipe=recipe)
        weights = np.zeros((len(vocab), config.embedding_dim), dtype=np.float32)
        provenance = [Provenance("special" if vocab.is_special(t) else RANDOM_METHOD, "", ()) for t in vocab.tokens]
        stub = GraftReport.build(vocab=vocab, provenance=provenance, sources=[], config={},
                                 dim=config.embedding_dim, source_stats={}, pca=None, notes=[], seconds=0.0)
        result = GraftResult(weights=weights, vocab=vocab, provenance=provenance, report=stub, recipe=recipe)
        report = None
    n_token_rows = len(result.vocab)
    if config.ngrams > 1:
        result = add_ngram_rows(result, train_texts, n=config.ngrams, min_count=config.ngram_min_count,
                                scale=config.ngram_scale, words=config.words)
    if config.random_init or config.graft is None:
        result = _randomise(result, seed=config.seed, dim=config.embedding_dim if config.graft is None else None)
    return result, report, n_token_rows


def _randomise(result: GraftResult, *, seed: int, dim: int | None) -> GraftResult:
    """Random rows N(0, sigma^2) for every row but padding. sigma is the grafted rows' own
    standard deviation, so the baseline differs from the graft in information, not in scale
    (without a graft, 1/sqrt(dim), the usual scale of an untrained embedding)."""
    n, width = result.weights.shape
    special = np.array([p.stage == "special" for p in result.provenance])
    sigma = float(result.weights[~special].std()) if dim is None and (~special).any() else 1 / np.sqrt(width)
    special = np.arange(n) == result.vocab.pad_id  # only padding keeps its (zero) row
    sigma = sigma if sigma > 0 else 1 / np.sqrt(width)
    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, sigma, size=(n, width)).astype(np.float32)
    weights[special] = result.weights[special]
    provenance = [p if s else Provenance(RANDOM_METHOD, "", ()) for p, s in zip(result.provenance, special)]
    return GraftResult(weights=weights, vocab=result.vocab, provenance=provenance, report=result.report,
                       dtype="float32", recipe=result.recipe)


def frozen_rows(config: TrainConfig, result: GraftResult) -> np.ndarray | None:
    """(n_tokens,) bool of rows that must never change, by fine-tuning mode."""
    mode = config.embedding_mode
    if mode == "frozen":
        return np.ones(len(result.vocab), dtype=bool)
    if mode == "partial":
        return result.found_mask()
    return None


def use_sparse(config: TrainConfig) -> bool:
    if config.sparse != "auto":
        return config.sparse == "on"
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # DDP reduces dense gradients only
    spec = model_spec(config.model)
    # a bag, or a table grown by n-gram rows, touches a few hundred of its rows per step
    return (spec.bag or (spec.ngrams and config.ngrams > 1)) and config.optimizer == "adamw" and not distributed


def token_embedding(config: TrainConfig, result: GraftResult) -> TokenEmbedding:
    """The ``TokenEmbedding`` of ``result``'s rows, split by the fine-tuning mode."""
    import torch

    frozen = frozen_rows(config, result)
    return TokenEmbedding(torch.from_numpy(np.ascontiguousarray(result.weights, dtype=np.float32)),
                          frozen=None if frozen is None else torch.from_numpy(frozen),
                          padding_idx=result.vocab.pad_id, sparse=use_sparse(config))


def resolved_max_len(config_max_len: int | None, recipe: Recipe | None, model: str) -> int:
    """Tokens kept per text: the config's, else the graft recipe's, else the model's default
    (``ModelSpec.max_len``). The one rule, for training and for loading a run."""
    return config_max_len or (recipe.max_len if recipe is not None else None) or model_spec(model).max_len


# --- the model and its text encoder ------------------------------------------------------------------
@dataclass
class _Built:
    model: TextClassifier
    encoder: Any  # TextEncoder | HFTextEncoder
    rows: GraftResult | None = None  # the embedding's rows (None: an hf encoder's own table)
    report: dict | None = None
    encoder_config: Any = None
    tokenizer: Any = None
    n_token_rows: int = 0  # of ``rows``, the token rows (n-gram and word rows follow)


def _static_model(config: TrainConfig, data: Labelled, *, more_texts: list[str] = ()) -> _Built:
    """``more_texts`` (unlabelled) count for n-gram and word rows beside the training texts."""
    train_ex = data.splits[0][0]
    result, report, n_token_rows = embedding_rows(config, train_ex.texts + list(more_texts))
    recipe = result.tokenisation()
    recipe = recipe.with_max_len(resolved_max_len(config.max_len, recipe, config.model))
    extra = {}
    if config.ngrams > 1 and not model_spec(config.model).bag:  # where the token rows end
        extra["ngram_start"] = n_token_rows
    model = build_model(config.model, embedding=token_embedding(config, result), n_classes=len(data.labels),
                        options=config.model_options(), **extra)
    encoder = TextEncoder(result.vocab, recipe, ngrams=config.ngrams, words=config.words, chunks=config.chunking())
    return _Built(model, encoder, result, report, n_token_rows=n_token_rows)


def load_encoder(spec: str, *, trust_remote_code: bool):
    """The transformers ``AutoModel`` of ``spec`` (a directory or hub id), pretrained weights."""
    tf = import_transformers("model hf")
    try:
        return tf.AutoModel.from_pretrained(spec, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds (a refused pickle among them)
        raise ConfigError(f"cannot load the encoder {spec!r}: {type(e).__name__}: {e}".splitlines()[0]) from None


def _hf_model(config: TrainConfig, data: Labelled) -> _Built:
    """An ``hf`` encoder, with a grafted input table fed as ``inputs_embeds`` (texts through the
    graft's recipe) or its own (texts through its own tokenizer)."""
    tf = import_transformers("model hf")
    encoder = load_encoder(config.hf_model, trust_remote_code=config.trust_remote_code)
    hidden = encoder.config.hidden_size
    built = _Built(model=None, encoder=None, encoder_config=encoder.config)
    if config.graft is not None:
        result, built.report, _ = embedding_rows(config, data.splits[0][0].texts)
        if result.weights.shape[1] != hidden:
            raise ConfigError(f"the graft's rows are {result.weights.shape[1]} wide but {config.hf_model} takes "
                              f"{hidden}: graft from that checkpoint, or with --dim {hidden}")
        recipe = result.tokenisation()
        recipe = recipe.with_max_len(resolved_max_len(config.max_len, recipe, config.model))
        embedding, built.rows = token_embedding(config, result), result
        built.encoder = TextEncoder(result.vocab, recipe)
        pad_id = result.vocab.pad_id
    else:
        built.tokenizer = tf.AutoTokenizer.from_pretrained(config.hf_model, trust_remote_code=config.trust_remote_code)
        built.encoder = HFTextEncoder(built.tokenizer, max_len=resolved_max_len(config.max_len, None, config.model))
        embedding, pad_id = None, built.encoder.vocab.pad_id
    model = HFClassifier(encoder=encoder, n_classes=len(data.labels), pad_id=pad_id, embedding=embedding,
                         dropout=0.1 if config.dropout is None else config.dropout)
    model.configure_layers(config.train_layers)
    if config.embedding_mode == "frozen" and embedding is None:  # a graft's rows are frozen by the mask
        model.set_embedding_trainable(False)
    built.model = model
    return built


def prepare(config: TrainConfig, *, log=print, progress: bool = True) -> Prepared:
    """The data read, the model built and every split encoded: what training needs. ``progress``
    False keeps the libraries' bars off as well (transformers' while an hf encoder loads)."""
    data = read_labelled(config, log=log)
    unlabelled = read_unlabelled(config.unlabelled).texts if config.unlabelled else []
    if model_spec(config.model).hf:
        with library_bars(progress):  # transformers' own bars, while the encoder and tokenizer load
            built = _hf_model(config, data)
    else:
        built = _static_model(config, data, more_texts=unlabelled)
    (train_ex, y_train), (dev_ex, y_dev), (test_ex, y_test) = data.splits
    copies = _augmented(config, train_ex.texts, built) if config.augment else []
    unlabelled = unlabelled + copies
    # unlabelled texts join the training set with label -1: the teachers' predictions are all
    # they are learnt from
    train_texts = train_ex.texts + unlabelled
    y_train = np.concatenate([y_train, np.full((len(unlabelled), *y_train.shape[1:]), -1, dtype=y_train.dtype)])
    sets = [None if ex is None else encode(texts, y, built.encoder, min_len=built.model.min_len)
            for ex, texts, y in ((train_ex, train_texts, y_train), (dev_ex, dev_ex.texts, y_dev),
                                 (test_ex, None if test_ex is None else test_ex.texts, y_test))]
    rows = built.rows
    log(f"{len(train_ex):,} train" + (f" (+ {len(unlabelled):,} unlabelled" + (f", {len(copies):,} of them altered "
                                                                                f"copies" if copies else "") + ")"
                                      if unlabelled else "")
        + f" / {len(dev_ex):,} dev / {0 if test_ex is None else len(test_ex):,} test texts, "
        f"{len(data.labels)} {'labels (multi-label)' if data.multi_label else 'classes'}; "
        + _describe(config, built))
    return Prepared(recipe=None if rows is None else built.encoder.recipe, vocab=None if rows is None else rows.vocab,
                    labels=data.labels, train=sets[0], dev=sets[1], test=sets[2],
                    init_weights=None if rows is None else np.asarray(rows.weights, dtype=np.float32),
                    provenance=[] if rows is None else list(rows.provenance), model=built.model,
                    graft_report=built.report, skipped=data.skipped, train_texts=train_texts,
                    n_unlabelled=len(unlabelled), n_augmented=len(copies), multi_label=data.multi_label,
                    encoder_config=built.encoder_config, tokenizer=built.tokenizer)


def _augmented(config: TrainConfig, texts: list[str], built: _Built) -> list[str]:
    """``config.augment`` altered copies of each labelled text (:mod:`embgraft.training.augment`),
    in the student's tokenisation; replacements come from the rows the graft found."""
    rows = built.rows
    neighbours = None
    if config.graft is not None and not config.random_init:
        found = rows.found_mask()
        n = built.n_token_rows  # token rows only: n-gram and word rows are not tokens
        neighbours = neighbour_table(rows.vocab.tokens[:n], np.asarray(rows.weights[:n]), found[:n])
    return augment(texts, n_copies=config.augment, tokenize=built.encoder.tokenize, level=built.encoder.recipe.level,
                   neighbours=neighbours, seed=config.seed)


def _describe(config: TrainConfig, built: _Built) -> str:
    """The log line's account of the embedding (and, hf, of the encoder)."""
    model = built.model
    if isinstance(model, HFClassifier):
        n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return (f"encoder {config.hf_model} ({type(model.encoder).__name__}, {config.train_layers} layers), "
                f"{'grafted' if model.embedding is not None else 'its own'} input embedding, "
                f"{n_trainable:,} trainable weights")
    emb, rows = model.embedding, built.rows
    return (f"embedding {len(rows.vocab):,} x {rows.weights.shape[1]} "
            f"({'random' if config.random_init or config.graft is None else 'grafted'}, {config.embedding}, "
            f"{emb.n_trainable:,} trainable rows{', sparse' if emb.sparse else ''})")
