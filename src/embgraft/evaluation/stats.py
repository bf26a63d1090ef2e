"""Paired significance tests and summaries over seeds and folds: what ``compare`` and ``cv``
report. SciPy is imported inside :func:`paired_test`."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from embgraft.errors import EmbgraftError
from embgraft.evaluation.metrics import text_table

# discordant pairs below this count: exact binomial McNemar; from it on: chi-square with continuity
MCNEMAR_EXACT_BELOW = 25


# -- paired significance ----------------------------------------------------------------------------
def paired_test(correct_a: Any, correct_b: Any, *, method: str = "mcnemar", n_boot: int = 10000,
                seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Is set-up A's accuracy different from set-up B's on the same test items?

    ``correct_a``, ``correct_b``: (n,) bools, whether each set-up got item i right.

    ``method="mcnemar"``: with ``n01`` (A right, B wrong) and ``n10`` (A wrong, B right), the
    exact binomial test (``scipy.stats.binomtest``) when ``n01 + n10 < 25``, otherwise the
    chi-square statistic with continuity correction ``(|n01 - n10| - 1)^2 / (n01 + n10)`` on one
    degree of freedom. ``method="bootstrap"``: ``scipy.stats.bootstrap`` of the mean per-item
    difference (= the accuracy difference) over ``n_boot`` paired resamples, a percentile
    interval at ``confidence``, and a two-sided p-value ``2 * (min(#{d* <= 0}, #{d* >= 0}) + 1) / (n_boot + 1)``
    (capped at 1).

    Returns ``method``, ``test`` (the test actually used), ``n``, ``accuracy_a``, ``accuracy_b``,
    ``difference`` (A - B), ``p_value``, and the test's own fields.
    """
    from scipy import stats

    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise EmbgraftError(f"correct_a and correct_b must be (n,) of one length; got {a.shape} and {b.shape}")
    if a.size == 0:
        raise EmbgraftError("no items to compare")
    for arr in (a, b):
        if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
            raise EmbgraftError("correctness must be booleans (or 0/1)")
    a = a.astype(bool)
    b = b.astype(bool)
    n = int(a.size)
    out: dict[str, Any] = {"method": method, "n": n, "accuracy_a": float(a.mean()),
                           "accuracy_b": float(b.mean()), "difference": float(a.mean() - b.mean())}
    if method == "mcnemar":
        n01 = int(np.sum(a & ~b))
        n10 = int(np.sum(~a & b))
        m = n01 + n10
        out.update(n01=n01, n10=n10)
        if m == 0:
            out.update(test="mcnemar-exact", statistic=None, p_value=1.0,
                       note="no discordant pairs: the two set-ups agree on every item")
        elif m < MCNEMAR_EXACT_BELOW:
            out.update(test="mcnemar-exact", statistic=n01,
                       p_value=float(stats.binomtest(n01, m, 0.5, alternative="two-sided").pvalue))
        else:
            chi2 = (abs(n01 - n10) - 1) ** 2 / m
            out.update(test="mcnemar-chi2-cc", statistic=float(chi2), p_value=float(stats.chi2.sf(chi2, 1)))
        return out
    if method == "bootstrap":
        if n_boot < 1:
            raise EmbgraftError(f"n_boot must be positive, got {n_boot}")
        if not 0 < confidence < 1:
            raise EmbgraftError(f"confidence must be in (0, 1), got {confidence}")
        d = a.astype(np.float64) - b.astype(np.float64)
        out.update(test="paired-bootstrap", n_boot=int(n_boot), seed=int(seed), confidence=float(confidence))
        if np.all(d == d[0]):  # every resample gives the same difference
            out.update(ci=[float(d[0]), float(d[0])], p_value=1.0 if d[0] == 0 else 0.0,
                       note="the per-item difference is constant: no resampling variation")
            return out
        res = stats.bootstrap((d,), np.mean, n_resamples=int(n_boot), vectorized=True, paired=False,
                              confidence_level=confidence, method="percentile",
                              rng=np.random.default_rng(seed), batch=1000)
        dist = res.bootstrap_distribution
        # (count + 1) / (B + 1): never 0 from a finite number of resamples
        tail = min(int(np.sum(dist <= 0)), int(np.sum(dist >= 0)))
        p = min(1.0, 2 * (tail + 1) / (dist.size + 1))
        out.update(ci=[float(res.confidence_interval.low), float(res.confidence_interval.high)], p_value=p)
        return out
    raise EmbgraftError(f"unknown method {method!r}; use 'mcnemar' or 'bootstrap'")


# -- over seeds and folds ---------------------------------------------------------------------------
def summarise_results(results: Sequence[dict[str, Any]], *, metrics: Sequence[str] = ("accuracy", "macro_f1"),
                      by: Sequence[str] = ("setup", "train_fraction"), split: str = "test") -> list[dict[str, Any]]:
    """Mean and sample standard deviation (ddof=1; ``None`` from a single run) of each metric over
    the runs that share the ``by`` fields, groups in first-seen order.

    ``results``: dicts like ``compare.json``'s ``results`` rows, the metrics under ``split``
    (``{"setup": .., "seed": 0, "train_fraction": 1.0, "test": {"accuracy": .., "macro_f1": ..}}``),
    or flat (``{"fold": 0, "accuracy": ..}`` with ``split=None``). Returns one row per group:
    the ``by`` fields, ``n_seeds`` (runs in the group), ``<metric>_mean``, ``<metric>_sd``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        missing = [k for k in by if k not in r]
        if missing:
            raise EmbgraftError(f"a result has no {', '.join(missing)}: {r!r}")
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    rows = []
    for key, runs in groups.items():
        row: dict[str, Any] = dict(zip(by, key))
        row["n_seeds"] = len(runs)
        for m in metrics:
            try:
                values = np.array([float((r[split] if split else r)[m]) for r in runs])
            except (KeyError, TypeError) as e:
                raise EmbgraftError(f"a result of {dict(zip(by, key))} has no {split + '.' if split else ''}{m}") \
                    from e
            row[f"{m}_mean"] = float(values.mean())
            row[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else None
        rows.append(row)
    return rows


def compare_table(summary: Sequence[dict[str, Any]], *, baseline: dict[str, Any] | None = None) -> str:
    """The table ``embgraft compare`` prints: per set-up and train fraction, seeds, accuracy and
    macro-F1 as mean ± sd, the set-up compared with, the p-value and the test used."""
    def pm(r: dict[str, Any], m: str) -> str:
        mean, sd = r.get(f"{m}_mean"), r.get(f"{m}_sd")
        if mean is None:
            return "n/a"
        return f"{mean:.4f} ± {sd:.4f}" if sd is not None else f"{mean:.4f}"

    def p(r: dict[str, Any]) -> str:
        v = r.get("p_value")
        return "" if v is None else (f"{v:.2g}" if v < 1e-3 else f"{v:.4f}")

    rows = [("set-up", "fraction", "seeds", "accuracy", "macro-F1", "vs", "p", "test")]
    all_rows = [dict(r) for r in summary] + ([dict(baseline, setup=f"{baseline.get('name') or baseline.get('setup')}"
                                                                   " (baseline)")] if baseline else [])
    for r in all_rows:
        frac = r.get("train_fraction")
        rows.append((str(r.get("setup")), "" if frac is None else f"{frac:g}", str(r.get("n_seeds") or ""),
                     pm(r, "accuracy"), pm(r, "macro_f1"), str(r.get("vs") or ""), p(r), str(r.get("test") or "")))
    return text_table(rows, left="l----l-l")
