"""``embgraft export GRAFT_OR_RUN --format model2vec``: a graft's rows (or a run's trained
embedding) as a Model2Vec static model directory that ``model2vec.StaticModel.from_pretrained``
loads: ``model.safetensors`` (``embeddings``, (n_tokens, dim) float32, token-id order),
``tokenizer.json`` (a ``tokenizers`` WordLevel tokenizer over the vocabulary), ``config.json``
and ``export.json``.

The tokenizer must split texts as the recipe does. A character recipe is whitespace-split,
then every character isolated; a ``space`` recipe is whitespace-split; lower-casing is a
``Lowercase`` normaliser. jieba's segmentation (``level: word``) has no ``tokenizers``
equivalent, so a word vocabulary is refused with an error saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.export.layout import EXPORT_FILE, FORMAT_VERSION, MODEL2VEC_FORMAT
from embgraft.files import atomic_dir, write_json
from embgraft.grafting.result import EMBEDDING_FILE
from embgraft.sources.model2vec import EMBEDDINGS_KEY, TOKENIZER_FILE, WEIGHTS_FILE
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab
from embgraft.training import rundir
from embgraft.version import __version__

MODEL2VEC_CONFIG_FILE = "config.json"


def table_of(directory: Path) -> tuple[np.ndarray, Vocab, Recipe, str]:
    """``(weights (n_tokens, dim) float32, vocab, recipe, "graft" | "run")`` of a graft or run directory."""
    from safetensors.numpy import load_file

    if (directory / EMBEDDING_FILE).is_file():
        from embgraft.grafting.result import GraftResult

        result = GraftResult.load(directory)
        return np.asarray(result.weights, dtype=np.float32), result.vocab, result.tokenisation(), "graft"
    if (directory / rundir.MODEL_FILE).is_file() and (directory / rundir.VOCAB_FILE).is_file():
        from embgraft.models.base import EMBEDDING_WEIGHT

        state = load_file(str(directory / rundir.MODEL_FILE))
        if EMBEDDING_WEIGHT not in state:
            raise MalformedFileError(directory / rundir.MODEL_FILE, None, f"no tensor {EMBEDDING_WEIGHT!r}")
        return (state[EMBEDDING_WEIGHT].astype(np.float32), Vocab.load(directory / rundir.VOCAB_FILE),
                Recipe.load(directory), "run")
    raise ConfigError(f"{directory} is neither a graft directory ({EMBEDDING_FILE}) nor a finished run with its own "
                      f"vocabulary ({rundir.MODEL_FILE} + {rundir.VOCAB_FILE})")


def build_tokenizer(vocab: Vocab, recipe: Recipe):
    """A ``tokenizers.Tokenizer`` splitting texts as ``recipe`` does, over ``vocab``'s ids."""
    if recipe.level == "word":
        raise ConfigError("a jieba word vocabulary cannot be written as Model2Vec: jieba's segmentation has no "
                          "tokenizers (tokenizer.json) equivalent; export a char or space graft instead")
    try:
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    except ImportError:
        raise ImportError("--format model2vec needs tokenizers: pip install 'embgraft[model2vec]'") from None
    unk = vocab.tokens[vocab.unk_id]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab.tokens)}, unk_token=unk))
    if recipe.lowercase:
        tok.normalizer = normalizers.Lowercase()
    split = [pre_tokenizers.WhitespaceSplit()]
    if recipe.level == "char":
        split.append(pre_tokenizers.Split(Regex("."), behavior="isolated"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(split)
    return tok


def export_model2vec(source: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> dict:
    """Write the Model2Vec directory ``out`` for the graft or run ``source``; returns its ``export.json``."""
    from safetensors.numpy import save_file

    from embgraft.export.onnx import check_export_target

    source, out = Path(source), Path(out)
    check_export_target(out, force=force, fmt=MODEL2VEC_FORMAT)
    weights, vocab, recipe, kind = table_of(source)
    if weights.shape[0] != len(vocab):
        raise MalformedFileError(source, None, f"{weights.shape[0]} rows for {len(vocab)} tokens")
    tokenizer = build_tokenizer(vocab, recipe)
    meta = {"format": MODEL2VEC_FORMAT, "version": FORMAT_VERSION, "embgraft_version": __version__,
            "from": kind, "level": recipe.level, "lowercase": recipe.lowercase, "n_tokens": len(vocab),
            "dim": int(weights.shape[1])}
    with atomic_dir(out, force=force) as tmp:
        save_file({EMBEDDINGS_KEY: np.ascontiguousarray(weights)}, str(tmp / WEIGHTS_FILE))
        tokenizer.save(str(tmp / TOKENIZER_FILE))
        write_json(tmp / MODEL2VEC_CONFIG_FILE, {"model_type": "model2vec", "architectures": ["StaticModel"],
                                                 "hidden_dim": int(weights.shape[1]), "normalize": False,
                                                 "embedding_dtype": "float32"})
        write_json(tmp / EXPORT_FILE, meta)
    return meta
