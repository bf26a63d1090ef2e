"""A trained run, loaded for use: ``Classifier.load(RUN).predict(["文本", ...])``.

Texts are tokenised through the run's own recipe and vocabulary, so serving matches training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embgraft import rundir


@dataclass
class Classifier:
    model: Any
    labels: Any  # data.LabelSet
    encoder: Any  # data.TextEncoder (or the hf equivalent)
    config: dict
    run: Path
    device: Any = None

    @classmethod
    def load(cls, run: str | os.PathLike, *, device: str = "cpu") -> "Classifier":
        import torch

        from embgraft.data import LabelSet, TextEncoder
        from embgraft.models import load_exported, model_spec
        from embgraft.tokenize import Recipe
        from embgraft.vocab import Vocab

        run = Path(run)
        if not (run / rundir.MODEL_FILE).is_file():
            raise rundir.MalformedFileError(run / rundir.MODEL_FILE, None,
                                            "missing: the run did not finish (resume it with --resume)")
        config = rundir.load_config(run)
        labels = LabelSet.load(run / rundir.LABELS_FILE)
        state = rundir.load_model_state(run)
        spec = model_spec(config["model"])
        if spec.hf:
            from embgraft.models.hf import load_hf_classifier

            model, encoder = load_hf_classifier(run, config, state, n_classes=len(labels))
        else:
            vocab = Vocab.load(run / rundir.VOCAB_FILE)
            recipe = Recipe.load(run)
            model = load_exported(config["model"], state, n_classes=len(labels), options=config,
                                  padding_idx=vocab.pad_id)
            encoder = TextEncoder(vocab, recipe, ngrams=config.get("ngrams", 1), words=config.get("words", False))
        dev = torch.device(device)
        model.to(dev).eval()
        return cls(model=model, labels=labels, encoder=encoder, config=config, run=run, device=dev)

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """(len(texts), n_classes) class probabilities, rows summing to 1."""
        import torch

        from embgraft.data import encode
        from embgraft.train import predict_logits

        data = encode(list(texts), np.zeros(len(texts), dtype=np.int64), self.encoder,
                      min_len=getattr(self.model, "min_len", 1))
        logits = predict_logits(self.model, data, batch_size=batch_size, device=self.device,
                                min_len=getattr(self.model, "min_len", 1))
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict(self, texts: Sequence[str], *, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """For each text, the ``top_k`` (label, probability) pairs, most probable first."""
        proba = self.predict_proba(texts)
        k = max(1, min(top_k, proba.shape[1]))
        top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return [[(self.labels.names[j], float(p[j])) for j in row] for p, row in zip(proba, top)]
