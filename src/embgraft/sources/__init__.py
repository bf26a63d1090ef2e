"""Readers of pretrained parameters, all behind one contract (see ``base.Source``).

``open_source`` picks the reader from a table of kinds; the kind comes from the user, or from
the path: a directory holding a Model2Vec model (``tokenizer.json`` + an ``embeddings`` tensor) is
``model2vec``, another directory or a hub id is a transformer checkpoint, a file goes by its suffix
(under any ``.gz``/``.bz2``/``.xz``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from embgraft.errors import ConfigError
from embgraft.hf.repository import looks_like_hub_id
from embgraft.sources.arrays import ArrayVectors
from embgraft.sources.base import Piece, ScanStats, Source
from embgraft.sources.binary import BinaryVectors
from embgraft.sources.checkpoint import CheckpointSource
from embgraft.sources.compression import compression_of, read_head, stem_suffix
from embgraft.sources.model2vec import Model2VecSource, is_model2vec_dir
from embgraft.sources.text import TextVectors

# kind -> (reader class, fixed keyword arguments). Importing the readers is cheap: each imports
# NumPy only, and a checkpoint's safetensors / tokenizers / torch when it is opened.
SOURCE_KINDS: dict[str, tuple[type[Source], dict[str, Any]]] = {
    "text": (TextVectors, {"fmt": "auto"}),
    "word2vec": (TextVectors, {"fmt": "word2vec"}),
    "fasttext": (TextVectors, {"fmt": "word2vec"}),
    "glove": (TextVectors, {"fmt": "glove"}),
    "word2vec-binary": (BinaryVectors, {}),
    "npy": (ArrayVectors, {}),
    "checkpoint": (CheckpointSource, {}),
    "model2vec": (Model2VecSource, {}),
}

# file suffix (under compression) -> kind
SUFFIX_KINDS = {
    ".txt": "text",
    ".vec": "text",
    ".w2v": "text",
    ".glove": "text",
    ".bin": "word2vec-binary",
    ".npy": "npy",
    ".npz": "npy",
}

def looks_like_word2vec_binary(path: Path) -> bool:
    """A ``count dim`` header line followed by bytes that are not text: word2vec's binary layout."""
    head = read_head(path, 1 << 12)
    header, newline, rest = head.partition(b"\n")
    fields = header.split()
    if not newline or len(fields) != 2 or not all(f.isdigit() for f in fields) or not rest:
        return False
    try:
        rest[: len(rest) - 4].decode("utf-8")  # a character may be cut at the end of the sniffed bytes
    except UnicodeDecodeError:
        return True
    return b"\x00" in rest


def detect_kind(spec: str | os.PathLike) -> str:
    path = Path(spec)
    if path.is_dir():  # a Model2Vec directory by its content: tokenizer.json + "embeddings"
        return "model2vec" if is_model2vec_dir(path) else "checkpoint"
    if path.is_file():
        kind = SUFFIX_KINDS.get(stem_suffix(path))
        if kind is None:  # another extension (synonyms' words.vector): the content decides
            kind = "word2vec-binary" if looks_like_word2vec_binary(path) else "text"
        return kind
    if stem_suffix(path) in SUFFIX_KINDS or compression_of(path):
        # named as a vector file: a typo in a path, not a hub lookup that would fail more slowly
        raise FileNotFoundError(f"no such file: {spec}")
    if looks_like_hub_id(spec):
        return "checkpoint"  # "name" or "owner/name": a hub id
    raise FileNotFoundError(f"no such file or directory, and not a hub id: {spec}")


# option -> how the CLI spells it, where that is not ``--`` + the name with dashes
OPTION_FLAGS = {"vocab": "--source-vocab"}


def option_flag(name: str) -> str:
    return OPTION_FLAGS.get(name, "--" + name.replace("_", "-"))


def open_source(spec: str | os.PathLike, *, kind: str = "auto", **options: Any) -> Source:
    """Open ``spec`` (a file, a checkpoint directory or a hub id) as a :class:`Source`.

    ``options`` go to the reader; each reader class declares the ones it takes in ``OPTIONS``
    (``on_bad_line``, ``progress``, ``max_piece_chars``, ``dtype`` for all; ``vocab`` for
    ``npy``; ``tensor_key``, ``revision`` ... for checkpoints). Options that are ``None`` are
    dropped; any other option the reader does not take is a :class:`ConfigError` naming it.
    """
    if kind == "auto":
        kind = detect_kind(spec)
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"unknown source kind {kind!r}; known: {', '.join(SOURCE_KINDS)}")
    cls, fixed = SOURCE_KINDS[kind]
    kwargs = {k: v for k, v in options.items() if v is not None}
    stray = [k for k in kwargs if k not in cls.OPTIONS]
    if stray:
        raise ConfigError(
            f"{', '.join(f'{option_flag(k)} ({k}=)' for k in stray)} does not apply to a {kind} source "
            f"({spec}); it takes {', '.join(option_flag(k) for k in sorted(cls.OPTIONS))}"
        )
    return cls(spec, **fixed, **kwargs)


__all__ = ["Piece", "ScanStats", "Source", "SOURCE_KINDS", "SUFFIX_KINDS", "detect_kind", "open_source"]
