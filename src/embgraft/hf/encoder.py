"""Contextual rows: each entry run through a checkpoint's encoder as its own text, then pooled.

Unlike the input table (:mod:`embgraft.hf.weights`), these rows need the model: it is built with
``transformers.AutoModel`` (``trust_remote_code`` only when asked). Entries are tokenised with the
checkpoint's own tokenizer *with* its special tokens (``[CLS] 北京 [SEP]``, ``<s> 北京``), without
its padding or truncation settings, cut at ``max_pieces``; then run in batches of entries sorted by
length, right-padded, with the attention mask, so that a row never depends on its batch.

Pooling (:data:`POOLS`): ``mean`` over the entry's own pieces (specials left out), ``mean-all``
over every position (specials too), ``cls`` the first position, ``last`` the last real position
(decoders: the only position that has seen the whole entry). ``layer`` picks a hidden state (0 is
the embedding output, -1 the last layer); ``last_k`` averages the last k hidden states instead
(the embedding output counts: at most n_layers + 1).

``context="corpus"`` (:meth:`Encoder.encode_in_context`) runs a corpus's texts instead and gives
each entry the mean, over every place it appears in them, of the mean of its pieces' hidden states
there -- the "aggregated" static embeddings of Bommasani et al. (2020), which beat the entry run
alone: an entry alone has no context for the encoder to add. An occurrence is the entry's text
starting and ending on piece boundaries of the checkpoint's tokenizer (so ``北京`` counts inside
``北京大学`` for a BERT-Chinese, whose every CJK character is a piece); entries that appear nowhere
are run alone, pooled as ``pool`` says.

Torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np

from embgraft.console import progress_bar
from embgraft.errors import ConfigError
from embgraft.hf import library_bars

POOLS = ("mean", "mean-all", "cls", "last")
DEVICES = ("auto", "cpu", "cuda")
MODEL_DTYPES = ("auto", "float32", "bfloat16")
SCALE_TO = ("input", "none")
CONTEXTS = ("alone", "corpus")


@dataclass(frozen=True)
class ContextualConfig:
    """How output rows are computed; every problem is reported at once (see ``__post_init__``)."""

    pool: str = field(default="mean", metadata={
        "help": "pooling of an entry's hidden states: mean (its pieces, no specials) | mean-all "
                "(specials too) | cls | last (decoders)"})
    layer: int = field(default=-1, metadata={
        "help": "hidden state to pool: 0 = embedding output, 1..L the layers, -1 the last"})
    last_k: int | None = field(default=None, metadata={
        "help": "average the last K hidden states instead of one --layer (the embedding output "
                "counts: at most the model's layers + 1)"})
    max_pieces: int = field(default=32, metadata={
        "help": "an entry's pieces (specials included) run through the encoder, at most"})
    batch_size: int = field(default=256, metadata={"help": "entries per forward pass"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda (auto: cuda when present)"})
    model_dtype: str = field(default="auto", metadata={
        "help": "the encoder's dtype: auto (bfloat16 on a GPU that has it, else float32) | float32 | bfloat16"})
    scale_to: str = field(default="input", metadata={
        "help": "match the rows' mean norm to the input table's rows of the same entries (input), "
                "leave them (none), or a number: the mean norm wanted"})
    sif: float | None = field(default=None, metadata={
        "help": "SIF weighting: multiply an entry's row by a/(a + p), p its share of the corpus "
                "tokens (a ~ 1e-3); off by default"})
    context: str = field(default="alone", metadata={
        "help": "alone: each entry run through the encoder as its own text | corpus: the corpus's texts run "
                "instead, an entry's row the mean of its pieces' hidden states over every place it appears "
                "(entries that appear nowhere run alone; provenance contextual:corpus@<layer>)"})
    context_pieces: int = field(default=128, metadata={
        "help": "with context corpus: a text's pieces (specials included) run through the encoder, at most; "
                "occurrences past the cut are not counted"})

    def __post_init__(self) -> None:
        errors = []
        if self.pool not in POOLS:
            errors.append(f"pool must be one of {list(POOLS)}, not {self.pool!r}")
        if self.last_k is not None and self.last_k < 1:
            errors.append(f"last_k must be >= 1, not {self.last_k}")
        if self.max_pieces < 1:
            errors.append(f"max_pieces must be >= 1, not {self.max_pieces}")
        if self.batch_size < 1:
            errors.append(f"batch_size must be >= 1, not {self.batch_size}")
        if self.device not in DEVICES:
            errors.append(f"device must be one of {list(DEVICES)}, not {self.device!r}")
        if self.model_dtype not in MODEL_DTYPES:
            errors.append(f"model_dtype must be one of {list(MODEL_DTYPES)}, not {self.model_dtype!r}")
        if self.scale_target is None and self.scale_to not in SCALE_TO:
            errors.append(f"scale_to must be one of {list(SCALE_TO)} or a positive number, not {self.scale_to!r}")
        if self.sif is not None and not self.sif > 0:
            errors.append(f"sif must be a positive number, not {self.sif}")
        if self.context not in CONTEXTS:
            errors.append(f"context must be one of {list(CONTEXTS)}, not {self.context!r}")
        if self.context_pieces < 2:
            errors.append(f"context_pieces must be >= 2, not {self.context_pieces}")
        if errors:
            raise ConfigError("invalid contextual rows: " + "; ".join(errors))

    @property
    def scale_target(self) -> float | None:
        """``scale_to`` as a number, when it is one (a positive, finite mean norm)."""
        try:
            value = float(self.scale_to)
        except (TypeError, ValueError):
            return None
        return value if np.isfinite(value) and value > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def layer_label(layer: int, last_k: int | None, n_layers: int) -> str:
    """The hidden states pooled, as provenance names them: ``4`` (one layer, counted from 0 = the
    embedding output), ``3-4`` (the mean of the last two), ``0-4`` (all five of a 4-layer model)."""
    if last_k is not None:
        if last_k > n_layers + 1:  # the mean would silently be over fewer states than asked
            raise ConfigError(f"last_k {last_k} is more hidden states than the model has: 0..{n_layers}, "
                              f"so at most {n_layers + 1}")
        first = n_layers + 1 - last_k
        return str(n_layers) if first == n_layers else f"{first}-{n_layers}"
    index = layer if layer >= 0 else n_layers + 1 + layer
    if not 0 <= index <= n_layers:
        raise ConfigError(f"layer {layer} does not exist: the model has hidden states 0..{n_layers} "
                          f"(-1 the last)")
    return str(index)


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for, but torch sees no GPU")
    return device


@dataclass
class EncodeStats:
    """What one :meth:`Encoder.encode` call did; the report carries it."""

    n_entries: int = 0
    n_pieces: int = 0  # specials included, padding not
    n_unknown: int = 0  # entries the tokenizer knows only as its unknown token: no row
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.n_pieces / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ContextStats:
    """What one :meth:`Encoder.encode_in_context` call did."""

    n_entries: int = 0  # entries that got a row: seen at least once
    n_texts: int = 0  # texts run through the encoder: those with an occurrence
    n_occurrences: int = 0
    n_pieces: int = 0  # of the texts run, specials included
    seconds: float = 0.0


class Encoder:
    """A checkpoint's encoder and tokenizer, run on entries one text each (see the module)."""

    def __init__(self, path, config: ContextualConfig, *, trust_remote_code: bool = False,
                 progress: bool = True) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.config = config
        self.progress = progress
        self.device = _pick_device(config.device)
        dtype = config.model_dtype
        if dtype == "auto":
            dtype = "bfloat16" if self.device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
        self.dtype = dtype
        with library_bars(progress):
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
            self.model = AutoModel.from_pretrained(str(path), trust_remote_code=trust_remote_code,
                                                   dtype=getattr(torch, dtype)).to(self.device).eval()
        cfg = self.model.config
        self.n_layers = int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer"))
        self.layer = layer_label(config.layer, config.last_k, self.n_layers)
        self.method = f"contextual:{config.pool}@{self.layer}"
        self.dim = int(getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd"))
        pad = self.tokenizer.pad_token_id
        if pad is None:  # GPT-style: no pad token; any id serves behind the attention mask
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self.unk_id = self.tokenizer.unk_token_id
        self.method_in_context = f"contextual:corpus@{self.layer}"

    def tokenize(self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """``(ids, special_mask)`` per text: with the model's specials, no padding, cut at max_pieces."""
        if not texts:  # the tokenizer cannot take an empty batch
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=True, padding=False, truncation=True,
                             max_length=self.config.max_pieces, return_special_tokens_mask=True,
                             return_attention_mask=False)
        return list(zip(enc["input_ids"], enc["special_tokens_mask"]))

    def encode(self, texts: Sequence[str]) -> tuple[dict[int, np.ndarray], EncodeStats]:
        """``({index into texts: (dim,) float32 row}, stats)``. A text with no piece of its own but
        the unknown token (or none at all) gets no row."""
        import torch

        started = time.perf_counter()
        stats = EncodeStats()
        encoded = self.tokenize(texts)
        keep = []
        for i, (ids, special) in enumerate(encoded):
            own = [t for t, s in zip(ids, special) if not s]
            if not own or (self.unk_id is not None and all(t == self.unk_id for t in own)):
                stats.n_unknown += 1
                continue
            keep.append(i)
        keep.sort(key=lambda i: (len(encoded[i][0]), i))  # length-sorted batches: little padding
        out: dict[int, np.ndarray] = {}
        bar = progress_bar(total=len(keep), desc="contextual rows", enabled=self.progress, unit="entry")
        bs = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(keep), bs):
                batch = keep[start:start + bs]
                for i, row in zip(batch, self._forward([encoded[i] for i in batch])):
                    out[i] = row
                stats.n_pieces += sum(len(encoded[i][0]) for i in batch)
                bar.update(len(batch))
        bar.close()
        stats.n_entries = len(out)
        stats.seconds = time.perf_counter() - started
        return out, stats

    def encode_in_context(self, entries: Sequence[str], texts: Sequence[str]
                          ) -> tuple[dict[int, np.ndarray], ContextStats]:
        """``({index into entries: (dim,) float32 row}, stats)``: each entry's row is the mean over
        its occurrences in ``texts`` of the mean of its pieces' hidden states there (see the
        module). Entries that never appear, or appear only as the unknown token, get no row. Only
        texts with an occurrence are run, length-sorted, in batches of ``batch_size``."""
        import torch

        if not getattr(self.tokenizer, "is_fast", False):
            raise ConfigError("context corpus locates entries in a text by the pieces' character offsets, "
                              "which only a fast (tokenizers) tokenizer gives; this checkpoint has a slow one")
        started = time.perf_counter()
        stats = ContextStats()
        index: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if entry:
                index.setdefault(entry, i)
        longest = max(map(len, index), default=0)
        texts = [t for t in texts if t and not t.isspace()]
        bar = progress_bar(total=len(texts), desc="contextual rows in the corpus", enabled=self.progress,
                           unit="text")
        # pass 1: each text's pieces and the occurrences in it (a text with none is not run)
        found: list[tuple[list[int], list[int], list[tuple[int, int, int]]]] = []
        for start in range(0, len(texts), 1024):
            chunk = texts[start:start + 1024]
            enc = self.tokenizer(chunk, add_special_tokens=True, padding=False, truncation=True,
                                 max_length=self.config.context_pieces, return_offsets_mapping=True,
                                 return_special_tokens_mask=True, return_attention_mask=False)
            for text, ids, special, offsets in zip(chunk, enc["input_ids"], enc["special_tokens_mask"],
                                                   enc["offset_mapping"]):
                spans = self._occurrences(text, ids, special, offsets, index, longest)
                if spans:
                    found.append((ids, special, spans))
        # pass 2: run them, and add each occurrence's mean to its entry's sum
        dim = self.dim
        sums = torch.zeros((len(entries), dim), dtype=torch.float64)
        counts = torch.zeros(len(entries), dtype=torch.float64)
        found.sort(key=lambda f: len(f[0]))
        bar.update(len(texts) - len(found))
        bs = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(found), bs):
                batch = found[start:start + bs]
                hidden, _, _ = self._hidden([(ids, special) for ids, special, _ in batch])
                # prefix sums over positions: a span's sum is two lookups, whatever its length
                cum = torch.cat([torch.zeros((len(batch), 1, dim), dtype=torch.float64),
                                 hidden.double().cumsum(1)], 1)
                row, first, end, entry = torch.tensor([(r, a, b, e) for r, (_, _, spans) in enumerate(batch)
                                                       for a, b, e in spans], dtype=torch.long).T
                means = (cum[row, end] - cum[row, first]) / (end - first).double()[:, None]
                sums.index_add_(0, entry, means)
                counts.index_add_(0, entry, torch.ones_like(means[:, 0]))
                stats.n_occurrences += len(entry)
                stats.n_pieces += sum(len(ids) for ids, _, _ in batch)
                bar.update(len(batch))
        bar.close()
        seen = torch.nonzero(counts).flatten().tolist()
        rows = (sums[seen] / counts[seen, None]).float().numpy()
        stats.n_entries = len(seen)
        stats.n_texts = len(found)
        stats.seconds = time.perf_counter() - started
        return dict(zip(seen, rows)), stats

    def _occurrences(self, text: str, ids: Sequence[int], special: Sequence[int],
                     offsets: Sequence[tuple[int, int]], index: dict[str, int],
                     longest: int) -> list[tuple[int, int, int]]:
        """``(first piece, end piece, entry)`` of every entry of ``index`` in ``text`` that starts
        and ends on piece boundaries and is not all unknown pieces."""
        starts: dict[int, int] = {}  # character offset -> first piece starting there
        ends: dict[int, int] = {}  # character offset -> one past the last piece ending there
        for j, ((a, b), s) in enumerate(zip(offsets, special)):
            if s or b <= a:  # specials, and pieces that cover no character
                continue
            starts.setdefault(a, j)
            ends[b] = j + 1
        spans = []
        for a, first in starts.items():
            for n in range(1, longest + 1):
                b = a + n
                if b > len(text):
                    break
                e = index.get(text[a:b])
                if e is None or b not in ends or ends[b] <= first:
                    continue
                end = ends[b]
                if self.unk_id is not None and all(t == self.unk_id for t in ids[first:end]):
                    continue
                spans.append((first, end, e))
        return spans

    def _hidden(self, batch: list[tuple[list[int], list[int]]]):
        """``(hidden, mask, own)`` of one right-padded batch: ``(len(batch), width, dim)`` float32 hidden
        states on the CPU (the layer or the mean of the last k asked for), the attention mask and the
        entry's own pieces (no specials), both ``(len(batch), width)``."""
        import torch

        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        own = torch.zeros((len(batch), width), dtype=torch.bool)  # the entry's pieces, no specials
        for r, (tids, special) in enumerate(batch):
            ids[r, :len(tids)] = torch.tensor(tids)
            mask[r, :len(tids)] = 1
            own[r, :len(tids)] = torch.tensor([not s for s in special])
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         output_hidden_states=True)
        states = out.hidden_states
        if self.config.last_k is not None:
            hidden = torch.stack([h.float() for h in states[-self.config.last_k:]]).mean(0)
        else:
            hidden = states[self.config.layer].float()
        return hidden.cpu(), mask, own

    def _forward(self, batch: list[tuple[list[int], list[int]]]) -> np.ndarray:
        """(len(batch), dim) float32 pooled rows of one right-padded batch."""
        import torch

        hidden, mask, own = self._hidden(batch)
        pool = self.config.pool
        if pool == "cls":
            rows = hidden[:, 0]
        elif pool == "last":
            rows = hidden[torch.arange(len(batch)), mask.sum(1) - 1]
        else:
            weights = (own if pool == "mean" else mask.bool()).float()
            weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, mask.float())
            rows = (hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
        return rows.numpy().astype(np.float32, copy=False)


__all__ = ["CONTEXTS", "ContextStats", "ContextualConfig", "Encoder", "EncodeStats", "POOLS", "layer_label"]
