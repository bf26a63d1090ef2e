"""Hugging Face checkpoints, read without instantiating a model.

- :mod:`embgraft.hf.hub` -- what a hub id looks like, and fetching a repository's files;
- :mod:`embgraft.hf.tokenizer` -- a checkpoint's tokenizer reduced to what grafting needs
  (tokenizer families, the byte-level alphabet, standalone rows and pieces);
- :mod:`embgraft.hf.weights` -- which tensor is the input embedding, and reading its rows from
  safetensors or ``.bin`` files.

Nothing here imports torch or transformers at module level: the graft reads checkpoints with
``safetensors`` and ``tokenizers`` alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from embgraft.errors import MalformedFileError


def read_json(path: Path) -> dict:
    """A JSON object from a checkpoint's file; a syntax error names the file and line."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MalformedFileError(path, exc.lineno, exc.msg) from None
    except UnicodeDecodeError as exc:
        raise MalformedFileError(path, None, f"not UTF-8 text ({exc.reason})") from None
    if not isinstance(data, dict):  # config, index and tokenizer settings are all objects
        raise MalformedFileError(path, None, f"expected a JSON object, found {type(data).__name__}")
    return data
