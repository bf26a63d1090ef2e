"""The model zoo: each model is one small module taking a ``TokenEmbedding``, plus one row here.

``MODELS`` maps a name to its class and the config fields it reads (a table, not an if chain).
Models know nothing of files: ``build_model`` gets an embedding already built from a graft.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embgraft.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    module: str  # "embgraft.models.bag:BagClassifier"
    params: tuple[str, ...]  # TrainConfig fields passed as keyword arguments when set
    bag: bool = False  # order-free: n-gram rows join the bag
    ngrams: bool = False  # takes n-gram rows (``ngrams`` > 1): bags, and textcnn's n-gram bag branch
    hf: bool = False  # a Hugging Face encoder; texts may go through its own tokenizer
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (config field, its allowed values) for this model

    def cls(self):
        import importlib

        module, name = self.module.split(":")
        return getattr(importlib.import_module(module), name)


BAG_POOLINGS = ("mean", "max", "mean+max")
BILSTM_POOLINGS = ("max", "mean", "attention")

MODELS: dict[str, ModelSpec] = {
    "bag": ModelSpec("embgraft.models.bag:BagClassifier", ("dropout", "pooling"), bag=True, ngrams=True,
                     choices=(("pooling", BAG_POOLINGS),)),
    "textcnn": ModelSpec("embgraft.models.textcnn:TextCNN", ("n_filters", "kernel_sizes", "dropout", "ngrams"),
                         ngrams=True),
    "bilstm": ModelSpec("embgraft.models.bilstm:BiLSTM", ("hidden_dim", "n_layers", "pooling", "dropout"),
                        choices=(("pooling", BILSTM_POOLINGS),)),
    "transformer": ModelSpec("embgraft.models.transformer:TransformerClassifier",
                             ("n_layers", "n_heads", "hidden_dim", "positions", "dropout", "max_positions")),
    "hf": ModelSpec("embgraft.models.hf:HFClassifier", ("dropout",), hf=True),
}


def model_spec(name: str) -> ModelSpec:
    spec = MODELS.get(name)
    if spec is None:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return spec


def build_model(name: str, *, embedding, n_classes: int, options: dict[str, Any], **extra):
    """``MODELS[name]`` built on ``embedding``; ``options`` holds config fields, None = the model's default."""
    spec = model_spec(name)
    kwargs = {k: options[k] for k in spec.params if options.get(k) is not None}
    if "kernel_sizes" in kwargs:
        kwargs["kernel_sizes"] = tuple(kwargs["kernel_sizes"])
    try:
        return spec.cls()(embedding=embedding, n_classes=n_classes, **kwargs, **extra)
    except ValueError as e:
        raise ConfigError(f"model {name!r}: {e}") from None


EMBEDDING_WEIGHT = "embedding.weight"


def export_state(model) -> dict:
    """The weights a trained model is saved with: the embedding as one (n_tokens, dim) table in
    token-id order under ``embedding.weight`` (however it was split for training), the rest as
    in ``state_dict``. Tensors are made contiguous and moved to the CPU for safetensors."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("embedding.")}
    if getattr(model, "embedding", None) is not None:
        state[EMBEDDING_WEIGHT] = model.embedding.full_weight()
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def load_exported(name: str, state: dict, *, n_classes: int, options: dict[str, Any], padding_idx: int,
                  **extra):
    """Rebuild a model saved by ``export_state``; every tensor must fit exactly (strict)."""
    from embgraft.errors import MalformedFileError
    from embgraft.models.embedding import TokenEmbedding

    if EMBEDDING_WEIGHT not in state:
        raise MalformedFileError("model.safetensors", None, f"no tensor {EMBEDDING_WEIGHT!r}")
    rest = {k: v for k, v in state.items() if k != EMBEDDING_WEIGHT}
    embedding = TokenEmbedding(state[EMBEDDING_WEIGHT], padding_idx=padding_idx)
    model = build_model(name, embedding=embedding, n_classes=n_classes, options=options, **extra)
    expected = {k for k in model.state_dict() if not k.startswith("embedding.")}
    missing, unexpected = sorted(expected - set(rest)), sorted(set(rest) - expected)
    if missing or unexpected:
        raise MalformedFileError("model.safetensors", None,
                                 f"does not fit model {name!r}: missing {missing}, unexpected {unexpected}")
    model.load_state_dict({**rest, "embedding.trainable": model.embedding.trainable.detach()}, strict=True)
    return model
