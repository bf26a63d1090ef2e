"""embgraft: graft pretrained parameters onto your own vocabulary as a PyTorch embedding.

Importing the package is cheap on purpose: nothing here imports torch, so ``embgraft graft``
starts fast. Each public name is resolved lazily, on first use, from the module that defines it
(:data:`_EXPORTS`). The stages live in packages named after the data's path: ``text`` ->
``hf`` -> ``sources`` -> ``grafting``; ``models``; ``training`` -> ``evaluation`` (README,
"Architecture").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from embgraft.version import __version__

# name -> module that defines it (a table, not an if chain)
_EXPORTS = {
    "graft": "embgraft.grafting.cascade",
    "GraftConfig": "embgraft.grafting.config",
    "GraftResult": "embgraft.grafting.result",
    "GraftReport": "embgraft.grafting.result",
    "Provenance": "embgraft.grafting.result",
    "Vocab": "embgraft.text.vocab",
    "Recipe": "embgraft.text.tokenize",
    "open_source": "embgraft.sources",
    "Source": "embgraft.sources.base",
    "extend": "embgraft.hf.extend",
    "ExtendReport": "embgraft.hf.extend",
    "TrainConfig": "embgraft.training.config",
    "train": "embgraft.training.loop",
    "Classifier": "embgraft.training.classifier",
    # every error type
    "EmbgraftError": "embgraft.errors",
    "ConfigError": "embgraft.errors",
    "MalformedFileError": "embgraft.errors",
    "OutputExistsError": "embgraft.errors",
    "CheckpointError": "embgraft.errors",
    "NonFiniteLossError": "embgraft.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from embgraft.errors import (CheckpointError, ConfigError, EmbgraftError, MalformedFileError, NonFiniteLossError,
                                 OutputExistsError)
    from embgraft.grafting.cascade import graft
    from embgraft.grafting.config import GraftConfig
    from embgraft.grafting.result import GraftReport, GraftResult, Provenance
    from embgraft.hf.extend import ExtendReport, extend
    from embgraft.sources import open_source
    from embgraft.sources.base import Source
    from embgraft.text.tokenize import Recipe
    from embgraft.text.vocab import Vocab
    from embgraft.training.classifier import Classifier
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'embgraft' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
