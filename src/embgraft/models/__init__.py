"""The model zoo: nn.Modules only (no files, no data, no graft). Each model is one small module
taking a ``TokenEmbedding`` (or, ``hf``, an encoder), plus one row of ``MODELS`` (``spec.py``).

``MODELS`` and ``model_spec`` import no torch; ``model_class`` and ``build_model`` do.
"""

from __future__ import annotations

from typing import Any

from embgraft.errors import ConfigError
from embgraft.models.spec import BAG_POOLINGS, BILSTM_POOLINGS, MODELS, ModelSpec, model_spec


def model_class(name: str) -> type:
    """The class of ``MODELS[name]``, imported explicitly (this imports torch)."""
    from embgraft.models.bag import BagClassifier
    from embgraft.models.bilstm import BiLSTM
    from embgraft.models.hf import HFClassifier
    from embgraft.models.textcnn import TextCNN
    from embgraft.models.transformer import TransformerClassifier

    classes = {"bag": BagClassifier, "textcnn": TextCNN, "bilstm": BiLSTM, "transformer": TransformerClassifier,
               "hf": HFClassifier}
    model_spec(name)
    return classes[name]


def build_model(name: str, *, embedding, n_classes: int, options: dict[str, Any], **extra):
    """``MODELS[name]`` built on ``embedding``; ``options`` holds config fields, None = the model's default."""
    spec = model_spec(name)
    kwargs = {k: options[k] for k in spec.params if options.get(k) is not None}
    if "kernel_sizes" in kwargs:
        kwargs["kernel_sizes"] = tuple(kwargs["kernel_sizes"])
    try:
        return model_class(name)(embedding=embedding, n_classes=n_classes, **kwargs, **extra)
    except ValueError as e:
        raise ConfigError(f"model {name!r}: {e}") from None


__all__ = ["BAG_POOLINGS", "BILSTM_POOLINGS", "MODELS", "ModelSpec", "build_model", "model_class", "model_spec"]
