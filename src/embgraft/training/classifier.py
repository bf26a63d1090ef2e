"""A trained run, loaded for use: ``Classifier.load(RUN).predict(["文本", ...])``.

Texts are tokenised through the run's own recipe and vocabulary (or, for an ``hf`` run on its
own tokenizer, through the tokenizer saved in ``RUN/hf``), so serving matches training. Loading
never reads anything outside the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embgraft.errors import MalformedFileError
from embgraft.hf import import_transformers
from embgraft.models import build_model, model_spec
from embgraft.models.base import EMBEDDING_WEIGHT, TextClassifier
from embgraft.models.embedding import TokenEmbedding
from embgraft.models.hf import HFClassifier
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab
from embgraft.training import rundir
from embgraft.training.batches import predict_logits
from embgraft.training.data import LabelSet
from embgraft.training.encode import HFTextEncoder, TextEncoder, encode
from embgraft.training.prepare import resolved_max_len


@dataclass
class Classifier:
    model: TextClassifier
    labels: LabelSet
    encoder: TextEncoder | HFTextEncoder
    config: dict
    run: Path
    device: Any = None

    @classmethod
    def load(cls, run: str | os.PathLike, *, device: str = "cpu") -> "Classifier":
        import torch

        run = Path(run)
        if not (run / rundir.MODEL_FILE).is_file():
            raise MalformedFileError(run / rundir.MODEL_FILE, None,
                                     "missing: the run did not finish (resume it with --resume)")
        config = rundir.load_config(run)
        labels = LabelSet.load(run / rundir.LABELS_FILE)
        state = rundir.load_model_state(run)
        load = _load_hf if model_spec(config["model"]).hf else _load_static
        model, encoder = load(run, config, state, n_classes=len(labels))
        dev = torch.device(device)
        model.to(dev).eval()
        return cls(model=model, labels=labels, encoder=encoder, config=config, run=run, device=dev)

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """(len(texts), n_classes) class probabilities, rows summing to 1."""
        import torch

        data = encode(list(texts), np.zeros(len(texts), dtype=np.int64), self.encoder, min_len=self.model.min_len)
        logits = predict_logits(self.model, data, batch_size=batch_size, device=self.device)
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict(self, texts: Sequence[str], *, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """For each text, the ``top_k`` (label, probability) pairs, most probable first."""
        return self.labels.top(self.predict_proba(texts), top_k)


def _load_static(run: Path, config: dict, state: dict, *, n_classes: int) -> tuple[TextClassifier, TextEncoder]:
    """A bag / textcnn / bilstm / transformer run: its vocabulary, recipe and weights."""
    vocab = Vocab.load(run / rundir.VOCAB_FILE)
    recipe = Recipe.load(run)
    model = _build(config["model"], state, n_classes=n_classes, options=config, padding_idx=vocab.pad_id,
                   where=run / rundir.MODEL_FILE)
    encoder = TextEncoder(vocab, recipe, ngrams=config.get("ngrams", 1), words=config.get("words", False))
    return model, encoder


def _build(name: str, state: dict, *, n_classes: int, options: dict, padding_idx: int, where: Path) -> TextClassifier:
    if EMBEDDING_WEIGHT not in state:
        raise MalformedFileError(where, None, f"no tensor {EMBEDDING_WEIGHT!r}")
    embedding = TokenEmbedding(state[EMBEDDING_WEIGHT], padding_idx=padding_idx)
    model = build_model(name, embedding=embedding, n_classes=n_classes, options=options)
    model.load_export(state, where=where)
    return model


def _load_hf(run: Path, config: dict, state: dict, *, n_classes: int) -> tuple[HFClassifier, Any]:
    """An ``hf`` run, rebuilt from ``RUN/hf`` and its weights (no network, no source checkpoint)."""
    tf = import_transformers("model hf")
    hf_dir = run / rundir.HF_DIR
    trust = config.get("trust_remote_code", False)
    encoder = tf.AutoModel.from_config(tf.AutoConfig.from_pretrained(hf_dir, trust_remote_code=trust),
                                       trust_remote_code=trust)
    if EMBEDDING_WEIGHT in state:  # a grafted input table: texts through the graft's recipe
        vocab = Vocab.load(run / rundir.VOCAB_FILE)
        embedding = TokenEmbedding(state[EMBEDDING_WEIGHT], padding_idx=vocab.pad_id)
        text_encoder = TextEncoder(vocab, Recipe.load(run))
        pad_id = vocab.pad_id
    else:
        tokenizer = tf.AutoTokenizer.from_pretrained(hf_dir)
        text_encoder = HFTextEncoder(tokenizer, max_len=resolved_max_len(config.get("max_len"), None, "hf"))
        embedding, pad_id = None, text_encoder.vocab.pad_id
    model = HFClassifier(encoder=encoder, n_classes=n_classes, pad_id=pad_id, embedding=embedding)
    model.load_export(state, where=run / rundir.MODEL_FILE)
    return model, text_encoder
