"""A transformer checkpoint's input-embedding table as a source, read without the model.

A checkpoint is a local directory or a hub id. For a hub id only the config, the tokenizer
files, the shard index and the one shard that holds the embedding are downloaded (see
:mod:`embgraft.hf.repository`). Rows are read lazily from the weight file (:mod:`embgraft.hf.weights`);
target tokens are matched, and absent ones split into pieces, through the checkpoint's own
tokenizer (:mod:`embgraft.hf.tokenizer`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from embgraft.errors import CheckpointError, ConfigError
from embgraft.files import read_json
from embgraft.hf.encoder import ContextualConfig
from embgraft.hf.repository import Repository
from embgraft.hf.tokenizer import TOKENIZER_FILES, SourceTokenizer
from embgraft.hf.weights import CONFIG_FILE, EmbeddingTable, locate_embedding
from embgraft.sources.base import Piece, ScanStats, Source, check_reader_options

# what a hub download fetches before it knows which shard holds the embedding
HUB_SMALL_FILES = (
    CONFIG_FILE, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "*.model", "*.tiktoken",
    "*.index.json",
)
# requested dtype -> the NumPy type rows are returned as. NumPy has no bfloat16: such rows come
# as float32, which holds every bfloat16 value exactly; the graft narrows the finished matrix.
ROW_DTYPES: dict[str, str] = {"float32": "float32", "float64": "float64", "float16": "float16",
                              "bfloat16": "float32"}
# safetensors/torch names of the stored dtypes that need no conversion for each row dtype
# which rows a checkpoint gives: its input-embedding table, or its encoder's outputs (hf.encoder)
ROWS = ("input", "output")
_SAME_DTYPE = {"float32": ("F32", "float32"), "float64": ("F64", "float64"), "float16": ("F16", "float16")}


class CheckpointSource(Source):
    """A transformer checkpoint's input-embedding table, through its own tokenizer.

    ``spec`` is a directory or a hub id (``name`` or ``owner/name``; ``revision`` picks a
    branch, tag or commit; offline -- ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` -- it
    comes from the hub cache). ``tensor_key`` overrides the embedding-key table. Rows are
    ``(dim,)`` vectors of ``dtype`` (see :data:`ROW_DTYPES`); bf16/fp16 tables are widened on read.
    """

    kind = "checkpoint"
    OPTIONS = frozenset({"tensor_key", "revision", "trust_remote_code", "on_bad_line", "progress",
                         "max_piece_chars", "dtype", "cache_dir", "local_files_only", "rows", "contextual",
                         "contexts"})

    def __init__(
        self,
        spec: str | os.PathLike,
        *,
        tensor_key: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        on_bad_line: str = "error",
        progress: bool = True,
        max_piece_chars: int = 4,
        dtype: str = "float32",
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
        rows: str = "input",
        contextual: ContextualConfig | None = None,
        contexts: Sequence[str] | None = None,
    ) -> None:
        check_reader_options(on_bad_line, dtype, dtypes=ROW_DTYPES)
        self.dtype_name = dtype
        if rows not in ROWS:
            raise ConfigError(f"rows must be one of {list(ROWS)}, not {rows!r}")
        if contextual is not None and rows != "output":
            raise ConfigError("contextual options (pool, layer, scale ...) need rows='output' (--rows output)")
        self.rows_kind = rows
        self.contextual = (contextual or ContextualConfig()) if rows == "output" else None
        in_corpus = self.contextual is not None and self.contextual.context == "corpus"
        if in_corpus and contexts is None:
            raise ConfigError("context corpus needs the corpus's texts (contexts=...; embgraft graft reads its --corpus)")
        if contexts is not None and not in_corpus:
            raise ConfigError("contexts are read only with rows='output' and context 'corpus' (--contextual-context corpus)")
        self.contexts = list(contexts) if contexts is not None else None
        self._in_context: set[str] = set()  # keys whose row is their mean over the contexts
        self._encoder = None  # the model, built on the first lookup of output rows
        self.contextual_stats: dict[str, Any] | None = None
        self.name = str(spec)
        self.progress = progress
        # max_piece_chars is taken for uniformity with the static readers: the tokenizer decides the pieces
        self.trust_remote_code = bool(trust_remote_code)
        repo = Repository(spec, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        notes: list[str] = list(repo.notes)
        self.path = repo.snapshot(HUB_SMALL_FILES)
        # a hub repository fetches the one shard that holds the embedding once the index names it
        fetch = repo.file if repo.is_hub else None
        config_path = self.path / CONFIG_FILE
        if not config_path.is_file():
            raise CheckpointError(f"{config_path}: missing; a checkpoint directory needs its config.json "
                                  "(its model_type names the embedding tensor)")
        self.config: dict[str, Any] = read_json(config_path, expect=dict)
        self.model_type: str | None = self.config.get("model_type")
        if not any(next(self.path.glob(pattern), None) for pattern in TOKENIZER_FILES):
            raise CheckpointError(f"{spec}: no tokenizer files ({', '.join(TOKENIZER_FILES)}): embgraft maps "
                                  "tokens to rows through the checkpoint's own tokenizer")
        weight_file, self.key, fmt, how = locate_embedding(self.path, model_type=self.model_type,
                                                           tensor_key=tensor_key, fetch=fetch)
        self.table = EmbeddingTable(weight_file, self.key, fmt, np.dtype(ROW_DTYPES[dtype]))
        self.dim = self.table.dim
        self.n_rows = self.table.n_rows
        notes.append(f"embedding {self.key} {self.n_rows}x{self.dim} {self.table.stored_dtype} "
                     f"from {weight_file.name} ({how})")
        if self.table.stored_dtype not in _SAME_DTYPE.get(ROW_DTYPES[dtype], ()):
            notes.append(f"{self.table.stored_dtype} rows converted to {ROW_DTYPES[dtype]}")
        self._notes = notes + self.table.notes
        self._tokenizer: SourceTokenizer | None = None  # loaded on first use: read_table needs none
        self._cache: dict[int, np.ndarray] = {}
        self._n_bytes = 0
        self.scan = ScanStats(n_rows=self.n_rows, notes=list(self._notes))
        self._scale: tuple[float, str] | None = None  # output rows: the first lookup's scale, kept for the next
        self._encoded = {"n_entries": 0, "n_unknown": 0, "n_pieces": 0, "seconds": 0.0, "n_requested": 0, "n_found": 0}

    @property
    def tokenizer(self) -> SourceTokenizer:
        """The checkpoint's tokenizer, loaded on first use (a 150k-entry BPE takes ~0.5 s)."""
        if self._tokenizer is None:
            self._tokenizer = SourceTokenizer.from_dir(self.path, trust_remote_code=self.trust_remote_code)
            self._notes.append(f"tokenizer: {self._tokenizer.family.name}")
            self._notes.extend(self._tokenizer.notes)
            too_big = [t for t, i in self._tokenizer.vocab.items() if i >= self.n_rows]
            if too_big:
                self._notes.append(f"{len(too_big)} tokenizer ids past the table's {self.n_rows} rows are "
                                   f"ignored, e.g. {too_big[:3]}")
            self.scan.notes = list(self._notes)
        return self._tokenizer

    # -- what the graft asks for --------------------------------------------------------------------
    @property
    def special_tokens(self) -> dict[str, str]:
        """Our specials -> the checkpoint's tokens, e.g. ``{"<pad>": "[PAD]", "<cls>": "[CLS]"}``."""
        return self.tokenizer.special_map()

    @property
    def row_method(self) -> str:
        """Provenance of the rows :meth:`lookup` returns: ``exact``, or ``contextual:<pool>@<layer>``."""
        return self.encoder.method if self.contextual is not None else "exact"

    def method_of(self, key: str) -> str:
        """``key``'s row's provenance: ``contextual:corpus@<layer>`` where it is the mean over the
        contexts (``context="corpus"``), else :attr:`row_method`."""
        return self.encoder.method_in_context if key in self._in_context else self.row_method

    @property
    def encoder(self):
        """The checkpoint's encoder (output rows only), built on first use."""
        if self._encoder is None:
            from embgraft.hf.encoder import Encoder

            self._encoder = Encoder(self.path, self.contextual, trust_remote_code=self.trust_remote_code,
                                    progress=self.progress)
            if self._encoder.dim != self.dim:
                raise CheckpointError(f"{self.name}: hidden size {self._encoder.dim} differs from the input "
                                      f"table's width {self.dim}")
        return self._encoder

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """``{key: (dim,) vector}``: input rows for the keys that are standalone entries of the
        vocabulary; output rows (``rows="output"``) for every key the tokenizer knows more of
        than its unknown token, scale-matched as :class:`ContextualConfig` says."""
        if self.contextual is not None:
            return self._contextual_lookup(keys)
        wanted = dict.fromkeys(k for k in keys if k)
        ids = {}
        for key in wanted:
            tid = self.tokenizer.exact_id(key)
            if tid is not None and tid < self.n_rows:
                ids[key] = tid
        rows = self._rows(list(dict.fromkeys(ids.values())))
        self.scan = ScanStats(n_rows=self.n_rows, n_requested=len(wanted), n_found=len(ids),
                              n_bytes=self._n_bytes, notes=list(self._notes))
        return {key: rows[tid] for key, tid in ids.items()}

    def pieces(self, token: str, found: Mapping[str, np.ndarray]) -> list[Piece]:
        """The tokenizer's pieces of ``token`` with their rows (see :meth:`pieces_batch`)."""
        return self.pieces_batch([token], found)[0]

    def pieces_batch(self, tokens: Sequence[str], found: Mapping[str, np.ndarray]) -> list[list[Piece]]:
        """Pieces of every token in ``tokens``: one batch encoding, then one read of every row
        they use (see :meth:`SourceTokenizer.pieces_batch`). Unknown-token pieces come back
        with no vector; ids past the table's rows are left out."""
        refs = [[r for r in rs if r.id < self.n_rows] for rs in self.tokenizer.pieces_batch(tokens)]
        rows = self._rows(list(dict.fromkeys(r.id for rs in refs for r in rs if r.kind != "unknown")))
        self.scan.n_bytes = self._n_bytes
        return [[Piece(r.label, None if r.kind == "unknown" else rows[r.id], r.n_chars, r.kind) for r in rs]
                for rs in refs]

    @property
    def staged_lookup(self) -> bool:
        """Output rows cost an encoder run per entry: ask for the vocabulary's own entries first."""
        return self.contextual is not None

    def _contextual_lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Output rows of ``keys``. The scale factor is set by the first lookup (the vocabulary's
        own entries, under a staged graft) and kept for later ones, so every row has one scale;
        the stats add up over lookups."""
        wanted = list(dict.fromkeys(k for k in keys if k))
        cfg = self.contextual
        out: dict[str, np.ndarray] = {}
        if self.contexts is not None:  # the mean over the corpus first; the rest run alone
            got, in_context = self.encoder.encode_in_context(wanted, self.contexts)
            out = {wanted[i]: row for i, row in got.items()}
            self._in_context.update(out)
            total_c = self._encoded.setdefault("in_context", {"n_entries": 0, "n_texts": 0, "n_occurrences": 0,
                                                              "n_pieces": 0, "seconds": 0.0})
            for k in total_c:
                total_c[k] += getattr(in_context, k)
            self._notes.append(f"{in_context.n_entries:,} of {len(wanted):,} entries found in the corpus: "
                               f"{in_context.n_occurrences:,} occurrences in {in_context.n_texts:,} texts, "
                               f"{in_context.n_pieces:,} pieces in {in_context.seconds:.1f}s")
        alone = [k for k in wanted if k not in out]
        got, stats = self.encoder.encode(alone)
        out.update({alone[i]: row for i, row in got.items()})
        if self._scale is None:
            self._scale = self._scale_factor(out)
        factor, reference = self._scale
        dtype = np.dtype(ROW_DTYPES[self.dtype_name])
        out = {k: (v * np.float32(factor)).astype(dtype, copy=False) for k, v in out.items()}
        total = self._encoded
        for k in ("n_entries", "n_unknown", "n_pieces", "seconds"):
            total[k] += getattr(stats, k)
        total["n_requested"] += len(wanted)
        total["n_found"] += len(out)
        # n_entries counts the rows of entries run alone; in_context those from the corpus
        ctx = total.get("in_context", {})
        n_pieces, seconds = total["n_pieces"] + ctx.get("n_pieces", 0), total["seconds"] + ctx.get("seconds", 0.0)
        self.contextual_stats = {
            "method": self.encoder.method, "config": cfg.to_dict(), "device": self.encoder.device,
            "model_dtype": self.encoder.dtype,
            **{k: (dict(v) if isinstance(v, dict) else v) for k, v in total.items()
               if k not in ("n_requested", "n_found")},
            "tokens_per_s": n_pieces / seconds if seconds > 0 else 0.0,
            "scale_factor": factor, "scale_reference": reference,
        }
        self._notes.append(f"{stats.n_entries:,} contextual rows ({self.encoder.method}) on "
                           f"{self.encoder.device}/{self.encoder.dtype}: {stats.n_pieces:,} pieces in "
                           f"{stats.seconds:.1f}s ({stats.tokens_per_s:,.0f} tokens/s), scaled x{factor:.4g} "
                           f"({reference})")
        self.scan = ScanStats(n_rows=self.n_rows, n_requested=total["n_requested"], n_found=total["n_found"],
                              n_bytes=self._n_bytes, notes=list(self._notes), contextual=self.contextual_stats)
        return out

    def _scale_factor(self, out: Mapping[str, np.ndarray]) -> tuple[float, str]:
        """The factor that gives the output rows the mean norm asked for, and what it matched."""
        cfg = self.contextual
        if not out or cfg.scale_to == "none":
            return 1.0, "none"
        target = cfg.scale_target
        keys = list(out)
        if target is not None:
            reference = f"mean norm {target:g}"
        else:
            ids = {k: tid for k in keys if (tid := self.tokenizer.exact_id(k)) is not None and tid < self.n_rows}
            if ids:
                keys = list(ids)
                rows = self._rows(list(dict.fromkeys(ids.values())))
                target = float(np.mean([np.linalg.norm(rows[ids[k]].astype(np.float64)) for k in keys]))
                reference = f"input rows of the {len(keys):,} entries the table has"
            else:  # none is an entry of its own (a word vocabulary over a character table): their pieces
                refs = self.tokenizer.pieces_batch(keys)
                pids = list(dict.fromkeys(r.id for rs in refs for r in rs if r.kind != "unknown" and r.id < self.n_rows))
                if not pids:
                    return 1.0, "none (no input row to match)"
                rows = self._rows(pids)
                target = float(np.mean([np.linalg.norm(rows[i].astype(np.float64)) for i in pids]))
                reference = f"input rows of the entries' {len(pids):,} pieces"
        current = float(np.mean([np.linalg.norm(out[k].astype(np.float64)) for k in keys]))
        return (target / current if current > 0 else 1.0), reference

    # -- rows -------------------------------------------------------------------------------------------
    def _rows(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        missing = [i for i in ids if i not in self._cache]
        if missing:
            block = self.table.rows(missing)  # one read for all of them
            self._n_bytes += len(missing) * self.table.row_bytes
            for i, row in zip(missing, block):
                self._cache[i] = row
        return {i: self._cache[i] for i in ids}

    def read_table(self) -> np.ndarray:
        """The whole input-embedding table, ``(n_rows, dim)`` of the row dtype, read chunk by chunk."""
        out = self.table.all(progress=self.progress)
        self._n_bytes += self.n_rows * self.table.row_bytes
        self.scan.n_bytes = self._n_bytes
        return out


__all__ = ["CheckpointSource", "HUB_SMALL_FILES", "ROWS", "ROW_DTYPES"]
