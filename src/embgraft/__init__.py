"""embgraft: graft pretrained parameters onto your own vocabulary as a PyTorch embedding.

Importing the package is cheap on purpose: nothing here imports torch, so ``embgraft graft``
starts fast. Names are resolved lazily from the module that defines them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it (a table, not an if chain)
_EXPORTS = {
    "graft": "embgraft.graft",
    "GraftConfig": "embgraft.graft",
    "GraftResult": "embgraft.result",
    "GraftReport": "embgraft.result",
    "Vocab": "embgraft.vocab",
    "open_source": "embgraft.sources",
    "Classifier": "embgraft.classifier",
    "TrainConfig": "embgraft.config",
    "EmbgraftError": "embgraft.errors",
    "MalformedFileError": "embgraft.errors",
    "ConfigError": "embgraft.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from embgraft.classifier import Classifier
    from embgraft.config import TrainConfig
    from embgraft.errors import ConfigError, EmbgraftError, MalformedFileError
    from embgraft.graft import GraftConfig, graft
    from embgraft.result import GraftReport, GraftResult
    from embgraft.sources import open_source
    from embgraft.vocab import Vocab


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'embgraft' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
