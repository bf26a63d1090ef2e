import contextlib
import logging
import warnings

import numpy as np
import pytest

import matplotlib
from matplotlib import image as mpimg  # noqa: E402

from embgraft.evaluation import plots  # noqa: E402
from embgraft.errors import OutputExistsError  # noqa: E402
from embgraft.evaluation.metrics import compute_metrics  # noqa: E402

LABELS = ["财经", "体育", "科技"]


@contextlib.contextmanager
def no_missing_glyphs(caplog):
    """Fails the test when matplotlib reports a missing glyph or an unknown font, by warning or log."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, "matplotlib"):
        warnings.simplefilter("always")
        yield
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records
                                                    if r.levelno >= logging.WARNING]
    bad = [m for m in messages if "Glyph" in m or "missing" in m or "findfont" in m]
    assert not bad, bad


def assert_png(path, width, height):
    assert path.is_file() and path.stat().st_size > 1000
    img = mpimg.imread(path)
    assert img.shape[:2] == (height, width)
    # not blank: many distinct colours were drawn
    assert len(np.unique(img.reshape(-1, img.shape[2]), axis=0)) > 20
    return img


@pytest.fixture(scope="module")
def metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    logits = rng.normal(size=(90, 3))
    logits[np.arange(90), y] += 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return compute_metrics(y, p, LABELS)


def test_cjk_font_has_chinese_glyphs():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    family = plots.cjk_font()
    assert family in plots.CJK_FAMILIES
    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    font = FT2Font(path)
    assert all(font.get_char_index(ord(c)) for c in "财经体育科技词向量")


def test_package_font_registers():
    path = plots.register_package_font()
    if path is None:
        pytest.skip("noto-cjk-sans-otc is not installed")
    from matplotlib import font_manager
    names = {f.name for f in font_manager.fontManager.ttflist if f.fname == path}
    assert names & {"Noto Sans CJK SC", "Noto Sans CJK JP"}


def test_glyph_check_can_fail(tmp_path, caplog):
    """The check used below does catch boxes: without the CJK font, matplotlib reports them."""
    from matplotlib.figure import Figure

    with pytest.raises(AssertionError, match="Glyph"):
        with no_missing_glyphs(caplog), matplotlib.rc_context({"font.family": "DejaVu Sans"}):
            fig = Figure()
            fig.add_subplot().set_title("财经")
            fig.savefig(tmp_path / "boxes.png")


def test_confusion_renders_chinese(tmp_path, caplog, metrics):
    with no_missing_glyphs(caplog):
        out = plots.plot_confusion(metrics["confusion"]["counts"], LABELS, tmp_path / "confusion.png")
    assert out == tmp_path / "confusion.png"
    assert_png(out, 500, 500)  # max(5, 0.55 * 3 + 2.5) = 5 inches at 100 dpi
    with pytest.raises(OutputExistsError):
        plots.plot_confusion(metrics["confusion"]["counts"], LABELS, out)
    plots.plot_confusion(metrics["confusion"]["counts"], LABELS, out, normalise=False, size=(4, 3), dpi=50,
                         force=True)
    assert_png(out, 200, 150)


def test_confusion_grows_with_classes(tmp_path, caplog):
    k = 8
    labels = [f"类别{i}" for i in range(k)]
    with no_missing_glyphs(caplog):
        out = plots.plot_confusion(np.eye(k, dtype=int) * 5 + 1, labels, tmp_path / "c.png")
    side = int(round((0.55 * k + 2.5) * 100))
    assert_png(out, side, side)


@pytest.mark.parametrize("fn, w, h", [(plots.plot_roc, 600, 500), (plots.plot_pr, 600, 500),
                                      (plots.plot_reliability, 600, 600)])
def test_metric_plots(tmp_path, caplog, metrics, fn, w, h):
    with no_missing_glyphs(caplog):
        out = fn(metrics, tmp_path / "p.png")
    assert_png(out, w, h)


def test_roc_without_curves_says_so(tmp_path, caplog):
    m = compute_metrics(np.array([0, 0]), np.array([[0.6, 0.4], [0.3, 0.7]]), ["负面", "正面"])
    with no_missing_glyphs(caplog):
        out = plots.plot_roc(m, tmp_path / "roc.png")
    assert_png(out, 600, 500)


def test_history(tmp_path, caplog):
    rows = [{"epoch": str(e), "step": str(10 * e), "train_loss": str(1 / e), "dev_loss": str(1.2 / e),
             "dev_accuracy": str(0.5 + 0.1 * e), "dev_macro_f1": str(0.45 + 0.1 * e), "lr": str(1e-3 / e),
             "embedding_lr": "", "seconds": "1", "samples_per_s": "100"} for e in range(1, 5)]
    with no_missing_glyphs(caplog):
        out = plots.plot_history(rows, tmp_path / "history.png")
        assert_png(out, 1200, 400)
        out = plots.plot_history([], tmp_path / "empty.png")
    assert_png(out, 1200, 400)


def test_coverage_and_drift(tmp_path, caplog):
    report = {"methods": {"special": {"n_types": 2, "share_types": 0.0, "n_tokens": 0, "share_tokens": 0.0},
                          "exact": {"n_types": 90, "share_types": 0.9, "n_tokens": 950, "share_tokens": 0.95},
                          "composed:mean": {"n_types": 6, "share_types": 0.06, "n_tokens": 30,
                                            "share_tokens": 0.03},
                          "init:normal": {"n_types": 4, "share_types": 0.04, "n_tokens": 20,
                                          "share_tokens": 0.02}}}
    drift = {"per_method": {m: {"l2": {"count": 2, "mean": 0.5 * i, "median": 0.4 * i, "max": i},
                                "cosine": {"count": 2, "mean": 0.1 * i, "median": 0.1 * i, "max": 0.2 * i}}
                            for i, m in enumerate(["special", "exact", "composed:mean"])}}
    drift["per_method"]["composed:mean"]["cosine"] = {"count": 0, "mean": None, "median": None, "max": None}
    with no_missing_glyphs(caplog):
        assert_png(plots.plot_coverage(report, tmp_path / "coverage.png"), 800, 450)
        assert_png(plots.plot_drift(drift, tmp_path / "drift.png"), 1000, 400)


def test_compare_bars_and_learning_curve(tmp_path, caplog):
    def row(setup, frac, acc):
        return {"setup": setup, "train_fraction": frac, "n_seeds": 3, "accuracy_mean": acc, "accuracy_sd": 0.01,
                "macro_f1_mean": acc - 0.02, "macro_f1_sd": 0.015, "vs": "textcnn/随机", "p_value": 0.03,
                "test": "mcnemar"}
    rows = [row("textcnn/嫁接", 1.0, 0.86), row("textcnn/随机", 1.0, 0.83)]
    base = {"name": "tfidf+linearsvc", "train_fraction": 1.0, "accuracy_mean": 0.87, "accuracy_sd": 0.0,
            "macro_f1_mean": 0.86, "macro_f1_sd": 0.0}
    with no_missing_glyphs(caplog):
        assert_png(plots.plot_compare(rows, tmp_path / "bars.png", baseline=base), 1000, 450)
        more = rows + [row("textcnn/嫁接", 0.1, 0.75), row("textcnn/随机", 0.1, 0.68)]
        assert_png(plots.plot_compare(more, tmp_path / "curve.png", baseline=base), 1600, 450)


def test_cjk_font_search_order(monkeypatch):
    """Font manager first, then system font files, then the packaged Noto Sans CJK; else a clear error."""
    calls = []
    known = [{"DejaVu Sans"}]
    monkeypatch.setattr(plots, "_known_families", lambda: set(known[0]))
    monkeypatch.setattr(plots, "_register_system_fonts", lambda: calls.append("system"))

    def package():
        calls.append("package")
        known[0] = known[0] | {"Noto Sans CJK JP", "Noto Sans CJK SC"}
        return "/x/NotoSansCJK-Regular.ttc"
    monkeypatch.setattr(plots, "register_package_font", package)
    plots.cjk_font.cache_clear()
    try:
        assert plots.cjk_font() == "Noto Sans CJK SC"  # SC preferred over JP
        assert calls == ["system", "package"]
        calls.clear()
        assert plots.cjk_font() == "Noto Sans CJK SC" and calls == []  # cached
        plots.cjk_font.cache_clear()
        known[0] = {"DejaVu Sans", "WenQuanYi Zen Hei"}
        assert plots.cjk_font() == "WenQuanYi Zen Hei" and calls == []  # already known: nothing registered
        plots.cjk_font.cache_clear()
        known[0] = {"DejaVu Sans"}
        monkeypatch.setattr(plots, "register_package_font", lambda: None)
        with pytest.raises(plots.EmbgraftError, match="noto-cjk-sans-otc"):
            plots.cjk_font()
    finally:
        plots.cjk_font.cache_clear()
