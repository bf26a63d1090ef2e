"""The graft: one row per target token, from the best transfer the sources allow.

Cascade per row, first hit wins, each stage tried over all sources in the order given:

    special -> exact -> normalised:<rules> -> composed:<pooling> -> init:<method>

then the whole matrix is post-processed (PCA to ``dim``, centre, unit norm, scale). Everything
here is NumPy: torch is imported only when an ``nn.Embedding`` is asked for.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from embgraft.errors import ConfigError, EmbgraftError
from embgraft.normalise import check_rules, unavailable_rules, variants
from embgraft.result import FOUND_STAGES, GraftReport, GraftResult, Provenance
from embgraft.sources import open_source
from embgraft.sources.base import Piece, Source

# pooling name -> (pieces of many words, stacked word after word (n_pieces, dim) float32;
# each word's first row (n_words,); its number of pieces (n_words,)) -> (n_words, dim).
# One reduction for every composed word; sums accumulate in float64.
POOLINGS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "mean": lambda m, starts, counts: np.add.reduceat(m, starts, axis=0, dtype=np.float64) / counts[:, None],
    "sum": lambda m, starts, counts: np.add.reduceat(m, starts, axis=0, dtype=np.float64),
    "max": lambda m, starts, counts: np.maximum.reduceat(m, starts, axis=0),
    "first": lambda m, starts, counts: m[starts],
    "last": lambda m, starts, counts: m[starts + counts - 1],
}
# composing from pieces that are parts of a character's bytes (byte-level BPE): on | off
COMPOSE_BYTES = ("on", "off")
# how provenance names a piece the source does not know (left out of the pooling)
UNKNOWN_PIECE = "unknown:{}"
_COMPOSE_CHUNK = 8192  # words pooled at once: bounds the stacked pieces' memory
INIT_METHODS = ("normal", "uniform", "zeros", "mean")
# result dtype -> the dtype rows are read and computed in (float16/bfloat16 are rounded once, last)
DTYPES = {"float32": "float32", "float16": "float32", "bfloat16": "float32", "float64": "float64"}


@dataclass
class GraftConfig:
    """How to graft. Every field has a default a careful user would pick."""

    normalise: tuple[str, ...] = ("nfkc", "lower", "t2s")  # tried in this order; () for none
    compose: str = "mean"  # mean | sum | max | first | last | off
    compose_min_coverage: float = 1.0  # share of a word's characters its pieces must cover
    compose_bytes: str = "on"  # on | off: compose from byte-level pieces (provenance composed:bytes)
    max_piece_chars: int = 4  # longest sub-word tried when composing from a vector file
    init: str = "normal"  # normal | uniform | zeros | mean, fitted on the rows found
    seed: int = 0
    scale: float = 1.0  # multiplies every row last
    centre: bool = False  # subtract the mean of the found rows
    unit_norm: bool = False  # scale every row to L2 norm 1
    dim: int | None = None  # target width through PCA fitted on the found rows
    dtype: str = "float32"  # dtype of the saved tensor and the nn.Embedding
    special_map: dict[str, str] = field(default_factory=dict)  # our special -> source token

    def __post_init__(self) -> None:
        self.normalise = tuple(self.normalise)
        errors = check_rules(self.normalise)
        if self.compose != "off" and self.compose not in POOLINGS:
            errors.append(f"compose must be one of {['off', *POOLINGS]}, not {self.compose!r}")
        if self.compose_bytes not in COMPOSE_BYTES:
            errors.append(f"compose_bytes must be one of {list(COMPOSE_BYTES)}, not {self.compose_bytes!r}")
        if not 0.0 < self.compose_min_coverage <= 1.0:
            errors.append(f"compose_min_coverage must be in (0, 1], not {self.compose_min_coverage}")
        if self.max_piece_chars < 1:
            errors.append(f"max_piece_chars must be >= 1, not {self.max_piece_chars}")
        if self.init not in INIT_METHODS:
            errors.append(f"init must be one of {list(INIT_METHODS)}, not {self.init!r}")
        if not np.isfinite(self.scale) or self.scale == 0:
            errors.append(f"scale must be a non-zero finite number, not {self.scale}")
        if self.dim is not None and self.dim < 1:
            errors.append(f"dim must be a positive width, not {self.dim}")
        if self.dtype not in DTYPES:
            errors.append(f"dtype must be one of {list(DTYPES)}, not {self.dtype!r}")
        if errors:
            raise ConfigError("invalid graft config: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["normalise"] = list(self.normalise)
        return d


def graft(
    vocab,
    sources: Source | str | os.PathLike | Sequence[Source | str | os.PathLike],
    *,
    config: GraftConfig | None = None,
    progress: bool = True,
    **overrides: Any,
) -> GraftResult:
    """Build the embedding matrix for ``vocab`` from ``sources`` (fall-backs, in order).

    ``vocab`` is an :class:`embgraft.vocab.Vocab`. ``sources`` are opened ``Source`` objects or
    paths/hub ids (opened with default options). ``overrides`` replace fields of ``config``.
    Returns a :class:`GraftResult` whose ``weights`` are ``(len(vocab), dim)``.
    """
    started = time.perf_counter()
    config = replace(config or GraftConfig(), **overrides) if overrides else (config or GraftConfig())
    if isinstance(sources, (str, os.PathLike)) or not isinstance(sources, Sequence):
        sources = [sources]  # type: ignore[list-item]
    srcs: list[Source] = [
        s if not isinstance(s, (str, os.PathLike))
        else open_source(s, progress=progress, max_piece_chars=config.max_piece_chars,
                         dtype=DTYPES[config.dtype])
        for s in sources
    ]
    if not srcs:
        raise ConfigError("graft needs at least one source")
    if not config.special_map:  # checkpoints name their own [PAD]/[CLS]...: map ours onto them
        derived: dict[str, str] = {}
        for src in srcs:
            for ours, theirs in (getattr(src, "special_tokens", None) or {}).items():
                derived.setdefault(ours, theirs)
        if derived:
            config = replace(config, special_map=derived)
    dims = {s.dim for s in srcs}
    if len(dims) > 1:
        raise ConfigError(
            "sources differ in width: "
            + ", ".join(f"{s.name} has {s.dim}" for s in srcs)
            + "; graft them separately or give sources of one width"
        )
    src_dim = srcs[0].dim
    if config.dim is not None and config.dim > src_dim:
        raise ConfigError(f"dim={config.dim} is wider than the sources' {src_dim}: PCA can only narrow")

    missing = unavailable_rules(config.normalise)
    notes = [f"normalisation rule {r!r} skipped: {how}" for r, how in missing.items()]
    rules = tuple(r for r in config.normalise if r not in missing)
    specials = set(vocab.specials)

    # -- 1. plan: every key any stage could need, so each file is read once ----------------------
    plan: dict[str, list[tuple[str, str]]] = {}
    keys: set[str] = set()
    for tok in vocab.tokens:
        if tok in specials:
            keys.update(_special_keys(tok, config))
            continue
        forms = list(variants(tok, rules)) if rules else []
        plan[tok] = forms
        keys.add(tok)
        keys.update(form for _, form in forms)
    if not plan:
        raise ConfigError(f"the vocabulary holds only its specials ({', '.join(vocab.specials)}): "
                          "nothing to graft (an empty corpus, or --min-freq too high?)")
    # A word is composed from its own pieces first, then from those of its normalised forms
    # ("2008" from the full-width digits a source may hold instead).
    compose_forms: dict[str, list[str]] = {}
    if config.compose != "off":
        for tok, forms in plan.items():
            compose_forms[tok] = [tok] + [form for _, form in forms]
    found: list[dict[str, np.ndarray]] = []
    for src in srcs:
        want = set(keys)
        for forms in compose_forms.values():
            for form in forms:
                want.update(src.requests(form))
        found.append(src.lookup(want))

    # -- 2. cascade, stage by stage over the sources -----------------------------------------------
    n = len(vocab)
    rows: list[np.ndarray | None] = [None] * n
    prov: list[Provenance | None] = [None] * n
    pad_ids = {vocab.pad_id} if getattr(vocab, "pad_id", None) is not None else set()
    to_compose: dict[int, list[str]] = {}
    for i, tok in enumerate(vocab.tokens):
        if i in pad_ids:
            continue  # <pad> is all zeros whatever the sources hold (set below)
        if tok in specials:
            rows[i], prov[i] = _special(tok, config, srcs, found) or (None, None)
            continue
        hit = _exact(tok, srcs, found) or _normalised(tok, plan[tok], srcs, found)
        if hit is not None:
            rows[i], prov[i] = hit
        elif config.compose != "off":
            to_compose[i] = compose_forms[tok]
    composed, unknown = _compose_all(to_compose, srcs, found, config)
    for i, (vec, p) in composed.items():
        rows[i], prov[i] = vec, p

    # -- 3. initialise what is left, matched to the statistics of what was found -----------------
    # Statistics come from rows taken as they were; a word vocabulary over a character source
    # may have none, and then the composed rows are the best evidence of the source's scale.
    found_ids = [i for i, p in enumerate(prov) if p is not None and p.stage in FOUND_STAGES]
    if not found_ids:
        found_ids = [i for i, p in enumerate(prov) if p is not None and p.stage == "composed"]
    if not found_ids:
        raise EmbgraftError(
            f"none of the {len(plan)} target tokens was found in "
            + ", ".join(s.name for s in srcs)
            + ": check the vocabulary level (char/word) against the source"
        )
    work = np.dtype(DTYPES[config.dtype])  # float64 only when asked for: sources widen exactly
    found_mat = np.stack([rows[i] for i in found_ids])  # statistics accumulate in float64
    mean, std = found_mat.mean(axis=0, dtype=np.float64), found_mat.std(axis=0, dtype=np.float64)
    rng = np.random.default_rng(config.seed)
    # one draw for every row left, in row order: the same values as one draw per row, 20x faster
    drawn = iter(_init_rows(config.init, mean, std, rng,
                            sum(1 for i in range(n) if rows[i] is None and i not in pad_ids), dtype=work))
    for i, tok in enumerate(vocab.tokens):
        if rows[i] is not None:
            continue
        if i in pad_ids:
            rows[i], prov[i] = np.zeros(src_dim, work), Provenance("special", "", ("zeros",))
            continue
        vec = next(drawn)
        # a word whose pieces the source did not know says so (the unknown token's row is never used)
        prov[i] = (Provenance("special", "", (f"init:{config.init}",)) if tok in specials
                   else Provenance(f"init:{config.init}", "", unknown.get(i, ())))
        rows[i] = vec
    weights = np.empty((n, src_dim), work)  # filled row by row: no stacked temporary
    for i, vec in enumerate(rows):
        weights[i] = vec
    del rows, found  # every row is in ``weights`` now; the per-key arrays can go

    # -- 4. post-process the whole matrix ------------------------------------------------------------
    pca_info = None
    if config.dim is not None and config.dim != src_dim:
        weights, pca_info = _pca(weights, found_ids, config.dim)
    if config.centre:
        weights -= weights[found_ids].mean(axis=0)
    if config.unit_norm:
        norms = np.linalg.norm(weights, axis=1, keepdims=True)
        weights = weights / np.where(norms > 0, norms, 1.0)
    if config.scale != 1.0:
        weights *= work.type(config.scale)
    for i in pad_ids:
        weights[i] = 0.0  # <pad> stays all zeros whatever the post-processing

    report = GraftReport.build(
        vocab=vocab,
        provenance=prov,  # type: ignore[arg-type]
        sources=srcs,
        config=config.to_dict(),
        dim=int(weights.shape[1]),
        source_stats={"mean_norm": float(np.linalg.norm(found_mat, axis=1).mean(dtype=np.float64)),
                      "std_mean": float(std.mean())},
        pca=pca_info,
        notes=notes,
        seconds=time.perf_counter() - started,
    )
    # GraftResult rounds float16/bfloat16 here, once: in memory as it will be on disk
    return GraftResult(weights=weights, vocab=vocab, provenance=prov, report=report,  # type: ignore[arg-type]
                       dtype=config.dtype)


def _exact(tok: str, srcs: Sequence[Source], found: Sequence[dict]) -> tuple | None:
    for src, got in zip(srcs, found):
        if tok in got:
            return got[tok], Provenance("exact", src.name, (tok,))
    return None


def _normalised(tok: str, forms: list[tuple[str, str]], srcs, found) -> tuple | None:
    for src, got in zip(srcs, found):
        for rule, form in forms:
            if form in got:
                return got[form], Provenance(f"normalised:{rule}", src.name, (form,))
    return None


def _special_keys(tok: str, config: GraftConfig) -> list[str]:
    """Source tokens a special may take its row from: the special as written (a BERT-style
    vocabulary's own ``[CLS]``), then the one it is mapped to (``<cls>`` -> ``[CLS]``)."""
    return list(dict.fromkeys(k for k in (tok, config.special_map.get(tok)) if k))


def _special(tok: str, config: GraftConfig, srcs, found) -> tuple | None:
    for key in _special_keys(tok, config):
        for src, got in zip(srcs, found):
            if key in got:
                return got[key], Provenance("special", src.name, (key,))
    return None


def _compose_all(pending: dict[int, list[str]], srcs: Sequence[Source], found: Sequence[dict],
                 config: GraftConfig) -> tuple[dict[int, tuple], dict[int, tuple[str, ...]]]:
    work = np.dtype(DTYPES[config.dtype])
    """Compose every row in ``pending`` (row -> forms to try, in order) at once.

    Per source, the pieces of every form still pending come in one batch (``pieces_batch``
    where the source has it: one tokenizer call, one read of the rows); the first form whose
    known pieces cover enough of it wins. Then the chosen words are pooled in one reduction per
    chunk of words. Returns ``{row: (vector (dim,), provenance)}`` and, for rows left over,
    the unknown pieces that kept them out (for their provenance).
    """
    chosen: dict[int, tuple[Source, list[Piece]]] = {}
    unknown: dict[int, tuple[str, ...]] = {}
    left = dict(pending)
    for src, got in zip(srcs, found):
        if not left:
            break
        forms = list(dict.fromkeys(f for fs in left.values() for f in fs))
        batch = getattr(src, "pieces_batch", None)
        batches = batch(forms, got) if batch is not None else [src.pieces(f, got) for f in forms]
        pieces_of = dict(zip(forms, batches))
        for i, fs in list(left.items()):
            for form in fs:
                pieces = pieces_of[form]
                known = [p for p in pieces if p.kind != "unknown"]
                if len(known) < len(pieces) and i not in unknown:  # for the init provenance, should nothing work
                    unknown[i] = tuple(_label(p) for p in pieces if p.kind == "unknown")
                if not known or (config.compose_bytes == "off" and any(p.kind == "bytes" for p in known)):
                    continue
                if sum(p.n_chars for p in known) / max(len(form), 1) + 1e-9 < config.compose_min_coverage:
                    continue
                chosen[i] = (src, pieces)
                del left[i]
                break
    out: dict[int, tuple] = {}
    order = list(chosen)
    for lo in range(0, len(order), _COMPOSE_CHUNK):
        block = order[lo:lo + _COMPOSE_CHUNK]
        known = [[p for p in chosen[i][1] if p.kind != "unknown"] for i in block]
        counts = np.array([len(k) for k in known], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        stacked = np.stack([p.vector for k in known for p in k])  # (n_pieces, dim)
        pooled = POOLINGS[config.compose](stacked, starts, counts).astype(work, copy=False)
        for i, vec, pieces in zip(block, pooled, known):
            src, all_pieces = chosen[i]
            # byte-level pieces of a character carry little of it: said apart in the provenance
            method = "composed:bytes" if any(p.kind == "bytes" for p in pieces) else f"composed:{config.compose}"
            out[i] = vec, Provenance(method, src.name, tuple(_label(p) for p in all_pieces))
    return out, {i: u for i, u in unknown.items() if i not in out}


def _label(piece: Piece) -> str:
    """A piece as provenance names it: an unknown one says so (its row was never used)."""
    return UNKNOWN_PIECE.format(piece.label) if piece.kind == "unknown" else piece.label


def _init_rows(method: str, mean: np.ndarray, std: np.ndarray, rng: np.random.Generator, n: int, *,
               dtype: np.dtype = np.dtype(np.float32)) -> np.ndarray:
    """``(n, dim)`` rows of ``dtype`` with the found rows' per-dimension ``mean`` and ``std`` (dim,)."""
    shape = (n, len(mean))
    if method == "normal":
        return rng.normal(mean, std, size=shape).astype(dtype, copy=False)
    if method == "uniform":  # same mean and std as the found rows: half-width sqrt(3)*std
        half = np.sqrt(3.0) * std
        return rng.uniform(mean - half, mean + half, size=shape).astype(dtype, copy=False)
    if method == "zeros":
        return np.zeros(shape, dtype=dtype)
    return np.broadcast_to(mean.astype(dtype), shape)  # "mean"


def _pca(weights: np.ndarray, fit_ids: list[int], dim: int) -> tuple[np.ndarray, dict]:
    """Project every row onto the top ``dim`` principal axes of the found rows.

    weights: (n, src_dim) -> (n, dim). Fitted on found rows only, so random rows do not
    shape the axes.
    """
    fit = weights[fit_ids].astype(np.float64)
    if len(fit_ids) < dim:
        raise ConfigError(f"PCA to {dim} dimensions needs at least {dim} found rows, have {len(fit_ids)}")
    mu = fit.mean(axis=0)
    _, s, vt = np.linalg.svd(fit - mu, full_matrices=False)
    explained = float((s[:dim] ** 2).sum() / (s ** 2).sum())
    out = ((weights.astype(np.float64) - mu) @ vt[:dim].T).astype(weights.dtype)
    return out, {"from_dim": int(weights.shape[1]), "to_dim": dim, "explained_variance": explained}
