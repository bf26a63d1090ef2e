"""``hf``: a Hugging Face encoder (local directory or hub id) as a sequence classifier.

Two ways in:
- the encoder's own tokenizer and input embedding (``--hf-model DIR``, no ``--graft``): the
  ``[CLS]`` state feeds the classifier; a model made by ``embgraft extend`` is just such a DIR;
- a grafted embedding in place of the encoder's input embedding (``--graft DIR`` whose width is
  the encoder's hidden size, e.g. jieba words grafted from that same checkpoint): texts go
  through the graft's recipe, rows are fed as ``inputs_embeds``, the states are mean-pooled.

``--train-layers none|first:N|last:N|all`` chooses the encoder layers that train and
``--layer-lr-decay`` scales the LR by that factor per layer below the top (Howard & Ruder).
transformers is imported here only, when an ``hf`` model is asked for.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from embgraft.errors import ConfigError

HF_DIR = "hf"  # inside a run directory: the encoder's config and, when used, its tokenizer
DEFAULT_HF_MAX_LEN = 128


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("model hf needs transformers: pip install 'embgraft[hf]'") from None
    return transformers


def layer_list(encoder) -> nn.ModuleList:
    """The encoder's stack of layers: the ModuleList as long as ``config.num_hidden_layers``."""
    n = getattr(encoder.config, "num_hidden_layers", None)
    found = [(name, m) for name, m in encoder.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if not found:
        raise ConfigError(f"cannot find the {n} layers of {type(encoder).__name__} for --train-layers")
    return min(found, key=lambda nm: nm[0].count("."))[1]


class HFClassifier(nn.Module):
    def __init__(self, *, encoder, n_classes: int, pad_id: int, embedding=None, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.embedding = embedding  # TokenEmbedding of grafted rows, or None: the encoder's own
        self.pad_id = pad_id
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(encoder.config.hidden_size, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T) -> logits (B, n_classes)."""
        mask = (ids != self.pad_id).long()
        if self.embedding is None:
            h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = h[:, 0]  # the [CLS] state the encoder was pre-trained to summarise with
        else:
            h = self.encoder(inputs_embeds=self.embedding(ids), attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)
        return self.out(self.dropout(pooled))

    def input_embedding_params(self) -> list[nn.Parameter]:
        if self.embedding is not None:
            return [self.embedding.trainable]
        return list(self.encoder.get_input_embeddings().parameters())

    def set_embedding_trainable(self, flag: bool) -> None:
        for p in self.input_embedding_params():
            p.requires_grad_(flag)

    def configure_layers(self, train_layers: str) -> None:
        """Freeze the encoder layers ``train_layers`` excludes (and, for ``none``, the rest of
        the encoder around them); the input embedding is the fine-tuning mode's business."""
        layers = layer_list(self.encoder)
        which, _, k = train_layers.partition(":")
        n = len(layers)
        keep = {"all": range(n), "none": range(0), "first": range(min(int(k or 0), n)),
                "last": range(max(n - int(k or 0), 0), n)}[which]
        emb_ids = {id(p) for p in self.input_embedding_params()}
        for p in self.encoder.parameters():
            if id(p) not in emb_ids:
                p.requires_grad_(which != "none")
        for i, layer in enumerate(layers):
            for p in layer.parameters():
                p.requires_grad_(i in keep)

    def param_groups(self, *, lr: float, embedding_lr: float | None, weight_decay: float,
                     layer_lr_decay: float) -> dict[str, list[dict]]:
        """Layer-wise LR: the head ``lr``, layer i of L ``lr * decay**(L - 1 - i)``, the rest of
        the encoder (position embeddings, norms below the first layer) ``lr * decay**L``, the
        input embedding ``embedding_lr`` (default: that same bottom rate)."""
        layers = layer_list(self.encoder)
        n = len(layers)
        depth = {}
        for i, layer in enumerate(layers):
            for p in layer.parameters():
                depth[id(p)] = n - 1 - i
        emb_ids = {id(p) for p in self.input_embedding_params()}
        bottom = lr * layer_lr_decay ** n
        buckets: dict[tuple, list] = {}
        for name, p in self.named_parameters():
            if id(p) in emb_ids:
                key = ("embedding", embedding_lr if embedding_lr is not None else bottom, 0.0)
            elif not p.requires_grad:
                continue  # frozen by --train-layers for the whole run
            else:
                rate = lr if name.startswith(("out.", "encoder.pooler")) else \
                    lr * layer_lr_decay ** depth[id(p)] if id(p) in depth else bottom
                decays = p.ndim >= 2 and "norm" not in name.lower()
                key = ("body" if decays else "body_no_decay", rate, weight_decay if decays else 0.0)
            buckets.setdefault(key, []).append(p)
        groups = [{"params": ps, "name": name, "lr": rate, "base_lr": rate, "weight_decay": wd}
                  for (name, rate, wd), ps in buckets.items()]
        return {"dense": groups, "sparse": []}

    def save_hf(self, out: Path, tokenizer=None) -> None:
        """The encoder's config (and tokenizer) in ``RUN/hf``, so a run loads without the source."""
        target = Path(out) / HF_DIR
        target.mkdir(parents=True, exist_ok=True)
        self.encoder.config.save_pretrained(target)
        if tokenizer is not None:
            tokenizer.save_pretrained(target)


class HFTextEncoder:
    """Texts -> the checkpoint tokenizer's ids (with its specials), cut to ``max_len``."""

    def __init__(self, tokenizer, *, max_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len
        pad = tokenizer.pad_token_id
        if pad is None:  # GPT-style tokenizers have no pad token; any id works behind the mask
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else pad
        self.vocab = SimpleNamespace(pad_id=int(pad), unk_id=int(unk))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, truncation=True, max_length=self.max_len)["input_ids"]


def _load_encoder(spec: str, *, trust_remote_code: bool):
    tf = _transformers()
    try:
        return tf.AutoModel.from_pretrained(spec, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load the encoder {spec!r}: {e}".splitlines()[0]) from None


def prepare_hf(config, data, *, log=print):
    """``Prepared`` for an ``hf`` model: the encoder, its (or the graft's) text encoding."""
    from embgraft.data import TextEncoder, encode
    from embgraft.prepare import Prepared, embedding_rows, token_embedding

    tf = _transformers()
    encoder = _load_encoder(config.hf_model, trust_remote_code=config.trust_remote_code)
    hidden = encoder.config.hidden_size
    (train_ex, y_train), (dev_ex, y_dev), (test_ex, y_test) = data.splits
    vocab = recipe = provenance = init = report = tokenizer = None
    if config.graft is not None:
        result, report, _ = embedding_rows(config, train_ex.texts)
        if result.weights.shape[1] != hidden:
            raise ConfigError(f"the graft's rows are {result.weights.shape[1]} wide but {config.hf_model} takes "
                              f"{hidden}: graft from that checkpoint, or with --dim {hidden}")
        recipe = result.tokenisation().with_max_len(config.max_len or result.tokenisation().max_len
                                                   or DEFAULT_HF_MAX_LEN)
        embedding = token_embedding(config, result)
        text_encoder = TextEncoder(result.vocab, recipe)
        vocab, provenance, init = result.vocab, list(result.provenance), np.asarray(result.weights, np.float32)
        pad_id = result.vocab.pad_id
    else:
        tokenizer = tf.AutoTokenizer.from_pretrained(config.hf_model, trust_remote_code=config.trust_remote_code)
        text_encoder = HFTextEncoder(tokenizer, max_len=config.max_len or DEFAULT_HF_MAX_LEN)
        embedding, pad_id = None, text_encoder.vocab.pad_id
    model = HFClassifier(encoder=encoder, n_classes=len(data.labels), pad_id=pad_id, embedding=embedding,
                         dropout=0.1 if config.dropout is None else config.dropout)
    model.configure_layers(config.train_layers)
    if config.embedding_mode == "frozen" and embedding is None:
        model.set_embedding_trainable(False)
    model._tokenizer = tokenizer  # saved into RUN/hf by the run directory
    sets = [None if ex is None else encode(ex.texts, y, text_encoder)
            for ex, y in ((train_ex, y_train), (dev_ex, y_dev), (test_ex, y_test))]
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"{len(train_ex):,} train / {len(dev_ex):,} dev texts, {len(data.labels)} classes; encoder "
        f"{config.hf_model} ({type(encoder).__name__}, {config.train_layers} layers), "
        f"{'grafted' if embedding is not None else 'its own'} input embedding, {n_trainable:,} trainable weights")
    return Prepared(recipe=recipe, vocab=vocab, labels=data.labels, train=sets[0], dev=sets[1], test=sets[2],
                    init_weights=init, provenance=provenance, model=model, graft_report=report,
                    skipped=data.skipped, texts={"train": train_ex.texts, "dev": dev_ex.texts,
                                                 "test": [] if test_ex is None else test_ex.texts})


def load_hf_classifier(run: Path, config: dict, state: dict, *, n_classes: int) -> tuple[Any, Any]:
    """Rebuild a trained ``hf`` run from ``RUN/hf`` and its weights (no network, no source)."""
    from embgraft.data import TextEncoder
    from embgraft.errors import MalformedFileError
    from embgraft.models import EMBEDDING_WEIGHT
    from embgraft.models.embedding import TokenEmbedding
    from embgraft.tokenize import Recipe
    from embgraft.vocab import Vocab

    tf = _transformers()
    hf_dir = Path(run) / HF_DIR
    enc_config = tf.AutoConfig.from_pretrained(hf_dir, trust_remote_code=config.get("trust_remote_code", False))
    encoder = tf.AutoModel.from_config(enc_config, trust_remote_code=config.get("trust_remote_code", False))
    if EMBEDDING_WEIGHT in state:
        vocab = Vocab.load(Path(run) / "vocab.txt")
        embedding = TokenEmbedding(state[EMBEDDING_WEIGHT], padding_idx=vocab.pad_id)
        text_encoder = TextEncoder(vocab, Recipe.load(run))
        pad_id = vocab.pad_id
    else:
        tokenizer = tf.AutoTokenizer.from_pretrained(hf_dir)
        text_encoder = HFTextEncoder(tokenizer, max_len=config.get("max_len") or DEFAULT_HF_MAX_LEN)
        embedding, pad_id = None, text_encoder.vocab.pad_id
    model = HFClassifier(encoder=encoder, n_classes=n_classes, pad_id=pad_id, embedding=embedding)
    rest = {k: v for k, v in state.items() if k != EMBEDDING_WEIGHT}
    if embedding is not None:
        rest["embedding.trainable"] = embedding.trainable.detach()
    missing, unexpected = model.load_state_dict(rest, strict=False)
    missing = [k for k in missing if not k.startswith("embedding.")]
    if missing or unexpected:
        raise MalformedFileError(Path(run) / "model.safetensors", None,
                                 f"does not fit the encoder: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model, text_encoder
