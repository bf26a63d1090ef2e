"""embgraft: graft pretrained parameters onto your own vocabulary as a PyTorch embedding.

Importing the package is cheap on purpose: nothing here imports torch, so ``embgraft graft``
starts fast. Names are resolved lazily from the module that defines them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it (a table, not an if chain)
_EXPORTS = {
    "graft": "embgraft.graft",
    "GraftConfig": "embgraft.graft",
    "GraftResult": "embgraft.result",
    "GraftReport": "embgraft.result",
    "Provenance": "embgraft.result",
    "Vocab": "embgraft.vocab",
    "open_source": "embgraft.sources",
    "Classifier": "embgraft.classifier",
    "TrainConfig": "embgraft.config",
    "Source": "embgraft.sources.base",
    "extend": "embgraft.extend",
    "ExtendReport": "embgraft.extend",
    # every error type
    "EmbgraftError": "embgraft.errors",
    "ConfigError": "embgraft.errors",
    "MalformedFileError": "embgraft.errors",
    "OutputExistsError": "embgraft.errors",
    "CheckpointError": "embgraft.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from embgraft.classifier import Classifier
    from embgraft.config import TrainConfig
    from embgraft.errors import ConfigError, EmbgraftError, MalformedFileError, OutputExistsError
    from embgraft.extend import ExtendReport, extend
    from embgraft.graft import GraftConfig, graft
    from embgraft.result import GraftReport, GraftResult, Provenance
    from embgraft.sources import open_source
    from embgraft.sources.base import Source
    from embgraft.errors import CheckpointError
    from embgraft.vocab import Vocab


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'embgraft' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


class _FunctionModule(types.ModuleType):
    """A submodule named after the function it exports (``embgraft.graft``, ``embgraft.extend``).

    Once such a submodule is imported, Python binds the *module* to the package's attribute of
    that name, and ``from embgraft import graft`` would then give the module. Calling it calls
    the function, so that import works whatever was imported first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if (_EXPORTS.get(name) == f"{__name__}.{name}" and type(value) is types.ModuleType
                and value.__name__ == f"{__name__}.{name}"):
            value.__class__ = _FunctionModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
