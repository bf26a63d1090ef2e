"""The graft: one row per target token, from the best transfer the sources allow.

Cascade per row, first hit wins, each stage tried over all sources in the order given:

    special -> exact | contextual:<pool>@<layer> -> normalised:<rules> -> composed:<pooling> -> init:<method>

A checkpoint opened with ``rows="output"`` answers the exact stage with its encoder's pooled
output for the token (``contextual:...``); entries it only knows as its unknown token fall through.

:func:`graft` reads as its four stages: **plan** (every key any stage could need, so each file
is read once), **cascade** (special, exact, normalised, composed), **initialise** (what is left,
matched to the statistics of what was found) and **post-process** (PCA to ``dim``, centre, unit
norm, scale). Everything here is NumPy: torch is imported only when an ``nn.Embedding`` is
asked for.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from embgraft.errors import ConfigError, EmbgraftError
from embgraft.grafting.compose import compose_rows
from embgraft.grafting.config import GraftConfig
from embgraft.grafting.ngrams import NgramEntries
from embgraft.grafting.result import FOUND_STAGES, GraftedNgrams, GraftReport, GraftResult, Provenance
from embgraft.sources import open_source
from embgraft.sources.base import Source
from embgraft.text.normalise import unavailable_rules, variants


def graft(
    vocab,
    sources: Source | str | os.PathLike | Sequence[Source | str | os.PathLike],
    *,
    config: GraftConfig | None = None,
    progress: bool = True,
    ngrams: NgramEntries | None = None,
    **overrides: Any,
) -> GraftResult:
    """Build the embedding matrix for ``vocab`` from ``sources`` (fall-backs, in order).

    ``vocab`` is an :class:`embgraft.text.vocab.Vocab`; its ``recipe`` (how its texts were
    tokenised) goes into the result. ``sources`` are opened ``Source`` objects or paths/hub ids
    (opened with default options). ``overrides`` replace fields of ``config``.
    Returns a :class:`GraftResult` whose ``weights`` are ``(len(vocab), dim)``.

    ``ngrams`` (see :func:`embgraft.grafting.ngrams.ngram_entries`): n-gram and word entries
    grafted through the same cascade and post-processing after the vocabulary's rows, into
    ``result.ngrams``; the vocabulary's rows, statistics and PCA are as without them. Entries
    that would be initialised at random are left out (training composes them).
    """
    started = time.perf_counter()
    config = replace(config or GraftConfig(), **overrides) if overrides else (config or GraftConfig())
    srcs = _open_sources(sources, config, progress=progress)
    config = _with_special_map(config, srcs)
    src_dim = srcs[0].dim
    if config.dim is not None and config.dim > src_dim:
        raise ConfigError(f"dim={config.dim} is wider than the sources' {src_dim}: PCA can only narrow")
    missing = unavailable_rules(config.normalise)
    notes = [f"normalisation rule {r!r} skipped: {how}" for r, how in missing.items()]
    rules = tuple(r for r in config.normalise if r not in missing)

    n_tokens = len(vocab)
    full = ngrams.extend(vocab) if ngrams is not None else vocab
    plan = _plan(full, srcs, config, rules)
    rows = _cascade(full, srcs, plan, config)
    n_planned = len(plan.forms)
    del plan  # the rows it found are in ``rows`` now; the per-key arrays can go
    notes.extend(_sif_weights(full, srcs, rows))
    weights, found_ids, found_stats = _initialise(full, srcs, rows, config, n_planned=n_planned, n_fit=n_tokens)
    weights, pca_info = _post_process(weights, found_ids, config, pad_ids=rows.pad_ids)
    provenance = rows.provenance
    grafted_ngrams = None
    if ngrams is not None:
        keep = [i for i in range(n_tokens, len(full)) if provenance[i].stage != "init"]
        grafted_ngrams = GraftedNgrams(tokens=[full.tokens[i] for i in keep], weights=weights[keep],
                                       provenance=[provenance[i] for i in keep], n=ngrams.n, words=ngrams.words)
        weights, provenance = weights[:n_tokens], provenance[:n_tokens]

    report = GraftReport.build(
        vocab=vocab, provenance=provenance, sources=srcs, config=config.to_dict(),
        dim=int(weights.shape[1]), source_stats=found_stats, pca=pca_info, notes=notes,
        seconds=time.perf_counter() - started,
    )
    if ngrams is not None:
        report.ngrams = grafted_ngrams.summary(n_entries=len(full) - n_tokens, min_count=ngrams.min_count)
    # GraftResult rounds float16/bfloat16 here, once: in memory as it will be on disk
    return GraftResult(weights=weights, vocab=vocab, provenance=provenance, report=report,
                       dtype=config.dtype, recipe=vocab.recipe, ngrams=grafted_ngrams)


def _open_sources(sources, config: GraftConfig, *, progress: bool) -> list[Source]:
    if isinstance(sources, (str, os.PathLike)) or not isinstance(sources, Sequence):
        sources = [sources]
    srcs: list[Source] = [
        s if not isinstance(s, (str, os.PathLike))
        else open_source(s, progress=progress, max_piece_chars=config.max_piece_chars,
                         dtype=config.work_dtype.name)
        for s in sources
    ]
    if not srcs:
        raise ConfigError("graft needs at least one source")
    if len({s.dim for s in srcs}) > 1:
        raise ConfigError(
            "sources differ in width: "
            + ", ".join(f"{s.name} has {s.dim}" for s in srcs)
            + "; graft them separately or give sources of one width"
        )
    return srcs


def _with_special_map(config: GraftConfig, srcs: Sequence[Source]) -> GraftConfig:
    """Checkpoints name their own ``[PAD]``/``[CLS]``...: map ours onto them, unless told."""
    if config.special_map:
        return config
    derived: dict[str, str] = {}
    for src in srcs:
        for ours, theirs in src.special_tokens.items():
            derived.setdefault(ours, theirs)
    return replace(config, special_map=derived) if derived else config


# -- 1. plan ------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    forms: dict[str, list[tuple[str, str]]]  # regular token -> its (rule, normalised form)s
    compose_forms: dict[str, list[str]]  # token -> forms to compose it from, in order
    found: list[dict[str, np.ndarray]]  # per source: key -> (dim,) row, what one lookup returned


def _plan(vocab, srcs: Sequence[Source], config: GraftConfig, rules: tuple[str, ...]) -> _Plan:
    """Every key any stage could need, asked of each source in one lookup (one pass over a file)."""
    specials = set(vocab.specials)
    forms: dict[str, list[tuple[str, str]]] = {}
    keys: set[str] = set()
    special_keys: set[str] = set()
    for tok in vocab.tokens:
        if tok in specials:
            special_keys.update(_special_keys(tok, config))
            continue
        forms[tok] = list(variants(tok, rules)) if rules else []
        keys.add(tok)
        keys.update(form for _, form in forms[tok])
    keys |= special_keys
    if not forms:
        raise ConfigError(f"the vocabulary holds only its specials ({', '.join(vocab.specials)}): "
                          "nothing to graft (an empty corpus, or --min-freq too high?)")
    # A word is composed from its own pieces first, then from those of its normalised forms
    # ("2008" from the full-width digits a source may hold instead).
    compose_forms = ({tok: [tok] + [form for _, form in fs] for tok, fs in forms.items()}
                     if config.compose != "off" else {})
    found = []
    for src in srcs:
        if src.staged_lookup:  # a key costs an encoder run: the vocabulary's own entries first
            got = src.lookup(set(forms) | special_keys)
            rest = [tok for tok in forms if tok not in got]
            want = {form for tok in rest for _, form in forms[tok]}
            for tok in rest:
                for form in compose_forms.get(tok, ()):
                    want.update(src.requests(form))
            want -= set(got)
            found.append({**got, **src.lookup(want)} if want else got)
            continue
        want = set(keys)
        for fs in compose_forms.values():
            for form in fs:
                want.update(src.requests(form))
        found.append(src.lookup(want))
    return _Plan(forms, compose_forms, found)


# -- 2. cascade ---------------------------------------------------------------------------------------
@dataclass
class _Rows:
    rows: list[np.ndarray | None]  # per token id: its row, None while not yet filled
    provenance: list[Provenance | None]
    unknown: dict[int, tuple[str, ...]]  # rows left to init: the pieces no source knew
    pad_ids: set[int]


def _cascade(vocab, srcs: Sequence[Source], plan: _Plan, config: GraftConfig) -> _Rows:
    """special -> exact -> normalised per row; then every row still empty composed at once."""
    n = len(vocab)
    specials = set(vocab.specials)
    out = _Rows([None] * n, [None] * n, {}, {vocab.pad_id})
    to_compose: dict[int, list[str]] = {}
    for i, tok in enumerate(vocab.tokens):
        if i in out.pad_ids:
            continue  # <pad> is all zeros whatever the sources hold (set when initialising)
        if tok in specials:
            out.rows[i], out.provenance[i] = _special(tok, config, srcs, plan.found) or (None, None)
            continue
        hit = _exact(tok, srcs, plan.found) or _normalised(tok, plan.forms[tok], srcs, plan.found)
        if hit is not None:
            out.rows[i], out.provenance[i] = hit
        elif config.compose != "off":
            to_compose[i] = plan.compose_forms[tok]
    composed, out.unknown = compose_rows(to_compose, srcs, plan.found, pooling=config.compose,
                                         min_coverage=config.compose_min_coverage,
                                         compose_bytes=config.compose_bytes, dtype=config.work_dtype)
    for i, (vec, p) in composed.items():
        out.rows[i], out.provenance[i] = vec, p
    return out


def _exact(tok: str, srcs: Sequence[Source], found: Sequence[dict]) -> tuple | None:
    for src, got in zip(srcs, found):
        if tok in got:
            return got[tok], Provenance(src.method_of(tok), src.name, (tok,))
    return None


def _sif_weights(vocab, srcs: Sequence[Source], rows: "_Rows") -> list[str]:
    """SIF weighting of contextual rows (a source's ``contextual.sif`` = a): each row times
    a / (a + p), p the token's share of the corpus tokens (its count in the vocabulary)."""
    notes = []
    total = max(vocab.n_corpus_tokens, sum(vocab.counts))
    for src in srcs:
        a = getattr(getattr(src, "contextual", None), "sif", None)
        if a is None:
            continue
        if total == 0:
            notes.append(f"SIF weighting skipped for {src.name}: the vocabulary has no counts")
            continue
        n = 0
        for i, p in enumerate(rows.provenance):
            if p is not None and p.stage == "contextual" and p.source == src.name:
                rows.rows[i] = rows.rows[i] * rows.rows[i].dtype.type(a / (a + vocab.counts[i] / total))
                n += 1
        notes.append(f"SIF weighting a={a:g} on {n:,} contextual rows of {src.name}")
    return notes


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


# -- 3. initialise ------------------------------------------------------------------------------------
def _initialise(vocab, srcs: Sequence[Source], rows: _Rows, config: GraftConfig, *, n_planned: int,
                n_fit: int | None = None) -> tuple[np.ndarray, list[int], dict[str, float]]:
    """Fill the rows left empty, matched to the statistics of the rows found; returns the whole
    ``(n, dim)`` matrix, the ids the statistics came from, and those statistics for the report.

    Statistics come from rows taken as they were; a word vocabulary over a character source may
    have none, and then the composed rows are the best evidence of the source's scale. Only the
    first ``n_fit`` rows (the vocabulary's, not its n-gram entries) give statistics."""
    n, src_dim, work = len(vocab), srcs[0].dim, config.work_dtype
    prov = rows.provenance
    fit = prov[:n if n_fit is None else n_fit]
    found_ids = [i for i, p in enumerate(fit) if p is not None and p.stage in FOUND_STAGES]
    if not found_ids:
        found_ids = [i for i, p in enumerate(fit) if p is not None and p.stage == "composed"]
    if not found_ids:
        raise EmbgraftError(
            f"none of the {n_planned} target tokens was found in "
            + ", ".join(s.name for s in srcs)
            + ": check the vocabulary level (char/word) against the source"
        )
    found_mat = np.stack([rows.rows[i] for i in found_ids])  # statistics accumulate in float64
    mean, std = found_mat.mean(axis=0, dtype=np.float64), found_mat.std(axis=0, dtype=np.float64)
    stats = {"mean_norm": float(np.linalg.norm(found_mat, axis=1).mean(dtype=np.float64)),
             "std_mean": float(std.mean())}
    del found_mat
    rng = np.random.default_rng(config.seed)
    # one draw for every row left, in row order: the same values as one draw per row, 20x faster
    n_left = sum(1 for i in range(n) if rows.rows[i] is None and i not in rows.pad_ids)
    drawn = iter(INIT_DRAWS[config.init](mean, std, rng, (n_left, src_dim)).astype(work, copy=False))
    specials = set(vocab.specials)
    weights = np.empty((n, src_dim), work)  # filled row by row: no stacked temporary
    for i, tok in enumerate(vocab.tokens):
        vec = rows.rows[i]
        if vec is None and i in rows.pad_ids:
            vec, prov[i] = np.zeros(src_dim, work), Provenance("special", "", ("zeros",))
        elif vec is None:
            vec = next(drawn)
            # a word whose pieces the source did not know says so (the unknown token's row is never used)
            prov[i] = (Provenance("special", "", (f"init:{config.init}",)) if tok in specials
                       else Provenance(f"init:{config.init}", "", rows.unknown.get(i, ())))
        weights[i] = vec
    rows.rows = []  # every row is in ``weights`` now
    return weights, found_ids, stats


def _uniform(mean: np.ndarray, std: np.ndarray, rng: np.random.Generator, shape: tuple) -> np.ndarray:
    half = np.sqrt(3.0) * std  # the same mean and std as the found rows
    return rng.uniform(mean - half, mean + half, size=shape)


# init method -> (per-dimension mean (dim,), std (dim,), rng, (n, dim)) -> rows
INIT_DRAWS = {
    "normal": lambda mean, std, rng, shape: rng.normal(mean, std, size=shape),
    "uniform": _uniform,
    "zeros": lambda mean, std, rng, shape: np.zeros(shape),
    "mean": lambda mean, std, rng, shape: np.broadcast_to(mean, shape),
}


# -- 4. post-process ----------------------------------------------------------------------------------
def _post_process(weights: np.ndarray, found_ids: list[int], config: GraftConfig, *, pad_ids: set[int]
                  ) -> tuple[np.ndarray, dict | None]:
    """PCA to ``dim``, centre, unit norm, scale, in that order; ``<pad>`` stays all zeros."""
    pca_info = None
    if config.dim is not None and config.dim != weights.shape[1]:
        weights, pca_info = _pca(weights, found_ids, config.dim)
    if config.centre:
        weights -= weights[found_ids].mean(axis=0)
    if config.unit_norm:
        norms = np.linalg.norm(weights, axis=1, keepdims=True)
        weights = weights / np.where(norms > 0, norms, 1.0)
    if config.scale != 1.0:
        weights *= config.work_dtype.type(config.scale)
    for i in pad_ids:
        weights[i] = 0.0
    return weights, pca_info


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
