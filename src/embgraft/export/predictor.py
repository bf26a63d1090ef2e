"""``Predictor``: an ONNX export directory, answered on NumPy + onnxruntime, without torch.

``Predictor.load(EXPORT).predict(["文本", ...], top_k=3)`` gives what
``Classifier.load(RUN).predict`` gives: texts go through the run's own recipe and vocabulary
(:class:`embgraft.training.encode.TextEncoder`, n-gram and word ids included), are batched and
padded exactly as the classifier batches them (:func:`embgraft.training.batches.padded_batches`),
and the graph computes the same logits. Nothing on this module's import path imports torch
(``tests/export`` checks it in a fresh interpreter).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np

from embgraft.errors import MalformedFileError
from embgraft.export.layout import HF_TOKENIZER_FILE, INPUT_NAME, ONNX_FILE, inside, read_export
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab
from embgraft.training.batches import batch_order, padded_batches
from embgraft.training.data import LabelSet
from embgraft.training.encode import Chunking, TextEncoder, encode
from embgraft.training.multilabel import sigmoid
from embgraft.training.rundir import LABELS_FILE, VOCAB_FILE


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("the ONNX predictor needs onnxruntime: pip install 'embgraft[export]'") from None
    return onnxruntime


class _TokenizerJSONEncoder:
    """An ``hf`` run's own tokenizer from its ``tokenizer.json`` (the ``tokenizers`` package, no
    transformers): ids with the tokenizer's specials, cut to ``max_len``, as ``HFTextEncoder``."""

    chunks = None  # an hf encoder cuts at max_len, as in training

    def __init__(self, path: Path, *, max_len: int, pad_id: int, unk_id: int) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError("an hf export on its own tokenizer needs tokenizers: pip install tokenizers") from None
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_len)
        self.vocab = SimpleNamespace(pad_id=pad_id, unk_id=unk_id)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids


class Predictor:
    """A loaded export: ``labels`` (class names in id order), ``meta`` (``export.json``)."""

    def __init__(self, directory: Path, meta: dict, session, encoder, labels: LabelSet) -> None:
        self.directory = directory
        self.meta = meta
        self.session = session
        self.encoder = encoder
        self.labels = labels
        self.min_len = int(meta["min_len"])
        self.pad_multiple = int(meta["pad_multiple"])
        # multi-label exports: (n_labels,) each label's threshold; None: single-label (softmax)
        self.thresholds = None
        if meta.get("task") == "multi_label":
            found = meta.get("thresholds") or {}
            missing = [n for n in labels.names if not isinstance(found.get(n), (int, float))]
            if missing:
                raise MalformedFileError(directory / "export.json", None, f"a multi-label export with no threshold "
                                                                          f"for {missing}")
            self.thresholds = np.array([float(found[n]) for n in labels.names])

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None

    @classmethod
    def load(cls, directory: str | os.PathLike, *, threads: int | None = None) -> "Predictor":
        """Read ``EXPORT`` (``embgraft export RUN --format onnx --out EXPORT``); ``threads`` caps
        onnxruntime's intra-op threads (default: its own choice)."""
        ort = import_onnxruntime()
        directory = Path(directory)
        meta = read_export(directory)
        labels = LabelSet.load(inside(directory, LABELS_FILE))
        enc = meta["encoding"]
        if enc["kind"] == "recipe":
            vocab = Vocab.load(inside(directory, VOCAB_FILE))
            chunks = Chunking(**enc["chunks"]) if enc.get("chunks") else None  # long texts as windows
            encoder = TextEncoder(vocab, Recipe.load(directory), ngrams=enc["ngrams"], words=enc["words"],
                                  chunks=chunks)
        elif enc["kind"] == "tokenizer":
            encoder = _TokenizerJSONEncoder(inside(directory, HF_TOKENIZER_FILE), max_len=enc["max_len"],
                                            pad_id=enc["pad_id"], unk_id=enc["unk_id"])
        else:
            raise MalformedFileError(directory / "export.json", None, f"unknown encoding kind {enc['kind']!r}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(inside(directory, ONNX_FILE)), options,
                                       providers=["CPUExecutionProvider"])
        return cls(directory, meta, session, encoder, labels)

    def logits(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """(len(texts), n_classes) float32 logits, batched by length as ``Classifier`` batches."""
        data = encode(list(texts), np.zeros(len(texts), dtype=np.int64), self.encoder, min_len=self.min_len)
        out = np.zeros((len(data), len(self.labels)), dtype=np.float32)
        order = batch_order(data.text_lengths, batch_size=batch_size, shuffle=False, seed=0, epoch=0)
        for ids, idx, segments in padded_batches(data, order, min_len=self.min_len, multiple=self.pad_multiple):
            logits = self.session.run(None, {INPUT_NAME: ids})[0]
            out[idx] = logits if segments is None else _pool(logits, segments, len(idx), data.pool)
        return out

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """(len(texts), n_classes) class probabilities, rows summing to 1 (multi-label: each
        label's sigmoid)."""
        logits = self.logits(texts, batch_size=batch_size)
        if self.multi_label:
            return sigmoid(logits).astype(np.float32)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str], *, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """For each text, the ``top_k`` (label, probability) pairs, most probable first
        (multi-label: every label at or above its threshold), as ``Classifier.predict``."""
        return self.pairs(self.predict_proba(texts), top_k=top_k)

    def pairs(self, proba: np.ndarray, *, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """``predict``'s answer for probabilities already computed (the server batches them)."""
        return self.labels.answer(proba, thresholds=self.thresholds, top_k=top_k)


def _pool(logits: np.ndarray, segments: np.ndarray, n_texts: int, how: str) -> np.ndarray:
    """(R, C) window logits -> (n_texts, C), as ``training.batches.pool_windows`` pools them."""
    if how == "max":
        out = np.full((n_texts, logits.shape[1]), -np.inf, dtype=logits.dtype)
        np.maximum.at(out, segments, logits)
        return out
    out = np.zeros((n_texts, logits.shape[1]), dtype=logits.dtype)
    np.add.at(out, segments, logits)
    return out / np.maximum(np.bincount(segments, minlength=n_texts), 1)[:, None].astype(logits.dtype)
