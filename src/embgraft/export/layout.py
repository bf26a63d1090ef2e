"""The export directory: what ``embgraft export RUN --format onnx`` writes and ``Predictor`` reads.
Its layout is defined here, once; every reader and writer imports these names::

    EXPORT/
      export.json                 format, model, inputs/outputs, encoding settings, sizes, accuracy
      model.onnx                  ids (batch, length) int64 -> logits (batch, n_classes) float32
      recipe.json [user_dict.txt] how texts become tokens (the run's recipe)
      vocab.txt  labels.txt       token ids (n-gram and word rows included), class names in id order
      tokenizer.json              an ``hf`` run on its own tokenizer, instead of recipe + vocab

Imports nothing heavy: the torch-free predictor reads it.
"""

from __future__ import annotations

from pathlib import Path

from embgraft.errors import MalformedFileError
from embgraft.files import read_json

EXPORT_FILE = "export.json"
ONNX_FILE = "model.onnx"
HF_TOKENIZER_FILE = "tokenizer.json"
ONNX_FORMAT = "embgraft-onnx"
MODEL2VEC_FORMAT = "embgraft-model2vec"  # export.json's format in a Model2Vec directory (export.model2vec)
FORMAT_VERSION = 1
INPUT_NAME = "ids"
OUTPUT_NAME = "logits"


def read_export(directory: str | Path) -> dict:
    """``export.json`` of an ONNX export directory, checked for its format and version."""
    path = Path(directory) / EXPORT_FILE
    meta = read_json(path, expect=dict)
    if meta.get("format") != ONNX_FORMAT:
        raise MalformedFileError(path, None, f"not an embgraft ONNX export (format {meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise MalformedFileError(path, None, f"export format version {meta.get('version')!r}; "
                                             f"this embgraft reads {FORMAT_VERSION}")
    return meta


def inside(directory: Path, name: str) -> Path:
    """``directory / name``, which must stay inside ``directory`` (a bundle never points out)."""
    path = (directory / name).resolve()
    if not path.is_relative_to(directory.resolve()):
        raise MalformedFileError(directory / EXPORT_FILE, None, f"{name!r} points outside the export directory")
    return path
