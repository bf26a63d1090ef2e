"""PNG plots for evaluation, training, graft coverage, comparisons and embedding drift.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``, the Agg renderer; pyplot and its
global state are never touched). Chinese text never renders as empty boxes: :func:`cjk_font` finds
a CJK font through matplotlib's font manager, then among the system's font files, and otherwise
registers the Noto Sans CJK collection that the ``noto-cjk-sans-otc`` dependency installs (SIL Open
Font License 1.1). Latin text stays in DejaVu Sans; CJK glyphs fall back to the CJK font.

Every function writes one PNG atomically (an existing file needs ``force=True``), returns its path,
and takes ``size`` (inches) and ``dpi``: the image is ``size[0] * dpi`` by ``size[1] * dpi`` pixels.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from embgraft.files import atomic_file
from embgraft.errors import EmbgraftError

log = logging.getLogger(__name__)

# families tried in order; the first one matplotlib knows wins
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans CJK TC",
    "Noto Sans CJK JP", "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
    "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC", "Hiragino Sans GB", "AR PL UMing CN",
    "AR PL UKai CN",
)
# font files on the system worth registering when matplotlib's cache predates them
_CJK_FILE_HINTS = ("notosanscjk", "notoserifcjk", "sourcehansans", "wqy", "simhei", "msyh", "droidsansfallback",
                   "uming", "ukai", "notosanssc")
DPI = 100
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")


# -- fonts ------------------------------------------------------------------------------------------
def _known_families() -> set[str]:
    from matplotlib import font_manager

    return {f.name for f in font_manager.fontManager.ttflist}


def _pick(families: set[str]) -> str | None:
    return next((f for f in CJK_FAMILIES if f in families), None)


def _register_system_fonts() -> None:
    """Adds CJK font files found in the system's font directories to matplotlib's font manager
    (its cache may have been built before ``apt-get install fonts-noto-cjk``)."""
    from matplotlib import font_manager

    for path in font_manager.findSystemFonts():
        name = os.path.basename(path).lower().replace("-", "").replace("_", "")
        if any(h in name for h in _CJK_FILE_HINTS):
            try:
                font_manager.fontManager.addfont(path)
            except Exception as e:  # a broken font file must not stop the plot
                log.debug("cannot register %s: %s", path, e)


def register_package_font() -> str | None:
    """Registers the Noto Sans CJK collection shipped by ``noto-cjk-sans-otc`` with matplotlib;
    returns the path of the font file, or ``None`` when the package is not installed."""
    from matplotlib import font_manager

    try:
        import noto_cjk_sans_otc
    except ImportError:
        return None
    path = str(noto_cjk_sans_otc.FONT_PATH)
    if not os.path.isfile(path):
        return None
    font_manager.fontManager.addfont(path)
    return path


@functools.lru_cache(maxsize=1)
def cjk_font() -> str:
    """The family name of a font with Chinese glyphs that matplotlib can use.

    Looks in matplotlib's font list, then in the system's font files, then registers the font of
    the ``noto-cjk-sans-otc`` package; raises ``EmbgraftError`` when there is none at all.
    """
    found = _pick(_known_families())
    if found is None:
        _register_system_fonts()
        found = _pick(_known_families())
    if found is None and register_package_font() is not None:
        found = _pick(_known_families())
    if found is None:
        raise EmbgraftError("no font with Chinese glyphs found: install the Python package noto-cjk-sans-otc "
                            "(pip install noto-cjk-sans-otc) or a system CJK font (apt-get install fonts-noto-cjk)")
    return found


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    # fallback works between the families listed in font.family, not inside the generic "sans-serif"
    with matplotlib.rc_context({"font.family": ["DejaVu Sans", cjk_font()],
                                "axes.unicode_minus": True, "savefig.dpi": "figure",
                                "axes.spines.top": False, "axes.spines.right": False}):
        yield


def _figure(size: tuple[float, float], dpi: int):
    from matplotlib.figure import Figure

    if len(size) != 2 or min(size) <= 0 or dpi <= 0:
        raise EmbgraftError(f"bad figure size {size!r} at {dpi} dpi")
    return Figure(figsize=size, dpi=dpi, layout="constrained")


def _save(fig, path: str | os.PathLike, *, force: bool) -> Path:
    with atomic_file(path, force=force, mode="wb") as f:
        fig.savefig(f, format="png", dpi=fig.dpi)
    return Path(path)


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _num(x: Any) -> float:
    """A float from a CSV/JSON cell; empty or missing is NaN."""
    if x is None or (isinstance(x, str) and not x.strip()):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


# -- evaluation -------------------------------------------------------------------------------------
def plot_confusion(counts: Any, labels: Sequence[str], path: str | os.PathLike, *, normalise: bool = True,
                   title: str | None = None, size: tuple[float, float] | None = None, dpi: int = DPI,
                   force: bool = False) -> Path:
    """A confusion matrix heat map. ``counts``: (n_classes, n_classes) ints, rows = gold, columns =
    predicted; ``labels``: n_classes names. ``normalise`` colours and labels each cell by its share
    of the row (the recall of the gold class), with the count below; otherwise by the count.
    Default size grows with the number of classes: ``max(5, 0.55 * k + 2.5)`` inches square."""
    cm = np.asarray(counts, dtype=np.float64)
    k = len(labels)
    if cm.shape != (k, k):
        raise EmbgraftError(f"confusion counts {cm.shape} do not fit {k} labels")
    if size is None:
        side = max(5.0, 0.55 * k + 2.5)
        size = (side, side)
    rows = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalise else cm
    with _style():
        fig = _figure(size, dpi)
        ax = fig.add_subplot()
        im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else max(1.0, cm.max()))
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_xticks(range(k), labels=[str(x) for x in labels], rotation=45 if k > 4 else 0,
                      ha="right" if k > 4 else "center")
        ax.set_yticks(range(k), labels=[str(x) for x in labels])
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(title or ("confusion matrix (row-normalised)" if normalise else "confusion matrix"))
        if k <= 20:
            top = shown.max() or 1.0
            for i in range(k):
                for j in range(k):
                    text = f"{shown[i, j]:.2f}\n({int(cm[i, j])})" if normalise else f"{int(cm[i, j])}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=8 if k <= 10 else 6,
                            color="white" if shown[i, j] > 0.6 * top else "black")
        return _save(fig, path, force=force)


def plot_per_label(metrics: Mapping[str, Any], path: str | os.PathLike, *, size: tuple[float, float] | None = None,
                   dpi: int = DPI, force: bool = False) -> Path:
    """Multi-label: precision, recall and F1 of every label (grouped bars, ``metrics["per_class"]``
    of ``compute_multilabel_metrics``), each label's support and threshold under its name."""
    per = metrics.get("per_class") or {}
    names = list(per)
    k = len(names)
    if size is None:
        size = (max(6.0, 0.7 * k + 2.0), 4.5)
    with _style():
        fig = _figure(size, dpi)
        ax = fig.add_subplot()
        if not names:
            _empty(ax, "per-label scores: not available")
            return _save(fig, path, force=force)
        x = np.arange(k)
        for i, what in enumerate(("precision", "recall", "f1")):
            ax.bar(x + (i - 1) * 0.27, [_num(per[n][what]) for n in names], width=0.27,
                   color=_COLOURS[i], label=what)
        thresholds = metrics.get("thresholds") or {}
        ax.set_xticks(x, labels=[f"{n}\n{per[n]['support']:,}" + (f" @{thresholds[n]:.2f}" if n in thresholds else "")
                                 for n in names], rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center",
                      fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score")
        micro = (metrics.get("micro") or {}).get("f1")
        macro = (metrics.get("macro") or {}).get("f1")
        ax.set_title("per label (support @ threshold)" + (f": micro-F1 {micro:.3f}, macro-F1 {macro:.3f}"
                                                          if micro is not None and macro is not None else ""))
        ax.legend(loc="lower right", fontsize=8)
        return _save(fig, path, force=force)


def _curves(metrics: Mapping[str, Any], key: str, path, *, xkey: str, ykey: str, score: str, score_name: str,
            xlabel: str, ylabel: str, title: str, diagonal: bool, size, dpi, force) -> Path:
    block = metrics.get(key) or {}
    curves = block.get("curves") or {}
    with _style():
        fig = _figure(size, dpi)
        ax = fig.add_subplot()
        if not curves:
            why = "; ".join(f"{n}: {r}" for n, r in (block.get("undefined") or {}).items())
            _empty(ax, f"{title}: not available" + (f"\n({why})" if why else ""))
            return _save(fig, path, force=force)
        for i, (name, c) in enumerate(curves.items()):
            ax.plot(c[xkey], c[ykey], color=_COLOURS[i % len(_COLOURS)], lw=1.5,
                    drawstyle="steps-post" if key == "pr" else "default",
                    label=f"{name} ({score_name} {c[score]:.3f})")
        if diagonal:
            ax.plot([0, 1], [0, 1], ls="--", lw=1, color="#999999")
        overall = block.get("auc" if key == "roc" else "average_precision")
        kind = {"binary": "positive class", "per_label": "per label, macro"}.get(block.get("kind"),
                                                                                 "one-vs-rest, macro")
        ax.set_title(f"{title} ({kind} {score_name} {overall:.3f})" if overall is not None else title)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="lower right" if key == "roc" else "lower left", fontsize=8)
        return _save(fig, path, force=force)


def plot_roc(metrics: Mapping[str, Any], path: str | os.PathLike, *, size: tuple[float, float] = (6, 5),
             dpi: int = DPI, force: bool = False) -> Path:
    """ROC curves from ``compute_metrics(...)["roc"]``: one per class (binary: the positive class),
    AUC in the legend, the chance diagonal dashed."""
    return _curves(metrics, "roc", path, xkey="fpr", ykey="tpr", score="auc", score_name="AUC",
                   xlabel="false positive rate", ylabel="true positive rate", title="ROC",
                   diagonal=True, size=size, dpi=dpi, force=force)


def plot_pr(metrics: Mapping[str, Any], path: str | os.PathLike, *, size: tuple[float, float] = (6, 5),
            dpi: int = DPI, force: bool = False) -> Path:
    """Precision–recall curves from ``compute_metrics(...)["pr"]``, average precision in the legend."""
    return _curves(metrics, "pr", path, xkey="recall", ykey="precision", score="average_precision",
                   score_name="AP", xlabel="recall", ylabel="precision", title="precision-recall",
                   diagonal=False, size=size, dpi=dpi, force=force)


def plot_reliability(metrics: Mapping[str, Any], path: str | os.PathLike, *,
                     size: tuple[float, float] = (6, 6), dpi: int = DPI, force: bool = False) -> Path:
    """Reliability diagram from ``compute_metrics(...)["calibration"]``: accuracy per confidence bin
    against the diagonal, the gap shaded, and the number of examples per bin below."""
    cal = metrics.get("calibration") or {}
    bins = cal.get("bins") or []
    with _style():
        fig = _figure(size, dpi)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        if not bins:
            _empty(top, "calibration: not available")
            return _save(fig, path, force=force)
        lo = np.array([b["lower"] for b in bins])
        hi = np.array([b["upper"] for b in bins])
        width = hi - lo
        acc = np.array([_num(b["accuracy"]) for b in bins])
        conf = np.array([_num(b["confidence"]) for b in bins])
        filled = np.isfinite(acc)
        top.bar(lo[filled], acc[filled], width=width[filled], align="edge", color="#1f77b4",
                edgecolor="white", label="accuracy")
        top.bar(lo[filled], conf[filled] - acc[filled], bottom=acc[filled], width=width[filled], align="edge",
                color="#d62728", alpha=0.3, label="gap to confidence")
        top.plot([0, 1], [0, 1], ls="--", color="#555555", lw=1, label="perfect calibration")
        top.set_ylim(0, 1)
        top.set_ylabel("accuracy")
        ece = cal.get("ece")
        top.set_title("reliability" + (f" (ECE {ece:.3f})" if ece is not None else ""))
        top.legend(loc="upper left", fontsize=8)
        bottom.bar(lo, [b["count"] for b in bins], width=width, align="edge", color="#7f7f7f", edgecolor="white")
        bottom.set_xlim(0, 1)
        bottom.set_xlabel("confidence (max probability)")
        bottom.set_ylabel("examples")
        return _save(fig, path, force=force)


# -- training and graft -----------------------------------------------------------------------------
def plot_history(history_rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                 size: tuple[float, float] = (12, 4), dpi: int = DPI, force: bool = False) -> Path:
    """Training curves over epochs, three panels: train and dev loss; dev accuracy and macro-F1;
    learning rate and embedding learning rate (log scale). ``history_rows``: one mapping per
    epoch with the ``history.csv`` columns (strings or numbers; empty cells are gaps)."""
    from matplotlib.ticker import MaxNLocator

    rows = list(history_rows)
    with _style():
        fig = _figure(size, dpi)
        axes = fig.subplots(1, 3)
        if not rows:
            for ax in axes:
                _empty(ax, "no history")
            return _save(fig, path, force=force)
        epochs = np.array([_num(r.get("epoch")) for r in rows])

        def col(name: str) -> np.ndarray:
            return np.array([_num(r.get(name)) for r in rows])

        panels = [(axes[0], "loss", [("train_loss", "train"), ("dev_loss", "dev")]),
                  (axes[1], "dev metric", [("dev_accuracy", "accuracy"), ("dev_macro_f1", "macro-F1")]),
                  (axes[2], "learning rate", [("lr", "lr"), ("embedding_lr", "embedding lr")])]
        for ax, title, series in panels:
            drawn = False
            for i, (name, label) in enumerate(series):
                y = col(name)
                if np.isfinite(y).any():
                    ax.plot(epochs, y, marker="o", ms=3, color=_COLOURS[i], label=label)
                    drawn = True
            if not drawn:
                _empty(ax, f"{title}: not recorded")
                continue
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if title == "learning rate" and np.nanmin([np.nanmin(col(n)) for n, _ in series
                                                       if np.isfinite(col(n)).any()]) > 0:
                ax.set_yscale("log")
            ax.legend(fontsize=8)
        return _save(fig, path, force=force)


def plot_coverage(graft_report: Mapping[str, Any], path: str | os.PathLike, *,
                  size: tuple[float, float] = (8, 4.5), dpi: int = DPI, force: bool = False) -> Path:
    """Graft coverage per provenance method (``graft_report.json``'s ``methods``): horizontal bars of
    the share of vocabulary types and the share of corpus tokens, in percent."""
    methods = dict(graft_report.get("methods") or {})
    with _style():
        fig = _figure(size, dpi)
        ax = fig.add_subplot()
        if not methods:
            _empty(ax, "graft coverage: not available")
            return _save(fig, path, force=force)
        names = list(methods)
        y = np.arange(len(names))
        types = [100 * _num(methods[m].get("share_types")) for m in names]
        tokens = [100 * _num(methods[m].get("share_tokens")) for m in names]
        h = 0.38
        b1 = ax.barh(y - h / 2, types, height=h, color="#1f77b4", label="% of vocabulary types")
        b2 = ax.barh(y + h / 2, tokens, height=h, color="#ff7f0e", label="% of corpus tokens")
        for bars in (b1, b2):
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        ax.set_yticks(y, labels=names)
        ax.invert_yaxis()
        ax.set_xlim(0, 112)
        ax.set_xlabel("percent")
        ax.set_title("graft coverage by provenance method")
        ax.legend(loc="lower right", fontsize=8)
        return _save(fig, path, force=force)


def plot_drift(drift: Mapping[str, Any], path: str | os.PathLike, *, size: tuple[float, float] = (10, 4),
               dpi: int = DPI, force: bool = False) -> Path:
    """Embedding drift per provenance method (``embedding_drift``'s ``per_method``): mean L2 and
    mean cosine distance from the initial row, the median as a dot and the maximum as a tick."""
    per = dict(drift.get("per_method") or {})
    with _style():
        fig = _figure(size, dpi)
        axes = fig.subplots(1, 2)
        if not per:
            for ax in axes:
                _empty(ax, "drift: not available")
            return _save(fig, path, force=force)
        names = list(per)
        y = np.arange(len(names))
        for ax, key, title in ((axes[0], "l2", "L2 distance"), (axes[1], "cosine", "cosine distance")):
            mean = np.array([_num(per[m][key]["mean"]) for m in names])
            ax.barh(y, np.nan_to_num(mean), color="#1f77b4", label="mean")
            ax.plot([_num(per[m][key]["median"]) for m in names], y, "o", color="#ff7f0e", label="median")
            ax.plot([_num(per[m][key]["max"]) for m in names], y, "|", ms=12, color="#d62728", label="max")
            ax.set_yticks(y, labels=names if ax is axes[0] else [""] * len(names))
            ax.invert_yaxis()
            ax.set_title(f"{title} moved in fine-tuning")
            ax.legend(fontsize=8, loc="best")
        return _save(fig, path, force=force)


# -- comparisons ------------------------------------------------------------------------------------
def plot_compare(summary_rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                 baseline: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                 size: tuple[float, float] | None = None, dpi: int = DPI, force: bool = False) -> Path:
    """Set-ups side by side (``compare.json``'s ``summary`` rows, and its ``baseline``): bars of
    mean accuracy and macro-F1 with ± sd error bars at the largest train fraction, the baseline
    hatched; when the rows hold several train fractions, a second panel draws the learning curve
    (mean accuracy ± sd against the fraction of training data, log scale). Default size: (10, 4.5)
    inches, (16, 4.5) with a learning curve."""
    rows = [dict(r) for r in summary_rows]
    if baseline:
        rows += [dict(b, baseline=True) for b in ([baseline] if isinstance(baseline, Mapping) else baseline)]
    fractions = sorted({f for f in (_num(r.get("train_fraction", 1.0)) for r in rows) if math.isfinite(f)})
    curve = len(fractions) > 1
    if size is None:
        size = (16, 4.5) if curve else (10, 4.5)
    with _style():
        fig = _figure(size, dpi)
        axes = fig.subplots(1, 2, width_ratios=[3, 2]) if curve else [fig.add_subplot()]
        ax = axes[0]
        if not rows:
            _empty(ax, "no comparison results")
            return _save(fig, path, force=force)
        full = fractions[-1] if fractions else 1.0
        bars = [r for r in rows if _num(r.get("train_fraction", 1.0)) == full or not fractions]
        names = [str(r.get("setup") or r.get("name")) for r in bars]
        x = np.arange(len(bars))
        w = 0.38
        for j, (key, label) in enumerate((("accuracy", "accuracy"), ("macro_f1", "macro-F1"))):
            means = [_num(r.get(f"{key}_mean")) for r in bars]
            sds = [0.0 if not math.isfinite(_num(r.get(f"{key}_sd"))) else _num(r.get(f"{key}_sd")) for r in bars]
            b = ax.bar(x + (j - 0.5) * w, np.nan_to_num(means), w, yerr=sds, capsize=3, color=_COLOURS[j],
                       label=label)
            for patch, r in zip(b, bars):
                if r.get("baseline"):
                    patch.set_hatch("//")
                    patch.set_edgecolor("white")
        finite = [v for r in bars for v in (_num(r.get("accuracy_mean")), _num(r.get("macro_f1_mean")))
                  if math.isfinite(v)]
        low = max(0.0, min(finite) - 0.1) if finite else 0.0
        ax.set_ylim(low, 1.0)
        ax.set_xticks(x, labels=names, rotation=20 if len(bars) > 3 else 0, ha="right" if len(bars) > 3 else "center")
        ax.set_ylabel("test score (mean ± sd over seeds)")
        ax.set_title("set-ups compared" + (f" (train fraction {full:g})" if curve else ""))
        ax.legend(fontsize=8, loc="lower right")
        if curve:
            lc = axes[1]
            setups = list(dict.fromkeys(str(r.get("setup") or r.get("name")) for r in rows))
            for i, s in enumerate(setups):
                pts = sorted((_num(r.get("train_fraction", 1.0)), _num(r.get("accuracy_mean")),
                              _num(r.get("accuracy_sd"))) for r in rows if str(r.get("setup") or r.get("name")) == s)
                fx, fm, fs = (np.array(v) for v in zip(*pts))
                fs = np.nan_to_num(fs)
                colour = _COLOURS[i % len(_COLOURS)]
                if len(pts) == 1:  # e.g. a baseline run on the full data only: a reference line
                    lc.axhline(fm[0], ls="--", lw=1, color=colour, label=f"{s} (fraction {fx[0]:g})")
                    continue
                lc.plot(fx, fm, marker="o", color=colour, label=s)
                lc.fill_between(fx, fm - fs, fm + fs, color=colour, alpha=0.15)
            lc.set_xscale("log")
            lc.set_xticks(fractions, labels=[f"{f:g}" for f in fractions])
            lc.minorticks_off()
            lc.set_xlabel("fraction of training data")
            lc.set_ylabel("test accuracy")
            lc.set_title("learning curve")
            lc.legend(fontsize=8)
        return _save(fig, path, force=force)
