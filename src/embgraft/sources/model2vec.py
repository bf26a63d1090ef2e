"""A Model2Vec static model directory as a source: ``tokenizer.json`` + ``model.safetensors``
holding ``embeddings`` (and, where its vocabulary was quantised, ``mapping`` and ``weights``).

Token ``i`` of the tokenizer's vocabulary has the row ``embeddings[mapping[i]] * weights[i]``
(``mapping`` and ``weights`` each optional), computed as ``model2vec.StaticModel`` computes it,
so an exact row is bit-identical to the model's. The tokens are the tokenizer model's
vocabulary and its added tokens (read from ``tokenizer.json`` as JSON); matching is exact, so a
tokenizer that lower-cases its input has lower-case tokens (``--normalise lower`` finds them).
A key not found as it is is looked up once more in the tokenizer's normalizer's form
(``tokenizers``): ``distill(..., vocabulary=[...])`` stores the words it adds as its BERT
normalizer writes them, a space on each side of every CJK character, so ``基金`` is the token
``基  金``. A word the model lacks is composed from its longest sub-strings the model has.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from embgraft.errors import MalformedFileError
from embgraft.files import read_json, read_safetensors_header
from embgraft.sources.base import Piece, StaticReader, longest_match_pieces, substrings

TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"
EMBEDDINGS_KEY = "embeddings"
MAPPING_KEY = "mapping"
TOKEN_WEIGHTS_KEY = "weights"


def safetensors_keys(path: Path) -> set[str]:
    """The tensor names in a safetensors file's header, without reading the data; an empty set
    for a file that is missing or not safetensors."""
    try:
        header, _ = read_safetensors_header(path)
    except (OSError, MalformedFileError):
        return set()
    return set(header) - {"__metadata__"}


def is_model2vec_dir(path: Path) -> bool:
    """A directory with ``tokenizer.json`` and a ``model.safetensors`` holding ``embeddings``
    (a transformer checkpoint's tensors are named by layer: ``embeddings.word_embeddings...``)."""
    return (path / TOKENIZER_FILE).is_file() and EMBEDDINGS_KEY in safetensors_keys(path / WEIGHTS_FILE)


def tokenizer_vocab(path: Path) -> list[str]:
    """The tokens of ``tokenizer.json``'s model in id order (WordLevel/WordPiece/BPE: a
    ``{token: id}`` map; Unigram: a ``[[token, score], ...]`` list), added tokens included."""
    data = read_json(path, expect=dict)
    model = data.get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if isinstance(vocab, dict):
        by_id = {int(i): t for t, i in vocab.items()}
    elif isinstance(vocab, list):
        by_id = {i: entry[0] for i, entry in enumerate(vocab)}
    else:
        raise MalformedFileError(path, None, "no model vocabulary (model.vocab) in this tokenizer")
    for added in data.get("added_tokens") or []:
        by_id.setdefault(int(added["id"]), added["content"])
    n = max(by_id) + 1 if by_id else 0
    if sorted(by_id) != list(range(n)):
        raise MalformedFileError(path, None, "token ids are not 0..n-1")
    return [by_id[i] for i in range(n)]


def _normalizer(path: Path):
    """``tokenizer.json``'s normalizer (``tokenizers``), or None where it has none."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path)).normalizer
    except Exception:  # noqa: BLE001 - a tokenizer the library cannot build: exact matching only
        return None


class Model2VecSource(StaticReader):
    """Rows of a Model2Vec model, by token (see the module docstring)."""

    kind = "model2vec"

    def __init__(self, path: str | os.PathLike, **options) -> None:
        super().__init__(path, **options)
        from safetensors.numpy import load_file

        if not is_model2vec_dir(self.path):
            raise MalformedFileError(self.path, None, f"not a Model2Vec directory: needs {TOKENIZER_FILE} and "
                                                      f"{WEIGHTS_FILE} holding {EMBEDDINGS_KEY!r}")
        tensors = load_file(str(self.path / WEIGHTS_FILE))
        self.embeddings = tensors[EMBEDDINGS_KEY]
        self.mapping = tensors.get(MAPPING_KEY)
        self.weights = tensors.get(TOKEN_WEIGHTS_KEY)
        where = self.path / WEIGHTS_FILE
        if self.embeddings.ndim != 2 or self.embeddings.dtype.kind not in "fiu":
            raise MalformedFileError(where, None, f"{EMBEDDINGS_KEY!r} must be a 2-d matrix of numbers, "
                                                  f"not {self.embeddings.dtype} {self.embeddings.shape}")
        self.tokens = tokenizer_vocab(self.path / TOKENIZER_FILE)
        n = len(self.tokens)
        if self.mapping is None and self.embeddings.shape[0] != n:
            raise MalformedFileError(where, None, f"{self.embeddings.shape[0]} rows for {n} tokens and no mapping")
        if self.mapping is not None and (self.mapping.shape != (n,) or self.mapping.min(initial=0) < 0
                                         or self.mapping.max(initial=0) >= self.embeddings.shape[0]):
            raise MalformedFileError(where, None, f"{MAPPING_KEY!r} must give each of the {n} tokens a row")
        if self.weights is not None and self.weights.shape != (n,):
            raise MalformedFileError(where, None, f"{TOKEN_WEIGHTS_KEY!r} must hold one weight per token ({n})")
        self.dim = int(self.embeddings.shape[1])
        self.index: dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            self.index.setdefault(token, i)
        self.scan.n_rows = n
        self.scan.n_bytes = (self.path / WEIGHTS_FILE).stat().st_size
        self._normalizer = _normalizer(self.path / TOKENIZER_FILE)
        self.n_by_normalizer = 0  # of the last lookup's keys, those found only in the normalizer's form

    def rows(self, ids: list[int]) -> np.ndarray:
        """(len(ids), dim): token rows as ``StaticModel`` computes them, in the source's dtype."""
        ids_arr = np.asarray(ids, dtype=np.int64)
        emb = self.embeddings[ids_arr if self.mapping is None else self.mapping[ids_arr]]
        if self.weights is not None:
            emb = emb * self.weights[ids_arr][:, None]
        return emb

    def _finite(self, token: str, vec: np.ndarray, token_id: int | None = None) -> np.ndarray | None:
        if np.isfinite(vec).all():
            return vec.astype(self.dtype, copy=False)
        token_id = self.index[token] if token_id is None else token_id
        self.scan.bad_row(self.on_bad_line, self.name, None,
                          f"token {token!r} (id {token_id}): non-finite value (nan or inf)")
        return None

    def _id(self, key: str) -> int | None:
        """The token id of ``key``: as it is, else in the normalizer's form (an added word)."""
        i = self.index.get(key)
        if i is None and self._normalizer is not None:
            i = self.index.get(self._normalizer.normalize_str(key).strip())
            self.n_by_normalizer += i is not None
        return i

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = [k for k in dict.fromkeys(keys)]
        self.n_by_normalizer = 0
        ids = {k: i for k in keys if (i := self._id(k)) is not None}
        have = list(ids)
        rows = self.rows([ids[k] for k in have]) if have else np.zeros((0, self.dim))
        found = {k: v for k, row in zip(have, rows) if (v := self._finite(k, row, ids[k])) is not None}
        if self.n_by_normalizer:
            self.scan.notes.append(f"found in the normalizer's form (a word the model added, e.g. 基金 as "
                                   f"'基  金'): {self.n_by_normalizer:,} keys")
        self.scan.n_requested = len(keys)
        self.scan.n_found = len(found)
        return found

    def pieces(self, token: str, found: Mapping[str, np.ndarray]) -> list[Piece]:
        subs = [s for s in substrings(token, max_piece_chars=self.max_piece_chars) if s in self.index]
        have = {s: v for s, row in zip(subs, self.rows([self.index[s] for s in subs]) if subs else [])
                if (v := self._finite(s, row)) is not None}
        return longest_match_pieces(token, have, max_piece_chars=self.max_piece_chars)
