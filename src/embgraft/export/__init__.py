"""Getting a trained model out: ONNX export directories (``onnx``), the torch-free
:class:`Predictor` that serves them (``predictor``), and the Model2Vec format (``model2vec``).
Importing this package imports no torch; ``Predictor`` is resolved on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from embgraft.export.predictor import Predictor

__all__ = ["Predictor"]


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from embgraft.export.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'embgraft.export' has no attribute {name!r}")
