"""Everything a training run needs before its first step, built from a ``TrainConfig``.

data files -> examples + labels -> the embedding's rows (a graft, n-gram rows, or random)
-> the frozen-row mask of the fine-tuning mode -> the model -> every split encoded once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embgraft.config import TrainConfig
from embgraft.data import (EncodedSet, Examples, LabelSet, TextEncoder, encode, read_examples,
                           stratified_split, stratified_subset)
from embgraft.result import Provenance

DEFAULT_MAX_LEN = 256
RANDOM_METHOD = "init:random"


@dataclass
class Prepared:
    recipe: Any  # tokenize.Recipe, max_len resolved
    vocab: Any  # the model's vocabulary (the graft's, plus any n-gram rows)
    labels: LabelSet
    train: EncodedSet
    dev: EncodedSet
    test: EncodedSet | None
    init_weights: np.ndarray  # (n_tokens, dim) float32: the embedding before training
    provenance: list[Provenance]
    model: Any
    graft_report: dict | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)  # split -> texts, for reports

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def min_len(self) -> int:
        return getattr(self.model, "min_len", 1)


def read_splits(config: TrainConfig) -> tuple[Examples, Examples, Examples | None]:
    """Train/dev/test examples. One ``--data`` file is split stratified with seed 0, so every
    training seed sees the same split; ``train_fraction`` then takes a stratified share of train."""
    opts = dict(fmt=config.format, text_column=config.text_column, label_column=config.label_column,
                on_bad_row=config.on_bad_row)
    if config.data is not None:
        everything = read_examples(config.data, **opts)
        train, dev, test = stratified_split(everything, config.split, seed=0)
        train.n_skipped = everything.n_skipped
    else:
        train = read_examples(config.train, **opts)
        dev = read_examples(config.dev, **opts)
        test = read_examples(config.test, **opts) if config.test else None
    if config.train_fraction < 1:
        train = stratified_subset(train, config.train_fraction, seed=0)
    return train, dev, test


def embedding_rows(config: TrainConfig, train_texts: list[str]):
    """``(GraftResult, graft_report or None, n_token_rows)`` for the model's vocabulary: the graft
    (plus n-gram rows, appended after its ``n_token_rows`` rows), or a vocabulary of the training
    texts; random rows with ``random_init``."""
    from embgraft.ngrams import add_ngram_rows
    from embgraft.result import GraftReport, GraftResult
    from embgraft.tokenize import Recipe
    from embgraft.vocab import Vocab

    if config.graft is not None:
        result = GraftResult.load(config.graft)
        report = result.report.to_dict()
    else:
        recipe = Recipe(level=config.level, max_len=config.max_len)
        tokenize = recipe.tokenizer()
        vocab = Vocab.build((tokenize(t) for t in train_texts), level=config.level)
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


def _randomise(result, *, seed: int, dim: int | None):
    """Random rows N(0, sigma^2) for every row but padding. sigma is the grafted rows' own
    standard deviation, so the baseline differs from the graft in information, not in scale
    (without a graft, 1/sqrt(dim), the usual scale of an untrained embedding)."""
    from embgraft.result import GraftResult

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


def frozen_rows(config: TrainConfig, result) -> np.ndarray | None:
    """(n_tokens,) bool of rows that must never change, by fine-tuning mode."""
    mode = config.embedding_mode
    if mode == "frozen":
        return np.ones(len(result.vocab), dtype=bool)
    if mode == "partial":
        return result.found_mask()
    return None


def use_sparse(config: TrainConfig) -> bool:
    from embgraft.models import model_spec

    if config.sparse != "auto":
        return config.sparse == "on"
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # DDP reduces dense gradients only
    spec = model_spec(config.model)
    # a bag, or a table grown by n-gram rows, touches a few hundred of its rows per step
    return (spec.bag or (spec.ngrams and config.ngrams > 1)) and config.optimizer == "adamw" and not distributed


@dataclass
class Labelled:
    labels: LabelSet
    splits: list  # [(Examples, (n,) int64 label ids)] for train, dev, test (test may be (None, None))
    skipped: dict[str, int]


def read_labelled(config: TrainConfig, *, log=print) -> Labelled:
    """The three splits with their label ids; bad rows raise file:line (or are counted)."""
    train_ex, dev_ex, test_ex = read_splits(config)
    labels = LabelSet.load(config.classes) if config.classes else LabelSet.discover(train_ex)
    splits = [labels.encode(ex, on_bad_row=config.on_bad_row)[::-1] if ex is not None else (None, None)
              for ex in (train_ex, dev_ex, test_ex)]
    skipped = {}
    for ex, _ in splits:
        if ex is not None and ex.n_skipped:
            skipped[ex.path] = ex.n_skipped
            log(f"{ex.path}: skipped {ex.n_skipped} bad rows, e.g. " + "; ".join(ex.skipped[:3]))
    return Labelled(labels, splits, skipped)


def token_embedding(config: TrainConfig, result):
    """The ``TokenEmbedding`` of ``result``'s rows, split by the fine-tuning mode."""
    import torch

    from embgraft.models.embedding import TokenEmbedding

    frozen = frozen_rows(config, result)
    return TokenEmbedding(torch.from_numpy(np.ascontiguousarray(result.weights, dtype=np.float32)),
                          frozen=None if frozen is None else torch.from_numpy(frozen),
                          padding_idx=result.vocab.pad_id, sparse=use_sparse(config))


def prepare(config: TrainConfig, *, log=print) -> Prepared:
    from embgraft.models import build_model, model_spec

    data = read_labelled(config, log=log)
    (train_ex, y_train), (dev_ex, y_dev), (test_ex, y_test) = data.splits
    labels, skipped = data.labels, data.skipped
    if model_spec(config.model).hf:
        from embgraft.models.hf import prepare_hf

        return prepare_hf(config, data, log=log)

    result, report, n_token_rows = embedding_rows(config, train_ex.texts)
    recipe = result.tokenisation()
    recipe = recipe.with_max_len(config.max_len or recipe.max_len or DEFAULT_MAX_LEN)
    embedding = token_embedding(config, result)
    extra = {}
    if config.ngrams > 1 and not model_spec(config.model).bag:  # where the token rows end
        extra["ngram_start"] = n_token_rows
    model = build_model(config.model, embedding=embedding, n_classes=len(labels), options=config.model_options(),
                        **extra)
    min_len = getattr(model, "min_len", 1)
    encoder = TextEncoder(result.vocab, recipe, ngrams=config.ngrams, words=config.words)
    sets = [None if ex is None else encode(ex.texts, y, encoder, min_len=min_len)
            for ex, y in ((train_ex, y_train), (dev_ex, y_dev), (test_ex, y_test))]
    n_train_rows = embedding.n_trainable
    log(f"{len(train_ex):,} train / {len(dev_ex):,} dev / {0 if test_ex is None else len(test_ex):,} test texts, "
        f"{len(labels)} classes; embedding {len(result.vocab):,} x {result.weights.shape[1]} "
        f"({'random' if config.random_init or config.graft is None else 'grafted'}, {config.embedding}, "
        f"{n_train_rows:,} trainable rows{', sparse' if embedding.sparse else ''})")
    return Prepared(recipe=recipe, vocab=result.vocab, labels=labels, train=sets[0], dev=sets[1], test=sets[2],
                    init_weights=np.asarray(result.weights, dtype=np.float32), provenance=list(result.provenance),
                    model=model, graft_report=report, skipped=skipped,
                    texts={"train": train_ex.texts, "dev": dev_ex.texts,
                           "test": [] if test_ex is None else test_ex.texts})
