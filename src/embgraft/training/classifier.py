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

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.hf import import_transformers
from embgraft.models import MODELS, build_model, model_spec
from embgraft.models.base import EMBEDDING_WEIGHT, TextClassifier
from embgraft.models.embedding import TokenEmbedding
from embgraft.models.hf import HFClassifier
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab
from embgraft.training import rundir
from embgraft.training.batches import predict_logits
from embgraft.training.data import LabelSet
from embgraft.training.encode import Chunking, HFTextEncoder, TextEncoder, encode
from embgraft.training.prepare import resolved_max_len


@dataclass
class Classifier:
    model: TextClassifier
    labels: LabelSet
    encoder: TextEncoder | HFTextEncoder
    config: dict
    run: Path
    device: Any = None
    # multi-label runs: (n_labels,) the dev-tuned threshold of each label (None: single-label)
    thresholds: np.ndarray | None = None

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None

    @classmethod
    def load(cls, run: str | os.PathLike, *, device: str = "cpu", trust_remote_code: bool = False) -> "Classifier":
        """The finished run ``run`` on ``device``. Nothing in the run decides whether code runs:
        an ``hf`` run's encoder config may name custom code, used only with the caller's
        ``trust_remote_code``. The weights are checked against ``config.json``, the vocabulary and
        the labels before any is used."""
        run = Path(run)
        if not run.is_dir():
            raise ConfigError(f"{run} is not a run directory" + (" (no such directory)" if not run.exists() else ""))
        if not (run / rundir.MODEL_FILE).is_file():
            hint = ("resume it with --resume" if (run / rundir.CKPT_DIR / rundir.LAST_STATE).is_file()
                    else "it has no checkpoint to resume either: train it again")
            raise MalformedFileError(run / rundir.MODEL_FILE, None, f"missing: the run did not finish ({hint})")
        dev = _device(device)
        config = rundir.load_config(run)
        if not isinstance(config.get("model"), str) or config["model"] not in MODELS:
            raise MalformedFileError(run / rundir.CONFIG_FILE, None, f"model {config.get('model')!r} is not one of "
                                                                     f"{list(MODELS)}")
        labels = LabelSet.load(run / rundir.LABELS_FILE)
        if config.get("n_classes") is not None and config["n_classes"] != len(labels):
            raise MalformedFileError(run / rundir.LABELS_FILE, None, f"{len(labels)} classes, but the run was trained "
                                                                     f"on {config['n_classes']} ({rundir.CONFIG_FILE})")
        state = rundir.load_model_state(run)
        load = _load_hf if model_spec(config["model"]).hf else _load_static
        model, encoder = load(run, config, state, n_classes=len(labels), trust_remote_code=trust_remote_code)
        model.to(dev).eval()
        thresholds = rundir.load_thresholds(run, labels.names) if rundir.is_multi_label(config) else None
        return cls(model=model, labels=labels, encoder=encoder, config=config, run=run, device=dev,
                   thresholds=thresholds)

    def predict_proba(self, texts: Sequence[str] | str, *, batch_size: int = 256) -> np.ndarray:
        """(len(texts), n_classes) class probabilities, rows summing to 1 (multi-label: each
        label's own probability, a sigmoid); one string is one text."""
        import torch

        texts = _texts(texts)
        data = encode(texts, np.zeros(len(texts), dtype=np.int64), self.encoder, min_len=self.model.min_len)
        logits = torch.from_numpy(predict_logits(self.model, data, batch_size=batch_size, device=self.device))
        return (torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)).numpy()

    def predict(self, texts: Sequence[str] | str, *, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """For each text, the ``top_k`` (label, probability) pairs, most probable first; one string
        is one text (one list of pairs in the returned list). Multi-label: every label at or
        above its threshold, most probable first (``top_k`` does not apply; a text may get none)."""
        return self.pairs(self.predict_proba(texts), top_k=top_k)

    def pairs(self, proba: np.ndarray, *, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """``predict``'s answer for probabilities already computed (the server batches them)."""
        return self.labels.answer(proba, thresholds=self.thresholds, top_k=top_k)


def _texts(texts: Sequence[str] | str) -> list[str]:
    """``texts`` as a list of strings: one string is one text, never its characters."""
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    bad = next((t for t in out if not isinstance(t, str)), None)
    if bad is not None:
        raise ConfigError(f"texts must be strings, not {type(bad).__name__} ({bad!r:.40})")
    return out


def _device(name: str):
    """A device this machine has: ``cuda`` without a GPU, or a name torch does not know, is a
    clear error, not a traceback."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}: use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA device is available")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported: use cpu or cuda")
    return dev


def _check_vocab(run: Path, config: dict, state: dict, vocab: Vocab) -> None:
    """The embedding's rows, the vocabulary and config.json agree on the number of tokens."""
    rows = state[EMBEDDING_WEIGHT].shape[0] if EMBEDDING_WEIGHT in state else None
    if rows is not None and rows != len(vocab):
        raise MalformedFileError(run / rundir.VOCAB_FILE, None, f"{len(vocab)} tokens for the {rows} embedding rows "
                                                                f"of {rundir.MODEL_FILE}")
    if config.get("n_tokens") is not None and config["n_tokens"] != len(vocab):
        raise MalformedFileError(run / rundir.VOCAB_FILE, None, f"{len(vocab)} tokens, but the run was trained on "
                                                                f"{config['n_tokens']} ({rundir.CONFIG_FILE})")


def _load_static(run: Path, config: dict, state: dict, *, n_classes: int,
                 trust_remote_code: bool = False) -> tuple[TextClassifier, TextEncoder]:
    """A bag / textcnn / bilstm / transformer run: its vocabulary, recipe and weights."""
    vocab = Vocab.load(run / rundir.VOCAB_FILE)
    _check_vocab(run, config, state, vocab)
    recipe = Recipe.load(run)
    model = _build(config["model"], state, n_classes=n_classes, options=config, padding_idx=vocab.pad_id,
                   where=run / rundir.MODEL_FILE)
    chunk = config.get("chunk")
    chunks = None if chunk is None else Chunking(chunk, config.get("stride") or chunk, config.get("chunk_pool", "mean"),
                                                 config.get("max_chunks", 32))
    encoder = TextEncoder(vocab, recipe, ngrams=config.get("ngrams", 1), words=config.get("words", False),
                          chunks=chunks)
    return model, encoder


def _build(name: str, state: dict, *, n_classes: int, options: dict, padding_idx: int, where: Path) -> TextClassifier:
    if EMBEDDING_WEIGHT not in state:
        raise MalformedFileError(where, None, f"no tensor {EMBEDDING_WEIGHT!r}")
    embedding = TokenEmbedding(state[EMBEDDING_WEIGHT], padding_idx=padding_idx)
    model = build_model(name, embedding=embedding, n_classes=n_classes, options=options)
    model.load_export(state, where=where)
    return model


def _load_hf(run: Path, config: dict, state: dict, *, n_classes: int,
             trust_remote_code: bool = False) -> tuple[HFClassifier, Any]:
    """An ``hf`` run, rebuilt from ``RUN/hf`` and its weights (no network, no source checkpoint).
    Custom code named by ``RUN/hf`` runs only with the caller's ``trust_remote_code``."""
    tf = import_transformers("model hf")
    hf_dir = run / rundir.HF_DIR
    try:
        enc_config = tf.AutoConfig.from_pretrained(hf_dir, trust_remote_code=trust_remote_code, local_files_only=True)
        encoder = tf.AutoModel.from_config(enc_config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise MalformedFileError(hf_dir, None, f"cannot rebuild the encoder: {str(e).splitlines()[0]}" + (
            "; it names code of its own: pass --trust-remote-code if you trust this run"
            if "trust_remote_code" in str(e) else "")) from None
    if EMBEDDING_WEIGHT in state:  # a grafted input table: texts through the graft's recipe
        vocab = Vocab.load(run / rundir.VOCAB_FILE)
        _check_vocab(run, config, state, vocab)
        embedding = TokenEmbedding(state[EMBEDDING_WEIGHT], padding_idx=vocab.pad_id)
        text_encoder = TextEncoder(vocab, Recipe.load(run))
        pad_id = vocab.pad_id
    else:
        tokenizer = tf.AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=trust_remote_code, local_files_only=True)
        text_encoder = HFTextEncoder(tokenizer, max_len=resolved_max_len(config.get("max_len"), None, "hf"))
        embedding, pad_id = None, text_encoder.vocab.pad_id
    model = HFClassifier(encoder=encoder, n_classes=n_classes, pad_id=pad_id, embedding=embedding)
    model.load_export(state, where=run / rundir.MODEL_FILE)
    return model, text_encoder
