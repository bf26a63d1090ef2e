"""What a graft produces: the matrix, where every row came from, and the coverage report.

On disk, a graft directory (its file names are defined here, once, and imported by every reader)::

    GRAFT/
      embedding.safetensors   tensor "embedding", (n_tokens, dim); metadata dtype
      vocab.txt               token ids (text.vocab's format)
      recipe.json [user_dict.txt]  how texts become tokens (text.tokenize.Recipe)
      provenance.tsv          id, token, method, source, source_tokens (a JSON list) per row
      graft_report.json       the coverage report
      [ngrams.safetensors ngrams_provenance.tsv]  n-gram / word rows grafted with the graft
                              (``graft --ngrams``): tensor "embedding" (n_entries, dim) and the
                              entries' provenance, in provenance.tsv's format

No pickle anywhere.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embgraft.console import format_table
from embgraft.errors import MalformedFileError
from embgraft.files import (FILE, OutputKind, atomic_dir, atomic_file, escape_field, read_json, unescape_field,
                            write_json)
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab

EMBEDDING_FILE = "embedding.safetensors"
EMBEDDING_KEY = "embedding"
VOCAB_FILE = "vocab.txt"
PROVENANCE_FILE = "provenance.tsv"
REPORT_FILE = "graft_report.json"
GRAFT_DIR = OutputKind("graft directory", directory=True, marker=EMBEDDING_FILE)
NGRAMS_FILE = "ngrams.safetensors"
NGRAMS_PROVENANCE_FILE = "ngrams_provenance.tsv"
# stages in cascade order; a method "normalised:nfkc+lower" belongs to stage "normalised"
STAGES = ("special", "exact", "contextual", "normalised", "composed", "init")
# methods whose rows a source gave for the token itself: `partial` fine-tuning freezes these, PCA
# and init are fitted on them. A contextual row (a checkpoint's encoder run on the token,
# scale-matched) is one: the source's own answer for that token, not a composition.
FOUND_STAGES = ("exact", "contextual", "normalised")
_N_INIT_SAMPLE = 20
# result dtype -> the NumPy type its weights are held in, in memory and on disk. NumPy has no
# bfloat16: such weights are float32 arrays holding values rounded to bfloat16.
HELD_AS = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "bfloat16": np.float32}


def cast_weights(weights: np.ndarray, dtype: str) -> np.ndarray:
    """``weights`` as a result of ``dtype`` holds them (see :data:`HELD_AS`). bfloat16 rounds
    float32 to nearest, ties to even, as ``torch.Tensor.to(torch.bfloat16)`` does; idempotent."""
    held = weights.astype(HELD_AS[dtype], copy=False)
    if dtype != "bfloat16":
        return held
    bits = np.ascontiguousarray(held).view(np.uint32)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = (bits + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


@dataclass(frozen=True)
class Provenance:
    """Where one row came from: ``method`` (e.g. ``exact``, ``composed:mean``), the source that
    gave it (empty for init) and the source token(s) used."""

    method: str
    source: str
    source_tokens: tuple[str, ...]

    @property
    def stage(self) -> str:
        return self.method.split(":", 1)[0]


@dataclass
class GraftReport:
    """Coverage by method: count of types and share of corpus tokens, plus what the sources saw."""

    n_types: int
    n_corpus_tokens: int
    n_oov_tokens: int
    dim: int
    methods: dict[str, dict[str, float]]  # method -> {n_types, share_types, n_tokens, share_tokens}
    stages: dict[str, dict[str, float]]  # the same, summed per stage
    init_sample: list[tuple[str, int]]  # most frequent tokens left to init, with counts
    sources: list[dict[str, Any]]
    config: dict[str, Any]
    source_stats: dict[str, float] = field(default_factory=dict)
    pca: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    ngrams: dict[str, Any] | None = None  # the n-gram / word rows grafted with it (GraftedNgrams.summary)

    @classmethod
    def build(cls, *, vocab, provenance: Sequence[Provenance], sources, config, dim,
              source_stats, pca, notes, seconds) -> "GraftReport":
        counts = list(vocab.counts)
        n_regular = sum(1 for p in provenance if p.stage != "special") or 1
        n_corpus_tokens = max(vocab.n_corpus_tokens, sum(counts))
        n_corpus = n_corpus_tokens or 1
        by_method: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        by_stage: dict[str, list[int]] = {s: [0, 0] for s in STAGES}
        for p, c in zip(provenance, counts):
            for bucket in (by_method[p.method], by_stage[p.stage]):
                bucket[0] += 1
                bucket[1] += int(c)

        def shares(pair: list[int], stage: str) -> dict[str, float]:
            return {"n_types": pair[0],
                    "share_types": 0.0 if stage == "special" else pair[0] / n_regular,
                    "n_tokens": pair[1], "share_tokens": pair[1] / n_corpus}

        order = {s: i for i, s in enumerate(STAGES)}
        methods = {m: shares(v, m.split(":")[0])
                   for m, v in sorted(by_method.items(), key=lambda kv: (order[kv[0].split(":")[0]], kv[0]))}
        init = sorted(((t, int(c)) for t, p, c in zip(vocab.tokens, provenance, counts)
                       if p.stage == "init"), key=lambda tc: -tc[1])
        return cls(
            n_types=len(vocab),
            n_corpus_tokens=n_corpus_tokens,
            n_oov_tokens=vocab.n_oov_tokens,
            dim=dim,
            methods=methods,
            stages={s: shares(v, s) for s, v in by_stage.items()},
            init_sample=init[:_N_INIT_SAMPLE],
            sources=[{"name": s.name, "kind": s.kind, "dim": s.dim, **s.scan.to_dict()} for s in sources],
            config=config,
            source_stats=source_stats,
            pca=pca,
            notes=list(notes),
            seconds=seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GraftReport":
        d = dict(d)
        d["init_sample"] = [tuple(x) for x in d.get("init_sample", [])]
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def coverage_table(self) -> str:
        """The table the CLI prints: per method, types and the share of corpus tokens."""
        rows = [("method", "types", "% types", "tokens", "% tokens")]
        for m, v in self.methods.items():
            rows.append((m, f"{v['n_types']:,}",
                         "" if m == "special" else f"{100 * v['share_types']:.2f}",
                         f"{v['n_tokens']:,}", f"{100 * v['share_tokens']:.2f}"))
        if self.n_oov_tokens:
            rows.append(("<unk> (outside vocab)", "", "", f"{self.n_oov_tokens:,}",
                         f"{100 * self.n_oov_tokens / max(self.n_corpus_tokens, 1):.2f}"))
        found = sum(self.stages[s]["share_tokens"] for s in FOUND_STAGES if s in self.stages)
        rows.append(("total", f"{self.n_types:,}", "", f"{self.n_corpus_tokens:,}", ""))
        lines = format_table(rows, "lrrrr", rules_after=(0, -2))
        present = [s for s in FOUND_STAGES if s != "contextual" or self.stages.get(s, {}).get("n_types")]
        lines.append(f"found in the source ({' + '.join(present)}): {100 * found:.2f}% of corpus tokens")
        if self.init_sample:
            sample = " ".join(f"{t}({c})" for t, c in self.init_sample)
            lines.append(f"left to init, most frequent first: {sample}")
        for s in self.sources:
            if s.get("contextual"):
                c = s["contextual"]
                lines.append(f"{s['name']}: {c['n_entries']:,} contextual rows ({c['method']}, {c['device']}/"
                             f"{c['model_dtype']}) at {c['tokens_per_s']:,.0f} tokens/s; scaled x"
                             f"{c['scale_factor']:.4g} to {c['scale_reference']}")
            if s.get("n_skipped"):
                lines.append(f"{s['name']}: {s['n_skipped']} malformed lines skipped, e.g. "
                             + "; ".join(s["skipped_samples"][:3]))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def write_provenance(path: str | os.PathLike, tokens: Sequence[str], provenance: Sequence[Provenance]) -> None:
    """``provenance.tsv``: ``id token method source source_tokens`` (the last a JSON list)."""
    with atomic_file(path, force=True) as f:
        f.write("id\ttoken\tmethod\tsource\tsource_tokens\n")
        for i, (tok, p) in enumerate(zip(tokens, provenance)):
            f.write(f"{i}\t{escape_field(tok)}\t{p.method}\t{escape_field(p.source)}\t"
                    f"{json.dumps(list(p.source_tokens), ensure_ascii=False)}\n")


def read_provenance_table(path: str | os.PathLike) -> tuple[list[str], list[Provenance]]:
    """Tokens and their provenance, in row order, from a ``provenance.tsv``; a line that does not
    fit (header, column count, id order, escapes, JSON) is a ``MalformedFileError`` at its line."""
    tokens: list[str] = []
    provenance: list[Provenance] = []
    with open(path, encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:3] != ["id", "token", "method"]:
            raise MalformedFileError(path, 1, "header must start with id, token, method")
        for line_no, line in enumerate(f, 2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(header):
                raise MalformedFileError(path, line_no,
                                         f"expected {len(header)} tab-separated fields, got {len(parts)}")
            if parts[0] != str(len(tokens)):
                raise MalformedFileError(path, line_no, f"id {parts[0]!r} out of order (expected {len(tokens)})")
            try:
                tokens.append(unescape_field(parts[1]))
                provenance.append(Provenance(parts[2], unescape_field(parts[3]), tuple(json.loads(parts[4]))))
            except (ValueError, IndexError) as e:
                raise MalformedFileError(path, line_no, str(e)) from None
    return tokens, provenance


def read_provenance(path: str | os.PathLike) -> list[Provenance]:
    return read_provenance_table(path)[1]


@dataclass
class GraftedNgrams:
    """N-gram and word rows a graft holds beside its vocabulary's (``graft --ngrams N [--words]``):
    ``tokens[i]`` (an n-gram entry as :func:`embgraft.grafting.ngrams.ngram_token` writes it, or a
    word) has row ``weights[i]`` and ``provenance[i]``. Training takes these before composing."""

    tokens: list[str]
    weights: np.ndarray  # (len(tokens), dim)
    provenance: list[Provenance]
    n: int = 2
    words: bool = False

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights).reshape(len(self.tokens), -1)
        if len(self.provenance) != len(self.tokens):
            raise ValueError(f"{len(self.provenance)} provenance rows for {len(self.tokens)} n-gram entries")
        self._index = {t: i for i, t in enumerate(self.tokens)}

    def get(self, token: str) -> int | None:
        return self._index.get(token)

    def summary(self, *, n_entries: int, min_count: int) -> dict[str, Any]:
        methods: dict[str, int] = defaultdict(int)
        for p in self.provenance:
            methods[p.method] += 1
        return {"n": self.n, "words": self.words, "min_count": min_count, "n_entries": n_entries,
                "n_rows": len(self.tokens), "n_left_to_training": n_entries - len(self.tokens),
                "methods": dict(sorted(methods.items()))}


@dataclass
class GraftResult:
    """``weights``: (len(vocab), dim) held as ``dtype`` (:data:`HELD_AS`): rounded here, so a
    result in memory equals the same result saved and loaded. ``provenance[i]`` says where row
    i came from."""

    weights: np.ndarray
    vocab: Vocab
    provenance: list[Provenance]
    report: GraftReport
    dtype: str = "float32"
    recipe: Recipe | None = None  # how the vocabulary's texts were tokenised; None: the vocabulary's own
    ngrams: GraftedNgrams | None = None  # n-gram / word rows grafted with it, for training's bags

    def tokenisation(self) -> Recipe:
        """The ``Recipe`` texts must go through to meet this vocabulary (train and predict use it):
        the result's, else the vocabulary's, else the vocabulary's level alone."""
        if self.recipe is not None:
            return self.recipe
        if self.vocab.recipe is not None:
            return self.vocab.recipe
        return Recipe(level=self.vocab.level or "char")

    def __post_init__(self) -> None:
        if self.dtype not in HELD_AS:
            raise ValueError(f"dtype must be one of {list(HELD_AS)}, not {self.dtype!r}")
        self.weights = cast_weights(self.weights, self.dtype)
        if self.weights.ndim != 2 or self.weights.shape[0] != len(self.vocab):
            raise ValueError(f"weights {self.weights.shape} do not fit a vocabulary of {len(self.vocab)}")
        if len(self.provenance) != len(self.vocab):
            raise ValueError(f"{len(self.provenance)} provenance rows for {len(self.vocab)} tokens")
        if self.ngrams is not None:
            self.ngrams.weights = cast_weights(self.ngrams.weights, self.dtype)
            if self.ngrams.weights.shape[1:] != self.weights.shape[1:]:
                raise ValueError(f"n-gram rows {self.ngrams.weights.shape} do not fit weights {self.weights.shape}")

    # -- PyTorch ------------------------------------------------------------------------------------
    def to_embedding(self, *, freeze: bool = False):
        """An ``nn.Embedding`` of shape (len(vocab), dim), ``padding_idx`` at ``<pad>``."""
        import torch

        weight = torch.from_numpy(np.ascontiguousarray(self.weights)).to(getattr(torch, self.dtype))
        return torch.nn.Embedding.from_pretrained(weight, freeze=freeze, padding_idx=self.vocab.pad_id)

    @property
    def embedding(self):
        return self.to_embedding()

    def found_mask(self) -> np.ndarray:
        """(len(vocab),) bool: True where the row was taken from a source as it was."""
        return np.array([p.stage in FOUND_STAGES for p in self.provenance], dtype=bool)

    # -- files --------------------------------------------------------------------------------------
    def save(self, out: str | os.PathLike, *, force: bool = False,
             inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
        """Write the graft directory ``out``; ``--force`` replaces only a graft directory, and never
        one that is or holds one of ``inputs`` (the corpus, the sources)."""
        from safetensors.numpy import save_file

        with atomic_dir(out, force=force, kind=GRAFT_DIR, inputs=inputs) as tmp:
            # bfloat16 has no NumPy dtype: stored as float32 holding bf16 values, cast on load
            save_file({EMBEDDING_KEY: np.ascontiguousarray(self.weights)}, str(tmp / EMBEDDING_FILE),
                      metadata={"format": "embgraft", "dtype": self.dtype})
            self.vocab.save(tmp / VOCAB_FILE)
            self.tokenisation().save(tmp)
            write_provenance(tmp / PROVENANCE_FILE, self.vocab.tokens, self.provenance)
            if self.ngrams is not None:
                save_file({EMBEDDING_KEY: np.ascontiguousarray(self.ngrams.weights)}, str(tmp / NGRAMS_FILE),
                          metadata={"format": "embgraft", "dtype": self.dtype, "n": str(self.ngrams.n),
                                    "words": str(self.ngrams.words).lower()})
                write_provenance(tmp / NGRAMS_PROVENANCE_FILE, self.ngrams.tokens, self.ngrams.provenance)
            write_json(tmp / REPORT_FILE, self.report.to_dict())
        return Path(out)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GraftResult":
        from safetensors import safe_open

        path = Path(path)
        with safe_open(str(path / EMBEDDING_FILE), framework="numpy") as f:
            keys = list(f.keys())
            if EMBEDDING_KEY not in keys:
                raise MalformedFileError(path / EMBEDDING_FILE, None,
                                         f"no tensor {EMBEDDING_KEY!r}; it holds {keys}")
            weights = f.get_tensor(EMBEDDING_KEY)
            dtype = (f.metadata() or {}).get("dtype", str(weights.dtype))
        vocab = Vocab.load(path / VOCAB_FILE)
        provenance = read_provenance(path / PROVENANCE_FILE)
        report = GraftReport.from_dict(read_json(path / REPORT_FILE, expect=dict))
        if weights.shape[0] != len(vocab):
            raise MalformedFileError(path / EMBEDDING_FILE, None,
                                     f"{weights.shape[0]} rows for {len(vocab)} tokens in {VOCAB_FILE}")
        if dtype not in HELD_AS:
            raise MalformedFileError(path / EMBEDDING_FILE, None, f"unknown dtype {dtype!r} in its metadata")
        return cls(weights=weights, vocab=vocab, provenance=provenance,
                   report=report, dtype=dtype,
                   recipe=Recipe.load(path, default_level=vocab.level or "char"),
                   ngrams=_load_ngrams(path) if (path / NGRAMS_FILE).is_file() else None)

    def export_word2vec(self, path: str | os.PathLike, *, force: bool = False, include_specials: bool = False,
                        binary: bool = False) -> Path:
        """word2vec text (``count dim`` then ``token v1 ... vd``, floats in their shortest float32
        form) or binary (``count dim``, then per row ``token`` + a space + dim float32
        little-endian): reading either back as float32 gives these weights bit for bit (float16
        and bfloat16 grafts too: their values are float32 values). Text rows are split from the
        right by embgraft's reader, so any token survives there; in the binary form a token ends at
        its first space, so one holding a space is left out (:meth:`word2vec_left_out` lists them).
        Specials only with ``include_specials``."""
        left_out = set(self.word2vec_left_out(include_specials=include_specials, binary=binary))
        specials = set(self.vocab.specials)
        ids = [i for i, t in enumerate(self.vocab.tokens)
               if (include_specials or t not in specials) and t not in left_out]
        rows = self.weights.astype(np.float32, copy=False)
        if binary:
            with atomic_file(path, force=force, mode="wb") as f:
                f.write(f"{len(ids)} {rows.shape[1]}\n".encode())
                for i in ids:
                    f.write(self.vocab.tokens[i].encode("utf-8") + b" " + rows[i].astype("<f4").tobytes() + b"\n")
        else:
            with atomic_file(path, force=force) as f:
                f.write(f"{len(ids)} {rows.shape[1]}\n")
                for i in ids:
                    f.write(self.vocab.tokens[i] + " " + " ".join(map(str, rows[i])) + "\n")
        return Path(path)

    def word2vec_left_out(self, *, include_specials: bool = False, binary: bool = False) -> list[str]:
        """The tokens :meth:`export_word2vec` cannot write: in the binary form, those holding a space."""
        if not binary:
            return []
        specials = set(self.vocab.specials)
        return [t for t in self.vocab.tokens if (include_specials or t not in specials) and " " in t]


def _load_ngrams(path: Path) -> GraftedNgrams:
    from safetensors import safe_open

    with safe_open(str(path / NGRAMS_FILE), framework="numpy") as f:
        if EMBEDDING_KEY not in f.keys():
            raise MalformedFileError(path / NGRAMS_FILE, None, f"no tensor {EMBEDDING_KEY!r}")
        weights = f.get_tensor(EMBEDDING_KEY)
        meta = f.metadata() or {}
    tokens, provenance = read_provenance_table(path / NGRAMS_PROVENANCE_FILE)
    if weights.shape[0] != len(tokens):
        raise MalformedFileError(path / NGRAMS_FILE, None,
                                 f"{weights.shape[0]} rows for {len(tokens)} entries in {NGRAMS_PROVENANCE_FILE}")
    return GraftedNgrams(tokens=tokens, weights=weights, provenance=provenance,
                         n=int(meta.get("n", 2)), words=meta.get("words") == "true")
